//! A hang is killed and reaped when the timeout passes.
//!
//! `cargo run --example timeout`

use std::time::{Duration, Instant};

use mem_isolate::Isolate;

fn main() {
    let isolate = Isolate::new().timeout(Duration::from_millis(500));
    let start = Instant::now();
    let result = isolate.execute(|| -> u64 {
        // A busy loop that never ends: no signal handler, no cooperation.
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    });
    println!("after {:?}: {:?}", start.elapsed(), result.unwrap_err());
    // A call that finishes in time is unaffected.
    println!("quick call: {:?}", isolate.execute(|| 2 + 2));
}
