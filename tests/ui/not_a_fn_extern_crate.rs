#[mem_isolate::isolated]
extern crate core;

fn main() {}
