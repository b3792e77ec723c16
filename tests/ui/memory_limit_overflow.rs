#[mem_isolate::isolated(memory_limit = 99999999999999999999)]
fn work() -> u8 {
    1
}

#[mem_isolate::isolated(memory_limit = "99999999 TiB")]
fn quoted() -> u8 {
    1
}

fn main() {}
