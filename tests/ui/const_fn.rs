#[mem_isolate::isolated]
const fn answer() -> u8 {
    42
}

fn main() {}
