//! The blocking wait's decoder input: a value's chunks, read from the child
//! as the decoder asks for them (see [`crate::frame`] for the format).
//!
//! The decoder runs on the caller's thread while the child is still
//! encoding and sending, so the two overlap. Byte strings (a `Vec<u8>`, a
//! `serde_bytes::ByteBuf`, a `String`) are read from the pipe straight
//! into the buffer the value keeps. Where the bytes come from is a
//! [`Source`]: the pipe (with the call's deadline, the child's liveness and
//! its captured output, in [`crate::parent`]), or a slice in tests.
//!
//! Nothing read is trusted: chunk lengths add up against the caller's
//! maximum, and a claimed string length against what the maximum still
//! allows. The buffer for a claimed length starts at no more than
//! [`FIRST_RESERVATION`] of address space and grows with the bytes that
//! arrive; its memory is only touched as they do.

use std::io;
use std::mem::MaybeUninit;

use crate::codec::{self, try_vec_with_capacity, unexpected_end, Bytes, Input};
use crate::frame::{self, ChunkHeader, FrameError, FrameKind, CHUNK_HEADER_LEN, DONE_MARK};

/// Why no more bytes will come.
#[derive(Debug)]
pub(crate) enum Stop {
    /// End of file, or the child ended and what it left has been read.
    Ended,
    /// The deadline passed.
    TimedOut,
    ReadFailed(io::Error),
    /// What arrived breaks the format or the limits.
    Malformed(FrameError),
    /// The child gave up on the value and sent a message instead.
    Abandoned,
}

/// Where bytes come from.
pub(crate) trait Source {
    /// Reads at least one byte into `buf` (not empty), waiting for it.
    fn read(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize, Stop>;
    /// From now on, wait only for the child's housekeeping (the done mark).
    fn enter_grace(&mut self);
}

/// Bytes read ahead while values are small: on the caller's stack, since
/// after `fork` each heap page the parent first writes is a copy-on-write
/// fault.
const SMALL_BUFFER_LEN: usize = 512;
/// Bytes read ahead once the value turns out to be big.
const BIG_BUFFER_LEN: usize = 64 * 1024;
/// Reads of at least this much go straight into their destination.
const DIRECT_READ_LEN: usize = 4 * 1024;
/// The most one read straight into a byte string takes: what the child's
/// pipe holds (see `child::BIG_PIPE`). Its pages are faulted in first
/// ([`crate::sys::prefault`]).
const DIRECT_READ_STEP: usize = 1 << 20;
/// The most a byte string's buffer reserves before its bytes arrive (less
/// when it claims less); then it doubles at most, with the bytes that
/// arrived. This much, because glibc serves allocations of 32 MiB and more
/// with a mapping of their own and grows them with `mremap`, without
/// copying. It is address space: memory is only touched as bytes arrive.
pub(crate) const FIRST_RESERVATION: usize = 32 << 20;

/// The decoder's input over a [`Source`].
///
/// Bytes read ahead sit in a buffer; `pos..limit` of it is the *window*:
/// value bytes of the current chunk, ready to take without a check beyond
/// `pos + n <= limit`. What follows the window in the buffer (`limit..end`)
/// starts with the next chunk's header; what the current chunk has beyond
/// the buffer (`chunk_left`) is still in the pipe.
pub(crate) struct StreamInput<S> {
    source: S,
    small: [MaybeUninit<u8>; SMALL_BUFFER_LEN],
    big: Vec<MaybeUninit<u8>>,
    use_big: bool,
    /// The last read filled the small buffer to its end.
    small_was_filled: bool,
    pos: usize,
    limit: usize,
    end: usize,
    /// Bytes of the current chunk not in the buffer yet.
    chunk_left: usize,
    value_ended: bool,
    /// Value bytes the chunks so far announced.
    announced: u64,
    /// Value bytes consumed are `consumed_base + pos` (wrapping: header
    /// bytes taken from the buffer are subtracted).
    consumed_base: u64,
    max: u64,
    /// Why the source stopped, once it did.
    stop: Option<Stop>,
    scratch: Vec<u8>,
}

impl<S: Source> StreamInput<S> {
    pub(crate) fn new(source: S, max: u64) -> Self {
        Self {
            source,
            small: [MaybeUninit::uninit(); SMALL_BUFFER_LEN],
            big: Vec::new(),
            use_big: false,
            small_was_filled: false,
            pos: 0,
            limit: 0,
            end: 0,
            chunk_left: 0,
            value_ended: false,
            announced: 0,
            consumed_base: 0,
            max,
            stop: None,
            scratch: Vec::new(),
        }
    }

    /// Why the source stopped, if it did.
    pub(crate) fn take_stop(&mut self) -> Option<Stop> {
        self.stop.take()
    }

    #[inline]
    fn buffer(&self) -> &[MaybeUninit<u8>] {
        if self.use_big {
            &self.big
        } else {
            &self.small
        }
    }

    /// `from..to` of the buffer, which holds bytes a read initialized.
    #[inline]
    fn bytes_at(&self, from: usize, to: usize) -> &[u8] {
        let window = &self.buffer()[from..to];
        // SAFETY: everything below `end` was initialized by a read.
        unsafe { &*(std::ptr::from_ref::<[MaybeUninit<u8>]>(window) as *const [u8]) }
    }

    fn stopped(&mut self, stop: Stop) -> codec::Error {
        self.stop = Some(stop);
        codec::Error::Interrupted
    }

    /// Moves the buffered bytes to its start, by `pos`.
    fn compact(&mut self) {
        if self.pos == 0 {
            return;
        }
        let (pos, end) = (self.pos, self.end);
        if self.use_big {
            self.big.copy_within(pos..end, 0);
        } else {
            self.small.copy_within(pos..end, 0);
        }
        self.consumed_base = self.consumed_base.wrapping_add(pos as u64);
        self.limit -= pos;
        self.end -= pos;
        self.pos = 0;
    }

    /// Reads more raw bytes into the buffer, after what is there, and
    /// widens the window by those of the current chunk.
    fn fill(&mut self) -> Result<(), codec::Error> {
        if self.stop.is_some() {
            return Err(codec::Error::Interrupted);
        }
        self.compact();
        // The last read filled the small buffer, or the unread bytes do:
        // the value is big, so read in bigger pieces.
        if !self.use_big && (self.small_was_filled || self.end == SMALL_BUFFER_LEN) {
            if self.big.try_reserve_exact(BIG_BUFFER_LEN).is_err() {
                return Err(self.stopped(Stop::Malformed(FrameError::OutOfMemory {
                    bytes: BIG_BUFFER_LEN,
                })));
            }
            self.big.resize(BIG_BUFFER_LEN, MaybeUninit::uninit());
            let end = self.end;
            self.big[..end].copy_from_slice(&self.small[..end]);
            self.use_big = true;
        }
        let end = self.end;
        let read = if self.use_big {
            self.source.read(&mut self.big[end..])
        } else {
            self.source.read(&mut self.small[end..])
        };
        match read {
            Ok(n) => {
                self.end += n;
                self.small_was_filled = self.end == SMALL_BUFFER_LEN;
                self.widen();
                Ok(())
            }
            Err(stop) => Err(self.stopped(stop)),
        }
    }

    /// Takes what the buffer holds of the current chunk into the window.
    /// (While the chunk goes on beyond the buffer, the window reaches the
    /// buffer's end; when it does not, the chunk is used up and a header
    /// follows the window.)
    fn widen(&mut self) {
        let take = (self.end - self.limit).min(self.chunk_left);
        self.limit += take;
        self.chunk_left -= take;
    }

    /// One raw byte (a kind, a header, the done mark), after the window.
    fn raw_byte(&mut self) -> Result<u8, codec::Error> {
        debug_assert_eq!(self.pos, self.limit);
        while self.pos == self.end {
            self.fill()?;
        }
        let byte = self.bytes_at(self.pos, self.pos + 1)[0];
        self.pos += 1;
        self.limit = self.pos;
        // Not a value byte.
        self.consumed_base = self.consumed_base.wrapping_sub(1);
        Ok(byte)
    }

    /// `N` raw bytes (a header).
    fn raw_array<const N: usize>(&mut self) -> Result<[u8; N], codec::Error> {
        let mut out = [0; N];
        for slot in &mut out {
            *slot = self.raw_byte()?;
        }
        Ok(out)
    }

    /// Reads the next chunk's header (the window is empty and the current
    /// chunk used up); `Ok(false)`: the value ended there.
    fn next_chunk(&mut self) -> Result<bool, codec::Error> {
        let header = self.raw_array::<CHUNK_HEADER_LEN>()?;
        match ChunkHeader::parse(header, self.announced, self.max) {
            Ok(ChunkHeader::Data(n)) => {
                self.chunk_left = n;
                self.announced += n as u64;
                self.widen();
                Ok(true)
            }
            Ok(ChunkHeader::End) => {
                self.value_ended = true;
                Ok(false)
            }
            Ok(ChunkHeader::Abandoned) => Err(self.stopped(Stop::Abandoned)),
            Err(malformed) => Err(self.stopped(Stop::Malformed(malformed))),
        }
    }

    /// Makes value bytes available: returns how many are in the window, or
    /// 0 when the caller should read `want` (at least [`DIRECT_READ_LEN`])
    /// straight from the source.
    fn ready(&mut self, want: usize) -> Result<usize, codec::Error> {
        loop {
            if self.stop.is_some() {
                return Err(codec::Error::Interrupted);
            }
            if self.pos < self.limit {
                return Ok(self.limit - self.pos);
            }
            if self.chunk_left == 0 {
                if self.value_ended || !self.next_chunk()? {
                    return Err(unexpected_end());
                }
                continue;
            }
            // The chunk goes on in the pipe, and the buffer is used up.
            if want >= DIRECT_READ_LEN {
                return Ok(0);
            }
            self.fill()?;
        }
    }

    /// Reads value bytes straight into `out` (at most the current chunk's),
    /// when [`Self::ready`] said so.
    fn read_direct(&mut self, out: &mut [MaybeUninit<u8>]) -> Result<usize, codec::Error> {
        debug_assert!(self.pos == self.end && self.chunk_left > 0);
        let limit = out.len().min(self.chunk_left);
        match self.source.read(&mut out[..limit]) {
            Ok(n) => {
                self.chunk_left -= n;
                self.consumed_base = self.consumed_base.wrapping_add(n as u64);
                Ok(n)
            }
            Err(stop) => Err(self.stopped(stop)),
        }
    }

    /// After the decoder took a value: the value must end here.
    pub(crate) fn end_value(&mut self) -> Result<(), codec::Error> {
        if self.pos == self.limit && self.chunk_left == 0 && !self.value_ended {
            self.next_chunk()?;
        }
        if self.value_ended {
            Ok(())
        } else {
            Err(codec::Error::Message(
                "more bytes follow the value (the payload does not match the result type)".into(),
            ))
        }
    }

    /// Reads and drops the rest of a value the decoder refused, so that the
    /// child can finish (and its output is not lost).
    pub(crate) fn skip_value(&mut self) -> Result<(), Stop> {
        let mut skip = || -> Result<(), codec::Error> {
            while !self.value_ended {
                if self.pos < self.limit {
                    self.pos = self.limit;
                } else if self.chunk_left > 0 {
                    self.fill()?;
                } else {
                    self.next_chunk()?;
                }
            }
            Ok(())
        };
        let skipped = skip();
        match (skipped, self.stop.take()) {
            (_, Some(stop)) => Err(stop),
            _ => Ok(()),
        }
    }

    /// Reads a message frame's length and text, after its kind byte.
    pub(crate) fn message(&mut self, kind: FrameKind) -> Result<frame::Frame, Stop> {
        let read = |input: &mut Self| -> Result<Vec<u8>, codec::Error> {
            let header = input.raw_array::<8>()?;
            let len = match frame::message_len(header, input.max) {
                Ok(len) => len,
                Err(malformed) => return Err(input.stopped(Stop::Malformed(malformed))),
            };
            // The text is one chunk of its own, and the only bytes that count.
            input.chunk_left = len;
            input.value_ended = true;
            input.consumed_base = 0u64.wrapping_sub(input.pos as u64);
            input.widen();
            input.read_owned(len)
        };
        match read(self) {
            Ok(text) => Ok(frame::Frame::message(kind, text)),
            Err(_) => Err(self.stop.take().unwrap_or(Stop::Ended)),
        }
    }

    /// The frame's kind byte.
    pub(crate) fn kind(&mut self) -> Result<u8, Stop> {
        self.raw_byte()
            .map_err(|_| self.stop.take().unwrap_or(Stop::Ended))
    }

    /// After the frame: waits (the housekeeping grace) for the done mark.
    /// `Ok(true)`: it did not come in time (the child lingers). Nothing
    /// after the mark is read: bytes there can only come from the child's
    /// own descendants, after it was done.
    pub(crate) fn await_done_mark(&mut self) -> Result<bool, Stop> {
        self.source.enter_grace();
        match self.raw_byte() {
            Ok(DONE_MARK) => Ok(false),
            Ok(_) => Err(Stop::Malformed(FrameError::TrailingBytes)),
            Err(_) => match self.stop.take() {
                Some(Stop::TimedOut) => Ok(true),
                Some(Stop::Ended) | None => Ok(false),
                Some(other) => Err(other),
            },
        }
    }

    /// `n` value bytes into a `Vec` of their own, read straight into it.
    fn read_owned(&mut self, n: usize) -> Result<Vec<u8>, codec::Error> {
        let can_still_arrive = Input::can_still_arrive(self);
        if n > can_still_arrive {
            return Err(codec::Error::Message(format!(
                "the payload claims {n} bytes where at most {can_still_arrive} can still arrive"
            )));
        }
        let first = n.min(FIRST_RESERVATION);
        let Ok(mut out) = try_vec_with_capacity(first) else {
            return Err(self.out_of_memory(first));
        };
        while out.len() < n {
            if out.len() == out.capacity() {
                // Doubles at most: growth follows the bytes that arrived. An
                // allocation advised when it was made keeps the advice as it
                // grows (`mremap` moves it along).
                let more = (n - out.len()).min(out.len());
                if out.try_reserve_exact(more).is_err() {
                    return Err(self.out_of_memory(more));
                }
            }
            let want = n - out.len();
            let ready = self.ready(want)?;
            if ready > 0 {
                let take = ready.min(want);
                out.extend_from_slice(self.bytes_at(self.pos, self.pos + take));
                self.pos += take;
            } else {
                let spare = out.spare_capacity_mut();
                let limit = spare.len().min(want).min(DIRECT_READ_STEP);
                crate::sys::prefault(&mut spare[..limit]);
                let got = self.read_direct(&mut spare[..limit])?;
                // SAFETY: the read initialized `got` bytes of the spare room.
                unsafe { out.set_len(out.len() + got) };
            }
        }
        Ok(out)
    }

    fn out_of_memory(&mut self, bytes: usize) -> codec::Error {
        self.stopped(Stop::Malformed(FrameError::OutOfMemory { bytes }))
    }

    #[cold]
    fn byte_slow(&mut self) -> Result<u8, codec::Error> {
        self.ready(1)?;
        let byte = self.bytes_at(self.pos, self.pos + 1)[0];
        self.pos += 1;
        Ok(byte)
    }

    #[cold]
    fn read_exact_slow(&mut self, mut out: &mut [u8]) -> Result<(), codec::Error> {
        while !out.is_empty() {
            let ready = self.ready(out.len())?;
            if ready > 0 {
                let take = ready.min(out.len());
                out[..take].copy_from_slice(self.bytes_at(self.pos, self.pos + take));
                self.pos += take;
                out = &mut out[take..];
            } else {
                // SAFETY: `&mut [u8]` as `&mut [MaybeUninit<u8>]`: reads only write bytes.
                let uninit =
                    unsafe { &mut *(std::ptr::from_mut::<[u8]>(out) as *mut [MaybeUninit<u8>]) };
                let got = self.read_direct(uninit)?;
                out = &mut out[got..];
            }
        }
        Ok(())
    }
}

impl<'de, S: Source> Input<'de> for StreamInput<S> {
    #[inline]
    fn byte(&mut self) -> Result<u8, codec::Error> {
        if self.pos < self.limit {
            let byte = self.bytes_at(self.pos, self.pos + 1)[0];
            self.pos += 1;
            return Ok(byte);
        }
        self.byte_slow()
    }

    #[inline]
    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), codec::Error> {
        let n = out.len();
        if self.limit - self.pos >= n {
            out.copy_from_slice(self.bytes_at(self.pos, self.pos + n));
            self.pos += n;
            return Ok(());
        }
        self.read_exact_slow(out)
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes<'de, '_>, codec::Error> {
        if self.limit - self.pos >= n {
            let start = self.pos;
            self.pos += n;
            return Ok(Bytes::Scratch(self.bytes_at(start, start + n)));
        }
        self.scratch = self.read_owned(n)?;
        Ok(Bytes::Scratch(&self.scratch))
    }

    fn owned(&mut self, n: usize) -> Result<Vec<u8>, codec::Error> {
        self.read_owned(n)
    }

    #[inline]
    fn consumed(&self) -> u64 {
        self.consumed_base.wrapping_add(self.pos as u64)
    }

    fn can_still_arrive(&self) -> usize {
        usize::try_from(self.max.saturating_sub(Input::consumed(self))).unwrap_or(usize::MAX)
    }
}

/// A slice read in pieces of `split` bytes: the pipe, in tests and fuzzing.
pub(crate) struct SplitSource<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) split: usize,
}

impl Source for SplitSource<'_> {
    fn read(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize, Stop> {
        let n = self.split.max(1).min(buf.len()).min(self.data.len());
        if n == 0 {
            return Err(Stop::Ended);
        }
        for (slot, byte) in buf.iter_mut().zip(&self.data[..n]) {
            slot.write(*byte);
        }
        self.data = &self.data[n..];
        Ok(n)
    }

    fn enter_grace(&mut self) {}
}

/// Decodes bytes from an untrusted child as far as they go, both ways the
/// parent does (fuzzing and property tests): joined by the background
/// waiter's assembler, then decoded; and decoded as they arrive. The first
/// byte picks how the rest is split into reads.
pub(crate) fn decode_untrusted(data: &[u8]) {
    use std::collections::BTreeMap;
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).max(1);
    macro_rules! both_ways {
        ($($t:ty),*) => {$(
            if let Some(frame) = assembled(rest, split) {
                let _ = crate::codec::decode::<$t>(frame.payload());
            }
            let mut input = StreamInput::new(SplitSource { data: rest, split }, 1 << 20);
            let _ = crate::parent::receive_from::<$t, _>(&mut input);
        )*};
    }
    both_ways!(
        String,
        Vec<u8>,
        Vec<String>,
        Option<(u64, String, char)>,
        BTreeMap<String, Vec<u8>>,
        Result<Vec<Option<i128>>, (f64, bool)>,
        Vec<Vec<u8>>,
        (u16, i32, u128, f32, Vec<f64>),
        Vec<(String, Option<Vec<u32>>)>
    );
}

fn assembled(data: &[u8], split: usize) -> Option<frame::Frame> {
    let mut assembler = frame::FrameAssembler::new(1 << 20);
    for piece in data.chunks(split) {
        assembler.push(piece).ok()?;
    }
    assembler.into_frame()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameAssembler, END_OF_VALUE, MAX_CHUNK, VALUE_ABANDONED};
    use crate::parent::{receive_from, Ending, Received};

    /// A value frame as the child sends it: the payload cut into chunks of
    /// `chunk` bytes, the end, the done mark.
    fn value_frame(payload: &[u8], chunk: usize) -> Vec<u8> {
        let mut bytes = vec![FrameKind::Value as u8];
        for piece in payload.chunks(chunk.max(1)) {
            bytes.extend_from_slice(&u32::try_from(piece.len()).unwrap().to_le_bytes());
            bytes.extend_from_slice(piece);
        }
        bytes.extend_from_slice(&END_OF_VALUE.to_le_bytes());
        bytes.push(DONE_MARK);
        bytes
    }

    fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut payload = Vec::new();
        crate::codec::encode_into(value, &mut payload).unwrap();
        payload
    }

    fn streamed<T: serde::de::DeserializeOwned>(
        bytes: &[u8],
        split: usize,
        max: u64,
    ) -> Received<T> {
        receive_from(&mut StreamInput::new(
            SplitSource { data: bytes, split },
            max,
        ))
    }

    fn assembled_payload(bytes: &[u8], split: usize, max: u64) -> Result<Vec<u8>, FrameError> {
        let mut assembler = FrameAssembler::new(max);
        for piece in bytes.chunks(split) {
            assembler.push(piece)?;
        }
        assert!(assembler.is_done());
        Ok(assembler.into_frame().unwrap().payload().to_vec())
    }

    fn value<T: std::fmt::Debug>(received: Received<T>) -> T {
        match received {
            Received::Value {
                result: Ok(value),
                lingering: false,
            } => value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_arrive_whole_in_any_chunking_and_any_split() {
        let strings: Vec<String> = (0..300).map(|i| "ü".repeat(i % 40)).collect();
        let bytes: Vec<u8> = (0..70_000u32).map(|i| i.to_le_bytes()[0]).collect();
        let original = (strings, bytes, 7u64, Some('x'));
        let payload = encoded(&original);
        for chunk in [1, 3, 64, 4096, payload.len()] {
            let frame = value_frame(&payload, chunk);
            for split in [1, 2, 5, 511, 512, 513, 70_000, frame.len()] {
                let got: (Vec<String>, Vec<u8>, u64, Option<char>) =
                    value(streamed(&frame, split, u64::MAX));
                assert_eq!(got, original);
                assert_eq!(assembled_payload(&frame, split, u64::MAX).unwrap(), payload);
            }
        }
        // The empty value: no chunk at all.
        let unit = value_frame(&[], 1);
        assert_eq!(unit.len(), 1 + 4 + 1);
        value::<()>(streamed(&unit, 1, 0));
        assert!(assembled_payload(&unit, 1, 0).unwrap().is_empty());
    }

    #[test]
    fn byte_strings_are_read_straight_into_their_buffer() {
        let bytes: Vec<u8> = (0..(3u32 << 20) + 17).map(|i| (i % 251) as u8).collect();
        let frame = value_frame(&encoded(&bytes), 1 << 20);
        for split in [100_000, 1 << 20, usize::MAX] {
            assert_eq!(value(streamed::<Vec<u8>>(&frame, split, u64::MAX)), bytes);
            assert_eq!(
                value(streamed::<crate::codec::tests::serde_bytes_like::Buf>(
                    &frame,
                    split,
                    u64::MAX
                ))
                .0,
                bytes
            );
        }
    }

    #[test]
    fn chunks_are_checked_against_the_limit_alone_and_added_up() {
        let payload = encoded(&vec![7u8; 1000]);
        let frame = value_frame(&payload, 300);
        let limit = payload.len() as u64 - 1;
        let err = assembled_payload(&frame, 7, limit).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { limit: l, .. } if l == limit),
            "{err:?}"
        );
        match streamed::<Vec<u8>>(&frame, 7, limit) {
            Received::Ending(Ending::Malformed(FrameError::TooLarge { claimed, .. })) => {
                assert_eq!(claimed, payload.len() as u64);
            }
            other => panic!("{other:?}"),
        }
        // One chunk claiming everything, and one longer than a chunk may be.
        for (header, max) in [(0xFFFF_FFFE_u32, 1 << 30), (MAX_CHUNK + 1, u64::MAX)] {
            let mut frame = vec![FrameKind::Value as u8];
            frame.extend_from_slice(&header.to_le_bytes());
            frame.extend_from_slice(b"tiny");
            assert!(assembled_payload(&frame, 1, max).is_err());
            assert!(matches!(
                streamed::<String>(&frame, 1, max),
                Received::Ending(Ending::Malformed(
                    FrameError::TooLarge { .. } | FrameError::BadChunkLength(_)
                ))
            ));
        }
    }

    #[test]
    fn a_claimed_length_beyond_what_can_arrive_is_refused() {
        let mut payload = vec![253];
        payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
        payload.extend_from_slice(b"tiny");
        let frame = value_frame(&payload, 1024);
        match streamed::<String>(&frame, 3, 1 << 30) {
            Received::Value {
                result: Err(e),
                lingering: false,
            } => assert!(e.contains("can still arrive"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_value_cut_short_is_no_frame() {
        let frame = value_frame(&encoded(&vec![1u64; 500]), 100);
        for cut in [1, 3, 5, 50, 105, frame.len() - 6] {
            assert!(matches!(
                streamed::<Vec<u64>>(&frame[..cut], 7, u64::MAX),
                Received::Ending(Ending::NoFrame)
            ));
            let mut assembler = FrameAssembler::new(u64::MAX);
            assembler.push(&frame[..cut]).unwrap();
            assert!(assembler.into_frame().is_none());
        }
    }

    /// A `Serialize` that fails after chunks went out: the message follows
    /// the abandon mark, and is what the caller gets.
    #[test]
    fn an_abandoned_value_gives_its_message() {
        let mut frame = value_frame(&[5; 1000], 300);
        frame.truncate(frame.len() - 5); // the end and the done mark
        frame.extend_from_slice(&VALUE_ABANDONED.to_le_bytes());
        frame.push(FrameKind::SerializationFailed as u8);
        frame.extend_from_slice(&4u64.to_le_bytes());
        frame.extend_from_slice(b"oops");
        frame.push(DONE_MARK);
        for split in [1, 9, frame.len()] {
            match streamed::<Vec<u8>>(&frame, split, u64::MAX) {
                Received::Ending(Ending::Frame {
                    frame,
                    lingering: false,
                }) => {
                    assert_eq!(frame.kind, FrameKind::SerializationFailed);
                    assert_eq!(frame.payload(), b"oops");
                }
                other => panic!("{other:?}"),
            }
            let mut assembler = FrameAssembler::new(u64::MAX);
            for piece in frame.chunks(split) {
                assembler.push(piece).unwrap();
            }
            let whole = assembler.into_frame().unwrap();
            assert_eq!(whole.kind, FrameKind::SerializationFailed);
            assert_eq!(whole.payload(), b"oops");
        }
        // Only a message may follow the mark.
        let mut forged = value_frame(&[5; 10], 10);
        forged.truncate(forged.len() - 5);
        forged.extend_from_slice(&VALUE_ABANDONED.to_le_bytes());
        forged.extend_from_slice(&value_frame(&[1], 1));
        assert!(matches!(
            streamed::<Vec<u8>>(&forged, 4, u64::MAX),
            Received::Ending(Ending::Malformed(FrameError::UnknownKind(0xA1)))
        ));
        assert!(assembled_payload(&forged, 4, u64::MAX).is_err());
    }

    /// A value the decoder refuses is read to its end, so that the child can
    /// finish and the done mark is still seen.
    #[test]
    fn a_refused_value_is_skipped_to_its_end() {
        let frame = value_frame(&encoded(&(0..5000u32).collect::<Vec<_>>()), 1000);
        match streamed::<(u8, u8)>(&frame, 333, u64::MAX) {
            Received::Value {
                result: Err(e),
                lingering: false,
            } => assert!(e.contains("more bytes follow"), "{e}"),
            other => panic!("{other:?}"),
        }
        match streamed::<String>(&frame, 333, u64::MAX) {
            Received::Value {
                result: Err(_),
                lingering: false,
            } => {}
            other => panic!("{other:?}"),
        }
    }

    /// Bytes in place of the done mark are refused; bytes after it are not
    /// looked at (only the child's descendants can write them, after it
    /// was done), whatever reads they arrive in.
    #[test]
    fn the_done_mark_ends_the_frame() {
        let whole = value_frame(&encoded(&1u8), 10);
        let mut after = whole.clone();
        after.extend_from_slice(&[DONE_MARK, 0x55, 0x55]);
        for split in [1, 3, usize::MAX] {
            assert_eq!(value(streamed::<u8>(&after, split, 1024)), 1);
            assert_eq!(assembled_payload(&after, split, 1024).unwrap(), [1]);
        }
        let mut instead = whole[..whole.len() - 1].to_vec();
        instead.push(0x55);
        assert!(matches!(
            streamed::<u8>(&instead, usize::MAX, 1024),
            Received::Ending(Ending::Malformed(FrameError::TrailingBytes))
        ));
        assert_eq!(
            FrameAssembler::new(1024).push(&instead).unwrap_err(),
            FrameError::TrailingBytes
        );
    }

    #[test]
    fn garbage_is_refused_at_its_first_byte() {
        for junk in [&[0u8; 32][..], b"GET / HTTP/1.1\r\n", &[0xD0]] {
            assert!(matches!(
                streamed::<u8>(junk, 5, 1024),
                Received::Ending(Ending::Malformed(FrameError::UnknownKind(b))) if b == junk[0]
            ));
            assert_eq!(
                FrameAssembler::new(1024).push(junk).unwrap_err(),
                FrameError::UnknownKind(junk[0])
            );
        }
    }

    /// A bounded stand-in for the fuzz target (cargo-fuzz needs a nightly
    /// toolchain and a separate install): valid frames of several shapes,
    /// mutated (bytes flipped, lengths forged, cut short, spliced), through
    /// [`decode_untrusted`], both ways. Deterministic, so a failure reproduces.
    #[test]
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // random indices and a rate
    fn mutated_frames_never_panic() {
        use std::collections::BTreeMap;
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds = [
            value_frame(&encoded(&"grüß dich".to_string()), 4),
            value_frame(
                &encoded(&(0..300u32).map(|i| i.to_le_bytes()[0]).collect::<Vec<u8>>()),
                100,
            ),
            value_frame(&encoded(&vec![vec![1u8, 2], vec![]]), 1),
            value_frame(&encoded(&Some((7u64, "x".to_string(), 'é'))), 1000),
            value_frame(
                &encoded(&BTreeMap::from([("k".to_string(), vec![9u8; 40])])),
                16,
            ),
            value_frame(&encoded(&Ok::<_, (f64, bool)>(vec![Some(-5i128), None])), 3),
            value_frame(
                &encoded(&(65_535u16, -70_000i32, u128::MAX, 1.5f32, vec![2.5f64])),
                8,
            ),
            value_frame(
                &encoded(&vec![("a".to_string(), Some(vec![1u32, 300, 70_000]))]),
                5,
            ),
        ];
        let started = std::time::Instant::now();
        let mut inputs = 0u64;
        while inputs < 60_000 {
            let seed = &seeds[(next() % seeds.len() as u64) as usize];
            let mut data = vec![(next() % 64) as u8];
            data.extend_from_slice(seed);
            for _ in 0..=(next() % 4) {
                let at = 1 + (next() as usize) % (data.len() - 1);
                match next() % 5 {
                    0 => data[at] ^= 1 << (next() % 8),
                    1 => data[at] = [0, 250, 251, 252, 253, 254, 255][(next() % 7) as usize],
                    2 => data.truncate(at.max(2)),
                    3 => {
                        let forged = next().to_le_bytes();
                        let end = (at + 1 + (next() as usize) % 8).min(data.len());
                        let n = end - at;
                        data[at..end].copy_from_slice(&forged[..n]);
                    }
                    _ => {
                        let other = &seeds[(next() % seeds.len() as u64) as usize];
                        data.extend_from_slice(&other[1.min(other.len())..]);
                    }
                }
            }
            decode_untrusted(&data);
            inputs += 1;
        }
        eprintln!(
            "{inputs} mutated frames in {:?} ({:.0} inputs/s)",
            started.elapsed(),
            inputs as f64 / started.elapsed().as_secs_f64()
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
                decode_untrusted(&data);
            }

            #[test]
            fn arbitrary_chunk_headers_never_panic(header in any::<u32>(), max in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..512)) {
                let mut data = vec![7, FrameKind::Value as u8];
                data.extend_from_slice(&header.to_le_bytes());
                data.extend_from_slice(&payload);
                decode_untrusted(&data);
                let _ = streamed::<Vec<u8>>(&data[1..], 7, max);
            }

            #[test]
            fn frames_survive_any_split(payload in proptest::collection::vec(any::<u8>(), 0..3000), chunk in 1usize..700, split in 1usize..700) {
                let frame = value_frame(&encoded(&payload), chunk);
                prop_assert_eq!(value(streamed::<Vec<u8>>(&frame, split, u64::MAX)), payload.clone());
                prop_assert_eq!(assembled_payload(&frame, split, u64::MAX).unwrap(), encoded(&payload));
            }
        }
    }
}
