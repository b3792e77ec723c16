//! The cost of one isolated call returning a `u64`, beside the hand-written
//! floor, mem-isolate 0.1.6 and a direct call, at several parent sizes.
//!
//! `cargo bench --bench call_cost`, then `python3 benches/report.py` for the
//! ratios and the chart.
//!
//! Calls run back to back: the next call starts the moment the last one
//! returned, so work a call leaves behind (our children's exit, reaped by a
//! background thread) competes with the next call on the same two cores.
//!
//! Forks are noisy on a shared machine (±15% from one second to the next on
//! the 2-vCPU VM the README's figures come from), so each group measures the
//! floor first and again last (`floor_again`); the report divides by the
//! mean of the two.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{fork_floor, Ballast, Pages};
use criterion::{criterion_group, criterion_main, Criterion};

#[mem_isolate::isolated]
fn attribute_call() -> u64 {
    black_box(42)
}

type NamedCall = (&'static str, fn() -> u64);

/// The same closure, called in this process.
#[inline(never)]
fn direct() -> u64 {
    let f = || black_box(42u64);
    f()
}

fn ours() -> u64 {
    mem_isolate::execute_in_isolated_process(|| black_box(42u64)).unwrap()
}

fn v0_1_6() -> u64 {
    mem_isolate_016::execute_in_isolated_process(|| black_box(42u64)).unwrap()
}

fn bench_parent(c: &mut Criterion, name: &str, bytes: usize, pages: Pages) {
    let _ballast = Ballast::new(bytes, pages);
    let mut group = c.benchmark_group(format!("call_cost/{name}"));
    if bytes >= 256 << 20 {
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(10));
    }
    group.bench_function("direct", |b| b.iter(direct));
    let calls: [NamedCall; 5] = [
        ("floor", fork_floor),
        ("ours", ours),
        ("ours_attribute", || attribute_call().unwrap()),
        ("v0_1_6", v0_1_6),
        ("floor_again", fork_floor),
    ];
    for (name, call) in calls {
        group.bench_function(name, |b| b.iter(call));
    }
    group.finish();
}

fn call_cost(c: &mut Criterion) {
    bench_parent(c, "parent_0", 0, Pages::Small);
    bench_parent(c, "parent_64MiB", 64 << 20, Pages::Small);
    bench_parent(c, "parent_1GiB", 1 << 30, Pages::Small);
    bench_parent(c, "parent_1GiB_hugepages", 1 << 30, Pages::Huge);
}

criterion_group!(benches, call_cost);
criterion_main!(benches);
