//! Times one shape of big result many times (profiling aid, not a test).
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::single_match_else
)] // sample bytes, rates
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

static DATA: OnceLock<Vec<u8>> = OnceLock::new();

/// Serialized like a `ByteBuf` straight from the parent's data.
enum AsBytes {
    Shared,
    Owned(Vec<u8>),
}

impl Serialize for AsBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(DATA.get().unwrap())
    }
}

impl<'de> Deserialize<'de> for AsBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ByteBuf;
        impl serde::de::Visitor<'_> for ByteBuf {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_byte_buf(ByteBuf).map(AsBytes::Owned)
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let mib: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let n: usize = std::env::args()
        .nth(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let len = mib << 20;
    let n = if mode == "u64" { n * 100 } else { n };
    DATA.get_or_init(|| (0..len).map(|i| (i % 251) as u8).collect());
    let pin = std::env::var_os("PIN").is_some();
    if pin {
        pin_to(0);
    }
    let mut times = Vec::new();
    for _ in 0..n {
        let start = Instant::now();
        match mode.as_str() {
            "build" => {
                // What the child does before sending, timed alone (in a
                // fresh child, like the calls, so its pages are as fresh).
                let v = mem_isolate::execute_in_isolated_process(move || {
                    let start = Instant::now();
                    let v = (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
                    std::hint::black_box(&v);
                    start.elapsed().as_secs_f64()
                })
                .unwrap();
                times.push(v * 1e3);
                continue;
            }
            "u64" => {
                let v = mem_isolate::execute_in_isolated_process(|| 42u64).unwrap();
                assert_eq!(v, 42);
            }
            "map" | "map-async" => {
                let make = move || {
                    (0..len / 10)
                        .map(|i| (format!("key-{i:08}"), i as u32))
                        .collect::<std::collections::BTreeMap<String, u32>>()
                };
                let v = if mode == "map" {
                    mem_isolate::execute_in_isolated_process(make).unwrap()
                } else {
                    futures::executor::block_on(mem_isolate::Isolate::new().execute_async(make))
                        .unwrap()
                };
                assert_eq!(v.len(), len / 10);
            }
            "f32" => {
                let v = mem_isolate::execute_in_isolated_process(move || {
                    (0..len / 4).map(|i| (i % 251) as f32).collect::<Vec<f32>>()
                })
                .unwrap();
                assert_eq!(v.len(), len / 4);
            }
            "vec" => {
                let v = mem_isolate::execute_in_isolated_process(move || {
                    (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>()
                })
                .unwrap();
                assert_eq!(v.len(), len);
            }
            _ => {
                let v = mem_isolate::execute_in_isolated_process(|| {
                    if pin {
                        pin_to(1);
                    }
                    AsBytes::Shared
                })
                .unwrap();
                assert!(matches!(v, AsBytes::Owned(b) if b.len() == len));
            }
        }
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    if std::env::var_os("PROBE_ALL").is_some() {
        eprintln!("{times:.1?}");
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{mode} {mib} MiB: median {median:.3} ms, min {:.3} ms, {:.2} GB/s",
        times[0],
        len as f64 / median / 1e6
    );
}

/// Runs the calling thread on one CPU only.
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET stays within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set);
    }
}
