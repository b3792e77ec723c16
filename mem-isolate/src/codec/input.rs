//! Where the decoder's bytes come from: a whole payload in memory
//! ([`SliceInput`]), or bytes still arriving from the child
//! ([`crate::stream::StreamInput`]).

use super::Error;

/// Bytes the decoder asked for: borrowed from the input itself (a slice
/// that outlives the decoder, so `&str` results can borrow it), or from a
/// buffer that is only valid until the next read.
pub(crate) enum Bytes<'de, 'a> {
    Input(&'de [u8]),
    Scratch(&'a [u8]),
}

/// What the decoder needs from its input. Every method fails instead of
/// allocating by a length the input claims.
pub(crate) trait Input<'de> {
    /// The next byte.
    fn byte(&mut self) -> Result<u8, Error>;
    /// Exactly `out.len()` bytes (small: varints, floats, a `char`).
    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), Error>;
    /// The next `n` bytes, contiguous.
    fn bytes(&mut self, n: usize) -> Result<Bytes<'de, '_>, Error>;
    /// The next `n` bytes in a `Vec` of their own (byte buffers, strings):
    /// for a stream, read straight into it as they arrive.
    fn owned(&mut self, n: usize) -> Result<Vec<u8>, Error>;
    /// Bytes consumed so far.
    fn consumed(&self) -> u64;
    /// At most how many more bytes there can be: caps the size hints the
    /// decoder hands to serde.
    fn can_still_arrive(&self) -> usize;
}

impl<'de, I: Input<'de> + ?Sized> Input<'de> for &mut I {
    #[inline]
    fn byte(&mut self) -> Result<u8, Error> {
        (**self).byte()
    }
    #[inline]
    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), Error> {
        (**self).read_exact(out)
    }
    #[inline]
    fn bytes(&mut self, n: usize) -> Result<Bytes<'de, '_>, Error> {
        (**self).bytes(n)
    }
    #[inline]
    fn owned(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        (**self).owned(n)
    }
    #[inline]
    fn consumed(&self) -> u64 {
        (**self).consumed()
    }
    #[inline]
    fn can_still_arrive(&self) -> usize {
        (**self).can_still_arrive()
    }
}

/// A payload that is all in memory.
pub(crate) struct SliceInput<'de> {
    input: &'de [u8],
    pos: usize,
}

impl<'de> SliceInput<'de> {
    pub(crate) fn new(input: &'de [u8]) -> Self {
        Self { input, pos: 0 }
    }

    /// Bytes not consumed yet.
    pub(crate) fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], Error> {
        if n > self.remaining() {
            return Err(Error::Message(format!(
                "the payload claims {n} bytes where {} remain",
                self.remaining()
            )));
        }
        let bytes = &self.input[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }
}

impl<'de> Input<'de> for SliceInput<'de> {
    #[inline]
    fn byte(&mut self) -> Result<u8, Error> {
        let byte = *self.input.get(self.pos).ok_or_else(unexpected_end)?;
        self.pos += 1;
        Ok(byte)
    }

    #[inline]
    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), Error> {
        out.copy_from_slice(self.take(out.len())?);
        Ok(())
    }

    #[inline]
    fn bytes(&mut self, n: usize) -> Result<Bytes<'de, '_>, Error> {
        self.take(n).map(Bytes::Input)
    }

    fn owned(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        let bytes = self.take(n)?;
        let mut out = try_vec_with_capacity(bytes.len())?;
        out.extend_from_slice(bytes);
        Ok(out)
    }

    #[inline]
    fn consumed(&self) -> u64 {
        self.pos as u64
    }

    #[inline]
    fn can_still_arrive(&self) -> usize {
        self.remaining()
    }
}

/// An empty `Vec` with room for `n` bytes, huge-page advised when big,
/// failing instead of aborting.
pub(crate) fn try_vec_with_capacity(n: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| Error::out_of_memory(n))?;
    crate::sys::advise_fresh_allocation(out.spare_capacity_mut());
    Ok(out)
}

pub(crate) fn unexpected_end() -> Error {
    Error::Message("the payload ended in the middle of a value".into())
}
