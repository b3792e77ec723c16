//! The decoder: a serde `Deserializer` over an [`Input`], reading
//! bincode 2's standard configuration (see `ser.rs`), with the rules that
//! keep a lying child from hurting the parent built in:
//!
//! - no claimed length goes unchecked: a string or byte buffer is checked
//!   against the bytes that can still be there ([`Input::can_still_arrive`])
//!   before anything is allocated, and sequence and map size hints are
//!   capped the same way;
//! - nesting deeper than [`super::MAX_DEPTH`] units is an error, not a stack
//!   overflow (one unit per sequence, tuple, struct, map, `Some`, enum and
//!   newtype struct);
//! - `deserialize_any`, `deserialize_identifier` and `deserialize_ignored_any`
//!   are refused, as bincode refuses them: the format does not describe itself.

// The wire format converts integers bit for bit (zigzag, varint widths
// bounded by the marker byte that was checked before the cast).
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::input::{Bytes, Input};
use super::ser::{SINGLE_BYTE_MAX, U128_BYTE, U16_BYTE, U32_BYTE, U64_BYTE};
use super::Error;

pub(crate) struct Decoder<I> {
    pub(crate) input: I,
    depth_left: u32,
    /// Elements that took no bytes (`Vec<()>`) still to be accepted: their
    /// count is a claimed length no input bounds, and a child claiming
    /// `u64::MAX` of them would keep the parent looping.
    empty_elements_left: u32,
}

/// How many elements that take no bytes one payload may have in all.
const MAX_EMPTY_ELEMENTS: u32 = 1 << 20;

impl<'de, I: Input<'de>> Decoder<I> {
    pub(crate) fn new(input: I, max_depth: u32) -> Self {
        Self {
            input,
            depth_left: max_depth,
            empty_elements_left: MAX_EMPTY_ELEMENTS,
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Error> {
        self.input.byte()
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0; N];
        self.input.read_exact(&mut out)?;
        Ok(out)
    }

    /// A varint no wider than `max_marker` allows (bincode accepts a wide
    /// encoding of a small value, and refuses a marker wider than the type).
    #[inline]
    fn varint(&mut self, max_marker: u8, type_name: &str) -> Result<u128, Error> {
        let first = self.byte()?;
        if first <= SINGLE_BYTE_MAX {
            return Ok(first.into());
        }
        if first > max_marker {
            return Err(Error::Message(format!(
                "invalid varint marker {first} for a {type_name}"
            )));
        }
        Ok(match first {
            U16_BYTE => u16::from_le_bytes(self.array()?).into(),
            U32_BYTE => u32::from_le_bytes(self.array()?).into(),
            U64_BYTE => u64::from_le_bytes(self.array()?).into(),
            _ => u128::from_le_bytes(self.array()?),
        })
    }

    #[inline]
    fn varint_u64(&mut self, max_marker: u8, type_name: &str) -> Result<u64, Error> {
        // Markers up to U64_BYTE keep the value within u64.
        self.varint(max_marker.min(U64_BYTE), type_name)
            .map(|v| v as u64)
    }

    /// A length prefix (`u64` varint) as a `usize`.
    #[inline]
    fn len(&mut self) -> Result<usize, Error> {
        let len = self.varint_u64(U64_BYTE, "length")?;
        usize::try_from(len)
            .map_err(|_| Error::Message(format!("length {len} does not fit this platform")))
    }

    /// A length-prefixed byte string, checked against what is there.
    #[inline]
    fn bytes(&mut self) -> Result<Bytes<'de, '_>, Error> {
        let len = self.len()?;
        self.input.bytes(len)
    }

    /// A length-prefixed byte string in a `Vec` of its own.
    #[inline]
    fn owned_bytes(&mut self) -> Result<Vec<u8>, Error> {
        let len = self.len()?;
        self.input.owned(len)
    }

    /// Runs `f` one nesting unit deeper.
    #[inline]
    fn nested<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R, Error>) -> Result<R, Error> {
        self.depth_left = self
            .depth_left
            .checked_sub(1)
            .ok_or_else(|| Error::Message("the payload is nested too deeply".into()))?;
        let result = f(self);
        self.depth_left += 1;
        result
    }

    /// Counts an element that took no bytes against the budget.
    #[inline]
    fn took_bytes_since(&mut self, start: u64) -> Result<(), Error> {
        if self.input.consumed() == start {
            self.empty_elements_left =
                self.empty_elements_left.checked_sub(1).ok_or_else(|| {
                    Error::Message(format!(
                        "more than {MAX_EMPTY_ELEMENTS} elements of no size (a forged length?)"
                    ))
                })?;
        }
        Ok(())
    }

    fn seq<V: Visitor<'de>>(&mut self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.nested(|de| visitor.visit_seq(Elements { de, left: len }))
    }
}

/// `V` is serde's visitor for `Vec<u8>` (private to serde, so known by its
/// name) and produces a `Vec<u8>`: it reads a sequence of exactly `len`
/// `u8` elements into a `Vec` and nothing else, so the decoder may build that
/// `Vec` itself. `type_name` names a type by its full path; any other
/// visitor, including a user's that makes a `Vec<u8>` some other way, takes
/// the general path.
#[inline]
fn is_serde_vec_of_bytes<'de, V: Visitor<'de>>() -> bool {
    std::any::type_name::<V::Value>() == std::any::type_name::<Vec<u8>>()
        && std::mem::size_of::<V::Value>() == std::mem::size_of::<Vec<u8>>()
        && is_serde_vec_of_bytes_visitor(std::any::type_name::<V>())
}

/// The name of serde's visitor for `Vec<u8>`.
pub(super) fn is_serde_vec_of_bytes_visitor(name: &str) -> bool {
    (name.starts_with("serde::") || name.starts_with("serde_core::"))
        && name.ends_with(">::deserialize::VecVisitor<u8>")
}

fn unzigzag(n: u64) -> i64 {
    if n % 2 == 0 {
        (n / 2) as i64
    } else {
        !(n / 2) as i64
    }
}

fn not_supported(what: &str) -> Error {
    Error::Message(format!(
        "{what} is not supported: the encoding does not describe itself, so the \
         result type must say what to expect (no untagged or internally tagged enums, \
         no `#[serde(flatten)]`, no `serde_json::Value`)"
    ))
}

fn utf8_error(e: impl std::fmt::Display) -> Error {
    Error::Message(format!("a string is not valid UTF-8: {e}"))
}

impl<'de, I: Input<'de>> de::Deserializer<'de> for &mut Decoder<I> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(not_supported("deserialize_any"))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(not_supported("deserialize_identifier"))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(not_supported("deserialize_ignored_any"))
    }

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            other => Err(Error::Message(format!("invalid bool byte {other}"))),
        }
    }
    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i8(self.byte()? as i8)
    }
    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let n = unzigzag(self.varint_u64(U16_BYTE, "i16")?);
        visitor.visit_i16(n as i16)
    }
    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let n = unzigzag(self.varint_u64(U32_BYTE, "i32")?);
        visitor.visit_i32(n as i32)
    }
    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_i64(unzigzag(self.varint_u64(U64_BYTE, "i64")?))
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let n = self.varint(U128_BYTE, "i128")?;
        visitor.visit_i128(if n % 2 == 0 {
            (n / 2) as i128
        } else {
            !(n / 2) as i128
        })
    }
    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u8(self.byte()?)
    }
    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u16(self.varint_u64(U16_BYTE, "u16")? as u16)
    }
    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u32(self.varint_u64(U32_BYTE, "u32")? as u32)
    }
    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(self.varint_u64(U64_BYTE, "u64")?)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u128(self.varint(U128_BYTE, "u128")?)
    }
    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f32(f32::from_le_bytes(self.array()?))
    }
    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(f64::from_le_bytes(self.array()?))
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let first = self.byte()?;
        let width = match first {
            0x00..=0x7F => return visitor.visit_char(char::from(first)),
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => {
                return Err(Error::Message(format!(
                    "invalid char start byte {first:#04x}"
                )))
            }
        };
        let mut buf = [first, 0, 0, 0];
        self.input.read_exact(&mut buf[1..width])?;
        let c = std::str::from_utf8(&buf[..width])
            .ok()
            .and_then(|s| s.chars().next())
            .ok_or_else(|| Error::Message(format!("invalid char encoding {buf:02x?}")))?;
        visitor.visit_char(c)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.bytes()? {
            Bytes::Input(bytes) => {
                visitor.visit_borrowed_str(std::str::from_utf8(bytes).map_err(utf8_error)?)
            }
            Bytes::Scratch(bytes) => {
                visitor.visit_str(std::str::from_utf8(bytes).map_err(utf8_error)?)
            }
        }
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let owned = self.owned_bytes()?;
        visitor.visit_string(String::from_utf8(owned).map_err(utf8_error)?)
    }
    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.bytes()? {
            Bytes::Input(bytes) => visitor.visit_borrowed_bytes(bytes),
            Bytes::Scratch(bytes) => visitor.visit_bytes(bytes),
        }
    }
    /// Read straight into the buffer the visitor keeps (`visit_byte_buf`).
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_byte_buf(self.owned_bytes()?)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => self.nested(|de| visitor.visit_some(de)),
            other => Err(Error::Message(format!("invalid Option tag {other}"))),
        }
    }
    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.nested(|de| visitor.visit_newtype_struct(de))
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = self.len()?;
        if is_serde_vec_of_bytes::<V>() {
            // `Vec<u8>`'s own visitor would push `len` bytes one by one; the
            // result is the same bytes, copied at once (nesting: one unit,
            // as for any sequence).
            let vec = self.nested(|de| de.input.owned(len))?;
            // SAFETY: `V::Value` is `Vec<u8>` (checked by `is_serde_vec_of_bytes`).
            return Ok(unsafe { std::mem::transmute_copy(&std::mem::ManuallyDrop::new(vec)) });
        }
        self.seq(len, visitor)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.seq(len, visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.seq(len, visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = self.len()?;
        self.nested(|de| {
            visitor.visit_map(Entries {
                de,
                left: len,
                entry_start: 0,
            })
        })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.seq(fields.len(), visitor)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.nested(|de| visitor.visit_enum(de))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple or struct.
struct Elements<'a, I> {
    de: &'a mut Decoder<I>,
    left: usize,
}

impl<'de, I: Input<'de>> de::SeqAccess<'de> for Elements<'_, I> {
    type Error = Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let start = self.de.input.consumed();
        let value = seed.deserialize(&mut *self.de)?;
        self.de.took_bytes_since(start)?;
        Ok(Some(value))
    }

    /// Capped at the bytes left: a bigger claim is a lie (or zero-sized
    /// elements, which need no room).
    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.left.min(self.de.input.can_still_arrive()))
    }
}

/// The entries of a map.
struct Entries<'a, I> {
    de: &'a mut Decoder<I>,
    left: usize,
    /// Where the current entry's key began.
    entry_start: u64,
}

impl<'de, I: Input<'de>> de::MapAccess<'de> for Entries<'_, I> {
    type Error = Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.entry_start = self.de.input.consumed();
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let value = seed.deserialize(&mut *self.de)?;
        self.de.took_bytes_since(self.entry_start)?;
        Ok(value)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.left.min(self.de.input.can_still_arrive()))
    }
}

impl<'de, I: Input<'de>> de::EnumAccess<'de> for &mut Decoder<I> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        let index = self.varint_u64(U32_BYTE, "variant index")? as u32;
        let value = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(index))?;
        Ok((value, self))
    }
}

impl<'de, I: Input<'de>> de::VariantAccess<'de> for &mut Decoder<I> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.seq(len, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.seq(fields.len(), visitor)
    }
}
