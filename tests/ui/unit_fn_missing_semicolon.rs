// A function without `-> T` whose last expression lacks its `;`: the type
// error must point at that expression.
#[mem_isolate::isolated]
fn log(n: u32) {
    n + 1
}

fn main() {
    let _ = log(1);
}
