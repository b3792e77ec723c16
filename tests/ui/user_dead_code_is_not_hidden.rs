// The expansion must not hide the user's own `dead_code` lint.
#![deny(dead_code)]

#[mem_isolate::isolated]
fn never_called() -> u8 {
    1
}

fn main() {}
