// The expansion must not hide the user's own `unused` lints.
#![deny(unused_variables)]

#[mem_isolate::isolated]
fn compute() -> u8 {
    let unused = 5;
    1
}

fn main() {
    let _ = compute();
}
