#[mem_isolate::isolated(memory_limit = "64 MiB", memory_limit = "1 GiB")]
fn work() -> u8 {
    1
}

fn main() {}
