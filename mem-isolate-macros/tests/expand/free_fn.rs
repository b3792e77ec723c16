/// Doubles a number in a child process.
#[isolated]
pub fn double(n: u32) -> u32 {
    n * 2
}

#[isolated]
fn log_line(line: String) {
    println!("{line}");
}
