//! The encoder: a serde `Serializer` writing bincode 2's standard
//! configuration byte for byte (little endian; integers wider than a byte
//! as varints, signed ones zigzagged; lengths as `u64` varints; enum variants
//! as `u32` varints; `Option` as a 0/1 byte; `char` as UTF-8). Checked
//! against bincode itself by the tests in `codec`.
//!
//! bincode's own serde layer pays a `Writer` call with a length check per
//! element; a `Vec<u8>` (a sequence of `u8` to serde) moves one byte per
//! element, so the per-byte path here is an inlined store.

// The wire format converts integers bit for bit (zigzag, varint widths
// bounded by the marker byte that was checked before the cast).
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use serde::ser::{self, Serialize};

use super::Error;

/// Varint markers: a value up to [`SINGLE_BYTE_MAX`] is its own byte, a
/// bigger one is a marker byte and the value's little-endian bytes.
pub(super) const SINGLE_BYTE_MAX: u8 = 250;
pub(super) const U16_BYTE: u8 = 251;
pub(super) const U32_BYTE: u8 = 252;
pub(super) const U64_BYTE: u8 = 253;
pub(super) const U128_BYTE: u8 = 254;

/// Where encoded bytes go.
pub(crate) trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error>;

    /// Appends one byte (the per-element path of byte sequences).
    #[inline]
    fn put_byte(&mut self, byte: u8) -> Result<(), Error> {
        self.put(&[byte])
    }
}

/// A `Vec` that grows at least twofold, failing instead of aborting.
pub(crate) struct VecSink<'a> {
    pub(crate) out: &'a mut Vec<u8>,
}

impl VecSink<'_> {
    #[cold]
    fn grow(&mut self, additional: usize) -> Result<(), Error> {
        self.out
            .try_reserve(additional.max(self.out.capacity()))
            .map_err(|_| Error::out_of_memory(additional))
    }
}

impl Sink for VecSink<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.out.capacity() - self.out.len() < bytes.len() {
            self.grow(bytes.len())?;
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    #[inline]
    fn put_byte(&mut self, byte: u8) -> Result<(), Error> {
        if self.out.len() == self.out.capacity() {
            self.grow(1)?;
        }
        self.out.push(byte);
        Ok(())
    }
}

/// The serializer; `&mut Encoder` is what serde is handed.
pub(crate) struct Encoder<S> {
    pub(crate) sink: S,
}

impl<S: Sink> Encoder<S> {
    #[inline]
    fn varint_u64(&mut self, v: u64) -> Result<(), Error> {
        if v <= u64::from(SINGLE_BYTE_MAX) {
            self.sink.put_byte(v as u8)
        } else {
            self.varint_u64_wide(v)
        }
    }

    #[cold]
    fn varint_u64_wide(&mut self, v: u64) -> Result<(), Error> {
        let mut buf = [0u8; 9];
        let len = if let Ok(v) = u16::try_from(v) {
            buf[0] = U16_BYTE;
            buf[1..3].copy_from_slice(&v.to_le_bytes());
            3
        } else if let Ok(v) = u32::try_from(v) {
            buf[0] = U32_BYTE;
            buf[1..5].copy_from_slice(&v.to_le_bytes());
            5
        } else {
            buf[0] = U64_BYTE;
            buf[1..9].copy_from_slice(&v.to_le_bytes());
            9
        };
        self.sink.put(&buf[..len])
    }

    fn varint_u128(&mut self, v: u128) -> Result<(), Error> {
        if let Ok(v) = u64::try_from(v) {
            return self.varint_u64(v);
        }
        let mut buf = [0u8; 17];
        buf[0] = U128_BYTE;
        buf[1..].copy_from_slice(&v.to_le_bytes());
        self.sink.put(&buf)
    }

    #[inline]
    fn len(&mut self, len: Option<usize>) -> Result<(), Error> {
        let len = len.ok_or_else(|| {
            Error::Message("a sequence or map without a known length cannot be encoded".into())
        })?;
        self.varint_u64(len as u64)
    }
}

/// Zigzag: 0, -1, 1, -2 ... become 0, 1, 2, 3 ...
#[inline]
fn zigzag(v: i64) -> u64 {
    if v < 0 {
        !(v as u64) * 2 + 1
    } else {
        (v as u64) * 2
    }
}

impl<S: Sink> ser::Serializer for &mut Encoder<S> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.sink.put_byte(u8::from(v))
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.sink.put_byte(v as u8)
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.varint_u64(zigzag(v.into()))
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.varint_u64(zigzag(v.into()))
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.varint_u64(zigzag(v))
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        let zigzagged = if v < 0 {
            !(v as u128) * 2 + 1
        } else {
            (v as u128) * 2
        };
        self.varint_u128(zigzagged)
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.sink.put_byte(v)
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.varint_u64(v.into())
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.varint_u64(v.into())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.varint_u64(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.varint_u128(v)
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.sink.put(&v.to_le_bytes())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.sink.put(&v.to_le_bytes())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Result<(), Error> {
        let mut buf = [0u8; 4];
        self.sink.put(v.encode_utf8(&mut buf).as_bytes())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.serialize_bytes(v.as_bytes())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.varint_u64(v.len() as u64)?;
        self.sink.put(v)
    }
    #[inline]
    fn serialize_none(self) -> Result<(), Error> {
        self.sink.put_byte(0)
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.sink.put_byte(1)?;
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        self.varint_u64(variant_index.into())
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.varint_u64(variant_index.into())?;
        value.serialize(self)
    }
    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Error> {
        self.len(len)?;
        Ok(self)
    }
    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.varint_u64(variant_index.into())?;
        Ok(self)
    }
    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, Error> {
        self.len(len)?;
        Ok(self)
    }
    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        variant_index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.varint_u64(variant_index.into())?;
        Ok(self)
    }
    fn is_human_readable(&self) -> bool {
        false
    }

    /// A sequence of bytes held in a slice (how `Vec<u8>`, `&[u8]` and
    /// `Box<[u8]>` serialize: serde calls this with the slice's iterator)
    /// is copied in one go; its encoding is the same, one byte per `u8`.
    fn collect_seq<I>(self, iter: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let iter = iter.into_iter();
        if let Some(bytes) = as_byte_slice(&iter) {
            self.varint_u64(bytes.len() as u64)?;
            return self.sink.put(bytes);
        }
        let mut seq = ser::Serializer::serialize_seq(&mut *self, iterator_len_hint(&iter))?;
        for item in iter {
            ser::SerializeSeq::serialize_element(&mut seq, &item)?;
        }
        ser::SerializeSeq::end(seq)
    }
}

/// The iterator's bytes, if it is a slice iterator over `u8`.
///
/// `type_name` tells the exact type here: types are named by their full
/// path and generic arguments, and there is one `core` in a program, so
/// only `core::slice::Iter<'_, u8>` itself carries that name (lifetimes do
/// not change layout). Sizes are checked as well.
#[inline]
fn as_byte_slice<'a, I>(iter: &'a I) -> Option<&'a [u8]> {
    let same_type = std::any::type_name::<I>()
        == std::any::type_name::<std::slice::Iter<'static, u8>>()
        && std::mem::size_of::<I>() == std::mem::size_of::<std::slice::Iter<'static, u8>>()
        && std::mem::align_of::<I>() == std::mem::align_of::<std::slice::Iter<'static, u8>>();
    if !same_type {
        return None;
    }
    // SAFETY: `I` is `core::slice::Iter<'_, u8>` (checked above); the
    // reference keeps the borrow of `iter`, which outlives the slice's use.
    let iter = unsafe { &*std::ptr::from_ref(iter).cast::<std::slice::Iter<'a, u8>>() };
    Some(iter.as_slice())
}

/// serde's own rule: the length when the iterator knows it exactly.
fn iterator_len_hint<I: Iterator>(iter: &I) -> Option<usize> {
    match iter.size_hint() {
        (lo, Some(hi)) if lo == hi => Some(lo),
        _ => None,
    }
}

/// Compound values are their elements, one after the other.
macro_rules! compound {
    ($($trait:ident :: $method:ident $(($key:ident))?;)*) => {$(
        impl<S: Sink> ser::$trait for &mut Encoder<S> {
            type Ok = ();
            type Error = Error;
            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, $($key: &'static str,)? value: &T) -> Result<(), Error> {
                $(let _ = $key;)?
                value.serialize(&mut **self)
            }
            #[inline]
            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    )*};
}

compound! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
    SerializeStruct::serialize_field(key);
    SerializeStructVariant::serialize_field(key);
}

impl<S: Sink> ser::SerializeMap for &mut Encoder<S> {
    type Ok = ();
    type Error = Error;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        key.serialize(&mut **self)
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut **self)
    }
    #[inline]
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}
