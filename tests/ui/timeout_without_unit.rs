#[mem_isolate::isolated(timeout = 5)]
fn work() -> u8 {
    1
}

#[mem_isolate::isolated(timeout = "5")]
fn quoted() -> u8 {
    1
}

fn main() {}
