//! The cost of one isolated call returning a `u64`, beside the hand-written
//! floor, mem-isolate 0.1.6 and a direct call, at several parent sizes.
//!
//! `cargo bench --bench call_cost`, then `python3 benches/report.py` for the
//! ratios and the chart.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{fork_floor, Ballast, Pages};
use criterion::{criterion_group, criterion_main, Criterion};

#[mem_isolate::isolated]
fn attribute_call() -> u64 {
    black_box(42)
}

fn bench_parent(c: &mut Criterion, name: &str, bytes: usize, pages: Pages) {
    let _ballast = Ballast::new(bytes, pages);
    let mut group = c.benchmark_group(format!("call_cost/{name}"));
    if bytes >= 256 << 20 {
        group
            .sample_size(20)
            .measurement_time(Duration::from_secs(8));
    }
    group.bench_function("direct", |b| b.iter(|| black_box((|| black_box(42u64))())));
    group.bench_function("floor", |b| b.iter(fork_floor));
    group.bench_function("ours", |b| {
        b.iter(|| mem_isolate::execute_in_isolated_process(|| black_box(42u64)).unwrap());
    });
    group.bench_function("ours_attribute", |b| b.iter(|| attribute_call().unwrap()));
    group.bench_function("v0_1_6", |b| {
        b.iter(|| mem_isolate_016::execute_in_isolated_process(|| black_box(42u64)).unwrap());
    });
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
