//! Large results travel as a stream (see `frame.rs`): the child sends chunks
//! while it encodes, long byte strings go into the pipe by reference, and
//! the blocking calls decode while the bytes arrive. These tests check that
//! every shape arrives exactly, in blocking and async calls, and that bytes
//! a `Serialize` hands over only for the duration of the call (a temporary
//! it then overwrites) arrive as they were when handed over.

use std::collections::BTreeMap;

use mem_isolate::errors::CallableExecutedError as Executed;
use mem_isolate::{Isolate, MemIsolateError};
use serde::{Deserialize, Serialize, Serializer};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251).to_le_bytes()[0].wrapping_add(seed))
        .collect()
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
enum Shape {
    Bytes(serde_bytes::ByteBuf),
    Text(String),
    Pair(Vec<u8>, Option<Vec<u8>>),
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Mixed {
    small: Vec<Vec<u8>>,
    text: Vec<String>,
    shapes: Vec<Shape>,
    map: BTreeMap<u32, serde_bytes::ByteBuf>,
    tail: u64,
}

fn mixed() -> Mixed {
    Mixed {
        // 40 KiB elements: each goes out as a chunk of its own.
        small: (0..20u8).map(|i| pattern(40 << 10, i)).collect(),
        // Multi-byte characters straddle every chunk boundary somewhere.
        text: (0..3000).map(|i| "ü€𝄞".repeat(i % 50)).collect(),
        shapes: vec![
            Shape::Bytes(serde_bytes::ByteBuf::from(pattern(5 << 20, 1))),
            Shape::Text("x".repeat(300_000)),
            Shape::Pair(pattern(65_536, 2), Some(pattern((1 << 20) + 1, 3))),
            Shape::Pair(Vec::new(), None),
        ],
        map: (0..4u32)
            .map(|k| {
                (
                    k,
                    serde_bytes::ByteBuf::from(pattern(70_000 * k as usize, 4)),
                )
            })
            .collect(),
        tail: u64::MAX,
    }
}

#[test]
fn every_shape_arrives_exactly() {
    let expected = mixed();
    assert_eq!(
        mem_isolate::execute_in_isolated_process(mixed).unwrap(),
        expected
    );
    for len in [
        0,
        1,
        65_535,
        65_536,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        64 << 20,
    ] {
        let got = mem_isolate::execute_in_isolated_process(move || pattern(len, 9)).unwrap();
        assert!(got == pattern(len, 9), "Vec<u8> of {len} bytes differs");
    }
}

#[test]
fn every_shape_arrives_exactly_in_async_calls() {
    let expected = mixed();
    let got = futures::executor::block_on(Isolate::new().execute_async(mixed)).unwrap();
    assert_eq!(got, expected);
    let len = 48 << 20;
    let got =
        futures::executor::block_on(Isolate::new().execute_async(move || pattern(len, 5))).unwrap();
    assert!(got == pattern(len, 5));
}

type ThreeBuffers = (
    serde_bytes::ByteBuf,
    serde_bytes::ByteBuf,
    serde_bytes::ByteBuf,
);

/// Sent: three buffers, each handed to `serialize_bytes` as a temporary that
/// is then overwritten and freed before the next reuses the memory.
/// Received: what the parent got.
struct Temporaries {
    len: usize,
    received: Option<ThreeBuffers>,
}

impl Serialize for Temporaries {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = s.serialize_tuple(3)?;
        for seed in 0..3u8 {
            let mut scratch = pattern(self.len, seed);
            tuple.serialize_element(serde_bytes::Bytes::new(&scratch))?;
            // The tail first: the last bytes handed over are the ones the
            // parent reads last.
            for byte in scratch.iter_mut().rev() {
                *byte = 0xEE;
            }
            drop(scratch);
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Temporaries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let received = ThreeBuffers::deserialize(d)?;
        Ok(Self {
            len: 0,
            received: Some(received),
        })
    }
}

#[test]
fn bytes_handed_over_only_for_the_call_arrive_as_they_were() {
    for len in [100_000, 8 << 20] {
        let got = mem_isolate::execute_in_isolated_process(move || Temporaries {
            len,
            received: None,
        })
        .unwrap()
        .received
        .unwrap();
        assert!(got.0.as_slice() == pattern(len, 0), "first buffer of {len}");
        assert!(
            got.1.as_slice() == pattern(len, 1),
            "second buffer of {len}"
        );
        assert!(got.2.as_slice() == pattern(len, 2), "third buffer of {len}");
    }
}

/// A `Serialize` that fails after 10 MiB went out.
struct FailsLate;

impl Serialize for FailsLate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeTuple};
        let mut tuple = s.serialize_tuple(2)?;
        tuple.serialize_element(serde_bytes::Bytes::new(&pattern(10 << 20, 0)))?;
        Err(S::Error::custom("gave up after 10 MiB"))
    }
}

impl<'de> Deserialize<'de> for FailsLate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <(serde_bytes::ByteBuf, u8)>::deserialize(d).map(|_| FailsLate)
    }
}

#[test]
fn a_serialize_failing_after_megabytes_went_out_is_reported() {
    let check = |result: Result<FailsLate, MemIsolateError>| match result {
        Err(MemIsolateError::CallableExecuted(Executed::SerializationFailed(message))) => {
            assert!(message.contains("gave up after 10 MiB"), "{message}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    };
    check(mem_isolate::execute_in_isolated_process(|| FailsLate));
    check(futures::executor::block_on(
        Isolate::new().execute_async(|| FailsLate),
    ));
}
