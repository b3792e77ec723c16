#[mem_isolate::isolated(memory_limit = -1)]
fn work() -> u8 {
    1
}

fn main() {}
