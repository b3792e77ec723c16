//! Moving large results: `Vec<u8>` (serde sees a sequence of `u8`) and a
//! `serde_bytes` buffer (one byte string), ours beside mem-isolate 0.1.6.
//!
//! `cargo bench --bench throughput`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_bytes::ByteBuf;

fn throughput(c: &mut Criterion) {
    for (label, len) in [
        ("1KiB", 1usize << 10),
        ("1MiB", 1 << 20),
        ("64MiB", 64 << 20),
        ("256MiB", 256 << 20),
    ] {
        let mut group = c.benchmark_group(format!("throughput/{label}"));
        group.throughput(Throughput::Bytes(len as u64));
        if len >= 64 << 20 {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(10));
        }
        group.bench_function("vec_ours", |b| {
            b.iter(|| {
                mem_isolate::execute_in_isolated_process(move || vec![black_box(7u8); len]).unwrap()
            });
        });
        group.bench_function("vec_v0_1_6", |b| {
            b.iter(|| {
                mem_isolate_016::execute_in_isolated_process(move || vec![black_box(7u8); len])
                    .unwrap()
            });
        });
        group.bench_function("bytes_ours", |b| {
            b.iter(|| {
                mem_isolate::execute_in_isolated_process(move || {
                    ByteBuf::from(vec![black_box(7u8); len])
                })
                .unwrap()
            });
        });
        group.bench_function("bytes_v0_1_6", |b| {
            b.iter(|| {
                mem_isolate_016::execute_in_isolated_process(move || {
                    ByteBuf::from(vec![black_box(7u8); len])
                })
                .unwrap()
            });
        });
        group.finish();
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);
