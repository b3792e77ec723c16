//! The wire format from child to parent, and the parent's decoder for it.
//!
//! ```text
//! [kind: u8][payload length: u64 LE][payload ...]   one frame, exactly once
//! [DONE_MARK: u8]                                   after the child flushed stdout
//! ```
//!
//! The payload of a `Value` frame is the codec's encoding of the result; the
//! payload of a `Panic` or `SerializationFailed` frame is a UTF-8 message.
//! The child writes the frame *before* flushing stdout (which takes a lock
//! another thread may have held at `fork`), then the done mark, so the parent
//! has the result even if the flush hangs, and waits (a bounded time) for the
//! mark so that the child's output is not lost.
//!
//! [`FrameAssembler`] trusts nothing it reads: the claimed length is checked
//! against a maximum, and the payload buffer grows only with bytes that have
//! arrived (at most doubling), never to the claimed length up front.

use std::mem::MaybeUninit;

use crate::codec::{self, Sink as _};
use crate::sys::MappedBuffer;

/// Bytes in a frame header.
pub(crate) const HEADER_LEN: usize = 9;
/// Sent by the child after its housekeeping (stdout flush) is done.
pub(crate) const DONE_MARK: u8 = 0xD0;
/// Payload bytes the buffer may grow by before any have arrived.
const MIN_GROWTH: usize = 64 * 1024;
/// Payloads up to this size stay inline, off the heap: after `fork` every
/// page the parent writes takes a copy-on-write fault, and a heap buffer
/// would cost one or two on every small call.
pub(crate) const INLINE_LEN: usize = 256;
/// Payloads claiming at least this much collect in a [`MappedBuffer`]
/// (huge pages, growth without copies); smaller ones in a `Vec`, whose
/// `malloc` is cheaper than a mapping of its own.
const MAPPED_LEN: usize = 1 << 20;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// The codec's encoding of the callable's return value.
    Value = 0xA1,
    /// The callable panicked; UTF-8 panic message.
    Panic = 0xA2,
    /// The return value's `Serialize` failed; UTF-8 error message.
    SerializationFailed = 0xA3,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Option<Self> {
        [Self::Value, Self::Panic, Self::SerializationFailed]
            .into_iter()
            .find(|kind| *kind as u8 == byte)
    }
}

/// Bytes of frame the child keeps on its stack before it spills to the heap.
const STACK_FRAME_LEN: usize = 512;

/// The child's outgoing frame. Small frames never touch the heap: in the
/// child of a `fork`, `malloc` writes allocator pages, and each first write
/// to a page is a copy-on-write fault paid on every call. Big frames go to a
/// mapping of their own, backed by huge pages (one fault per 2 MiB instead
/// of per 4 KiB) and grown without copying.
pub(crate) struct FrameBuffer {
    stack: [u8; STACK_FRAME_LEN],
    len: usize,
    /// The whole frame, once it outgrew `stack`.
    heap: MappedBuffer,
}

impl FrameBuffer {
    /// An empty frame of `kind`; the length is filled in by [`Self::finish`].
    pub(crate) fn new(kind: FrameKind) -> Self {
        let mut stack = [0; STACK_FRAME_LEN];
        stack[0] = kind as u8;
        Self {
            stack,
            len: HEADER_LEN,
            heap: MappedBuffer::new(),
        }
    }

    /// Room for the payload on the stack; follow with [`Self::commit_stack`].
    pub(crate) fn stack_room(&mut self) -> &mut [u8] {
        &mut self.stack[HEADER_LEN..]
    }

    /// The first `n` bytes of [`Self::stack_room`] are the payload.
    pub(crate) fn commit_stack(&mut self, n: usize) {
        self.len = HEADER_LEN + n;
    }

    /// The frame moved to the heap, as a sink for the payload to be
    /// appended to; give it back with [`Self::put_heap`]. Anything committed
    /// on the stack stays. The sink owns the buffer while encoding, so that
    /// its length lives in the encoder itself (a register in the per-byte
    /// loop) rather than behind a second pointer.
    pub(crate) fn take_heap(&mut self) -> Result<HeapSink, codec::Error> {
        if self.heap.capacity() == 0 {
            self.heap
                .try_reserve(self.len)
                .map_err(|_| codec::Error::out_of_memory(self.len))?;
            self.heap.extend_from_reserved(&self.stack[..self.len]);
        }
        Ok(HeapSink {
            out: std::mem::take(&mut self.heap),
        })
    }

    /// Takes back the buffer lent by [`Self::take_heap`].
    pub(crate) fn put_heap(&mut self, sink: HeapSink) {
        self.heap = sink.out;
    }

    /// Appends payload bytes.
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        if self.heap.capacity() == 0 {
            if let Some(room) = self.stack.get_mut(self.len..self.len + bytes.len()) {
                room.copy_from_slice(bytes);
                self.len += bytes.len();
                return;
            }
        }
        // A message frame: if even this fails, the frame is cut short and
        // the parent reports the child's death instead.
        if let Ok(mut sink) = self.take_heap() {
            let _ = sink.put(bytes);
            self.put_heap(sink);
        }
    }

    /// Writes the payload length into the header; the frame is ready to send.
    pub(crate) fn finish(&mut self) -> &[u8] {
        let frame: &mut [u8] = if self.heap.capacity() == 0 {
            &mut self.stack[..self.len]
        } else {
            self.heap.as_mut_slice()
        };
        let payload_len = (frame.len() - HEADER_LEN) as u64;
        frame[1..HEADER_LEN].copy_from_slice(&payload_len.to_le_bytes());
        frame
    }
}

/// Appends encoded bytes to a [`FrameBuffer`]'s heap part.
pub(crate) struct HeapSink {
    out: MappedBuffer,
}

impl HeapSink {
    #[cold]
    fn grow(&mut self, additional: usize) -> Result<(), codec::Error> {
        self.out
            .try_reserve(additional)
            .map_err(|_| codec::Error::out_of_memory(additional))
    }
}

impl codec::Sink for HeapSink {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), codec::Error> {
        if self.out.capacity() - self.out.len() < bytes.len() {
            self.grow(bytes.len())?;
        }
        self.out.extend_from_reserved(bytes);
        Ok(())
    }

    #[inline]
    fn put_byte(&mut self, byte: u8) -> Result<(), codec::Error> {
        if self.out.len() == self.out.capacity() {
            self.grow(1)?;
        }
        self.out.push_reserved(byte);
        Ok(())
    }
}

/// A whole frame with a text payload.
pub(crate) fn message_frame(kind: FrameKind, message: &str) -> FrameBuffer {
    let mut frame = FrameBuffer::new(kind);
    frame.put(message.as_bytes());
    frame
}

/// Why the bytes from the child are not a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The first byte is not a known frame kind.
    UnknownKind(u8),
    /// The header claims more payload than the caller allows.
    TooLarge { claimed: u64, limit: u64 },
    /// Bytes arrived after the frame that are not the done mark.
    TrailingBytes,
    /// The parent could not allocate room for `bytes` more of the payload.
    OutOfMemory { bytes: usize },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownKind(byte) => {
                write!(f, "malformed result frame: unknown kind byte {byte:#04x}")
            }
            Self::TooLarge { claimed, limit } => {
                write!(
                    f,
                    "result frame claims {claimed} bytes, more than the limit of {limit}"
                )
            }
            Self::TrailingBytes => {
                f.write_str("malformed result frame: unexpected bytes after the frame")
            }
            Self::OutOfMemory { bytes } => {
                write!(
                    f,
                    "the parent could not allocate {bytes} more bytes for the result"
                )
            }
        }
    }
}

/// A complete frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: FrameKind,
    payload: Payload,
}

impl Frame {
    pub(crate) fn payload(&self) -> &[u8] {
        self.payload.as_slice()
    }
}

/// Where payload bytes collect: inline when the frame is small, in a `Vec`
/// that grows with the bytes that arrive otherwise.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // inline on purpose: no heap write after `fork`
enum Payload {
    Inline {
        bytes: [u8; INLINE_LEN],
        len: usize,
    },
    Heap(Vec<u8>),
    /// Big frames: a mapping of its own in huge pages, grown without copying.
    Mapped(MappedBuffer),
}

impl Payload {
    fn for_len(len: usize) -> Self {
        if len <= INLINE_LEN {
            Self::Inline {
                bytes: [0; INLINE_LEN],
                len: 0,
            }
        } else if len >= MAPPED_LEN {
            // The claim only picks the kind of buffer; it grows with what arrives.
            Self::Mapped(MappedBuffer::new())
        } else {
            Self::Heap(Vec::new())
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Inline { len, .. } => *len,
            Self::Heap(v) => v.len(),
            Self::Mapped(m) => m.len(),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Inline { bytes, len } => &bytes[..*len],
            Self::Heap(v) => v,
            Self::Mapped(m) => m.as_slice(),
        }
    }

    /// Appends `more`; the caller keeps the total within the frame's length.
    fn extend(&mut self, more: &[u8]) -> Result<(), FrameError> {
        match self {
            Self::Inline { bytes, len } => {
                bytes[*len..*len + more.len()].copy_from_slice(more);
                *len += more.len();
            }
            Self::Heap(v) => {
                v.try_reserve(more.len())
                    .map_err(|_| FrameError::OutOfMemory { bytes: more.len() })?;
                v.extend_from_slice(more);
            }
            Self::Mapped(m) => {
                m.try_reserve(more.len())
                    .map_err(|_| FrameError::OutOfMemory { bytes: more.len() })?;
                m.extend_from_reserved(more);
            }
        }
        Ok(())
    }
}

/// Builds one frame (and notices the done mark) from bytes as they arrive.
#[derive(Debug)]
pub(crate) struct FrameAssembler {
    header: [u8; HEADER_LEN],
    header_filled: usize,
    kind: Option<FrameKind>,
    payload_len: usize,
    payload: Payload,
    max_payload: u64,
    done_mark_seen: bool,
}

impl FrameAssembler {
    pub(crate) fn new(max_payload: u64) -> Self {
        Self {
            header: [0; HEADER_LEN],
            header_filled: 0,
            kind: None,
            payload_len: 0,
            payload: Payload::for_len(0),
            max_payload,
            done_mark_seen: false,
        }
    }

    /// The frame has arrived whole.
    pub(crate) fn is_frame_complete(&self) -> bool {
        self.kind.is_some() && self.payload.len() == self.payload_len
    }

    /// The child has also finished its housekeeping.
    pub(crate) fn is_done(&self) -> bool {
        self.done_mark_seen
    }

    /// Consumes `bytes`, in any split.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) -> Result<(), FrameError> {
        while !bytes.is_empty() {
            if self.kind.is_none() {
                let take = (HEADER_LEN - self.header_filled).min(bytes.len());
                self.header[self.header_filled..self.header_filled + take]
                    .copy_from_slice(&bytes[..take]);
                self.header_filled += take;
                bytes = &bytes[take..];
                // Reject a bad kind at its first byte, not after eight more.
                if FrameKind::from_byte(self.header[0]).is_none() {
                    return Err(FrameError::UnknownKind(self.header[0]));
                }
                if self.header_filled == HEADER_LEN {
                    self.parse_header()?;
                }
            } else if !self.is_frame_complete() {
                let take = (self.payload_len - self.payload.len()).min(bytes.len());
                self.payload.extend(&bytes[..take])?;
                bytes = &bytes[take..];
            } else if !self.done_mark_seen && bytes == [DONE_MARK] {
                self.done_mark_seen = true;
                bytes = &[];
            } else {
                return Err(FrameError::TrailingBytes);
            }
        }
        Ok(())
    }

    fn parse_header(&mut self) -> Result<(), FrameError> {
        let kind =
            FrameKind::from_byte(self.header[0]).ok_or(FrameError::UnknownKind(self.header[0]))?;
        let mut len_bytes = [0; 8];
        len_bytes.copy_from_slice(&self.header[1..]);
        let claimed = u64::from_le_bytes(len_bytes);
        if claimed > self.max_payload {
            return Err(FrameError::TooLarge {
                claimed,
                limit: self.max_payload,
            });
        }
        self.payload_len = usize::try_from(claimed).map_err(|_| FrameError::TooLarge {
            claimed,
            limit: self.max_payload,
        })?;
        self.payload = Payload::for_len(self.payload_len);
        self.kind = Some(kind);
        Ok(())
    }

    /// Room to read payload bytes into directly (no copy through a staging
    /// buffer), when at least `min` of them are still expected. The buffer
    /// grows by at most what it already holds (or 64 KiB), never to the
    /// claimed length in one step. Follow with [`Self::commit_direct`].
    /// Fails instead of aborting when the memory cannot be had.
    pub(crate) fn direct_target(
        &mut self,
        min: usize,
    ) -> Result<Option<&mut [MaybeUninit<u8>]>, FrameError> {
        let remaining = self.payload_len - self.payload.len();
        if self.kind.is_none() || remaining < min {
            return Ok(None);
        }
        let growth = remaining.min(self.payload.len().max(MIN_GROWTH));
        let spare = match &mut self.payload {
            Payload::Inline { .. } => return Ok(None),
            Payload::Heap(payload) => {
                if payload.spare_capacity_mut().is_empty() {
                    payload
                        .try_reserve_exact(growth)
                        .map_err(|_| FrameError::OutOfMemory { bytes: growth })?;
                }
                payload.spare_capacity_mut()
            }
            Payload::Mapped(payload) => {
                if payload.spare_capacity_mut().is_empty() {
                    payload
                        .try_reserve(growth)
                        .map_err(|_| FrameError::OutOfMemory { bytes: growth })?;
                }
                payload.spare_capacity_mut()
            }
        };
        let usable = spare.len().min(remaining);
        Ok(Some(&mut spare[..usable]))
    }

    /// Marks `n` bytes written into [`Self::direct_target`] as received.
    ///
    /// # Safety
    ///
    /// The first `n` bytes of the last `direct_target` slice were initialized.
    pub(crate) unsafe fn commit_direct(&mut self, n: usize) {
        match &mut self.payload {
            Payload::Inline { .. } => {}
            Payload::Heap(payload) => {
                debug_assert!(payload.len() + n <= self.payload_len.min(payload.capacity()));
                // SAFETY: the caller initialized these `n` bytes, which lie within capacity and the frame.
                unsafe { payload.set_len(payload.len() + n) };
            }
            Payload::Mapped(payload) => {
                debug_assert!(payload.len() + n <= self.payload_len);
                // SAFETY: as above.
                unsafe { payload.advance(n) };
            }
        }
    }

    /// The complete frame, if it is.
    pub(crate) fn into_frame(self) -> Option<Frame> {
        let complete = self.is_frame_complete();
        match self.kind {
            Some(kind) if complete => Some(Frame {
                kind,
                payload: self.payload,
            }),
            _ => None,
        }
    }
}

/// Decodes bytes from an untrusted child as far as they go (fuzzing and
/// property tests): the first byte picks how the rest is split into reads.
pub(crate) fn decode_untrusted(data: &[u8]) {
    use std::collections::BTreeMap;
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let mut assembler = FrameAssembler::new(1 << 20);
    for piece in rest.chunks(usize::from(split).max(1)) {
        if assembler.push(piece).is_err() {
            return;
        }
    }
    if let Some(frame) = assembler.into_frame() {
        let payload = frame.payload();
        let _ = crate::codec::decode::<String>(payload);
        let _ = crate::codec::decode::<Vec<u8>>(payload);
        let _ = crate::codec::decode::<Vec<String>>(payload);
        let _ = crate::codec::decode::<Option<(u64, String, char)>>(payload);
        let _ = crate::codec::decode::<BTreeMap<String, Vec<u8>>>(payload);
        let _ = crate::codec::decode::<Result<Vec<Option<i128>>, (f64, bool)>>(payload);
        let _ = crate::codec::decode::<Vec<Vec<u8>>>(payload);
        let _ = crate::codec::decode::<(u16, i32, u128, f32, Vec<f64>)>(payload);
        let _ = crate::codec::decode::<Vec<(String, Option<Vec<u32>>)>>(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_bytes(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
        let mut frame = FrameBuffer::new(kind);
        // In pieces, to cross the stack-to-heap spill at every size.
        for piece in payload.chunks(100) {
            frame.put(piece);
        }
        frame.finish().to_vec()
    }

    #[test]
    fn frame_buffer_spills_whole() {
        for len in [
            0,
            1,
            STACK_FRAME_LEN - HEADER_LEN,
            STACK_FRAME_LEN - HEADER_LEN + 1,
            10_000,
        ] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 241).to_le_bytes()[0]).collect();
            let bytes = frame_bytes(FrameKind::Value, &payload);
            assert_eq!(bytes.len(), HEADER_LEN + len);
            let mut assembler = FrameAssembler::new(u64::MAX);
            assembler.push(&bytes).unwrap();
            assert_eq!(assembler.into_frame().unwrap().payload(), payload);
        }
    }

    fn assemble(bytes: &[u8], max: u64) -> Result<FrameAssembler, FrameError> {
        let mut assembler = FrameAssembler::new(max);
        assembler.push(bytes)?;
        Ok(assembler)
    }

    #[test]
    fn whole_frame_in_any_split() {
        let mut bytes = frame_bytes(FrameKind::Value, b"hello world");
        bytes.push(DONE_MARK);
        for split in 0..=bytes.len() {
            let mut assembler = FrameAssembler::new(1024);
            assembler.push(&bytes[..split]).unwrap();
            assembler.push(&bytes[split..]).unwrap();
            assert!(assembler.is_done());
            let frame = assembler.into_frame().unwrap();
            assert_eq!(frame.kind, FrameKind::Value);
            assert_eq!(frame.payload(), b"hello world");
        }
    }

    #[test]
    fn empty_payload() {
        let assembler = assemble(&frame_bytes(FrameKind::Value, b""), 0).unwrap();
        assert!(assembler.is_frame_complete());
        assert!(!assembler.is_done());
        assert_eq!(assembler.into_frame().unwrap().payload(), b"");
    }

    #[test]
    fn forged_all_ones_length_is_rejected_without_allocating() {
        let mut bytes = vec![FrameKind::Value as u8];
        bytes.extend_from_slice(&[0xFF; 8]);
        let err = assemble(&bytes, 1 << 30).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                claimed: u64::MAX,
                limit: 1 << 30
            }
        );
        let all_ff = assemble(&[0xFF; 64], u64::MAX).unwrap_err();
        assert_eq!(all_ff, FrameError::UnknownKind(0xFF));
    }

    #[test]
    fn claimed_length_does_not_size_the_buffer() {
        let mut bytes = vec![FrameKind::Value as u8];
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        bytes.extend_from_slice(b"tiny");
        let mut assembler = assemble(&bytes, u64::MAX).unwrap();
        assert!(!assembler.is_frame_complete());
        assert_eq!(assembler.payload.len(), 4);
        assert!(matches!(&assembler.payload, Payload::Mapped(m) if m.capacity() <= 2 << 20));
        let target = assembler.direct_target(1).unwrap().unwrap();
        assert!(target.len() <= 2 << 20, "{}", target.len());
        // Below the mapped size, a `Vec` that grows with the bytes.
        let mut bytes = vec![FrameKind::Value as u8];
        bytes.extend_from_slice(&((1u64 << 20) - 1).to_le_bytes());
        bytes.extend_from_slice(b"tiny");
        let mut assembler = assemble(&bytes, u64::MAX).unwrap();
        assert!(matches!(&assembler.payload, Payload::Heap(v) if v.capacity() < 1024));
        let target = assembler.direct_target(1).unwrap().unwrap();
        assert!(target.len() <= MIN_GROWTH, "{}", target.len());
    }

    #[test]
    fn truncated_frames_are_incomplete() {
        let bytes = frame_bytes(FrameKind::Value, &[7; 100]);
        for cut in 0..bytes.len() {
            let assembler = assemble(&bytes[..cut], 1024).unwrap();
            assert!(!assembler.is_frame_complete());
            assert!(assembler.into_frame().is_none());
        }
    }

    #[test]
    fn a_bad_kind_is_rejected_at_its_first_byte() {
        assert_eq!(
            assemble(&[0xD0], 1024).unwrap_err(),
            FrameError::UnknownKind(0xD0)
        );
    }

    #[test]
    fn zero_bytes_and_garbage() {
        assert_eq!(
            assemble(&[0; 32], 1024).unwrap_err(),
            FrameError::UnknownKind(0)
        );
        assert_eq!(
            assemble(b"GET / HTTP/1.1\r\n", 1024).unwrap_err(),
            FrameError::UnknownKind(b'G')
        );
        let assembler = assemble(&[], 1024).unwrap();
        assert!(!assembler.is_frame_complete());
    }

    #[test]
    fn bytes_after_the_frame_are_rejected() {
        let mut bytes = frame_bytes(FrameKind::Panic, b"boom");
        bytes.extend_from_slice(&[DONE_MARK, DONE_MARK]);
        assert_eq!(
            assemble(&bytes, 1024).unwrap_err(),
            FrameError::TrailingBytes
        );
        let mut bytes = frame_bytes(FrameKind::Panic, b"boom");
        bytes.push(0);
        assert_eq!(
            assemble(&bytes, 1024).unwrap_err(),
            FrameError::TrailingBytes
        );
    }

    #[test]
    fn direct_reads_fill_the_payload() {
        let payload: Vec<u8> = (0..200_000u32).map(|i| i.to_le_bytes()[0]).collect();
        let bytes = frame_bytes(FrameKind::Value, &payload);
        let mut assembler = FrameAssembler::new(u64::MAX);
        assembler.push(&bytes[..HEADER_LEN]).unwrap();
        let mut rest = &bytes[HEADER_LEN..];
        while let Some(target) = assembler.direct_target(1).unwrap() {
            let n = target.len().min(rest.len()).min(10_000);
            for (slot, byte) in target.iter_mut().zip(&rest[..n]) {
                slot.write(*byte);
            }
            // SAFETY: we just initialized `n` bytes of the target.
            unsafe { assembler.commit_direct(n) };
            rest = &rest[n..];
        }
        assert!(rest.is_empty());
        assert_eq!(assembler.into_frame().unwrap().payload(), payload);
    }

    /// A bounded stand-in for the fuzz target (cargo-fuzz needs a nightly
    /// toolchain and a separate install): valid frames of several shapes,
    /// mutated (bytes flipped, lengths forged, cut short, spliced), through
    /// [`decode_untrusted`]. Deterministic, so a failure reproduces.
    #[test]
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_precision_loss,
        clippy::items_after_statements
    )] // random indices and a rate
    fn mutated_frames_never_panic() {
        use std::collections::BTreeMap;
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
            let mut payload = Vec::new();
            crate::codec::encode_into(value, &mut payload).unwrap();
            frame_bytes(FrameKind::Value, &payload)
        }
        let seeds = [
            encoded(&"grüß dich".to_string()),
            encoded(&(0..300u32).map(|i| i.to_le_bytes()[0]).collect::<Vec<u8>>()),
            encoded(&vec![vec![1u8, 2], vec![]]),
            encoded(&Some((7u64, "x".to_string(), 'é'))),
            encoded(&BTreeMap::from([("k".to_string(), vec![9u8; 40])])),
            encoded(&Ok::<_, (f64, bool)>(vec![Some(-5i128), None])),
            encoded(&(65_535u16, -70_000i32, u128::MAX, 1.5f32, vec![2.5f64])),
            encoded(&vec![("a".to_string(), Some(vec![1u32, 300, 70_000]))]),
        ];
        let started = std::time::Instant::now();
        let mut inputs = 0u64;
        while inputs < 200_000 {
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
                        let from = HEADER_LEN.min(other.len());
                        data.extend_from_slice(&other[from..]);
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
            fn arbitrary_frames_never_panic(len in any::<u64>(), kind in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..512)) {
                let mut data = vec![7, kind];
                data.extend_from_slice(&len.to_le_bytes());
                data.extend_from_slice(&payload);
                decode_untrusted(&data);
                let mut value_frame = vec![3, FrameKind::Value as u8];
                value_frame.extend_from_slice(&(payload.len() as u64).to_le_bytes());
                value_frame.extend_from_slice(&payload);
                decode_untrusted(&value_frame);
            }

            #[test]
            fn frames_survive_any_split(payload in proptest::collection::vec(any::<u8>(), 0..3000), split in 1usize..700) {
                let bytes = frame_bytes(FrameKind::Value, &payload);
                let mut assembler = FrameAssembler::new(u64::MAX);
                for piece in bytes.chunks(split) {
                    assembler.push(piece).unwrap();
                }
                let frame = assembler.into_frame().unwrap();
                prop_assert_eq!(frame.payload(), &payload[..]);
            }
        }
    }
}
