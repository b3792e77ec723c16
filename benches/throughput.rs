//! Moving large results, ours beside mem-isolate 0.1.6 in the same run: a
//! `Vec<u8>` the child makes (serde sees a sequence of `u8`), a byte buffer
//! already in the child (`serde_bytes`: one byte string), and `Vec<f32>`,
//! `Vec<String>` and a struct of vectors made in the child.
//!
//! `cargo bench --bench throughput`, then `python3 benches/report.py`.
//!
//! The byte buffer is made once, in the parent, before the benchmark: the
//! child inherits it at `fork` and serializes it from there, so what is
//! measured is the call and the transport of the result (encode, pipe,
//! decode). The other shapes are built by the child, as a real callable
//! would, and both crates pay for that.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

static DATA: OnceLock<Vec<u8>> = OnceLock::new();
/// How much of `DATA` the current group moves.
static LEN: AtomicUsize = AtomicUsize::new(0);

fn data() -> &'static [u8] {
    &DATA.get().expect("payload prepared")[..LEN.load(Ordering::Relaxed)]
}

/// Serialized exactly like a `serde_bytes::ByteBuf` from the shared payload;
/// deserialized into an owned `ByteBuf`.
#[derive(Debug)]
enum AsBytes {
    Shared,
    Owned(serde_bytes::ByteBuf),
}

impl Serialize for AsBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(data())
    }
}

impl<'de> Deserialize<'de> for AsBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(AsBytes::Owned)
    }
}

fn check_bytes(v: &AsBytes) {
    assert!(matches!(v, AsBytes::Owned(bytes) if bytes.len() == data().len()));
}

/// A `Vec<u8>` the child makes (so both crates pay for building it).
fn made_in_child(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251).to_le_bytes()[0]).collect()
}

/// Columns of a table, as a user might return them.
#[derive(Serialize, Deserialize)]
struct Columns {
    ids: Vec<u64>,
    values: Vec<f64>,
    flags: Vec<bool>,
}

/// About `bytes` of encoded payload in each shape.
fn floats(bytes: usize) -> Vec<f32> {
    (0..bytes / 4)
        .map(|i| f32::from(i.to_le_bytes()[0]) * 0.5)
        .collect()
}

fn strings(bytes: usize) -> Vec<String> {
    (0..bytes / 64).map(|i| format!("{i:0>63}")).collect()
}

#[allow(clippy::cast_precision_loss)] // sample values
fn columns(bytes: usize) -> Columns {
    let rows = bytes / 17;
    Columns {
        ids: (0..rows as u64).map(|i| i * 1000).collect(),
        values: (0..rows as u64).map(|i| (i * 7) as f64 / 3.0).collect(),
        flags: (0..rows).map(|i| i % 3 == 0).collect(),
    }
}

fn throughput(c: &mut Criterion) {
    let sizes = [
        ("1MiB", 1usize << 20),
        ("16MiB", 16 << 20),
        ("64MiB", 64 << 20),
        ("256MiB", 256 << 20),
    ];
    DATA.get_or_init(|| {
        (0..(256usize << 20))
            .map(|i| (i % 251).to_le_bytes()[0])
            .collect()
    });
    for (label, len) in sizes {
        let mut group = c.benchmark_group(format!("throughput/{label}"));
        group.throughput(Throughput::Bytes(len as u64));
        if len >= 64 << 20 {
            group
                .sample_size(10)
                .measurement_time(Duration::from_secs(10));
        }
        LEN.store(len, Ordering::Relaxed);
        group.bench_function("vec_ours", |b| {
            b.iter(|| {
                let v = mem_isolate::execute_in_isolated_process(move || made_in_child(len));
                assert_eq!(black_box(v.unwrap()).len(), len);
            });
        });
        group.bench_function("vec_v0_1_6", |b| {
            b.iter(|| {
                let v = mem_isolate_016::execute_in_isolated_process(move || made_in_child(len));
                assert_eq!(black_box(v.unwrap()).len(), len);
            });
        });
        group.bench_function("bytes_ours", |b| {
            b.iter(|| {
                check_bytes(&black_box(
                    mem_isolate::execute_in_isolated_process(|| AsBytes::Shared).unwrap(),
                ));
            });
        });
        group.bench_function("bytes_v0_1_6", |b| {
            b.iter(|| {
                check_bytes(&black_box(
                    mem_isolate_016::execute_in_isolated_process(|| AsBytes::Shared).unwrap(),
                ));
            });
        });
        group.finish();
    }

    // Other shapes, made in the child, at about 16 MiB of payload each.
    let bytes = 16usize << 20;
    let mut group = c.benchmark_group("throughput_shapes/16MiB");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("f32_ours", |b| {
        b.iter(|| {
            black_box(mem_isolate::execute_in_isolated_process(move || floats(bytes)).unwrap())
        });
    });
    group.bench_function("f32_v0_1_6", |b| {
        b.iter(|| {
            black_box(mem_isolate_016::execute_in_isolated_process(move || floats(bytes)).unwrap())
        });
    });
    group.bench_function("strings_ours", |b| {
        b.iter(|| {
            black_box(mem_isolate::execute_in_isolated_process(move || strings(bytes)).unwrap())
        });
    });
    group.bench_function("strings_v0_1_6", |b| {
        b.iter(|| {
            black_box(mem_isolate_016::execute_in_isolated_process(move || strings(bytes)).unwrap())
        });
    });
    group.bench_function("columns_ours", |b| {
        b.iter(|| {
            black_box(mem_isolate::execute_in_isolated_process(move || columns(bytes)).unwrap())
        });
    });
    group.bench_function("columns_v0_1_6", |b| {
        b.iter(|| {
            black_box(mem_isolate_016::execute_in_isolated_process(move || columns(bytes)).unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
