#[isolated(timeout = "5s")]
fn work(n: u32) -> u32 {
    n * 2
}
