//! How a result becomes bytes and back: bincode 2's standard wire format
//! (little endian, variable-length integers), written and read by the
//! crate's own serde layer ([`ser`], [`de`]) so that the per-element path is
//! cheap and the decoder's rules against a lying child are built in.
//! bincode itself is only a dev-dependency: the tests check that the bytes
//! are the same.
//!
//! The decoder reads from an [`Input`]: a whole payload in memory (the async
//! calls), or the pipe itself while the child still sends (the blocking
//! calls, [`crate::stream`]). It never trusts lengths found in the input: a
//! string or byte buffer is checked against the bytes that can still be
//! there before anything is allocated, sequence size hints are capped the
//! same way, and nesting depth is bounded.

mod de;
mod input;
mod ser;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub(crate) use input::{try_vec_with_capacity, unexpected_end, Bytes, Input};
pub(crate) use ser::Sink;

/// Deepest nesting of sequences, tuples, structs, maps, options, enums and
/// newtype structs a payload may have (one unit each: `struct
/// Deep(Option<Box<Deep>>)` takes two per level); deeper input is rejected
/// instead of overflowing the parent's stack. 128 fits a 192 KiB thread
/// stack in a debug build (tested).
pub(crate) const MAX_DEPTH: u32 = 128;

/// Why encoding or decoding failed.
#[derive(Debug)]
pub(crate) enum Error {
    /// The input stopped (the child ended, the time ran out, a read
    /// failed): the input itself says why.
    Interrupted,
    /// Anything else, as text for the error the caller sees.
    Message(String),
}

impl Error {
    pub(crate) fn out_of_memory(bytes: usize) -> Self {
        Self::Message(format!(
            "out of memory allocating {bytes} bytes for the result"
        ))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Interrupted => f.write_str("the result stopped arriving"),
            Self::Message(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl serde::ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::Message(msg.to_string())
    }
}

impl serde::de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::Message(msg.to_string())
    }
}

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    encode_to_sink(value, ser::VecSink { out })
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Appends the encoding of `value` to `sink`, and hands the sink back.
pub(crate) fn encode_to_sink<T: Serialize + ?Sized, S: Sink>(
    value: &T,
    sink: S,
) -> Result<S, Error> {
    let mut encoder = ser::Encoder { sink };
    value.serialize(&mut encoder)?;
    Ok(encoder.sink)
}

/// Decodes one `T` from `input`, which may go on after it (the caller
/// checks what follows).
pub(crate) fn decode_from<'de, T: serde::Deserialize<'de>, I: Input<'de>>(
    input: I,
) -> Result<T, Error> {
    T::deserialize(&mut de::Decoder::new(input, MAX_DEPTH))
}

/// Decodes one `T` that must span all of `bytes`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut input = input::SliceInput::new(bytes);
    let value = decode_from::<T, _>(&mut input).map_err(|e| e.to_string())?;
    match input.remaining() {
        0 => Ok(value),
        trailing => Err(format!(
            "{trailing} trailing bytes after the value (the payload does not match the result type)"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // boundary values on purpose
pub(crate) mod tests {
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
    fn a_forged_count_of_empty_elements_is_refused_not_looped_over() {
        // u64::MAX elements of `()`: no bytes bound the count.
        let mut bytes = vec![253];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = decode::<Vec<()>>(&bytes).unwrap_err();
        assert!(err.contains("no size"), "{err}");
        #[allow(clippy::zero_sized_map_values)] // the point of the test
        let err = decode::<std::collections::BTreeMap<(), ()>>(&bytes).unwrap_err();
        assert!(err.contains("no size"), "{err}");
        // Honest ones round-trip.
        assert_same_bytes(&vec![(); 1000]);
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

    /// Encodes with bincode 2 (standard configuration), the reference.
    fn bincode_bytes<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    #[test]
    fn varint_boundaries_match_bincode() {
        let unsigned = [
            0u64,
            1,
            250,
            251,
            252,
            255,
            256,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ];
        for v in unsigned {
            assert_same_bytes(&v);
            assert_same_bytes(&(v as u16));
            assert_same_bytes(&(v as u32));
            assert_same_bytes(&(v as i64));
            assert_same_bytes(&(v as i16));
            assert_same_bytes(&(v as i32));
            assert_same_bytes(&(v as u8));
            assert_same_bytes(&(v as i8));
            assert_same_bytes(&u128::from(v));
            assert_same_bytes(&(-(i128::from(v))));
        }
        assert_same_bytes(&u128::MAX);
        assert_same_bytes(&i128::MIN);
        assert_same_bytes(&i64::MIN);
        assert_same_bytes(&vec![250u8, 251, 255, 0]);
    }

    fn assert_same_bytes<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
        let mut ours = Vec::new();
        encode_into(value, &mut ours).unwrap();
        assert_eq!(ours, bincode_bytes(value), "{value:?}");
        assert_eq!(&decode::<T>(&ours).unwrap(), value);
    }

    #[test]
    fn refuses_self_describing_requests_like_bincode() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Untagged {
            A(u8),
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(tag = "t")]
        #[allow(dead_code)]
        enum Internally {
            A { x: u8 },
        }
        struct Identifier;
        impl<'de> serde::Deserialize<'de> for Identifier {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_identifier(serde::de::IgnoredAny)
                    .map(|_| Identifier)
            }
        }
        let err = decode::<Untagged>(&[1]).unwrap_err();
        assert!(err.contains("deserialize_any"), "{err}");
        let err = decode::<Internally>(&[0, 1]).unwrap_err();
        assert!(err.contains("deserialize_any"), "{err}");
        let err = decode::<serde::de::IgnoredAny>(&[0]).unwrap_err();
        assert!(err.contains("deserialize_ignored_any"), "{err}");
        let err = decode::<Identifier>(&[0]).map(|_| ()).unwrap_err();
        assert!(err.contains("deserialize_identifier"), "{err}");
    }

    #[test]
    fn byte_buffers_and_sequences_of_bytes() {
        let bytes: Vec<u8> = (0..=255).cycle().take(70_000).collect();
        assert_same_bytes(&bytes);
        let buf = serde_bytes_like::Buf(bytes.clone());
        let mut ours = Vec::new();
        encode_into(&buf, &mut ours).unwrap();
        assert_eq!(ours, bincode_bytes(&buf));
        assert_eq!(decode::<serde_bytes_like::Buf>(&ours).unwrap().0, bytes);
    }

    /// `Vec<u8>` takes the decoder's copy-at-once path: serde's visitor for
    /// it is recognised by name (if serde renames it, this fails and the
    /// per-element path, still correct, is what runs).
    #[test]
    fn vec_of_bytes_visitor_is_recognised() {
        struct Recorder(std::cell::RefCell<String>);
        impl<'de> serde::Deserializer<'de> for &Recorder {
            type Error = Error;
            fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
                Err(Error::Message("stop".into()))
            }
            fn deserialize_seq<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
                *self.0.borrow_mut() = std::any::type_name::<V>().to_owned();
                Err(Error::Message("stop".into()))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct tuple
                tuple_struct map struct enum identifier ignored_any
            }
        }
        let recorder = Recorder(std::cell::RefCell::default());
        let _ = <Vec<u8> as serde::Deserialize>::deserialize(&recorder);
        let name = recorder.0.borrow().clone();
        assert!(de::is_serde_vec_of_bytes_visitor(&name), "{name}");
        let _ = <Vec<u16> as serde::Deserialize>::deserialize(&recorder);
        let name = recorder.0.borrow().clone();
        assert!(!de::is_serde_vec_of_bytes_visitor(&name), "{name}");
        // Both paths give the same bytes back, and refuse the same lies.
        let bytes: Vec<u8> = (0..=255).collect();
        assert_same_bytes(&bytes);
        let mut lying = vec![253];
        lying.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert!(decode::<Vec<u8>>(&lying).is_err());
    }

    /// A byte string in serde's data model (what `serde_bytes::ByteBuf` is),
    /// without the dependency.
    pub(crate) mod serde_bytes_like {
        #[derive(Debug)]
        pub(crate) struct Buf(pub(crate) Vec<u8>);
        impl serde::Serialize for Buf {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
        impl<'de> serde::Deserialize<'de> for Buf {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
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
                d.deserialize_byte_buf(V).map(Buf)
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Encoding matches bincode byte for byte, and decoding it gives the value back.
        fn identity<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
            value: &T,
        ) -> Result<(), TestCaseError> {
            let mut buf = Vec::new();
            encode_into(value, &mut buf).unwrap();
            prop_assert_eq!(&buf, &bincode_bytes(value));
            prop_assert_eq!(&decode::<T>(&buf).unwrap(), value);
            Ok(())
        }

        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug, Clone)]
        enum Shape {
            Unit,
            Newtype(i16),
            Tuple(u16, Option<char>),
            Struct { a: i32, b: Vec<f32>, c: (u128, i8) },
        }

        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug, Clone)]
        struct Columns {
            ids: Vec<u32>,
            names: Vec<String>,
            weights: Vec<f64>,
            flags: Vec<bool>,
            unit: (),
            shapes: Vec<Shape>,
        }

        fn shape() -> impl Strategy<Value = Shape> {
            prop_oneof![
                Just(Shape::Unit),
                any::<i16>().prop_map(Shape::Newtype),
                (any::<u16>(), proptest::option::of(any::<char>()))
                    .prop_map(|(a, b)| Shape::Tuple(a, b)),
                (
                    any::<i32>(),
                    proptest::collection::vec(
                        any::<f32>().prop_filter("NaN != NaN", |f| !f.is_nan()),
                        0..8
                    ),
                    any::<u128>(),
                    any::<i8>()
                )
                    .prop_map(|(a, b, c0, c1)| Shape::Struct { a, b, c: (c0, c1) }),
            ]
        }

        proptest! {
            #[test]
            fn every_shape_matches_bincode(
                shapes in proptest::collection::vec(shape(), 0..16),
                ids in proptest::collection::vec(any::<u32>(), 0..32),
                names in proptest::collection::vec(".{0,12}", 0..8),
                weights in proptest::collection::vec(any::<f64>().prop_filter("NaN != NaN", |f| !f.is_nan()), 0..8),
                flags in proptest::collection::vec(any::<bool>(), 0..8),
                ints in (any::<i8>(), any::<i16>(), any::<i32>(), any::<i64>(), any::<i128>(), any::<u16>(), any::<u64>(), any::<u128>()),
            ) {
                identity(&Columns { ids, names, weights, flags, unit: (), shapes })?;
                identity(&ints)?;
            }

            #[test]
            fn arbitrary_bytes_never_panic_the_decoder(data in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = decode::<Columns>(&data);
                let _ = decode::<Vec<Shape>>(&data);
                let _ = decode::<(i128, u128, char, String)>(&data);
            }
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
