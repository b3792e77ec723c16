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

/// Deepest nesting of sequences, maps, options and enums a payload may have;
/// deeper input is rejected instead of overflowing the parent's stack.
pub(crate) const MAX_DEPTH: u32 = 256;

/// Where encoded bytes go.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for crate::frame::FrameBuffer {
    fn put(&mut self, bytes: &[u8]) {
        crate::frame::FrameBuffer::put(self, bytes);
    }
}

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized, S: Sink>(
    value: &T,
    out: &mut S,
) -> Result<(), String> {
    bincode::serde::encode_into_writer(value, SinkWriter(out), CONFIG).map_err(|e| e.to_string())
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

/// bincode `Writer` over a [`Sink`] (the frame buffer, whose header space is
/// reserved in front).
struct SinkWriter<'a, S>(&'a mut S);

impl<S: Sink> bincode::enc::write::Writer for SinkWriter<'_, S> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.put(bytes);
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

    #[test]
    fn trailing_bytes_are_rejected() {
        let err = decode::<u8>(&[1, 2]).unwrap_err();
        assert!(err.contains("trailing"), "{err}");
    }
}
