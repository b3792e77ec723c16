#[mem_isolate::isolated]
#[track_caller]
fn check(n: u32) -> u32 {
    assert!(n > 0);
    n
}

fn main() {
    let _ = check(1);
}
