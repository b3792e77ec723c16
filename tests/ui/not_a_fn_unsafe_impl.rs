struct Wrapper(*const u8);

#[mem_isolate::isolated]
unsafe impl Send for Wrapper {}

fn main() {}
