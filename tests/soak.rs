//! Load: many mixed calls (ok, panic, abort, timeout, large result) from four
//! threads, then nothing may be left: descriptors as at the start, no child,
//! the parent's RSS within 8 MiB of where it began.
//!
//! `soak_short` runs in the normal suite; the 10,000-call `soak_long` runs with
//! `cargo test --test soak -- --ignored`.

use std::time::{Duration, Instant};

use mem_isolate::{Isolate, MemIsolateError};
use mem_isolate_suite::{child_pids, current_rss_bytes, eventually, open_fd_count};

/// A generous limit for the calls that must succeed (a debug build on a
/// loaded machine is slow), a short one for the call that must time out.
const ROOMY: Isolate = Isolate::new().timeout(Duration::from_secs(20));
const SHORT: Isolate = Isolate::new().timeout(Duration::from_millis(25));

fn mixed_call(i: usize) -> Result<usize, MemIsolateError> {
    match i % 5 {
        0 => ROOMY.execute(move || i),
        1 => ROOMY.execute(|| -> usize { panic!("soak") }),
        2 => ROOMY.execute(|| -> usize { std::process::abort() }),
        3 => SHORT.execute(|| -> usize {
            std::thread::sleep(Duration::from_secs(10));
            0
        }),
        _ => ROOMY.execute(move || vec![7u8; 1 << 20].len() + i),
    }
}

fn soak(calls: usize) {
    for i in 0..50 {
        let _ = mixed_call(i); // warm up lazily created state
    }
    assert!(eventually(Duration::from_secs(5), || child_pids().is_empty()));
    let fds = open_fd_count();
    let rss = current_rss_bytes();
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in (t..calls).step_by(4) {
                    let result = mixed_call(i);
                    assert_eq!(
                        result.is_ok(),
                        i % 5 == 0 || i % 5 == 4,
                        "call {i}: {result:?}"
                    );
                }
            });
        }
    });
    let took = start.elapsed();
    assert!(
        eventually(Duration::from_secs(10), || child_pids().is_empty()),
        "children left: {:?}",
        child_pids()
    );
    assert!(
        eventually(Duration::from_secs(5), || open_fd_count() == fds),
        "descriptors leaked: {fds} before, {} after",
        open_fd_count()
    );
    let grown = current_rss_bytes().saturating_sub(rss);
    eprintln!(
        "soak: {calls} calls from 4 threads in {took:.1?} ({:.0} calls/s), RSS grew {} KiB, fds {fds} before and after, no child left",
        f64::from(u32::try_from(calls).unwrap_or(u32::MAX)) / took.as_secs_f64(),
        grown >> 10
    );
    assert!(grown < 8 << 20, "parent RSS grew by {grown} bytes");
}

#[test]
fn soak_short() {
    soak(400);
}

#[test]
#[ignore = "long: 10,000 calls; run with --ignored"]
fn soak_long() {
    soak(10_000);
}
