#[mem_isolate::isolated(foo::bar = "x")]
fn work() -> u8 {
    1
}

fn main() {}
