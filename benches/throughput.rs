//! Moving large results: a `Vec<u8>` (serde sees a sequence of `u8`) and a
//! byte buffer (`serde_bytes`: one byte string), ours beside mem-isolate
//! 0.1.6.
//!
//! `cargo bench --bench throughput`, then `python3 benches/report.py`.
//!
//! The payload is made once, in the parent, before the benchmark: the child
//! inherits it at `fork` and serializes it from there, so what is measured is
//! the call and the transport of the result (encode, pipe, decode), not the
//! child building 64 MiB of fresh memory.

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

/// Serialized exactly like a `Vec<u8>` (a sequence of `u8`) from the shared
/// payload; deserialized into an owned `Vec<u8>`.
#[derive(Debug)]
enum AsVec {
    Shared,
    Owned(Vec<u8>),
}

impl Serialize for AsVec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(data())
    }
}

impl<'de> Deserialize<'de> for AsVec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(d).map(AsVec::Owned)
    }
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

fn check_vec(v: &AsVec) {
    assert!(matches!(v, AsVec::Owned(bytes) if bytes.len() == data().len()));
}

fn check_bytes(v: &AsBytes) {
    assert!(matches!(v, AsBytes::Owned(bytes) if bytes.len() == data().len()));
}

fn throughput(c: &mut Criterion) {
    let sizes = [
        ("1KiB", 1usize << 10),
        ("1MiB", 1 << 20),
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
                check_vec(&black_box(
                    mem_isolate::execute_in_isolated_process(|| AsVec::Shared).unwrap(),
                ));
            });
        });
        group.bench_function("vec_v0_1_6", |b| {
            b.iter(|| {
                check_vec(&black_box(
                    mem_isolate_016::execute_in_isolated_process(|| AsVec::Shared).unwrap(),
                ));
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
}

criterion_group!(benches, throughput);
criterion_main!(benches);
