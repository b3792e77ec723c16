#[mem_isolate::isolated]
const LIMIT: u32 = 5;

fn main() {}
