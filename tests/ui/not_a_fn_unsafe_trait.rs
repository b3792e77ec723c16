#[mem_isolate::isolated]
unsafe trait Marker {}

fn main() {}
