#[mem_isolate::isolated(timeout = "5 seconds")]
fn work() -> u8 {
    1
}

fn main() {}
