//! The parent's side of a call: read the child's frame, bound every wait, and
//! make sure the child is reaped whatever happens.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;

use crate::capture::Capture;
use crate::codec;
use crate::frame::{Frame, FrameAssembler, FrameError, FrameKind};
use crate::reaper::{self, Delivered};
use crate::report::{ChildFailure, ReportPage};
use crate::stream::{Source, Stop, StreamInput};
use crate::sys::{self, Pid, WaitStatus};

/// How often the parent checks that the child is alive while its pipe is
/// quiet: a grandchild that inherited the write end keeps the pipe open after
/// the child died, so end-of-file alone cannot tell.
const LIVENESS_CHECK: Duration = Duration::from_millis(20);

/// How long the parent waits, once the result is in, for the child to flush
/// its stdout and say so. A child that takes longer (say, it blocks on a
/// stdout lock another thread held at `fork`) is killed.
pub(crate) const HOUSEKEEPING_GRACE: Duration = Duration::from_millis(100);

/// Staging buffer for headers and small payloads; bigger payloads are read
/// in place. Small, because after `fork` each stack page the parent writes
/// takes a copy-on-write fault.
const STAGING_LEN: usize = 512;

/// How long a child that delivered its result may take to exit before it is
/// killed (a callable can forge the done mark and keep running).
pub(crate) const DELIVERED_EXIT_GRACE: Duration = Duration::from_secs(1);

/// How a child ended, with its resource usage.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reaped {
    pub(crate) status: WaitStatus,
    pub(crate) usage: libc::rusage,
}

/// A child being waited for: forked directly ([`ChildGuard`]) or a zygote's
/// worker ([`WorkerGuard`](crate::zygote::WorkerGuard)). The wait and finish
/// steps of a call only use this.
pub(crate) trait Child {
    /// Readable once the child has ended, while it runs (`None`: watch it
    /// with [`Self::has_ended`] now and then).
    fn pidfd(&self) -> Option<BorrowedFd<'_>>;
    /// Whether it has ended, without reaping it.
    fn has_ended(&self) -> bool;
    /// Waits for it to end (and have it reaped) until `deadline` at the
    /// latest (`None`: as long as it takes). Returns whether it ended.
    fn wait_until(&mut self, deadline: Option<Instant>) -> bool;
    /// Kills it and has it reaped.
    fn kill(&mut self);
    /// How it ended, after [`Self::wait_until`] returned `true`.
    fn take_outcome(&mut self) -> io::Result<Reaped>;
    /// What the crate's own code in it recorded, after it ended.
    fn take_failure(&mut self) -> Option<ChildFailure>;
    /// For a child that delivered its result: let it be reaped off the
    /// caller's path.
    fn finish_delivered(self);
    /// How a child that delivered its result ended (it is given
    /// [`DELIVERED_EXIT_GRACE`] to exit).
    fn into_outcome(self) -> io::Result<Reaped>;
    /// Sends it `SIGKILL` without waiting (the background waiter then
    /// watches it end).
    fn signal_kill(&mut self);
    /// Kills it and has it reaped off the caller's path (a cancelled call).
    fn abandon(self);
}

/// Owns a child process until it has been reaped here or handed to the
/// reaper thread. Dropping it otherwise kills and reaps the child, so no
/// early return can leave a child behind.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    pid: Pid,
    /// Readable once the child has ended; kills without a pid-reuse window.
    /// `None` on kernels without pidfds: the child is then watched by pid.
    pidfd: Option<OwnedFd>,
    /// Where the crate's code in the child records its own failures.
    report: Option<ReportPage>,
    state: ChildState,
}

#[derive(Debug)]
enum ChildState {
    /// Not reaped yet; only this guard may wait for or kill it.
    Running,
    /// Reaped here (or found reaped by the kernel: the error).
    Reaped(io::Result<Reaped>),
    /// Given to the reaper thread.
    HandedOff,
}

impl ChildGuard {
    /// Takes charge of the child just forked as `pid`.
    pub(crate) fn new(pid: Pid, report: Option<ReportPage>) -> Self {
        Self {
            pid,
            pidfd: sys::pidfd_open(pid).ok(),
            report,
            state: ChildState::Running,
        }
    }
}

impl Child for ChildGuard {
    fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        match self.state {
            ChildState::Running => self.pidfd.as_ref().map(AsFd::as_fd),
            _ => None,
        }
    }

    /// An error counts as ended: with `SIGCHLD` ignored the kernel reaps
    /// children itself.
    fn has_ended(&self) -> bool {
        match (&self.state, &self.pidfd) {
            (ChildState::Running, Some(pidfd)) => {
                sys::wait_readable(pidfd.as_fd(), Some(Instant::now())).unwrap_or(true)
            }
            (ChildState::Running, None) => sys::has_ended(self.pid).unwrap_or(true),
            _ => true,
        }
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> bool {
        if !matches!(self.state, ChildState::Running) {
            return true;
        }
        let ended = match (deadline, &self.pidfd) {
            (None, _) => true,
            (Some(deadline), Some(pidfd)) => {
                sys::wait_readable(pidfd.as_fd(), Some(deadline)).unwrap_or(true)
            }
            (Some(deadline), None) => self.poll_until(deadline),
        };
        if !ended {
            return false;
        }
        if matches!(self.state, ChildState::Running) {
            let outcome =
                sys::wait_with_usage(self.pid).map(|(status, usage)| Reaped { status, usage });
            if let Err(e) = &outcome {
                self.after_failed_wait(e);
            }
            self.state = ChildState::Reaped(outcome);
        }
        true
    }

    fn kill(&mut self) {
        self.send_kill();
        self.wait_until(None);
    }

    fn take_outcome(&mut self) -> io::Result<Reaped> {
        match std::mem::replace(&mut self.state, ChildState::HandedOff) {
            ChildState::Reaped(outcome) => outcome,
            ChildState::Running => Err(io::Error::other("the child has not ended")),
            ChildState::HandedOff => Err(io::Error::other("the child was handed to the reaper")),
        }
    }

    fn take_failure(&mut self) -> Option<ChildFailure> {
        self.report
            .as_ref()
            .and_then(|report| report.take(self.pid))
    }

    fn finish_delivered(mut self) {
        if !matches!(self.state, ChildState::Running) {
            return;
        }
        let child = Delivered {
            pid: self.pid,
            pidfd: self.pidfd.take(),
        };
        match reaper::hand_off(child) {
            Ok(()) => self.state = ChildState::HandedOff,
            Err(child) => {
                self.pidfd = child.pidfd;
                self.reap_delivered();
            }
        }
    }

    fn into_outcome(mut self) -> io::Result<Reaped> {
        self.reap_delivered();
        self.take_outcome()
    }

    fn signal_kill(&mut self) {
        self.send_kill();
    }

    fn abandon(mut self) {
        self.send_kill();
        // Handed to the reaper (or reaped here if it cannot take it).
        self.finish_delivered();
    }
}

impl ChildGuard {
    /// Without a pidfd: poll with a short, growing sleep (portable, and
    /// rare: the pipe closed while the child still runs).
    fn poll_until(&mut self, deadline: Instant) -> bool {
        let mut nap = Duration::from_micros(100);
        loop {
            match sys::try_wait_with_usage(self.pid) {
                Ok(None) => {}
                Ok(Some((status, usage))) => {
                    self.state = ChildState::Reaped(Ok(Reaped { status, usage }));
                    return true;
                }
                Err(e) => {
                    self.state = ChildState::Reaped(Err(e));
                    return true;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// `wait` failed for another reason than "no such child": the child may
    /// still be there, so let the reaper thread wait for it rather than
    /// leave a zombie behind.
    fn after_failed_wait(&mut self, error: &io::Error) {
        if error.raw_os_error() != Some(libc::ECHILD) {
            let child = Delivered {
                pid: self.pid,
                pidfd: self.pidfd.take(),
            };
            let _ = reaper::hand_off(child);
        }
    }

    /// Sends `SIGKILL` to the child if it is still this guard's to kill
    /// (never after it was reaped: its pid could be reused).
    fn send_kill(&mut self) {
        if !matches!(self.state, ChildState::Running) {
            return;
        }
        let kill = |guard: &Self| match &guard.pidfd {
            Some(pidfd) => sys::pidfd_kill(pidfd.as_fd()),
            None => sys::kill_hard(guard.pid),
        };
        // One retry: a failed `kill` would leave the caller waiting for a
        // child that was meant to die.
        if kill(self).is_err() {
            let _ = kill(self);
        }
    }

    /// Waits for a child that delivered its result to exit, killing it if
    /// it does not within [`DELIVERED_EXIT_GRACE`], and reaps it.
    fn reap_delivered(&mut self) {
        if !self.wait_until(Some(Instant::now() + DELIVERED_EXIT_GRACE)) {
            self.kill();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How the conversation with the child ended.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // the frame's inline payload; moved once per call
pub(crate) enum Ending {
    /// A whole frame arrived. `lingering`: the child did not confirm its
    /// housekeeping within the grace period (the caller kills it).
    Frame { frame: Frame, lingering: bool },
    /// The pipe closed, or the child ended, before a whole frame arrived.
    NoFrame,
    /// The bytes that arrived are not a frame.
    Malformed(FrameError),
    /// The timeout passed before a whole frame arrived.
    TimedOut,
    /// Reading the pipe failed.
    ReadFailed(io::Error),
}

/// What the blocking wait got: a value decoded as it arrived, or how the
/// conversation ended otherwise (a message frame, a failure).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // the frame's inline payload; moved once per call
pub(crate) enum Received<T> {
    /// A whole value arrived; `result` is the decoder's verdict on it.
    /// `lingering`: as in [`Ending::Frame`].
    Value {
        result: Result<T, String>,
        lingering: bool,
    },
    Ending(Ending),
}

/// Reads the child's result from `pipe` and decodes it while it arrives,
/// watching `child` and the deadline, and meanwhile reads the call's
/// captured output as it comes (`capture`).
pub(crate) fn receive_value<T: DeserializeOwned>(
    pipe: BorrowedFd<'_>,
    child: &mut impl Child,
    deadline: Option<Instant>,
    max_result_size: u64,
    capture: Option<&mut Capture>,
) -> Received<T> {
    let source = PipeSource::new(pipe, child, deadline, capture);
    receive_from(&mut StreamInput::new(source, max_result_size))
}

/// [`receive_value`] from any source (tests and fuzzing read a slice).
pub(crate) fn receive_from<T: DeserializeOwned, S: Source>(
    input: &mut StreamInput<S>,
) -> Received<T> {
    let received = match input.kind() {
        Err(stop) => Err(stop),
        Ok(kind) => match FrameKind::from_byte(kind) {
            None => Err(Stop::Malformed(FrameError::UnknownKind(kind))),
            Some(FrameKind::Value) => match decode_value(input) {
                Err(Stop::Abandoned) => abandoned_value(input).map(Err),
                other => other.map(Ok),
            },
            Some(kind) => input.message(kind).map(Err),
        },
    };
    let lingering = input.await_done_mark();
    match (received, lingering) {
        (Ok(Ok(result)), Ok(lingering)) => Received::Value { result, lingering },
        (Ok(Err(frame)), Ok(lingering)) => Received::Ending(Ending::Frame { frame, lingering }),
        (Err(stop), _) | (_, Err(stop)) => Received::Ending(stop_ending(stop)),
    }
}

/// Decodes the value from the chunks as they arrive; the rest of a value
/// the decoder refused is read and dropped, so the child can finish.
fn decode_value<T: DeserializeOwned, S: Source>(
    input: &mut StreamInput<S>,
) -> Result<Result<T, String>, Stop> {
    // The user's `Deserialize` may panic on what the child sent: an error,
    // never an unwind out of the call.
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        let value = codec::decode_from::<T, _>(&mut *input)?;
        input.end_value()?;
        Ok::<T, codec::Error>(value)
    }));
    if let Some(stop) = input.take_stop() {
        return Err(stop);
    }
    let result = match decoded {
        Ok(Ok(value)) => return Ok(Ok(value)),
        Ok(Err(e)) => e.to_string(),
        Err(payload) => format!(
            "`Deserialize` panicked: {}",
            crate::child::panic_message(&*payload)
        ),
    };
    input.skip_value()?;
    Ok(Err(result))
}

/// The message a child sent after giving up on its value.
fn abandoned_value<S: Source>(input: &mut StreamInput<S>) -> Result<Frame, Stop> {
    let kind = input.kind()?;
    match FrameKind::from_byte(kind) {
        Some(kind @ (FrameKind::Panic | FrameKind::SerializationFailed)) => input.message(kind),
        _ => Err(Stop::Malformed(FrameError::UnknownKind(kind))),
    }
}

fn stop_ending(stop: Stop) -> Ending {
    match stop {
        Stop::Ended | Stop::Abandoned => Ending::NoFrame,
        Stop::TimedOut => Ending::TimedOut,
        Stop::ReadFailed(e) => Ending::ReadFailed(e),
        Stop::Malformed(malformed) => Ending::Malformed(malformed),
    }
}

/// The result pipe as the decoder's source: every wait is bounded by the
/// call's deadline, watches the child, and reads captured output meanwhile.
struct PipeSource<'a, C> {
    pipe: BorrowedFd<'a>,
    child: &'a mut C,
    deadline: Option<Instant>,
    capture: Option<&'a mut Capture>,
    next_liveness_check: Instant,
    /// The child is gone: a grandchild may hold the pipe (and even keep
    /// writing to it), so only the bytes that were there when it ended are
    /// read (all the child wrote), however long the caller takes to decode
    /// them.
    drain_left: Option<usize>,
}

impl<C: Child> Source for PipeSource<'_, C> {
    fn read(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize, Stop> {
        self.read_now_or_wait(buf)
    }

    fn enter_grace(&mut self) {
        self.deadline = Some(Instant::now() + HOUSEKEEPING_GRACE);
    }
}

impl<'a, C: Child> PipeSource<'a, C> {
    fn new(
        pipe: BorrowedFd<'a>,
        child: &'a mut C,
        deadline: Option<Instant>,
        capture: Option<&'a mut Capture>,
    ) -> Self {
        Self {
            pipe,
            child,
            deadline,
            capture,
            next_liveness_check: Instant::now() + LIVENESS_CHECK,
            drain_left: None,
        }
    }

    /// Reads what is there, or waits (bounded by the deadline) until
    /// something is.
    fn read_now_or_wait(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize, Stop> {
        loop {
            if let Some(left) = self.drain_left {
                let limit = buf.len().min(left);
                if limit == 0 {
                    return Err(Stop::Ended);
                }
                return match sys::read_uninit(self.pipe, &mut buf[..limit]) {
                    Ok(0) => Err(Stop::Ended),
                    Ok(n) => {
                        self.drain_left = Some(left - n);
                        Ok(n)
                    }
                    // A sibling took them.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Stop::Ended),
                    Err(e) => Err(Stop::ReadFailed(e)),
                };
            }
            let now = Instant::now();
            if self.deadline.is_some_and(|deadline| now >= deadline) {
                return Err(Stop::TimedOut);
            }
            // With a pidfd the child's end wakes the poll; without, check now and then.
            let wake = if self.child.pidfd().is_some() {
                self.deadline
            } else {
                Some(self.deadline.map_or(self.next_liveness_check, |deadline| {
                    deadline.min(self.next_liveness_check)
                }))
            };
            let [out, err] = self.capture.as_deref().map_or([None, None], Capture::fds);
            let ready =
                sys::wait_any_readable([Some(self.pipe), self.child.pidfd(), out, err], wake)
                    .map_err(Stop::ReadFailed)?;
            if let Some(capture) = self.capture.as_deref_mut() {
                capture.read_ready([ready[2], ready[3]]);
            }
            let ended = ready[1]
                || (self.child.pidfd().is_none()
                    && Instant::now() >= self.next_liveness_check
                    && self.child.has_ended());
            if ended {
                let there = sys::poller::bytes_available(self.pipe).map_err(Stop::ReadFailed)?;
                self.drain_left = Some(there);
                continue;
            }
            if Instant::now() >= self.next_liveness_check {
                self.next_liveness_check = Instant::now() + LIVENESS_CHECK;
            }
            if !ready[0] {
                continue;
            }
            match sys::read_uninit(self.pipe, buf) {
                // Nothing to read after all: a sibling child that inherited
                // the read end took the bytes `poll` saw (reads never block,
                // whatever flags a sibling set on the shared description; see
                // `sys::read_uninit`). The poll says when to read again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Stop::ReadFailed(e)),
                Ok(0) => return Err(Stop::Ended),
                Ok(n) => return Ok(n),
            }
        }
    }
}

/// Reads the child's whole frame from `pipe` (through the same
/// [`PipeSource`] as [`receive_value`]), to be decoded afterwards: the async
/// calls' fallback when the background waiter cannot take them.
pub(crate) fn receive(
    pipe: BorrowedFd<'_>,
    child: &mut impl Child,
    deadline: Option<Instant>,
    max_result_size: u64,
    capture: Option<&mut Capture>,
) -> Ending {
    let mut source = PipeSource::new(pipe, child, deadline, capture);
    let mut assembler = FrameAssembler::new(max_result_size);
    let mut staging = [MaybeUninit::<u8>::uninit(); STAGING_LEN];
    let mut in_grace = false;
    loop {
        if assembler.is_frame_complete() && !in_grace {
            source.enter_grace();
            in_grace = true;
        }
        let read = match assembler.direct_target(STAGING_LEN) {
            Err(out_of_memory) => return Ending::Malformed(out_of_memory),
            Ok(Some(target)) => {
                // Fault the pages in before the read, not inside it holding the pipe's lock.
                sys::prefault(target);
                source.read(target).map(|n| {
                    // SAFETY: the read initialized the first `n` bytes of the target.
                    unsafe { assembler.commit_direct(n) };
                    Ok(())
                })
            }
            Ok(None) => source.read(&mut staging).map(|n| {
                // SAFETY: the read initialized the first `n` bytes of `staging`.
                let bytes = unsafe {
                    &*(std::ptr::from_ref::<[MaybeUninit<u8>]>(&staging[..n]) as *const [u8])
                };
                assembler.push(bytes)
            }),
        };
        match read {
            Ok(Ok(())) if assembler.is_done() => return finish(assembler, false, Ending::NoFrame),
            Ok(Ok(())) => {}
            Ok(Err(malformed)) | Err(Stop::Malformed(malformed)) => {
                return Ending::Malformed(malformed)
            }
            Err(Stop::TimedOut) => return finish(assembler, true, Ending::TimedOut),
            Err(Stop::Ended | Stop::Abandoned) => return finish(assembler, false, Ending::NoFrame),
            Err(Stop::ReadFailed(e)) => return Ending::ReadFailed(e),
        }
    }
}

/// The frame if it is complete, `otherwise` if not.
fn finish(assembler: FrameAssembler, lingering: bool, otherwise: Ending) -> Ending {
    let lingering = lingering && !assembler.is_done();
    match assembler.into_frame() {
        Some(frame) => Ending::Frame { frame, lingering },
        None => otherwise,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{CHUNK_HEADER_LEN, DONE_MARK, END_OF_VALUE};

    /// Forks a child that writes `bytes` into a fresh pipe, then sleeps
    /// `linger` before it exits; returns the read end and the child.
    fn child_writing(bytes: &[u8], linger: Duration) -> (OwnedFd, ChildGuard) {
        let (read_end, write_end) = sys::pipe_cloexec().unwrap();
        // SAFETY: the child only writes, sleeps (a syscall) and `_exit`s.
        match unsafe { sys::fork() }.unwrap() {
            sys::ForkResult::Child => {
                let _ = sys::write_all(write_end.as_fd(), bytes);
                std::thread::sleep(linger);
                sys::exit_immediately(0)
            }
            sys::ForkResult::Parent { child } => {
                drop(write_end);
                (read_end, ChildGuard::new(child, None))
            }
        }
    }

    fn chunked_value(payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![FrameKind::Value as u8];
        for piece in payload.chunks(300_000) {
            bytes.extend_from_slice(&u32::try_from(piece.len()).unwrap().to_le_bytes());
            bytes.extend_from_slice(piece);
        }
        bytes.extend_from_slice(&[0; CHUNK_HEADER_LEN]);
        assert_eq!(END_OF_VALUE, 0);
        bytes
    }

    /// The async calls' fallback (when the waiter thread cannot start)
    /// joins a streamed value from a real child, and reports a frame
    /// without its done mark as lingering once the grace period passes.
    #[test]
    fn the_fallback_wait_joins_a_streamed_value() {
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| i.to_le_bytes()[1]).collect();
        let mut frame = chunked_value(&payload);
        frame.push(DONE_MARK);
        let (pipe, mut child) = child_writing(&frame, Duration::ZERO);
        let deadline = Some(Instant::now() + Duration::from_secs(30));
        match receive(pipe.as_fd(), &mut child, deadline, u64::MAX, None) {
            Ending::Frame {
                frame,
                lingering: false,
            } => assert!(frame.payload() == payload),
            other => panic!("{other:?}"),
        }
        // No done mark, and the child stays: lingering.
        let frame = chunked_value(b"abc");
        let (pipe, mut child) = child_writing(&frame, Duration::from_secs(30));
        match receive(pipe.as_fd(), &mut child, deadline, u64::MAX, None) {
            Ending::Frame {
                frame,
                lingering: true,
            } => assert_eq!(frame.payload(), b"abc"),
            other => panic!("{other:?}"),
        }
        // Half a value, then the child waits past the deadline.
        let (pipe, mut child) = child_writing(&frame[..6], Duration::from_secs(30));
        let short = Some(Instant::now() + Duration::from_millis(200));
        assert!(matches!(
            receive(pipe.as_fd(), &mut child, short, u64::MAX, None),
            Ending::TimedOut
        ));
    }
}
