//! The parent's memory while a function leaks hundreds of MiB: run without
//! isolation, the leak stays; run through `mem-isolate`, it dies with the child.
//!
//! `cargo run --example leaky`

use mem_isolate::execute_in_isolated_process;
use mem_isolate_suite::current_rss_bytes;

/// Stands in for a leaky C binding: allocates, touches and forgets 50 MiB.
fn leaky_work(round: u32) -> u32 {
    let buffer = vec![0x5Au8; 50 << 20];
    std::mem::forget(buffer);
    round * 2
}

fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

fn main() -> Result<(), mem_isolate::MemIsolateError> {
    println!(
        "{:<8} {:>18} {:>22}",
        "round", "isolated: RSS MiB", "not isolated: RSS MiB"
    );
    let start = current_rss_bytes();
    let mut isolated = Vec::new();
    for round in 1..=8 {
        let v = execute_in_isolated_process(move || leaky_work(round))?;
        assert_eq!(v, round * 2);
        isolated.push(current_rss_bytes());
    }
    for (round, rss) in (1..=8).zip(isolated) {
        let _ = leaky_work(round); // the same function, run in this process
        println!(
            "{round:<8} {:>18} {:>22}",
            mib(rss),
            mib(current_rss_bytes())
        );
    }
    println!(
        "\nleaked 400 MiB each way; isolated the parent stayed at about {} MiB",
        mib(start)
    );
    Ok(())
}
