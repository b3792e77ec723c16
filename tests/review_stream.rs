//! Hostile review of the streamed result path (chunked value frames decoded
//! while they arrive). A hostile child writes raw bytes into its inherited
//! result pipe; hostile user types panic or fail in `Serialize` and
//! `Deserialize` mid-stream. Every test runs under one lock: finding the
//! result pipe by "new since the call began" and measuring peak RSS both
//! need nothing else running in this process.

#![cfg(target_os = "linux")]
// Forged wire bytes and sample values: casts and literals on purpose; long
// scenario functions read top to bottom.
#![allow(
    clippy::unreadable_literal,
    clippy::manual_assert,
    clippy::needless_pass_by_value,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::borrow_as_ptr,
    clippy::items_after_statements,
    clippy::too_many_lines,
    clippy::type_complexity,
    clippy::map_identity,
    clippy::redundant_closure,
    clippy::redundant_closure_for_method_calls
)]

use std::time::{Duration, Instant};

use futures::executor::block_on;
use mem_isolate::errors::{
    CallableExecutedError as Executed, CallableStatusUnknownError as Unknown,
};
use mem_isolate::{Isolate, MemIsolateError};
use mem_isolate_suite::wire::*;
use mem_isolate_suite::{child_pids, result_pipe, settled_fds, write_raw};
use serde::de::Deserializer;
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Peak RSS since the last reset (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// What a hostile call left behind and cost.
struct Outcome<T> {
    result: Result<T, MemIsolateError>,
    took: Duration,
    peak_growth: u64,
}

/// Runs a hostile callable returning `T` (its own value is discarded if it
/// returns); checks afterwards that no descriptor leaked and no child is
/// left, and measures how far the parent's peak RSS grew.
fn hostile<T>(isolate: &Isolate, act: impl FnOnce(i32) -> T) -> Outcome<T>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    hostile_in(isolate, false, act)
}

/// [`hostile`], through `execute_async` when `use_async`.
fn hostile_in<T>(isolate: &Isolate, use_async: bool, act: impl FnOnce(i32) -> T) -> Outcome<T>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    Isolate::new().execute(|| ()).unwrap(); // the reaper's pipe exists before `before`
    if use_async {
        // So does the background waiter's.
        block_on(Isolate::new().execute_async(|| ())).unwrap();
    }
    let before = settled_fds();
    reset_peak_rss();
    let base = mem_isolate_suite::current_rss_bytes();
    let start = Instant::now();
    let theirs = before.clone();
    let result = if use_async {
        block_on(isolate.execute_async(move || act(result_pipe(&theirs))))
    } else {
        isolate.execute(move || act(result_pipe(&theirs)))
    };
    let took = start.elapsed();
    let peak_growth = peak_rss().saturating_sub(base);
    let after = settled_fds();
    assert_eq!(
        after.difference(&before).collect::<Vec<_>>(),
        Vec::<&i32>::new(),
        "descriptors leaked"
    );
    assert!(child_pids().is_empty(), "children left: {:?}", child_pids());
    Outcome {
        result,
        took,
        peak_growth,
    }
}

fn is_err(
    result: &Result<impl std::fmt::Debug, MemIsolateError>,
    want: fn(&MemIsolateError) -> bool,
) -> bool {
    matches!(result, Err(e) if want(e))
}

// ------------------------------------------------------------ hostile child

#[test]
fn forged_huge_chunk_length_is_refused_fast() {
    let _s = serial();
    let o = hostile(
        &Isolate::new().timeout(Duration::from_secs(5)),
        |fd| -> String {
            write_raw(fd, &[VALUE, 0xFE, 0xFF, 0xFF, 0xFF]);
            std::thread::sleep(Duration::from_secs(30));
            String::new()
        },
    );
    assert!(
        is_err(&o.result, |e| matches!(
            e,
            MemIsolateError::CallableExecuted(Executed::ResultTooLarge { .. })
        )),
        "{:?}",
        o.result.map(|s| s.len())
    );
    assert!(o.took < Duration::from_secs(1), "{:?}", o.took);
    eprintln!("0xFFFF_FFFE: {:?}", o.took);
}

#[test]
fn chunks_summing_past_the_limit() {
    let _s = serial();
    let limited = Isolate::new()
        .timeout(Duration::from_secs(5))
        .max_result_size(1 << 20);
    let o = hostile(&limited, |fd| -> Vec<u8> {
        let mut f = vec![VALUE];
        f.extend_from_slice(&chunk(&varint(3 << 20)));
        for _ in 0..3 {
            f.extend_from_slice(&chunk(&vec![7u8; 400 << 10]));
        }
        write_raw(fd, &f);
        std::thread::sleep(Duration::from_secs(30));
        Vec::new()
    });
    assert!(
        is_err(&o.result, |e| matches!(
            e,
            MemIsolateError::CallableExecuted(Executed::ResultTooLarge { limit: 1048576 })
        )),
        "{:?}",
        o.result.map(|s| s.len())
    );
    assert!(o.took < Duration::from_secs(2), "{:?}", o.took);
}

/// A 900 MiB byte string claimed, 10 bytes sent, then silence past the
/// timeout (and, second run, an exit).
#[test]
fn huge_claimed_string_then_silence_or_exit() {
    let _s = serial();
    for (shape, exit) in [
        ("Vec<u8>", false),
        ("Vec<u8>", true),
        ("String", false),
        ("ByteBuf", false),
    ] {
        let isolate = Isolate::new().timeout(Duration::from_secs(1));
        let act = move |fd: i32| {
            let mut f = vec![VALUE];
            let mut payload = varint(900 << 20);
            payload.extend_from_slice(b"0123456789");
            f.extend_from_slice(&u32::try_from((900 << 20) + 5).unwrap().to_le_bytes());
            f.extend_from_slice(&payload);
            write_raw(fd, &f);
            if exit {
                exit_now(0);
            }
            std::thread::sleep(Duration::from_secs(30));
        };
        let (ok, took, growth, dbg) = match shape {
            "String" => {
                let o = hostile(&isolate, move |fd| -> String {
                    act(fd);
                    String::new()
                });
                (
                    o.result.is_err(),
                    o.took,
                    o.peak_growth,
                    format!("{:?}", o.result.map(|v| v.len())),
                )
            }
            "ByteBuf" => {
                let o = hostile(&isolate, move |fd| -> ByteBuf {
                    act(fd);
                    ByteBuf::new()
                });
                (
                    o.result.is_err(),
                    o.took,
                    o.peak_growth,
                    format!("{:?}", o.result.map(|v| v.len())),
                )
            }
            _ => {
                let o = hostile(&isolate, move |fd| -> Vec<u8> {
                    act(fd);
                    Vec::new()
                });
                (
                    o.result.is_err(),
                    o.took,
                    o.peak_growth,
                    format!("{:?}", o.result.map(|v| v.len())),
                )
            }
        };
        eprintln!(
            "900 MiB claim as {shape} exit={exit}: {dbg} in {took:?}, peak RSS +{} KiB",
            growth >> 10
        );
        assert!(ok, "{dbg}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(growth < 8 << 20, "peak RSS grew {growth} bytes");
        if !exit {
            assert!(dbg.contains("TimedOut"), "{dbg}");
        }
    }
}

/// One byte every 10 ms inside a 900 MiB claimed string, 2 s timeout.
#[test]
fn trickle_inside_a_huge_claim_times_out() {
    let _s = serial();
    let isolate = Isolate::new().timeout(Duration::from_secs(2));
    let o = hostile(&isolate, |fd| -> Vec<u8> {
        let mut f = vec![VALUE];
        f.extend_from_slice(&u32::try_from(900 << 20).unwrap().to_le_bytes());
        f.extend_from_slice(&varint((900 << 20) - 5));
        write_raw(fd, &f);
        loop {
            write_raw(fd, b"x");
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    eprintln!(
        "trickle: {:?} in {:?}, peak +{} KiB",
        o.result.as_ref().map(Vec::len),
        o.took,
        o.peak_growth >> 10
    );
    assert!(
        is_err(&o.result, |e| matches!(
            e,
            MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(_))
        )),
        "{:?}",
        o.result.map(|v| v.len())
    );
    assert!(o.took < Duration::from_secs(3), "{:?}", o.took);
    assert!(o.peak_growth < 8 << 20, "{}", o.peak_growth);
}

/// A legitimate frame written a byte at a time, headers split across writes.
#[test]
fn headers_split_across_writes_still_decode() {
    let _s = serial();
    let isolate = Isolate::new().timeout(Duration::from_secs(5));
    let o = hostile(&isolate, |fd| -> String {
        let text = "héllo wörld ✓";
        let mut payload = varint(text.len() as u64);
        payload.extend_from_slice(text.as_bytes());
        let mut f = vec![VALUE];
        // One chunk per byte of payload.
        for b in &payload {
            f.extend_from_slice(&chunk(&[*b]));
        }
        f.extend_from_slice(&END);
        f.push(DONE);
        for b in f {
            write_raw(fd, &[b]);
            std::thread::sleep(Duration::from_millis(1));
        }
        exit_now(0);
    });
    assert_eq!(o.result.unwrap(), "héllo wörld ✓");
}

#[test]
fn abandon_mark_followed_by_garbage_or_a_value() {
    let _s = serial();
    let isolate = Isolate::new().timeout(Duration::from_secs(3));
    // Garbage.
    let o = hostile(&isolate, |fd| -> Vec<u8> {
        let mut f = vec![VALUE];
        f.extend_from_slice(&chunk(&[3, 1, 2]));
        f.extend_from_slice(&ABANDON);
        f.extend_from_slice(b"GET / HTTP/1.1\r\n");
        write_raw(fd, &f);
        std::thread::sleep(Duration::from_secs(30));
        Vec::new()
    });
    eprintln!("abandon+garbage: {:?} in {:?}", o.result, o.took);
    assert!(o.result.is_err());
    assert!(o.took < Duration::from_secs(1), "{:?}", o.took);
    // Another whole value frame.
    let o = hostile(&isolate, |fd| -> Vec<u8> {
        let mut f = vec![VALUE];
        f.extend_from_slice(&chunk(&[3, 1, 2]));
        f.extend_from_slice(&ABANDON);
        f.extend_from_slice(&value_frame(&[2, 9, 9]));
        write_raw(fd, &f);
        exit_now(0);
    });
    eprintln!("abandon+value: {:?} in {:?}", o.result, o.took);
    assert!(o.result.is_err(), "{:?}", o.result);
    // A message claiming 2^63 bytes after the mark, then silence.
    let o = hostile(&isolate, |fd| -> Vec<u8> {
        let mut f = vec![VALUE];
        f.extend_from_slice(&chunk(&[3, 1, 2]));
        f.extend_from_slice(&ABANDON);
        f.push(SER_FAILED);
        f.extend_from_slice(&(1u64 << 63).to_le_bytes());
        f.extend_from_slice(b"short");
        write_raw(fd, &f);
        std::thread::sleep(Duration::from_secs(30));
        Vec::new()
    });
    eprintln!("abandon+2^63 message: {:?} in {:?}", o.result, o.took);
    assert!(
        is_err(&o.result, |e| matches!(
            e,
            MemIsolateError::CallableExecuted(Executed::ResultTooLarge { .. })
        )),
        "{:?}",
        o.result
    );
    assert!(o.took < Duration::from_secs(1), "{:?}", o.took);
}

#[test]
fn message_frames_with_lying_lengths() {
    let _s = serial();
    let isolate = Isolate::new().timeout(Duration::from_secs(1));
    // 2^63 claimed.
    let o = hostile(&isolate, |fd| -> u8 {
        let mut f = vec![PANIC];
        f.extend_from_slice(&(1u64 << 63).to_le_bytes());
        f.extend_from_slice(b"boom");
        write_raw(fd, &f);
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    eprintln!("panic 2^63: {:?} in {:?}", o.result, o.took);
    assert!(o.result.is_err());
    assert!(o.took < Duration::from_secs(1), "{:?}", o.took);
    // 1 GiB - 1 claimed (within the default limit), 4 bytes sent, silence.
    let o = hostile(&isolate, |fd| -> u8 {
        let mut f = vec![PANIC];
        f.extend_from_slice(&((1u64 << 30) - 1).to_le_bytes());
        f.extend_from_slice(b"boom");
        write_raw(fd, &f);
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    eprintln!(
        "panic 1GiB-1: {:?} in {:?}, peak +{} KiB",
        o.result,
        o.took,
        o.peak_growth >> 10
    );
    assert!(
        is_err(&o.result, |e| matches!(
            e,
            MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(_))
        )),
        "{:?}",
        o.result
    );
    assert!(o.took < Duration::from_secs(2), "{:?}", o.took);
    assert!(o.peak_growth < 8 << 20, "{}", o.peak_growth);
}

#[test]
fn done_mark_missing_doubled_or_followed() {
    let _s = serial();
    let isolate = Isolate::new().timeout(Duration::from_secs(3));
    // Missing: the value, then the child hangs. The result is in; the
    // child is killed after the housekeeping grace.
    let o = hostile(&isolate, |fd| -> u32 {
        let mut f = vec![VALUE];
        f.extend_from_slice(&chunk(&[42]));
        f.extend_from_slice(&END);
        write_raw(fd, &f);
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    eprintln!("no done mark: {:?} in {:?}", o.result, o.took);
    assert_eq!(o.result.unwrap(), 42);
    assert!(o.took < Duration::from_secs(1), "{:?}", o.took);
    // Doubled, in one write: nothing after the mark is looked at (only the
    // child's own descendants could write it, after it was done).
    let o = hostile(&isolate, |fd| -> u32 {
        let mut f = value_frame(&[42]);
        f.push(DONE);
        write_raw(fd, &f);
        exit_now(0);
    });
    eprintln!("doubled done mark: {:?} in {:?}", o.result, o.took);
    assert_eq!(o.result.unwrap(), 42);
    // Bytes after the done mark, then the child lingers: the value, at once.
    let o = hostile(&isolate, |fd| -> u32 {
        let mut f = value_frame(&[42]);
        f.extend_from_slice(&[0x55; 1000]);
        write_raw(fd, &f);
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    eprintln!("bytes after the mark: {:?} in {:?}", o.result, o.took);
    assert_eq!(o.result.unwrap(), 42);
    assert!(o.took < Duration::from_secs(1), "{:?}", o.took);
    // Bytes in place of the done mark: refused.
    let o = hostile(&isolate, |fd| -> u32 {
        let mut f = value_frame(&[42]);
        f.pop();
        f.extend_from_slice(&[0x55; 1000]);
        write_raw(fd, &f);
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    eprintln!("bytes instead of the mark: {:?} in {:?}", o.result, o.took);
    assert!(o.result.is_err(), "{:?}", o.result);
    assert!(o.took < Duration::from_secs(1), "{:?}", o.took);
}

// ------------------------------------------------------- hostile user types

/// Serializes `len` bytes as one byte string, then panics or fails.
#[derive(Debug)]
struct FailsAfter {
    len: usize,
    panic: bool,
}

impl Serialize for FailsAfter {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = vec![0x5Au8; self.len];
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(serde_bytes::Bytes::new(&bytes))?;
        if self.panic {
            panic!("serialize exploded after {} bytes", self.len);
        }
        Err(serde::ser::Error::custom(format!(
            "serialize refused after {} bytes",
            self.len
        )))
    }
}

impl<'de> Deserialize<'de> for FailsAfter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (bytes, _): (ByteBuf, u8) = Deserialize::deserialize(d)?;
        Ok(Self {
            len: bytes.len(),
            panic: false,
        })
    }
}

fn check_serialization_failed(
    label: &str,
    result: Result<FailsAfter, MemIsolateError>,
    took: Duration,
    panic: bool,
) {
    eprintln!("{label}: {result:?} in {took:?}");
    let want = if panic {
        "serialize exploded after 10485760 bytes"
    } else {
        "serialize refused after 10485760 bytes"
    };
    match result {
        Err(MemIsolateError::CallableExecuted(Executed::SerializationFailed(m))) => {
            assert!(m.contains(want), "{label}: {m}");
        }
        other => panic!("{label}: {other:?}"),
    }
    assert!(took < Duration::from_secs(3), "{label}: {took:?}");
}

#[test]
fn serialize_failing_after_10_mib_blocking_and_async() {
    let _s = serial();
    let isolate = Isolate::new().timeout(Duration::from_secs(10));
    for panic in [false, true] {
        let start = Instant::now();
        let r = isolate.execute(move || FailsAfter {
            len: 10 << 20,
            panic,
        });
        check_serialization_failed("blocking", r, start.elapsed(), panic);
        let start = Instant::now();
        let r = block_on(isolate.execute_async(move || FailsAfter {
            len: 10 << 20,
            panic,
        }));
        check_serialization_failed("async", r, start.elapsed(), panic);
        let start = Instant::now();
        let report = isolate.execute_report(move || FailsAfter {
            len: 10 << 20,
            panic,
        });
        check_serialization_failed("report", report.result, start.elapsed(), panic);
    }
    assert!(mem_isolate_suite::no_children_left());
}

/// 100 MiB as 100 byte strings of 1 MiB; the element whose first byte is
/// 0xEE panics (or errors) in `Deserialize`.
#[derive(Debug, Serialize)]
struct Elem(#[serde(with = "serde_bytes")] Vec<u8>);

impl<'de> Deserialize<'de> for Elem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = ByteBuf::deserialize(d)?.into_vec();
        match bytes.first() {
            Some(0xEE) => panic!("deserialize exploded mid-stream"),
            Some(0xEF) => Err(serde::de::Error::custom("deserialize refused mid-stream")),
            _ => Ok(Self(bytes)),
        }
    }
}

#[test]
fn deserialize_failing_mid_stream_keeps_output_and_reaps() {
    let _s = serial();
    for marker in [0xEEu8, 0xEF] {
        let before = settled_fds();
        let start = Instant::now();
        let report = Isolate::new()
            .timeout(Duration::from_secs(20))
            .capture_output(1 << 16)
            .execute_report(move || {
                // Not `println!`: the test harness captures that in-process.
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout(), "child says hello on stdout");
                let _ = writeln!(std::io::stderr(), "child says hello on stderr");
                (0..100u32)
                    .map(|i| {
                        let mut v = vec![(i % 200) as u8; 1 << 20];
                        if i == 50 {
                            v[0] = marker;
                        }
                        Elem(v)
                    })
                    .collect::<Vec<_>>()
            });
        let took = start.elapsed();
        eprintln!(
            "deserialize {marker:#x}: {:?} in {took:?}, output {:?}",
            report.result.as_ref().map(Vec::len),
            report.output
        );
        match &report.result {
            Err(MemIsolateError::CallableExecuted(Executed::DeserializationFailed(m))) => {
                assert!(m.contains("mid-stream"), "{m}");
            }
            other => panic!("{:?}", other.as_ref().map(Vec::len)),
        }
        let output = report.output.expect("captured output");
        assert_eq!(output.stdout_lossy(), "child says hello on stdout\n");
        assert!(output.stderr_lossy().contains("child says hello on stderr"));
        assert!(report.usage.is_some(), "the child was reaped with usage");
        assert!(took < Duration::from_secs(10), "{took:?}");
        assert_eq!(settled_fds(), before);
    }
}

// ------------------------------------------------------------ limits

fn limit_case<T>(label: &str, value: T, encoded: u64)
where
    T: Serialize
        + serde::de::DeserializeOwned
        + PartialEq
        + std::fmt::Debug
        + Clone
        + Send
        + 'static,
{
    let at = Isolate::new().max_result_size(encoded);
    let v = value.clone();
    let r = at.execute(move || v);
    assert!(
        r.as_ref().is_ok_and(|got| *got == value),
        "{label} at the limit ({encoded}): {:?}",
        r.err()
    );
    let v = value.clone();
    let r = block_on(at.execute_async(move || v));
    assert!(
        r.as_ref().is_ok_and(|got| *got == value),
        "{label} async at the limit ({encoded}): {:?}",
        r.err()
    );
    let over = Isolate::new().max_result_size(encoded - 1);
    let v = value.clone();
    let r = over.execute(move || v);
    assert!(
        matches!(r, Err(MemIsolateError::CallableExecuted(Executed::ResultTooLarge { limit })) if limit == encoded - 1),
        "{label} one byte over ({encoded}): {:?}",
        r.map(|_| ())
    );
    let v = value.clone();
    let r = block_on(over.execute_async(move || v));
    assert!(
        matches!(r, Err(MemIsolateError::CallableExecuted(Executed::ResultTooLarge { limit })) if limit == encoded - 1),
        "{label} async one byte over ({encoded}): {:?}",
        r.map(|_| ())
    );
}

#[test]
fn max_result_size_boundaries() {
    let _s = serial();
    for len in [
        0usize,
        100,
        250,
        251,
        600,
        65_535,
        65_536,
        300_000,
        (1 << 20) + 1,
    ] {
        let v: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let encoded = varint(len as u64).len() as u64 + len as u64;
        if encoded == 0 {
            continue;
        }
        limit_case(&format!("Vec<u8> {len}"), v, encoded);
        let s: String = "é".repeat(len / 2);
        let encoded = varint(s.len() as u64).len() as u64 + s.len() as u64;
        if encoded > 1 {
            limit_case(&format!("String {}", s.len()), s, encoded);
        }
    }
    let strings: Vec<String> = (0..5000).map(|i| "x".repeat(i % 300)).collect();
    let encoded = varint(5000).len() as u64
        + strings
            .iter()
            .map(|s| varint(s.len() as u64).len() as u64 + s.len() as u64)
            .sum::<u64>();
    limit_case("Vec<String>", strings, encoded);
    let nested: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; 40 << 10]).collect();
    let encoded = varint(40).len() as u64
        + nested
            .iter()
            .map(|s| varint(s.len() as u64).len() as u64 + s.len() as u64)
            .sum::<u64>();
    limit_case("Vec<Vec<u8>>", nested, encoded);
}

// ------------------------------------------------------------ round trips

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Holder {
    Empty,
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    Pair(u16, ByteBuf, String),
}

fn both<T>(label: &str, value: &T)
where
    T: Serialize
        + serde::de::DeserializeOwned
        + PartialEq
        + std::fmt::Debug
        + Clone
        + Send
        + 'static,
{
    let isolate = Isolate::new().timeout(Duration::from_secs(20));
    let v = value.clone();
    let got = isolate
        .execute(move || v)
        .unwrap_or_else(|e| panic!("{label}: {e:?}"));
    assert!(got == *value, "{label}: blocking round trip differs");
    let v = value.clone();
    let got = block_on(isolate.execute_async(move || v))
        .unwrap_or_else(|e| panic!("{label} async: {e:?}"));
    assert!(got == *value, "{label}: async round trip differs");
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn large_results_of_every_shape_round_trip() {
    let _s = serial();
    let start = Instant::now();
    for len in [
        0usize,
        1,
        65_535,
        65_536,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        64 << 20,
    ] {
        let v = pattern(len, len as u32);
        both(&format!("Vec<u8> {len}"), &v);
        if len <= 1 << 20 {
            both(&format!("ByteBuf {len}"), &ByteBuf::from(v.clone()));
            both(&format!("Option<Vec<u8>> {len}"), &Some(v.clone()));
            both(&format!("enum {len}"), &Holder::Bytes(v.clone()));
        }
    }
    both("ByteBuf 64 MiB", &ByteBuf::from(pattern(64 << 20, 9)));
    both("Option<Vec<u8>> None", &None::<Vec<u8>>);
    both("enum Empty", &Holder::Empty);
    both(
        "enum Pair",
        &Holder::Pair(7, ByteBuf::from(pattern(300_000, 3)), "ñ€😀".repeat(70_000)),
    );
    // Multibyte characters at every offset modulo 4 across chunk (256 KiB)
    // and pipe (64 KiB, 1 MiB) boundaries.
    for prefix in 0..4 {
        let s = format!("{}{}", "a".repeat(prefix), "€😀ñ".repeat(400_000));
        both(&format!("String prefix {prefix} ({} bytes)", s.len()), &s);
    }
    let strings: Vec<String> = (0..600)
        .map(|i| format!("{}{}", "x".repeat(i % 7), "😀".repeat(10_000 + i)))
        .collect();
    both("Vec<String> 40 KiB", &strings);
    let nested: Vec<Vec<u8>> = (0..300)
        .map(|i| pattern((40 << 10) + i % 3, i as u32))
        .collect();
    both("Vec<Vec<u8>> 40 KiB", &nested);
    let mixed: Vec<(u8, Vec<u8>, String)> = (0..200)
        .map(|i| (i as u8, pattern(i * 1000, i as u32), "é".repeat(i * 700)))
        .collect();
    both("Vec<(u8, Vec<u8>, String)>", &mixed);
    eprintln!("round trips: {:?}", start.elapsed());
}

// ----------------------------------------------------- hostile environment

#[test]
fn nonblocking_result_pipe_before_a_64_mib_value() {
    let _s = serial();
    let expected = pattern(64 << 20, 64);
    let theirs = expected.clone();
    let o = hostile(
        &Isolate::new().timeout(Duration::from_secs(20)),
        move |fd| -> Vec<u8> {
            // SAFETY: fcntl on the child's own descriptor.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
            theirs
        },
    );
    eprintln!(
        "O_NONBLOCK 64 MiB: {:?} in {:?}",
        o.result.as_ref().map(Vec::len),
        o.took
    );
    assert!(o.result.unwrap() == expected);
}

/// A child of another thread's call reads whatever pipes it inherited,
/// while a 64 MiB value streams through one of them: the victim call must
/// fail (or get its exact value), and must not hang.
#[test]
fn a_sibling_child_stealing_bytes_mid_stream() {
    let _s = serial();
    let expected = pattern(64 << 20, 77);
    let theirs = expected.clone();
    let victim = std::thread::spawn(move || {
        let start = Instant::now();
        let r = Isolate::new()
            .timeout(Duration::from_secs(10))
            .execute(move || {
                std::thread::sleep(Duration::from_millis(200));
                // Slowly, so that the thief has time to steal.
                theirs
            });
        (r, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    let stolen = Isolate::new()
        .timeout(Duration::from_secs(10))
        .execute(|| -> usize {
            let mut stolen = 0usize;
            let until = Instant::now() + Duration::from_millis(1500);
            let mut buf = vec![0u8; 70_000];
            while Instant::now() < until {
                for fd in 3..256 {
                    // SAFETY: fstat/fcntl/poll/read on this process's descriptors.
                    unsafe {
                        let flags = libc::fcntl(fd, libc::F_GETFL);
                        if flags < 0 || flags & libc::O_ACCMODE != libc::O_RDONLY {
                            continue;
                        }
                        let mut st: libc::stat = std::mem::zeroed();
                        if libc::fstat(fd, &mut st) != 0
                            || st.st_mode & libc::S_IFMT != libc::S_IFIFO
                        {
                            continue;
                        }
                        let mut p = libc::pollfd {
                            fd,
                            events: libc::POLLIN,
                            revents: 0,
                        };
                        if libc::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLIN != 0 {
                            let n = libc::read(fd, buf.as_mut_ptr().cast(), 4099);
                            if n > 0 {
                                stolen += n as usize;
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            stolen
        });
    let (r, took) = victim.join().unwrap();
    eprintln!(
        "thief stole {:?} bytes; victim: {:?} in {took:?}",
        stolen,
        r.as_ref().map(Vec::len)
    );
    match r {
        Ok(v) => assert!(v == expected, "a wrong value was delivered as Ok"),
        Err(_) => assert!(stolen.unwrap_or(0) > 0),
    }
    assert!(took < Duration::from_secs(11), "{took:?}");
    assert!(mem_isolate_suite::no_children_left());
}

// ------------------------------------------------- slow decoding, early exit

/// A byte whose `Deserialize` is slow now and then (a user type that
/// validates, interns, logs...): 40 ms for each byte of value 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Slow(u8);

impl<'de> Deserialize<'de> for Slow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = u8::deserialize(d)?;
        if b == 1 {
            std::thread::sleep(Duration::from_millis(40));
        }
        Ok(Self(b))
    }
}

/// The child sends its whole value (800 KiB, it fits the pipe), its done
/// mark, and exits, while the caller is still decoding: the value is
/// complete in the pipe, and must be delivered.
#[test]
fn a_complete_value_is_lost_when_decoding_outlasts_the_childs_exit() {
    let _s = serial();
    let value: Vec<Slow> = (0..800 << 10)
        .map(|i| Slow(if i % (32 << 10) == 0 { 1 } else { 2 }))
        .collect();
    let theirs = value.clone();
    let start = Instant::now();
    let r = Isolate::new()
        .timeout(Duration::from_secs(10))
        .execute(move || theirs);
    let took = start.elapsed();
    eprintln!("slow decode: {:?} in {took:?}", r.as_ref().map(Vec::len));
    assert!(r.unwrap() == value);
    // The same value, asynchronously: collected first, decoded after.
    let theirs = value.clone();
    let r = block_on(
        Isolate::new()
            .timeout(Duration::from_secs(10))
            .execute_async(move || theirs),
    );
    assert!(r.unwrap() == value);
}

/// The same with nothing but std types: a `BTreeMap<String, u32>` of
/// 300,000 entries (about 3 MiB encoded). In a debug build its decoding is
/// slower than the child's encoding, so the pipe stays full and the child
/// exits with about 1 MiB still unread, which takes more than the 100 ms
/// drain window to decode. Every blocking entry point loses it; the async
/// call (collect, then decode) does not.
#[test]
fn a_plain_btreemap_result_is_lost_when_the_child_exits_first() {
    let _s = serial();
    static MAP: std::sync::OnceLock<std::collections::BTreeMap<String, u32>> =
        std::sync::OnceLock::new();
    let map = MAP.get_or_init(|| big_map(300_000));
    let mut outcomes = Vec::new();
    let start = Instant::now();
    let r = Isolate::new().execute(|| map.clone());
    outcomes.push(("Isolate::execute", r.map(|m| m == *map), start.elapsed()));
    let start = Instant::now();
    let r = mem_isolate::execute_in_isolated_process(|| map.clone());
    outcomes.push((
        "execute_in_isolated_process",
        r.map(|m| m == *map),
        start.elapsed(),
    ));
    let start = Instant::now();
    let r = Isolate::new().execute_with_usage(|| map.clone());
    outcomes.push((
        "execute_with_usage",
        r.map(|(m, _)| m == *map),
        start.elapsed(),
    ));
    let start = Instant::now();
    let r = Isolate::new().execute_report(|| map.clone()).result;
    outcomes.push(("execute_report", r.map(|m| m == *map), start.elapsed()));
    let start = Instant::now();
    let r = Isolate::new().call(big_map, 300_000);
    outcomes.push((
        "Isolate::call (no zygote)",
        r.map(|m| m == *map),
        start.elapsed(),
    ));
    let start = Instant::now();
    let r = isolated_big_map(300_000);
    outcomes.push(("#[isolated]", r.map(|m| m == *map), start.elapsed()));
    let start = Instant::now();
    let r = block_on(Isolate::new().execute_async(|| map.clone()));
    outcomes.push(("execute_async", r.map(|m| m == *map), start.elapsed()));
    // The published 0.1.6 returns it too.
    let start = Instant::now();
    let old = mem_isolate_016::execute_in_isolated_process(|| map.clone());
    eprintln!(
        "BTreeMap 300k via 0.1.6: {:?} in {:?}",
        old.as_ref().map(|m| m == map),
        start.elapsed()
    );
    assert!(old.is_ok_and(|m| m == *map));
    for (label, r, took) in &outcomes {
        eprintln!("BTreeMap 300k via {label}: {r:?} in {took:?}");
    }
    assert!(mem_isolate_suite::no_children_left());
    for (label, r, _) in outcomes {
        assert!(matches!(r, Ok(true)), "{label}: {r:?}");
    }
}

#[mem_isolate::isolated]
fn isolated_big_map(n: u32) -> std::collections::BTreeMap<String, u32> {
    big_map(n)
}

/// The async path decodes after collecting: a `Deserialize` that panics or
/// fails in a 100 MiB value is an error there too.
#[test]
fn deserialize_failing_in_the_async_path() {
    let _s = serial();
    for marker in [0xEEu8, 0xEF] {
        let start = Instant::now();
        let report = block_on(
            Isolate::new()
                .timeout(Duration::from_secs(20))
                .capture_output(1 << 16)
                .execute_report_async(move || {
                    use std::io::Write as _;
                    let _ = writeln!(std::io::stdout(), "async child output");
                    (0..100u32)
                        .map(|i| {
                            let mut v = vec![(i % 200) as u8; 1 << 20];
                            if i == 50 {
                                v[0] = marker;
                            }
                            Elem(v)
                        })
                        .collect::<Vec<_>>()
                }),
        );
        let took = start.elapsed();
        eprintln!(
            "async deserialize {marker:#x}: {:?} in {took:?}",
            report.result.as_ref().map(Vec::len)
        );
        assert!(
            matches!(&report.result, Err(MemIsolateError::CallableExecuted(Executed::DeserializationFailed(m))) if m.contains("mid-stream")),
            "{:?}",
            report.result.as_ref().map(Vec::len)
        );
        assert_eq!(
            report.output.unwrap().stdout_lossy(),
            "async child output\n"
        );
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
    assert!(mem_isolate_suite::no_children_left());
}

// ------------------------------------------------------------ zygote

/// Zygote mode needs `zygote::start()` on the main thread before any other
/// thread exists, which a test harness cannot give; this binary, re-run
/// with `REVIEW_STREAM_ZYGOTE` set, runs the scenario from `.init_array`
/// (before the harness's `main`), prints `key=value` lines and exits.
#[used]
#[link_section = ".init_array"]
static ZYGOTE_SCENARIO: extern "C" fn() = zygote_scenario;

fn fails_after(panic: bool) -> FailsAfter {
    FailsAfter {
        len: 10 << 20,
        panic,
    }
}

fn big_map(n: u32) -> std::collections::BTreeMap<String, u32> {
    (0..n)
        .map(|i| {
            (
                format!("{:08}", i.wrapping_mul(2_654_435_761) % 100_000_000),
                i,
            )
        })
        .collect()
}

extern "C" fn zygote_scenario() {
    use std::io::Write as _;
    if std::env::var_os("REVIEW_STREAM_ZYGOTE").is_none() {
        return;
    }
    println!("started={:?}", mem_isolate::zygote::start().is_ok());
    let isolate = Isolate::new()
        .require_zygote(true)
        .timeout(Duration::from_secs(10));
    for panic in [false, true] {
        let start = Instant::now();
        let r = isolate.call(fails_after, panic);
        println!(
            "blocking-{panic}={:?} took-ms={}",
            r.map(|v| v.len),
            start.elapsed().as_millis()
        );
        let start = Instant::now();
        let r = block_on(isolate.call_async(fails_after, panic));
        println!(
            "async-{panic}={:?} took-ms={}",
            r.map(|v| v.len),
            start.elapsed().as_millis()
        );
    }
    let start = Instant::now();
    let r = isolate.call(big_map, 300_000);
    println!(
        "map={:?} took-ms={}",
        r.map(|m| m == big_map(300_000)),
        start.elapsed().as_millis()
    );
    let _ = std::io::stdout().flush();
    exit_now(0);
}

fn zygote_run() -> String {
    static OUTPUT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    OUTPUT.get_or_init(zygote_run_once).clone()
}

fn zygote_run_once() -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("REVIEW_STREAM_ZYGOTE", "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    assert!(out.status.success(), "{:?}", out.status);
    text
}

#[test]
fn zygote_serialization_failure_after_10_mib() {
    let _s = serial();
    let text = zygote_run();
    assert!(text.contains("started=true"), "{text}");
    for panic in [false, true] {
        let want = if panic {
            "`Serialize` panicked: serialize exploded after 10485760 bytes"
        } else {
            "serialize refused after 10485760 bytes"
        };
        for mode in ["blocking", "async"] {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{mode}-{panic}=")))
                .unwrap_or_else(|| panic!("no {mode}-{panic} in {text}"));
            assert!(
                line.contains("SerializationFailed") && line.contains(want),
                "{line}"
            );
        }
    }
}

/// [`a_plain_btreemap_result_is_lost_when_the_child_exits_first`] through
/// the zygote (`Isolate::call`).
#[test]
fn zygote_plain_btreemap_result_is_lost_when_the_worker_exits_first() {
    let _s = serial();
    let text = zygote_run();
    let map = text.lines().find(|l| l.starts_with("map=")).unwrap();
    assert!(map.starts_with("map=Ok(true)"), "{map}");
}

// ------------------------------------------------------------ async path

/// The forged frames again, through `execute_async` (the background
/// waiter collects the whole frame, then decodes).
#[test]
fn hostile_frames_through_the_async_path() {
    let _s = serial();
    let one = Isolate::new().timeout(Duration::from_secs(1));
    let cases: Vec<(&str, Box<dyn Fn(i32) + Send + Sync>)> = vec![
        (
            "0xFFFF_FFFE",
            Box::new(|fd| {
                write_raw(fd, &[VALUE, 0xFE, 0xFF, 0xFF, 0xFF]);
                std::thread::sleep(Duration::from_secs(30));
            }),
        ),
        (
            "900 MiB claim, 10 bytes, silence",
            Box::new(|fd| {
                let mut f = vec![VALUE];
                f.extend_from_slice(&u32::try_from((900 << 20) + 5).unwrap().to_le_bytes());
                f.extend_from_slice(&varint(900 << 20));
                f.extend_from_slice(b"0123456789");
                write_raw(fd, &f);
                std::thread::sleep(Duration::from_secs(30));
            }),
        ),
        (
            "900 MiB claim, trickle",
            Box::new(|fd| {
                let mut f = vec![VALUE];
                f.extend_from_slice(&u32::try_from(900 << 20).unwrap().to_le_bytes());
                f.extend_from_slice(&varint((900 << 20) - 5));
                write_raw(fd, &f);
                loop {
                    write_raw(fd, b"x");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }),
        ),
        (
            "message 2^63",
            Box::new(|fd| {
                let mut f = vec![PANIC];
                f.extend_from_slice(&(1u64 << 63).to_le_bytes());
                f.extend_from_slice(b"boom");
                write_raw(fd, &f);
                std::thread::sleep(Duration::from_secs(30));
            }),
        ),
        (
            "message 1 GiB - 1, silence",
            Box::new(|fd| {
                let mut f = vec![SER_FAILED];
                f.extend_from_slice(&((1u64 << 30) - 1).to_le_bytes());
                f.extend_from_slice(b"boom");
                write_raw(fd, &f);
                std::thread::sleep(Duration::from_secs(30));
            }),
        ),
        (
            "abandon + value",
            Box::new(|fd| {
                let mut f = vec![VALUE];
                f.extend_from_slice(&chunk(&[3, 1, 2]));
                f.extend_from_slice(&ABANDON);
                f.extend_from_slice(&value_frame(&[2, 9, 9]));
                write_raw(fd, &f);
                exit_now(0);
            }),
        ),
        (
            "abandon + garbage",
            Box::new(|fd| {
                let mut f = vec![VALUE];
                f.extend_from_slice(&chunk(&[3, 1, 2]));
                f.extend_from_slice(&ABANDON);
                f.extend_from_slice(b"GET / HTTP/1.1");
                write_raw(fd, &f);
                std::thread::sleep(Duration::from_secs(30));
            }),
        ),
        (
            "bytes in place of the done mark",
            Box::new(|fd| {
                let mut f = value_frame(&[2, 9, 9]);
                f.pop();
                f.extend_from_slice(&[0x55; 100]);
                write_raw(fd, &f);
                std::thread::sleep(Duration::from_secs(30));
            }),
        ),
    ];
    let cases: Vec<(&str, std::sync::Arc<dyn Fn(i32) + Send + Sync>)> = cases
        .into_iter()
        .map(|(l, f)| (l, std::sync::Arc::from(f)))
        .collect();
    for (label, act) in cases {
        let o = hostile_in(&one, true, move |fd| -> Vec<u8> {
            act(fd);
            Vec::new()
        });
        eprintln!(
            "async {label}: {:?} in {:?}, peak +{} KiB",
            o.result,
            o.took,
            o.peak_growth >> 10
        );
        assert!(o.result.is_err(), "{label}");
        assert!(o.took < Duration::from_secs(2), "{label}: {:?}", o.took);
        assert!(
            o.peak_growth < 8 << 20,
            "{label}: peak RSS grew {}",
            o.peak_growth
        );
    }
    // A missing done mark is not an error.
    let o = hostile_in(&one, true, |fd| -> Vec<u8> {
        let mut f = vec![VALUE];
        f.extend_from_slice(&chunk(&[2, 9, 9]));
        f.extend_from_slice(&END);
        write_raw(fd, &f);
        std::thread::sleep(Duration::from_secs(30));
        Vec::new()
    });
    assert_eq!(o.result.unwrap(), vec![9, 9]);
    assert!(o.took < Duration::from_secs(1), "{:?}", o.took);
    // Nor are bytes after it: they are not looked at.
    let o = hostile_in(&one, true, |fd| -> Vec<u8> {
        let mut f = value_frame(&[2, 9, 9]);
        f.extend_from_slice(&[0x55; 100]);
        write_raw(fd, &f);
        std::thread::sleep(Duration::from_secs(30));
        Vec::new()
    });
    assert_eq!(o.result.unwrap(), vec![9, 9]);
    assert!(o.took < Duration::from_secs(1), "{:?}", o.took);
}

/// A `Deserialize` that itself makes an isolated call.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Nested(u32);

impl<'de> Deserialize<'de> for Nested {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        let inner = Isolate::new()
            .timeout(Duration::from_secs(5))
            .execute(move || v + 1)
            .map_err(serde::de::Error::custom)?;
        Ok(Self(inner - 1))
    }
}

#[test]
fn a_deserialize_that_makes_an_isolated_call() {
    let _s = serial();
    let start = Instant::now();
    let r = Isolate::new()
        .timeout(Duration::from_secs(10))
        .execute(|| (vec![7u8; 3 << 20], vec![Nested(1), Nested(2)]));
    assert_eq!(r.unwrap().1, vec![Nested(1), Nested(2)]);
    let r = block_on(
        Isolate::new()
            .timeout(Duration::from_secs(10))
            .execute_async(|| (vec![7u8; 3 << 20], vec![Nested(1), Nested(2)])),
    );
    assert_eq!(r.unwrap().1, vec![Nested(1), Nested(2)]);
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// A `Serialize` that adds context to its inner errors, a common pattern
/// (`serialize_with` helpers, wrappers naming the field that failed).
#[derive(Debug, PartialEq)]
struct WithContext(Vec<u32>);

impl Serialize for WithContext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0
            .serialize(s)
            .map_err(|e| serde::ser::Error::custom(format!("serializing WithContext: {e}")))
    }
}

impl<'de> Deserialize<'de> for WithContext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::deserialize(d).map(Self)
    }
}

/// Its value serializes without error, whatever its size.
#[test]
fn a_serialize_that_wraps_errors_succeeds_past_the_stack_frame() {
    let _s = serial();
    let small = Isolate::new().execute(|| WithContext((0..10).collect()));
    assert_eq!(small.unwrap(), WithContext((0..10).collect()));
    // The published 0.1.6 returns it.
    let old = mem_isolate_016::execute_in_isolated_process(|| WithContext((0..1000).collect()));
    assert_eq!(old.unwrap(), WithContext((0..1000).collect()));
    let big = Isolate::new().execute(|| WithContext((0..1000).collect()));
    eprintln!("WithContext 1000: {:?}", big.as_ref().map(|v| v.0.len()));
    assert_eq!(big.unwrap(), WithContext((0..1000).collect()));
}

/// Several threads stream big values at once, blocking and async mixed.
#[test]
fn concurrent_streams_round_trip() {
    let _s = serial();
    let start = Instant::now();
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            std::thread::spawn(move || {
                for round in 0..3u32 {
                    let bytes = pattern((8 << 20) + t as usize * 4097, t * 10 + round);
                    let text = "ü€".repeat(200_000 + t as usize);
                    let (b, s) = (bytes.clone(), text.clone());
                    let isolate = Isolate::new().timeout(Duration::from_secs(30));
                    let got = if (t + round) % 2 == 0 {
                        isolate.execute(move || (b, s))
                    } else {
                        block_on(isolate.execute_async(move || (b, s)))
                    }
                    .unwrap();
                    assert!(got.0 == bytes && got.1 == text, "thread {t} round {round}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    eprintln!("concurrent: {:?}", start.elapsed());
    assert!(mem_isolate_suite::no_children_left());
}

/// Address space this process has mapped (`VmSize`), in bytes.
fn vm_size() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// README: "The parent's buffers grow only with bytes that actually
/// arrived (at most doubling), never by a length the child claims". The
/// blocking path reserves the claimed length of a byte string up front: 10
/// bytes sent and 900 MiB claimed take 900 MiB of address space (and, with
/// `vm.overcommit_memory=2`, of commit charge) until the call ends. In a
/// parent under `RLIMIT_AS` (`ulimit -v`, or a call nested in a callable
/// with `memory_limit`), the program's own allocations then fail.
#[test]
fn a_claim_takes_address_space_the_program_needs() {
    let _s = serial();
    Isolate::new().execute(|| ()).unwrap();
    let before = settled_fds();
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with valid pointers.
    unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut old) };
    let limit = vm_size() + (1400 << 20);
    let set = |cur: u64| {
        let lim = libc::rlimit {
            rlim_cur: cur,
            rlim_max: old.rlim_max,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
    };
    set(limit);
    // Control: without the call, the program can have its 700 MiB.
    let mut control: Vec<u8> = Vec::new();
    let fits = control.try_reserve_exact(700 << 20).is_ok();
    drop(control);
    if !fits {
        set(old.rlim_cur);
        panic!("the control reservation failed: the test cannot tell");
    }
    let caller = std::thread::spawn(move || {
        Isolate::new()
            .timeout(Duration::from_secs(2))
            .execute(move || -> Vec<u8> {
                let fd = result_pipe(&before);
                let mut f = vec![VALUE];
                f.extend_from_slice(&u32::try_from((900 << 20) + 5).unwrap().to_le_bytes());
                f.extend_from_slice(&varint(900 << 20));
                f.extend_from_slice(b"0123456789");
                write_raw(fd, &f);
                std::thread::sleep(Duration::from_secs(30));
                Vec::new()
            })
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut mine: Vec<u8> = Vec::new();
    let reserved = mine.try_reserve_exact(700 << 20);
    let grown = vm_size();
    drop(mine);
    let r = caller.join().unwrap();
    set(old.rlim_cur);
    eprintln!(
        "under RLIMIT_AS: the program's 700 MiB reservation {:?} while a 10-byte call held {} MiB of address space; call: {:?}",
        reserved.as_ref().map(|()| ()),
        grown.saturating_sub(limit - (1400 << 20)) >> 20,
        r.as_ref().map(Vec::len)
    );
    assert!(r.is_err());
    assert!(
        reserved.is_ok(),
        "a 10-byte frame cost the program its allocation"
    );
}

/// `Isolate::timeout` bounds the whole blocking call, decoding included
/// (the blocking calls decode while they read, and a child must not stretch
/// its limit by sending bytes that are slow to decode: see
/// `review_stream2.rs`). The async calls decode after the result is in,
/// outside the limit. So: the async call gets the value; the blocking call
/// gets the value or `TimedOut` (in a debug build decoding 600,000 entries
/// may take longer than the limit), within the limit and a second, and
/// leaves no child behind.
#[test]
fn the_callers_decoding_counts_against_the_childs_timeout() {
    let _s = serial();
    static MAP: std::sync::OnceLock<std::collections::BTreeMap<String, u32>> =
        std::sync::OnceLock::new();
    let map = MAP.get_or_init(|| big_map(600_000));
    let limit = Duration::from_secs(1);
    let isolate = Isolate::new().timeout(limit);
    let start = Instant::now();
    let r = block_on(isolate.execute_with_usage_async(|| map.clone()));
    let (got, usage) = r.expect("the async call gets the value");
    eprintln!(
        "async: child CPU {:?}, call {:?}",
        usage.user_cpu + usage.system_cpu,
        start.elapsed()
    );
    assert!(got == *map);
    let start = Instant::now();
    let r = isolate.execute(|| map.clone());
    let took = start.elapsed();
    eprintln!("blocking: {:?} in {took:?}", r.as_ref().map(|m| m.len()));
    match r {
        Ok(got) => assert!(got == *map),
        Err(e) => assert!(e.is_timeout(), "{e:?}"),
    }
    assert!(took < limit + Duration::from_secs(1), "{took:?}");
}

/// Sizes around the child's stack frame (512 bytes), direct-write
/// threshold (32 KiB), chunk buffer (256 KiB) and the parent's read
/// buffers (512 bytes, 4 KiB, 64 KiB, 1 MiB).
#[test]
fn boundary_sizes_round_trip() {
    let _s = serial();
    let start = Instant::now();
    let mut lens: Vec<usize> = Vec::new();
    for centre in [503usize, 512, 4096, 32 << 10, 64 << 10, 256 << 10, 1 << 20] {
        lens.extend(centre.saturating_sub(6)..=centre + 3);
    }
    for len in lens {
        let v = pattern(len, len as u32);
        both(&format!("Vec<u8> {len}"), &v);
        // Two byte strings back to back, then a tail: the second straddles.
        let pair = (
            pattern(len, 1),
            "ß".repeat(len / 2 + 1),
            vec![pattern(len / 3 + 1, 2); 3],
            7u64,
        );
        both(&format!("tuple {len}"), &pair);
    }
    eprintln!("boundaries: {:?}", start.elapsed());
}
