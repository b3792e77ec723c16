// Every problem is reported at once, not only the first.
#[mem_isolate::isolated(timeout = "5 seconds", memory_limit = "lots", retries = 3, zygote = true)]
fn work() -> u8 {
    1
}

fn main() {}
