#[mem_isolate::isolated(memory_limit = "lots")]
fn work() -> u8 {
    1
}

fn main() {}
