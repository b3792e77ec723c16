// A wrong `crate = "..."` path is reported on the string.
#[mem_isolate::isolated(crate = "mem_isolat", timeout = "1s")]
fn work(n: u8) -> u8 {
    n
}

fn main() {}
