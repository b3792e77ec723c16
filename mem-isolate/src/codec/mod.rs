//! How a result becomes bytes and back: bincode 2 (serde path, standard
//! configuration), kept behind these two functions so the format can be
//! swapped without touching the rest of the crate.
//!
//! Decoding never trusts lengths found in the input. bincode's serde decoder
//! sizes a `String` or byte-buffer allocation by the length prefix it reads,
//! so a lying child could make the parent allocate terabytes and abort. The
//! [`guard`] adapter routes every string and byte buffer through bincode's
//! *borrowing* path instead (which checks the length against the bytes that
//! are actually there before anything is allocated), caps sequence size hints
//! at the payload's length and bounds nesting depth.

mod guard;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// bincode's standard configuration: little endian, variable-length integers.
const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Deepest nesting of sequences, maps, options, enums and newtype structs a
/// payload may have (one unit each: `struct Deep(Option<Box<Deep>>)` takes
/// two per level); deeper input is rejected instead of overflowing the
/// parent's stack. 128 fits a 192 KiB thread stack in a debug build (tested).
pub(crate) const MAX_DEPTH: u32 = 128;

/// Encodes `value` into `out` if it fits: `Ok(Some(len))`, or `Ok(None)`
/// when `out` is too small (the caller then uses [`encode_into`]).
pub(crate) fn encode_into_slice<T: Serialize + ?Sized>(
    value: &T,
    out: &mut [u8],
) -> Result<Option<usize>, String> {
    match bincode::serde::encode_into_slice(value, out, CONFIG) {
        Ok(len) => Ok(Some(len)),
        Err(bincode::error::EncodeError::UnexpectedEnd) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    encode_appending(
        value,
        AppendToVec {
            out,
            huge_pages: false,
        },
    )
}

/// [`encode_into`] for an isolated child's result buffer, which grows in
/// huge pages (see [`crate::sys::try_reserve_doubling`]).
pub(crate) fn encode_into_child_buffer<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    encode_appending(
        value,
        AppendToVec {
            out,
            huge_pages: true,
        },
    )
}

fn encode_appending<T: Serialize + ?Sized>(
    value: &T,
    writer: AppendToVec<'_>,
) -> Result<(), String> {
    bincode::serde::encode_into_writer(value, writer, CONFIG).map_err(|e| e.to_string())
}

/// Decodes one `T` that must span all of `bytes`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let seed = guard::GuardedSeed::new(std::marker::PhantomData::<T>, bytes.len(), MAX_DEPTH);
    let (value, used) =
        bincode::serde::seed_decode_from_slice(seed, bytes, CONFIG).map_err(|e| e.to_string())?;
    if used == bytes.len() {
        Ok(value)
    } else {
        Err(format!(
            "{} trailing bytes after the value (the payload does not match the result type)",
            bytes.len() - used
        ))
    }
}

/// bincode `Writer` that appends to a `Vec` we already own (the frame,
/// whose header is already in front).
struct AppendToVec<'a> {
    out: &'a mut Vec<u8>,
    huge_pages: bool,
}

impl bincode::enc::write::Writer for AppendToVec<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        crate::sys::try_reserve_doubling(self.out, bytes.len(), self.huge_pages).map_err(|_| {
            bincode::error::EncodeError::OtherString(format!(
                "out of memory growing the result buffer by {} bytes",
                bytes.len()
            ))
        })?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
        let mut buf = Vec::new();
        encode_into(value, &mut buf).unwrap();
        assert_eq!(&decode::<T>(&buf).unwrap(), value);
        let mut small = [0u8; 64];
        match encode_into_slice(value, &mut small).unwrap() {
            Some(len) => assert_eq!(&small[..len], &buf[..]),
            None => assert!(buf.len() > small.len()),
        }
    }

    #[test]
    fn round_trips_structured_values() {
        round_trip(&());
        round_trip(&String::from("grüß dich, 世界 🦀"));
        round_trip(&vec![Some(1u64), None, Some(u64::MAX)]);
        round_trip(&BTreeMap::from([
            (1u8, "a".to_string()),
            (2, "b".to_string()),
        ]));
        round_trip(&Ok::<Result<i32, String>, String>(Err("inner".into())));
        round_trip(&(1u8, -2i64, 3.5f64, 'x', true, 7u128));
    }

    #[test]
    fn string_with_a_lying_length_is_an_error_not_an_allocation() {
        // varint marker 253 = u64 follows: a string of u64::MAX / 2 bytes.
        let mut bytes = vec![253];
        bytes.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        bytes.extend_from_slice(b"short");
        assert!(decode::<String>(&bytes).is_err());
        assert!(decode::<Vec<u8>>(&bytes).is_err());
    }

    #[test]
    fn deep_nesting_is_rejected() {
        // 10_000 nested `Some`: each is one byte (1) on the wire.
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Deep(Option<Box<Deep>>);
        let mut bytes = vec![1u8; 10_000];
        bytes.push(0);
        let err = decode::<Deep>(&bytes).unwrap_err();
        assert!(err.contains("nest"), "{err}");
    }

    /// The deepest payload the guard lets through decodes on a thread with a
    /// 192 KiB stack, in a debug build, without overflowing it. Depth counts
    /// one unit per sequence, map, option, enum and newtype struct, so a
    /// `Deep(Option<Box<Deep>>)` uses two per level.
    #[test]
    fn the_deepest_accepted_payload_fits_a_small_stack() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Deep(Option<Box<Deep>>);
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Tree(Vec<Tree>);
        /// The deepest run of `1`s (then a `0`) that `T` accepts.
        fn deepest<T: DeserializeOwned>() -> Vec<u8> {
            (1..10_000)
                .map(|levels| {
                    let mut bytes = vec![1u8; levels];
                    bytes.push(0);
                    bytes
                })
                .take_while(|bytes| decode::<T>(bytes).is_ok())
                .last()
                .unwrap()
        }
        fn on_small_stack(run: impl FnOnce() -> bool + Send + 'static) -> bool {
            std::thread::Builder::new()
                .stack_size(192 * 1024)
                .spawn(run)
                .unwrap()
                .join()
                .unwrap()
        }
        let deep = deepest::<Deep>();
        assert_eq!(deep.len() - 1, MAX_DEPTH as usize / 2 - 1);
        assert!(on_small_stack(move || decode::<Deep>(&deep).is_ok()));
        let tree = deepest::<Tree>();
        assert!(tree.len() > 60, "{}", tree.len());
        assert!(on_small_stack(move || decode::<Tree>(&tree).is_ok()));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let err = decode::<u8>(&[1, 2]).unwrap_err();
        assert!(err.contains("trailing"), "{err}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn identity<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
            value: &T,
        ) -> Result<(), TestCaseError> {
            let mut buf = Vec::new();
            encode_into(value, &mut buf).unwrap();
            prop_assert_eq!(&decode::<T>(&buf).unwrap(), value);
            Ok(())
        }

        proptest! {
            #[test]
            fn encode_then_decode_is_the_identity(
                s in ".*",
                v in proptest::collection::vec(any::<u64>(), 0..64),
                m in proptest::collection::btree_map(".{0,8}", proptest::collection::vec(any::<u8>(), 0..16), 0..8),
                o in proptest::option::of((any::<i128>(), any::<char>(), any::<bool>())),
                r in any::<Result<u32, String>>(),
            ) {
                identity(&s)?;
                identity(&v)?;
                identity(&m)?;
                identity(&o)?;
                identity(&r)?;
                identity(&(s, v, m, o, r))?;
            }
        }
    }
}
