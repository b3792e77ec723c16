#[mem_isolate::isolated(timout = "5s")]
fn work() -> u8 {
    1
}

fn main() {}
