//! Values go in and come back whole; memory effects stay in the child.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use mem_isolate::{execute_in_isolated_process, Isolate};
use mem_isolate_suite::current_rss_bytes;
use serde::{Deserialize, Serialize};

/// The RSS measurement must not see other tests' allocations.
static MEMORY_HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn memory_heavy() -> std::sync::MutexGuard<'static, ()> {
    MEMORY_HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Unit,
    Tuple(i8, u128),
    Struct { name: String, tags: Vec<String> },
}

type Nested = Result<Result<Vec<Option<char>>, String>, (u8, bool)>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    shapes: Vec<Shape>,
    index: BTreeMap<String, Vec<u32>>,
    lookup: HashMap<u16, Option<f64>>,
    nested: Nested,
}

#[test]
fn structured_values_round_trip() {
    let report = Report {
        shapes: vec![
            Shape::Unit,
            Shape::Tuple(-7, u128::MAX),
            Shape::Struct {
                name: "Grüße, 世界 🦀 \u{0}".into(),
                tags: vec![String::new(), "ß".repeat(1000)],
            },
        ],
        index: BTreeMap::from([("a".into(), vec![1, 2, 3]), ("ζ".into(), vec![])]),
        lookup: HashMap::from([(1, Some(1.5)), (2, None), (65535, Some(f64::MIN_POSITIVE))]),
        nested: Ok(Err("inner error".into())),
    };
    let expected = report.clone();
    assert_eq!(
        execute_in_isolated_process(move || report).unwrap(),
        expected
    );
    let err: Result<u8, (u8, bool)> = Err((3, true));
    assert_eq!(
        execute_in_isolated_process(move || err).unwrap(),
        Err((3, true))
    );
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
}

#[test]
fn results_of_every_size_arrive_whole() {
    let _heavy = memory_heavy();
    execute_in_isolated_process(|| ()).unwrap();
    for len in [
        0,
        1,
        64 * 1024 - 1,
        64 * 1024,
        64 * 1024 + 1,
        1 << 20,
        40 << 20,
    ] {
        let got = execute_in_isolated_process(move || pattern(len)).unwrap();
        assert_eq!(got.len(), len);
        assert!(got == pattern(len), "content differs at len {len}");
        let bytes =
            execute_in_isolated_process(move || serde_bytes::ByteBuf::from(pattern(len))).unwrap();
        assert!(
            bytes.into_vec() == pattern(len),
            "byte buffer differs at len {len}"
        );
    }
}

static GLOBAL: AtomicU64 = AtomicU64::new(1);

#[test]
fn writes_to_statics_and_captures_stay_in_the_child() {
    let mut captured = vec![1, 2, 3];
    let seen = execute_in_isolated_process(|| {
        GLOBAL.store(99, Ordering::SeqCst);
        captured.push(4);
        (GLOBAL.load(Ordering::SeqCst), captured.len())
    })
    .unwrap();
    assert_eq!(seen, (99, 4));
    assert_eq!(GLOBAL.load(Ordering::SeqCst), 1);
    assert_eq!(captured, vec![1, 2, 3]);
}

#[test]
fn nested_isolation_works() {
    let outer = execute_in_isolated_process(|| {
        let inner = execute_in_isolated_process(std::process::id).unwrap();
        (std::process::id(), inner)
    })
    .unwrap();
    let me = std::process::id();
    assert_ne!(outer.0, me);
    assert_ne!(outer.1, me);
    assert_ne!(outer.0, outer.1);
    // A nested call's failure is reported to the nested caller only.
    let outer = execute_in_isolated_process(|| {
        let inner = Isolate::new().execute(|| -> u8 { std::process::exit(7) });
        format!("{:?}", inner.unwrap_err())
    })
    .unwrap();
    assert!(outer.contains("UnexpectedChildExitStatus(7)"), "{outer}");
}

#[test]
fn leaks_are_contained() {
    fn leak_16_mib() -> usize {
        let v = vec![0xA5u8; 16 << 20];
        let len = v.len();
        std::mem::forget(v);
        len
    }
    let _heavy = memory_heavy();
    // Warm up: the first calls allocate the parent's lazily created state.
    execute_in_isolated_process(leak_16_mib).unwrap();
    let before = current_rss_bytes();
    for _ in 0..40 {
        assert_eq!(execute_in_isolated_process(leak_16_mib).unwrap(), 16 << 20);
    }
    let grown = current_rss_bytes().saturating_sub(before);
    // 40 calls leaked 640 MiB in their children; the parent must stay flat.
    assert!(grown < 16 << 20, "parent RSS grew by {grown} bytes");
}

#[test]
fn four_threads_get_their_own_results() {
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..40u64 {
                    let got = execute_in_isolated_process(move || {
                        vec![t; usize::try_from(i).unwrap() + 1]
                    })
                    .unwrap();
                    assert_eq!(got, vec![t; usize::try_from(i).unwrap() + 1]);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn one_isolate_serves_many_calls() {
    let isolate = Isolate::new().timeout(std::time::Duration::from_secs(10));
    let copy = isolate.clone();
    assert_eq!(format!("{isolate:?}"), format!("{copy:?}"));
    let total: u32 = (0..10).map(|i| copy.execute(move || i * 2).unwrap()).sum();
    assert_eq!(total, 90);
    assert_eq!(Isolate::default(), Isolate::new());
}
