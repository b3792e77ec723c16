use mem_isolate::{isolated, zygote, MemIsolateError};

#[isolated(zygote)]
fn triple(n: u64) -> u64 { n * 3 }

#[isolated(zygote, timeout = "1s")]
fn whoami(_x: u8) -> u32 { std::process::id() }

fn main() -> Result<(), MemIsolateError> {
    zygote::start().unwrap();
    println!("triple={} worker={} me={}", triple(5)?, whoami(0)?, std::process::id());
    Ok(())
}
