//! The wire format from child to parent: the child's writer for it, and the
//! decoder the background waiter uses (the blocking wait decodes as the
//! bytes arrive instead, see [`crate::stream`]).
//!
//! ```text
//! value:    [VALUE] ([n: u32 LE][n bytes])* [END_OF_VALUE: u32 = 0]
//! message:  [PANIC | SERIALIZATION_FAILED] [length: u64 LE] [UTF-8 text]
//! then:     [DONE_MARK: u8]        after the child flushed its stdout
//! ```
//!
//! A value travels in chunks, so the child sends it while it encodes and
//! the parent decodes it while it arrives: neither needs the whole encoding
//! in memory, and on two cores encoding, transfer and decoding overlap. A
//! child whose `Serialize` fails or panics after some chunks went out sends
//! [`VALUE_ABANDONED`] in place of a chunk length, then a message.
//!
//! The child writes the value *before* flushing stdout (which takes a lock
//! another thread may have held at `fork`), then the done mark, so the
//! parent has the result even if the flush hangs, and waits (a bounded time)
//! for the mark so that the child's output is not lost.
//!
//! Nothing read is trusted: chunk and message lengths are checked against the
//! caller's maximum (the sum of a value's chunks too), and buffers grow only
//! with bytes that have arrived (at most doubling), never to a claimed length
//! up front.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;

use crate::codec;
use crate::sys::{self, MappedBuffer};

/// Sent by the child after its housekeeping (stdout flush) is done.
pub(crate) const DONE_MARK: u8 = 0xD0;
/// Bytes in a chunk header.
pub(crate) const CHUNK_HEADER_LEN: usize = 4;
/// Bytes in a message header (kind, length).
const MESSAGE_HEADER_LEN: usize = 9;
/// In place of a chunk length: the value is complete.
pub(crate) const END_OF_VALUE: u32 = 0;
/// In place of a chunk length: the value is abandoned, a message follows.
pub(crate) const VALUE_ABANDONED: u32 = u32::MAX;
/// The longest chunk; longer byte strings go out in several.
pub(crate) const MAX_CHUNK: u32 = 1 << 30;

/// Payload bytes the buffer may grow by before any have arrived.
const MIN_GROWTH: usize = 64 * 1024;
/// Payloads up to this size stay inline, off the heap: after `fork` every
/// page the parent writes takes a copy-on-write fault, and a heap buffer
/// would cost one or two on every small call.
pub(crate) const INLINE_LEN: usize = 256;
/// Payloads of at least this much collect in a [`MappedBuffer`] (huge
/// pages, growth without copies); smaller ones in a `Vec`, whose `malloc`
/// is cheaper than a mapping of its own.
const MAPPED_LEN: usize = 1 << 20;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// The codec's encoding of the callable's return value, in chunks.
    Value = 0xA1,
    /// The callable panicked; UTF-8 panic message.
    Panic = 0xA2,
    /// The return value's `Serialize` failed; UTF-8 error message.
    SerializationFailed = 0xA3,
}

impl FrameKind {
    pub(crate) fn from_byte(byte: u8) -> Option<Self> {
        [Self::Value, Self::Panic, Self::SerializationFailed]
            .into_iter()
            .find(|kind| *kind as u8 == byte)
    }
}

/// What a chunk header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkHeader {
    /// This many bytes of the value follow.
    Data(usize),
    End,
    Abandoned,
}

impl ChunkHeader {
    /// Parses a header, checking the chunk against the bytes the value may
    /// still have (`announced` so far, at most `max` in all).
    pub(crate) fn parse(
        bytes: [u8; CHUNK_HEADER_LEN],
        announced: u64,
        max: u64,
    ) -> Result<Self, FrameError> {
        match u32::from_le_bytes(bytes) {
            END_OF_VALUE => Ok(Self::End),
            VALUE_ABANDONED => Ok(Self::Abandoned),
            n => {
                let claimed = announced.saturating_add(n.into());
                if claimed > max {
                    return Err(FrameError::TooLarge {
                        claimed,
                        limit: max,
                    });
                }
                if n > MAX_CHUNK {
                    return Err(FrameError::BadChunkLength(n));
                }
                Ok(Self::Data(n as usize))
            }
        }
    }
}

/// Checks a message's claimed length against the maximum.
pub(crate) fn message_len(bytes: [u8; 8], max: u64) -> Result<usize, FrameError> {
    let claimed = u64::from_le_bytes(bytes);
    match usize::try_from(claimed) {
        Ok(len) if claimed <= max => Ok(len),
        _ => Err(FrameError::TooLarge {
            claimed,
            limit: max,
        }),
    }
}

// ---------------------------------------------------------------- the child

/// Pipe buffer asked for once a value outgrows the stack frame (the
/// unprivileged maximum on Linux): fewer round trips between the child
/// writing and the parent reading.
const BIG_PIPE: usize = 1024 * 1024;
/// Bytes of encoded value collected before they go out as one chunk.
const CHUNK_BUFFER_LEN: usize = 256 * 1024;
/// Byte strings at least this long are written straight from the value
/// (the kernel copies them into the pipe), not through the chunk buffer.
const DIRECT_WRITE_LEN: usize = 32 * 1024;
/// Byte strings at least this long go into the pipe by reference: waiting
/// for the parent to read the last of them (so that the bytes may be freed)
/// costs less than copying them.
const SPLICE_LEN: usize = 4 << 20;
/// Bytes of a small value's whole frame, on the child's stack.
pub(crate) const STACK_FRAME_LEN: usize = 512;

/// A small value's whole frame, built on the stack and sent with one write:
/// in the child of a `fork`, `malloc` writes allocator pages, and each first
/// write to a page is a copy-on-write fault paid on every call.
pub(crate) struct SmallValueFrame {
    bytes: [u8; STACK_FRAME_LEN],
}

impl SmallValueFrame {
    const DATA_AT: usize = 1 + CHUNK_HEADER_LEN;

    pub(crate) fn new() -> Self {
        let mut bytes = [0; STACK_FRAME_LEN];
        bytes[0] = FrameKind::Value as u8;
        Self { bytes }
    }

    /// Room for the encoded value; follow with [`Self::finish`].
    pub(crate) fn room(&mut self) -> &mut [u8] {
        &mut self.bytes[Self::DATA_AT..STACK_FRAME_LEN - CHUNK_HEADER_LEN]
    }

    /// The frame of a value whose encoding is the first `len` bytes of
    /// [`Self::room`]: one chunk (none when empty), then the end.
    pub(crate) fn finish(&mut self, len: usize) -> &[u8] {
        let end_at = if len == 0 {
            1
        } else {
            let n = u32::try_from(len).expect("a stack frame is small");
            self.bytes[1..Self::DATA_AT].copy_from_slice(&n.to_le_bytes());
            Self::DATA_AT + len
        };
        self.bytes[end_at..end_at + CHUNK_HEADER_LEN].copy_from_slice(&END_OF_VALUE.to_le_bytes());
        &self.bytes[..end_at + CHUNK_HEADER_LEN]
    }
}

/// The child's sink for its value: the stack frame first (a small value then
/// goes out with one write, touching no heap page), spilling into a
/// [`ValueWriter`] when the frame is full. The value is serialized once,
/// whatever its size.
pub(crate) struct ValueSink<'a> {
    fd: BorrowedFd<'a>,
    small: &'a mut SmallValueFrame,
    len: usize,
    /// Handed to the writer when the value spills.
    progress: Option<&'a mut Progress>,
    writer: Option<ValueWriter<'a>>,
}

impl<'a> ValueSink<'a> {
    pub(crate) fn new(
        fd: BorrowedFd<'a>,
        small: &'a mut SmallValueFrame,
        progress: &'a mut Progress,
    ) -> Self {
        Self {
            fd,
            small,
            len: 0,
            progress: Some(progress),
            writer: None,
        }
    }

    /// Moves what the stack frame holds into a [`ValueWriter`].
    #[cold]
    fn spill(&mut self) -> Result<&mut ValueWriter<'a>, codec::Error> {
        let progress = self.progress.take().expect("spills once");
        let mut writer = ValueWriter::new(self.fd, progress)?;
        codec::Sink::put(&mut writer, &self.small.room()[..self.len])?;
        Ok(self.writer.insert(writer))
    }

    /// Sends the value: the small frame with one write, or the rest of the
    /// stream and its end.
    pub(crate) fn finish(self) -> Result<(), codec::Error> {
        if let Some(writer) = self.writer {
            return writer.finish();
        }
        let progress = self.progress.expect("not spilled");
        let frame = self.small.finish(self.len);
        match sys::write_all(self.fd, frame) {
            Ok(()) => {
                progress.sent = frame.len() as u64;
                Ok(())
            }
            Err(e) => {
                progress.write_error = Some(e);
                Err(codec::Error::Message("writing the result failed".into()))
            }
        }
    }
}

impl ValueSink<'_> {
    /// Appends to the stack frame, spilling when it is full.
    #[cold]
    fn put_small(&mut self, bytes: &[u8]) -> Result<(), codec::Error> {
        let end = self.len + bytes.len();
        if let Some(room) = self.small.room().get_mut(self.len..end) {
            room.copy_from_slice(bytes);
            self.len = end;
            return Ok(());
        }
        codec::Sink::put(self.spill()?, bytes)
    }
}

impl codec::Sink for ValueSink<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), codec::Error> {
        match &mut self.writer {
            Some(writer) => writer.put(bytes),
            None => self.put_small(bytes),
        }
    }

    #[inline]
    fn put_byte(&mut self, byte: u8) -> Result<(), codec::Error> {
        match &mut self.writer {
            Some(writer) => writer.put_byte(byte),
            None => self.put_small(&[byte]),
        }
    }
}

/// What went out of a value so far; kept outside the [`ValueWriter`] so
/// that it survives a `Serialize` that panics mid-value.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The kind byte and at least one chunk went out.
    started: bool,
    /// Bytes sent so far.
    pub(crate) sent: u64,
    /// Why a write failed, if one did.
    pub(crate) write_error: Option<io::Error>,
}

/// Sends a value as it is encoded: the encoder's sink, owned by the
/// encoder so that the per-byte path keeps its length in a register. Bytes
/// collect in a buffer of its own mapping (no `malloc` in the child) and go
/// out a chunk at a time; long byte strings go straight from the value. A
/// failed write stops the encoding ([`Progress::write_error`] says why).
pub(crate) struct ValueWriter<'a> {
    fd: BorrowedFd<'a>,
    /// The chunk being collected: its header's room, then its bytes
    /// (before the first chunk, also the frame's kind byte).
    buf: MappedBuffer,
    /// Where the current chunk's header is in `buf`.
    header_at: usize,
    progress: &'a mut Progress,
}

impl<'a> ValueWriter<'a> {
    /// Maps the chunk buffer and puts the kind byte and the first header's
    /// room in it.
    pub(crate) fn new(
        fd: BorrowedFd<'a>,
        progress: &'a mut Progress,
    ) -> Result<Self, codec::Error> {
        sys::grow_pipe(fd, BIG_PIPE);
        let mut buf = MappedBuffer::new();
        buf.try_reserve(CHUNK_BUFFER_LEN)
            .map_err(|_| codec::Error::out_of_memory(CHUNK_BUFFER_LEN))?;
        buf.extend_from_reserved(&[FrameKind::Value as u8]);
        buf.extend_from_reserved(&[0; CHUNK_HEADER_LEN]);
        Ok(Self {
            fd,
            buf,
            header_at: 1,
            progress,
        })
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.header_at - CHUNK_HEADER_LEN
    }

    /// Room left for chunk bytes (four bytes stay for the end mark).
    fn room(&self) -> usize {
        self.buf.capacity() - self.buf.len() - CHUNK_HEADER_LEN
    }

    fn set_header(&mut self, value: u32) {
        self.buf.as_mut_slice()[self.header_at..self.header_at + CHUNK_HEADER_LEN]
            .copy_from_slice(&value.to_le_bytes());
    }

    /// Sends the buffer (header room included) followed by `body`, and
    /// starts the next chunk.
    fn send(&mut self, body: &[u8]) -> Result<(), codec::Error> {
        let sent = sys::write_all_two(self.fd, self.buf.as_slice(), body);
        if let Err(e) = sent {
            self.progress.write_error = Some(e);
            return Err(codec::Error::Message("writing the result failed".into()));
        }
        self.progress.sent += (self.buf.len() + body.len()) as u64;
        self.progress.started = true;
        self.buf.clear();
        self.header_at = 0;
        self.buf.extend_from_reserved(&[0; CHUNK_HEADER_LEN]);
        Ok(())
    }

    /// Sends the bytes collected so far as a chunk.
    #[cold]
    fn flush(&mut self) -> Result<(), codec::Error> {
        let pending = self.pending();
        if pending == 0 {
            return Ok(());
        }
        self.set_header(u32::try_from(pending).expect("a chunk buffer is small"));
        self.send(&[])
    }

    /// Sends `bytes` as chunks of their own, straight from where they are:
    /// the longest by reference ([`sys::splice_until_read`]), the others
    /// copied into the pipe.
    #[cold]
    fn put_direct(&mut self, bytes: &[u8]) -> Result<(), codec::Error> {
        self.flush()?;
        for piece in bytes.chunks(MAX_CHUNK as usize) {
            self.set_header(u32::try_from(piece.len()).expect("a chunk is at most MAX_CHUNK"));
            if piece.len() >= SPLICE_LEN {
                self.send(&[])?;
                if let Err(e) = sys::splice_until_read(self.fd, piece) {
                    self.progress.write_error = Some(e);
                    return Err(codec::Error::Message("writing the result failed".into()));
                }
                self.progress.sent += piece.len() as u64;
            } else {
                self.send(piece)?;
            }
        }
        Ok(())
    }

    /// Sends what is left and the end of the value.
    pub(crate) fn finish(mut self) -> Result<(), codec::Error> {
        let pending = self.pending();
        if pending > 0 {
            self.set_header(u32::try_from(pending).expect("a chunk buffer is small"));
            self.buf.extend_from_reserved(&END_OF_VALUE.to_le_bytes());
        } else {
            self.set_header(END_OF_VALUE);
        }
        self.send(&[])
    }
}

/// The value cannot be sent after all: sends `kind`'s message instead
/// (after [`VALUE_ABANDONED`] if part of the value went out).
pub(crate) fn abandon_value(
    fd: BorrowedFd<'_>,
    progress: &Progress,
    kind: FrameKind,
    message: &str,
) -> io::Result<()> {
    if progress.started {
        sys::write_all(fd, &VALUE_ABANDONED.to_le_bytes())?;
    }
    send_message(fd, kind, message)
}

impl codec::Sink for ValueWriter<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), codec::Error> {
        if bytes.len() >= DIRECT_WRITE_LEN {
            return self.put_direct(bytes);
        }
        if self.room() < bytes.len() {
            self.flush()?;
        }
        self.buf.extend_from_reserved(bytes);
        Ok(())
    }

    #[inline]
    fn put_byte(&mut self, byte: u8) -> Result<(), codec::Error> {
        if self.room() == 0 {
            self.flush()?;
        }
        self.buf.push_reserved(byte);
        Ok(())
    }
}

/// Sends a whole message frame: a panic message or a serialization error.
pub(crate) fn send_message(fd: BorrowedFd<'_>, kind: FrameKind, message: &str) -> io::Result<()> {
    let mut header = [0; MESSAGE_HEADER_LEN];
    header[0] = kind as u8;
    header[1..].copy_from_slice(&(message.len() as u64).to_le_bytes());
    sys::write_all_two(fd, &header, message.as_bytes())
}

// --------------------------------------------------------------- the parent

/// Why the bytes from the child are not a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The first byte is not a known frame kind.
    UnknownKind(u8),
    /// A chunk claims more bytes than a chunk may have.
    BadChunkLength(u32),
    /// The frame claims more payload than the caller allows.
    TooLarge { claimed: u64, limit: u64 },
    /// Bytes arrived after the frame, in place of the done mark.
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
            Self::BadChunkLength(n) => {
                write!(f, "malformed result frame: a chunk claims {n} bytes")
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

/// A complete frame: a value's encoding (its chunks joined) or a message.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) kind: FrameKind,
    payload: Payload,
}

impl Frame {
    /// A message frame read by the streaming decoder.
    pub(crate) fn message(kind: FrameKind, text: Vec<u8>) -> Self {
        Self {
            kind,
            payload: Payload::Heap(text),
        }
    }

    pub(crate) fn payload(&self) -> &[u8] {
        self.payload.as_slice()
    }
}

/// Where payload bytes collect: inline when the frame is small, in a `Vec`
/// or a mapping of its own that grows with the bytes that arrive otherwise.
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
    const fn empty() -> Self {
        Self::Inline {
            bytes: [0; INLINE_LEN],
            len: 0,
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

    /// Moves the bytes to the kind of buffer a payload of `total` bytes
    /// (announced, not arrived) collects in; the claim only picks the
    /// kind, the buffer still grows with what arrives.
    fn prepare_for(&mut self, total: u64) -> Result<(), FrameError> {
        let upgrade = match self {
            Self::Inline { .. } => total > INLINE_LEN as u64,
            Self::Heap(_) => total >= MAPPED_LEN as u64,
            Self::Mapped(_) => false,
        };
        if !upgrade {
            return Ok(());
        }
        let old = self.as_slice();
        let out_of_memory = |_: io::Error| FrameError::OutOfMemory { bytes: old.len() };
        *self = if total >= MAPPED_LEN as u64 {
            let mut mapped = MappedBuffer::new();
            mapped
                .try_reserve(old.len().max(MIN_GROWTH))
                .map_err(out_of_memory)?;
            mapped.extend_from_reserved(old);
            Self::Mapped(mapped)
        } else {
            let mut heap = Vec::new();
            heap.try_reserve(old.len().max(INLINE_LEN * 2))
                .map_err(|_| FrameError::OutOfMemory { bytes: old.len() })?;
            heap.extend_from_slice(old);
            Self::Heap(heap)
        };
        Ok(())
    }

    /// Appends `more`; [`Self::prepare_for`] picked a buffer that takes it.
    fn extend(&mut self, more: &[u8]) -> Result<(), FrameError> {
        let bytes = more.len();
        match self {
            Self::Inline { bytes, len } => {
                bytes[*len..*len + more.len()].copy_from_slice(more);
                *len += more.len();
            }
            Self::Heap(v) => {
                v.try_reserve(bytes)
                    .map_err(|_| FrameError::OutOfMemory { bytes })?;
                v.extend_from_slice(more);
            }
            Self::Mapped(m) => {
                m.try_reserve(bytes)
                    .map_err(|_| FrameError::OutOfMemory { bytes })?;
                m.extend_from_reserved(more);
            }
        }
        Ok(())
    }
}

/// What the assembler reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Kind,
    MessageLength,
    ChunkHeader,
    /// Payload bytes of the current chunk or message.
    Data,
    /// Nothing but the done mark.
    Complete,
}

/// Builds one frame (and notices the done mark) from bytes as they arrive:
/// a value's chunks are joined into one payload for the codec.
#[derive(Debug)]
pub(crate) struct FrameAssembler {
    expect: Expect,
    kind: Option<FrameKind>,
    /// A header being collected.
    header: [u8; 8],
    header_filled: usize,
    /// Bytes of the current chunk or message still to come.
    left: usize,
    /// Payload bytes announced so far (a value's chunks add up).
    announced: u64,
    payload: Payload,
    max_payload: u64,
    /// A value was abandoned: only a message may follow.
    abandoned: bool,
    done_mark_seen: bool,
}

impl FrameAssembler {
    pub(crate) fn new(max_payload: u64) -> Self {
        Self {
            expect: Expect::Kind,
            kind: None,
            header: [0; 8],
            header_filled: 0,
            left: 0,
            announced: 0,
            payload: Payload::empty(),
            max_payload,
            abandoned: false,
            done_mark_seen: false,
        }
    }

    /// The frame has arrived whole.
    pub(crate) fn is_frame_complete(&self) -> bool {
        self.expect == Expect::Complete
    }

    /// The child has also finished its housekeeping.
    pub(crate) fn is_done(&self) -> bool {
        self.done_mark_seen
    }

    /// Collects header bytes up to `len`; `Some` once it is whole.
    fn collect_header(&mut self, bytes: &mut &[u8], len: usize) -> Option<[u8; 8]> {
        let take = (len - self.header_filled).min(bytes.len());
        self.header[self.header_filled..self.header_filled + take].copy_from_slice(&bytes[..take]);
        self.header_filled += take;
        *bytes = &bytes[take..];
        (self.header_filled == len).then(|| {
            self.header_filled = 0;
            self.header
        })
    }

    /// Consumes `bytes`, in any split.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) -> Result<(), FrameError> {
        while !bytes.is_empty() {
            match self.expect {
                Expect::Kind => {
                    let byte = bytes[0];
                    bytes = &bytes[1..];
                    let kind = FrameKind::from_byte(byte)
                        .filter(|kind| !(self.abandoned && *kind == FrameKind::Value))
                        .ok_or(FrameError::UnknownKind(byte))?;
                    self.kind = Some(kind);
                    self.expect = match kind {
                        FrameKind::Value => Expect::ChunkHeader,
                        _ => Expect::MessageLength,
                    };
                }
                Expect::MessageLength => {
                    if let Some(header) = self.collect_header(&mut bytes, 8) {
                        self.left = message_len(header, self.max_payload)?;
                        self.announced = self.left as u64;
                        self.payload = Payload::empty();
                        self.payload.prepare_for(self.announced)?;
                        self.expect = if self.left == 0 {
                            Expect::Complete
                        } else {
                            Expect::Data
                        };
                    }
                }
                Expect::ChunkHeader => {
                    if let Some(header) = self.collect_header(&mut bytes, CHUNK_HEADER_LEN) {
                        let header = [header[0], header[1], header[2], header[3]];
                        match ChunkHeader::parse(header, self.announced, self.max_payload)? {
                            ChunkHeader::End => self.expect = Expect::Complete,
                            ChunkHeader::Abandoned => {
                                self.abandoned = true;
                                self.announced = 0;
                                self.payload = Payload::empty();
                                self.expect = Expect::Kind;
                            }
                            ChunkHeader::Data(n) => {
                                self.left = n;
                                self.announced += n as u64;
                                self.payload.prepare_for(self.announced)?;
                                self.expect = Expect::Data;
                            }
                        }
                    }
                }
                Expect::Data => {
                    let take = self.left.min(bytes.len());
                    self.payload.extend(&bytes[..take])?;
                    bytes = &bytes[take..];
                    self.left -= take;
                    if self.left == 0 {
                        self.after_data();
                    }
                }
                Expect::Complete => {
                    // Whatever follows the done mark is not looked at: only the
                    // child's own descendants can write it, after it was done.
                    if !self.done_mark_seen && bytes[0] != DONE_MARK {
                        return Err(FrameError::TrailingBytes);
                    }
                    self.done_mark_seen = true;
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    fn after_data(&mut self) {
        self.expect = if self.kind == Some(FrameKind::Value) {
            Expect::ChunkHeader
        } else {
            Expect::Complete
        };
    }

    /// Room to read payload bytes into directly (no copy through a staging
    /// buffer), when at least `min` of them are still expected in the
    /// current chunk. The buffer grows by at most what it already holds (or
    /// 64 KiB), never to the claimed length in one step. Follow with
    /// [`Self::commit_direct`]. Fails instead of aborting when the memory
    /// cannot be had.
    pub(crate) fn direct_target(
        &mut self,
        min: usize,
    ) -> Result<Option<&mut [MaybeUninit<u8>]>, FrameError> {
        if self.expect != Expect::Data || self.left < min {
            return Ok(None);
        }
        let remaining = self.left;
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
        debug_assert!(n <= self.left);
        match &mut self.payload {
            Payload::Inline { .. } => return,
            Payload::Heap(payload) => {
                debug_assert!(payload.len() + n <= payload.capacity());
                // SAFETY: the caller initialized these `n` bytes, which lie within capacity.
                unsafe { payload.set_len(payload.len() + n) };
            }
            Payload::Mapped(payload) => {
                // SAFETY: as above.
                unsafe { payload.advance(n) };
            }
        }
        self.left -= n;
        if self.left == 0 {
            self.after_data();
        }
    }

    /// The complete frame, if it is.
    pub(crate) fn into_frame(self) -> Option<Frame> {
        match self.kind {
            Some(kind) if self.is_frame_complete() => Some(Frame {
                kind,
                payload: self.payload,
            }),
            _ => None,
        }
    }
}
