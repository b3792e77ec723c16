//! Zygote mode against forking the caller directly, at several caller sizes
//! (4 KiB pages), from several threads, and the copy-on-write tax a caller
//! pays after a call.
//!
//! `cargo bench --bench zygote`, then `python3 benches/report.py`. The
//! zygote is started first thing in `main`, while the bench process is
//! small: the ballast is allocated later, in the caller only.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{fork_floor, Ballast, Pages};
use criterion::{criterion_group, Criterion};
use mem_isolate::Isolate;

/// A benchmark's label and the call it times.
type NamedCall = (&'static str, fn() -> u64);

fn answer((): ()) -> u64 {
    black_box(42)
}

fn direct() -> u64 {
    Isolate::new().execute(|| answer(())).unwrap()
}

fn zygote() -> u64 {
    Isolate::new()
        .require_zygote(true)
        .call(answer, ())
        .unwrap()
}

fn by_parent_size(c: &mut Criterion) {
    for (name, bytes) in [
        ("parent_0", 0usize),
        ("parent_64MiB", 64 << 20),
        ("parent_1GiB", 1 << 30),
        ("parent_4GiB", 4 << 30),
    ] {
        let _ballast = Ballast::new(bytes, Pages::Small);
        let mut group = c.benchmark_group(format!("zygote/{name}"));
        if bytes >= 1 << 30 {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(8))
                .warm_up_time(Duration::from_secs(1));
        }
        // The zygote first: a direct fork of a big caller leaves a child
        // tearing down its copy of the address space for a while after the
        // call returns, on the same two cores.
        let calls: [NamedCall; 4] = [
            ("zygote", zygote),
            ("floor", fork_floor),
            ("direct", direct),
            ("floor_again", fork_floor),
        ];
        for (function, call) in calls {
            group.bench_function(function, |b| b.iter(call));
        }
        settle();
        group.finish();
    }
}

/// Waits until the children of earlier calls are gone.
fn settle() {
    std::thread::sleep(Duration::from_secs(2));
}

/// Calls from 1, 4 and 8 threads at once; criterion's time is per call.
fn from_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("zygote_threads");
    for threads in [1u32, 4, 8] {
        for (function, call) in [("direct", direct as fn() -> u64), ("zygote", zygote)] {
            group.bench_function(format!("{function}_{threads}"), |b| {
                b.iter_custom(|iters| {
                    let per_thread = iters.div_ceil(u64::from(threads));
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for _ in 0..threads {
                            s.spawn(|| {
                                for _ in 0..per_thread {
                                    black_box(call());
                                }
                            });
                        }
                    });
                    // Time per call.
                    start.elapsed() * u32::try_from(iters).unwrap_or(1)
                        / u32::try_from(per_thread * u64::from(threads)).unwrap_or(1)
                });
            });
        }
    }
    group.finish();
}

/// Rewriting a 1 GiB heap (one byte per page) right after a call: the
/// copy-on-write tax a direct fork leaves and a zygote call does not.
fn rewrite_after_call(c: &mut Criterion) {
    let ballast = Ballast::new(1 << 30, Pages::Small);
    let mut group = c.benchmark_group("zygote_rewrite_1GiB");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1));
    let calls: [NamedCall; 3] = [
        ("no_call", || 0),
        ("after_direct", direct),
        ("after_zygote", zygote),
    ];
    for (function, call) in calls {
        group.bench_function(function, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    black_box(call());
                    let start = Instant::now();
                    ballast.touch_every_page();
                    total += start.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, by_parent_size, from_threads, rewrite_after_call);

fn main() {
    mem_isolate::zygote::start().expect("the zygote starts first thing in main");
    benches();
    Criterion::default().configure_from_args().final_summary();
}
