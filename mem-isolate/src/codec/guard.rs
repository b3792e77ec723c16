//! A serde `Deserializer` adapter that makes any borrowing deserializer safe
//! against lengths claimed by its input:
//!
//! - `deserialize_string` / `deserialize_byte_buf` become
//!   `deserialize_str` / `deserialize_bytes`, so the inner deserializer hands
//!   out a slice it has checked against the input instead of allocating by a
//!   length prefix; owned values are then built from bytes that exist;
//! - sequence and map size hints are capped at the input's length (every
//!   element takes at least one byte, so a larger hint is a lie);
//! - nesting deeper than a fixed bound is an error, not a stack overflow.
//!
//! Every method forwards; only these three rules add behaviour.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

#[derive(Clone, Copy)]
struct Limits {
    max_elements: usize,
    depth_left: u32,
}

impl Limits {
    #[inline]
    fn descend<E: de::Error>(self) -> Result<Self, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(Self { depth_left, ..self }),
            None => Err(E::custom("the payload is nested too deeply")),
        }
    }
}

/// Seed for the top-level value (and for every nested one).
pub(super) struct GuardedSeed<S> {
    inner: S,
    limits: Limits,
}

impl<T> GuardedSeed<PhantomData<T>> {
    pub(super) fn new(inner: PhantomData<T>, input_len: usize, max_depth: u32) -> Self {
        Self {
            inner,
            limits: Limits {
                max_elements: input_len,
                depth_left: max_depth,
            },
        }
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for GuardedSeed<S> {
    type Value = S::Value;
    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.inner.deserialize(Guarded {
            inner: deserializer,
            limits: self.limits,
        })
    }
}

struct Guarded<D> {
    inner: D,
    limits: Limits,
}

impl<D> Guarded<D> {
    #[inline]
    fn visitor<V>(&self, inner: V, wants_owned: bool) -> GuardedVisitor<V> {
        GuardedVisitor {
            inner,
            limits: self.limits,
            wants_owned,
        }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
            let visitor = self.visitor(visitor, false);
            self.inner.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Guarded<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_bytes(); deserialize_option(); deserialize_unit(); deserialize_seq();
        deserialize_map(); deserialize_identifier(); deserialize_ignored_any();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let visitor = self.visitor(visitor, true);
        self.inner.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let visitor = self.visitor(visitor, true);
        self.inner.deserialize_bytes(visitor)
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

struct GuardedVisitor<V> {
    inner: V,
    limits: Limits,
    /// The caller asked for an owned string or buffer: give it one, built
    /// from the borrowed bytes.
    wants_owned: bool,
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        #[inline]
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for GuardedVisitor<V> {
    type Value = V::Value;

    #[inline]
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool); visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64);
        visit_i128(i128); visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64);
        visit_u128(u128); visit_f32(f32); visit_f64(f64); visit_char(char);
        visit_str(&str); visit_string(String); visit_bytes(&[u8]); visit_byte_buf(Vec<u8>);
    }

    #[inline]
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        if self.wants_owned {
            self.inner.visit_string(v.to_owned())
        } else {
            self.inner.visit_borrowed_str(v)
        }
    }

    #[inline]
    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        if self.wants_owned {
            let mut owned = Vec::new();
            owned.try_reserve_exact(v.len()).map_err(|_| {
                E::custom(format_args!(
                    "the parent could not allocate {} bytes",
                    v.len()
                ))
            })?;
            owned.extend_from_slice(v);
            self.inner.visit_byte_buf(owned)
        } else {
            self.inner.visit_borrowed_bytes(v)
        }
    }

    #[inline]
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    #[inline]
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    #[inline]
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let limits = self.limits.descend()?;
        self.inner.visit_some(Guarded { inner: d, limits })
    }

    #[inline]
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let limits = self.limits.descend()?;
        self.inner
            .visit_newtype_struct(Guarded { inner: d, limits })
    }

    #[inline]
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let limits = self.limits.descend()?;
        self.inner.visit_seq(Guarded { inner: seq, limits })
    }

    #[inline]
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let limits = self.limits.descend()?;
        self.inner.visit_map(Guarded { inner: map, limits })
    }

    #[inline]
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let limits = self.limits.descend()?;
        self.inner.visit_enum(Guarded {
            inner: data,
            limits,
        })
    }
}

impl<D> Guarded<D> {
    #[inline]
    fn seed<S>(&self, inner: S) -> GuardedSeed<S> {
        GuardedSeed {
            inner,
            limits: self.limits,
        }
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Guarded<A> {
    type Error = A::Error;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        let seed = self.seed(seed);
        self.inner.next_element_seed(seed)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.inner
            .size_hint()
            .map(|n| n.min(self.limits.max_elements))
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Guarded<A> {
    type Error = A::Error;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let seed = self.seed(seed);
        self.inner.next_key_seed(seed)
    }

    #[inline]
    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        let seed = self.seed(seed);
        self.inner.next_value_seed(seed)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        self.inner
            .size_hint()
            .map(|n| n.min(self.limits.max_elements))
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Guarded<A> {
    type Error = A::Error;
    type Variant = Guarded<A::Variant>;

    #[inline]
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Self::Error> {
        let limits = self.limits;
        let seed = self.seed(seed);
        let (value, variant) = self.inner.variant_seed(seed)?;
        Ok((
            value,
            Guarded {
                inner: variant,
                limits,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Guarded<A> {
    type Error = A::Error;

    #[inline]
    fn unit_variant(self) -> Result<(), Self::Error> {
        self.inner.unit_variant()
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        let seed = self.seed(seed);
        self.inner.newtype_variant_seed(seed)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.visitor(visitor, false);
        self.inner.tuple_variant(len, visitor)
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let visitor = self.visitor(visitor, false);
        self.inner.struct_variant(fields, visitor)
    }
}
