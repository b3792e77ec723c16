//! Capturing a call's stdout and stderr
//! ([`Isolate::capture_output`](crate::Isolate::capture_output)).
//!
//! Each call that asks gets two pipes, made with its result pipe inside the
//! fork section. The child points its descriptors 1 and 2 at their write
//! ends; the parent reads both in the same `poll` as the result pipe (see
//! [`crate::parent::receive`]), so a child that writes more than a pipe
//! holds never blocks for long and never deadlocks the call. At most
//! `max_bytes` per stream are kept; the rest is read and thrown away, and
//! the stream is marked truncated. Once the call is over (result in, or the
//! child gone) the parent takes what is readable at that moment, for at
//! most [`HOUSEKEEPING_GRACE`], and stops: a grandchild that inherited the
//! write ends cannot hold the call open. The read ends are non-blocking, and
//! each read is non-blocking by itself too ([`sys::read_uninit`]): a sibling
//! child that inherited a read end, cleared `O_NONBLOCK` on the description
//! it shares with the parent and took the bytes first cannot make the parent
//! block either.

use std::io;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd, RawFd};
use std::time::Instant;

use crate::call_report::CapturedOutput;
use crate::parent::HOUSEKEEPING_GRACE;
use crate::sys;

/// Bytes read from a capture pipe at a time.
const CHUNK: usize = 64 * 1024;

/// The parent's side of one call's capture: the two read ends and what
/// came through them.
#[derive(Debug)]
pub(crate) struct Capture {
    streams: [Stream; 2],
    /// Where bytes are read into, allocated on the first read.
    scratch: Vec<u8>,
}

#[derive(Debug)]
struct Stream {
    /// Kept open until the capture is dropped, so a waiter can still name
    /// it to take it out of its readiness set after its end.
    read_end: Option<OwnedFd>,
    /// End-of-file was read (or reading failed): nothing more to read.
    ended: bool,
    kept: Vec<u8>,
    max: usize,
    truncated: bool,
}

/// The child's side: the write ends, to become its stdout and stderr, and
/// the numbers of the parent's read ends (which a directly forked child
/// inherits and closes).
#[derive(Debug)]
pub(crate) struct ChildCapture {
    pub(crate) write_ends: [OwnedFd; 2],
    pub(crate) parent_read_ends: [RawFd; 2],
}

/// Two close-on-exec pipes for one call; `max_bytes` per stream are kept.
pub(crate) fn pipes(max_bytes: u64) -> io::Result<(Capture, ChildCapture)> {
    let (out_read, out_write) = sys::pipe_cloexec()?;
    let (err_read, err_write) = sys::pipe_cloexec()?;
    sys::set_nonblocking(out_read.as_fd())?;
    sys::set_nonblocking(err_read.as_fd())?;
    let max = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let child = ChildCapture {
        write_ends: [out_write, err_write],
        parent_read_ends: [out_read.as_raw_fd(), err_read.as_raw_fd()],
    };
    let stream = |read_end| Stream {
        read_end: Some(read_end),
        ended: false,
        kept: Vec::new(),
        max,
        truncated: false,
    };
    Ok((
        Capture {
            streams: [stream(out_read), stream(err_read)],
            scratch: Vec::new(),
        },
        child,
    ))
}

impl Capture {
    /// The read ends of the streams not at their end yet, for the parent's `poll`.
    pub(crate) fn fds(&self) -> [Option<BorrowedFd<'_>>; 2] {
        [0, 1].map(|i| {
            let stream = &self.streams[i];
            stream
                .read_end
                .as_ref()
                .filter(|_| !stream.ended)
                .map(AsFd::as_fd)
        })
    }

    /// Both read ends, ended or not (for taking them out of a readiness set).
    pub(crate) fn all_fds(&self) -> [Option<BorrowedFd<'_>>; 2] {
        [0, 1].map(|i| self.streams[i].read_end.as_ref().map(AsFd::as_fd))
    }

    /// One read from each stream `poll` found ready.
    pub(crate) fn read_ready(&mut self, ready: [bool; 2]) {
        for (i, ready) in ready.into_iter().enumerate() {
            if ready {
                self.read_once(i);
            }
        }
    }

    /// Takes what is readable now from both streams, for at most
    /// [`HOUSEKEEPING_GRACE`], without waiting for more.
    pub(crate) fn drain_now(&mut self) {
        let stop = Instant::now() + HOUSEKEEPING_GRACE;
        while Instant::now() < stop {
            let [out, err] = self.fds();
            if out.is_none() && err.is_none() {
                return;
            }
            match sys::wait_any_readable([out, err], Some(Instant::now())) {
                Ok([false, false]) | Err(_) => return,
                Ok(ready) => {
                    let before = self.progress();
                    self.read_ready(ready);
                    if self.progress() == before {
                        // Readable but nothing came (a sibling took it).
                        return;
                    }
                }
            }
        }
    }

    /// The captured text; the read ends close.
    pub(crate) fn into_output(self) -> CapturedOutput {
        let [stdout, stderr] = self.streams;
        CapturedOutput {
            stdout: stdout.kept,
            stderr: stderr.kept,
            stdout_truncated: stdout.truncated,
            stderr_truncated: stderr.truncated,
        }
    }

    /// Something that changes with every read that got bytes or an end.
    fn progress(&self) -> (usize, usize, bool, bool, bool, bool) {
        let [a, b] = &self.streams;
        (
            a.kept.len(),
            b.kept.len(),
            a.truncated,
            b.truncated,
            a.ended,
            b.ended,
        )
    }

    fn read_once(&mut self, index: usize) {
        if self.scratch.len() < CHUNK && self.scratch.try_reserve_exact(CHUNK).is_ok() {
            self.scratch.resize(CHUNK, 0);
        }
        let stream = &mut self.streams[index];
        let Some(read_end) = stream.read_end.as_ref().filter(|_| !stream.ended) else {
            return;
        };
        let n = match sys::read(read_end.as_fd(), &mut self.scratch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        if n == 0 {
            // End of file (every writer closed), or the read failed: stop.
            stream.ended = true;
            return;
        }
        let room = stream.max.saturating_sub(stream.kept.len());
        let keep = n.min(room);
        if keep > 0 && stream.kept.try_reserve(keep).is_ok() {
            stream.kept.extend_from_slice(&self.scratch[..keep]);
        } else if keep > 0 {
            stream.truncated = true;
        }
        if n > keep {
            stream.truncated = true;
        }
    }
}

impl ChildCapture {
    /// Child side, right after `fork`: descriptors 1 and 2 become the
    /// capture pipes. `result` is the result pipe's write end, moved above
    /// the standard descriptors first if it is one of them (a parent that
    /// closed its stdout gets its lowest free numbers for new pipes).
    /// Best effort: a redirection that fails leaves that descriptor as it
    /// was (its output is then not captured).
    pub(crate) fn install(self, result: OwnedFd, close_parent_ends: bool) -> OwnedFd {
        if close_parent_ends {
            for fd in self.parent_read_ends {
                sys::close_inherited(fd);
            }
        }
        let above = |fd: OwnedFd| -> OwnedFd {
            if fd.as_raw_fd() > 2 {
                return fd;
            }
            sys::dup_above_stdio(fd.as_fd()).unwrap_or(fd)
        };
        let result = above(result);
        let [out, err] = self.write_ends.map(above);
        let _ = sys::redirect(out.as_fd(), libc::STDOUT_FILENO);
        let _ = sys::redirect(err.as_fd(), libc::STDERR_FILENO);
        for fd in [out, err] {
            if fd.as_raw_fd() > 2 {
                drop(fd);
            } else {
                // It could not be moved and is now a standard descriptor.
                std::mem::forget(fd);
            }
        }
        result
    }
}
