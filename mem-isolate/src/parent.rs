//! The parent's side of a call: read the child's frame, bound every wait, and
//! make sure the child is reaped whatever happens.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::frame::{Frame, FrameAssembler, FrameError};
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

/// How a child ended, with its resource usage.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reaped {
    pub(crate) status: WaitStatus,
    pub(crate) usage: libc::rusage,
}

/// Owns a child process until it has been reaped. Dropping it unreaped kills
/// and reaps the child, so no early return can leave a child behind.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    pid: Pid,
    outcome: Option<io::Result<Reaped>>,
    /// The reaper thread owns the child now.
    handed_off: bool,
}

impl ChildGuard {
    pub(crate) fn new(pid: Pid) -> Self {
        Self {
            pid,
            outcome: None,
            handed_off: false,
        }
    }

    fn is_settled(&self) -> bool {
        self.outcome.is_some() || self.handed_off
    }

    /// Reaps the child if it has ended, without blocking. An error (such as
    /// `ECHILD` when the kernel reaped it because `SIGCHLD` is ignored) also
    /// settles the child: there is nothing left to wait for.
    fn poll_ended(&mut self) -> bool {
        if !self.is_settled() {
            match sys::try_wait_with_usage(self.pid) {
                Ok(None) => {}
                Ok(Some((status, usage))) => self.outcome = Some(Ok(Reaped { status, usage })),
                Err(e) => self.outcome = Some(Err(e)),
            }
        }
        self.is_settled()
    }

    /// Waits for the child to end, until `deadline` at the latest (`None`:
    /// as long as it takes). Returns whether it ended.
    pub(crate) fn wait_until(&mut self, deadline: Option<Instant>) -> bool {
        if self.is_settled() {
            return true;
        }
        let Some(deadline) = deadline else {
            self.outcome = Some(
                sys::wait_with_usage(self.pid).map(|(status, usage)| Reaped { status, usage }),
            );
            return true;
        };
        // Portable and rare (the pipe closed while the child still runs):
        // poll with a short, growing sleep.
        let mut nap = Duration::from_micros(100);
        while !self.poll_ended() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(Duration::from_millis(10));
        }
        true
    }

    /// Sends `SIGKILL` (unless the child is already reaped) and reaps it.
    pub(crate) fn kill(&mut self) {
        self.send_kill();
        self.wait_until(None);
    }

    /// Sends `SIGKILL` unless the child is already reaped.
    pub(crate) fn send_kill(&self) {
        if !self.is_settled() {
            let _ = sys::kill_hard(self.pid);
        }
    }

    /// For a child that has ended or is about to: let the reaper thread reap
    /// it, or reap it now if there is none.
    pub(crate) fn reap_in_background(mut self, current_pid: Pid) {
        if !self.is_settled() {
            self.handed_off = crate::reaper::reap_later(self.pid, current_pid);
            self.wait_until(None);
        }
    }

    /// How the child ended; waits for it if it has not yet.
    pub(crate) fn into_outcome(mut self) -> io::Result<Reaped> {
        self.wait_until(None);
        self.outcome
            .take()
            .unwrap_or_else(|| Err(io::ErrorKind::Other.into()))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How the conversation with the child ended.
#[derive(Debug)]
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

/// Reads the child's frame from `pipe`, watching `child` and the deadline.
pub(crate) fn receive(
    pipe: BorrowedFd<'_>,
    child: &mut ChildGuard,
    deadline: Option<Instant>,
    max_result_size: u64,
) -> Ending {
    let mut assembler = FrameAssembler::new(max_result_size);
    let mut staging = [MaybeUninit::<u8>::uninit(); STAGING_LEN];
    let mut grace_deadline = None;
    loop {
        let limit = if assembler.is_frame_complete() {
            grace_deadline
        } else {
            deadline
        };
        let now = Instant::now();
        if limit.is_some_and(|limit| now >= limit) {
            return finish(assembler, true, Ending::TimedOut);
        }
        let wake = limit.map_or(now + LIVENESS_CHECK, |limit| {
            limit.min(now + LIVENESS_CHECK)
        });
        match sys::wait_readable(pipe, Some(wake)) {
            Err(e) => return Ending::ReadFailed(e),
            Ok(false) => {
                if child.poll_ended() {
                    // The child is gone, a grandchild may hold the pipe: take
                    // what is already there and stop.
                    return drain(pipe, assembler, &mut staging);
                }
                continue;
            }
            Ok(true) => {}
        }
        match read_into(pipe, &mut assembler, &mut staging) {
            Err(e) => return Ending::ReadFailed(e),
            Ok(Err(malformed)) => return Ending::Malformed(malformed),
            Ok(Ok(0)) => return finish(assembler, false, Ending::NoFrame),
            Ok(Ok(_)) => {}
        }
        if assembler.is_done() {
            return finish(assembler, false, Ending::NoFrame);
        }
        if assembler.is_frame_complete() && grace_deadline.is_none() {
            grace_deadline = Some(Instant::now() + HOUSEKEEPING_GRACE);
        }
    }
}

/// Reads what is in the pipe right now, without waiting for more.
fn drain(
    pipe: BorrowedFd<'_>,
    mut assembler: FrameAssembler,
    staging: &mut [MaybeUninit<u8>],
) -> Ending {
    while !assembler.is_done() {
        match sys::wait_readable(pipe, Some(Instant::now())) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Ending::ReadFailed(e),
        }
        match read_into(pipe, &mut assembler, staging) {
            Err(e) => return Ending::ReadFailed(e),
            Ok(Err(malformed)) => return Ending::Malformed(malformed),
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
        }
    }
    finish(assembler, false, Ending::NoFrame)
}

/// The frame if it is complete, `otherwise` if not.
fn finish(assembler: FrameAssembler, lingering: bool, otherwise: Ending) -> Ending {
    let lingering = lingering && !assembler.is_done();
    match assembler.into_frame() {
        Some(frame) => Ending::Frame { frame, lingering },
        None => otherwise,
    }
}

/// One `read`: payload bytes straight into the frame's buffer when many are
/// expected, everything else through `staging`. `Ok(Ok(0))` is end-of-file.
fn read_into(
    pipe: BorrowedFd<'_>,
    assembler: &mut FrameAssembler,
    staging: &mut [MaybeUninit<u8>],
) -> io::Result<Result<usize, FrameError>> {
    if let Some(target) = assembler.direct_target(staging.len()) {
        let n = sys::read_uninit(pipe, target)?;
        // SAFETY: `read` initialized the first `n` bytes of the target.
        unsafe { assembler.commit_direct(n) };
        return Ok(Ok(n));
    }
    let n = sys::read_uninit(pipe, staging)?;
    // SAFETY: `read` initialized the first `n` bytes of `staging`.
    let bytes =
        unsafe { &*(std::ptr::from_ref::<[MaybeUninit<u8>]>(&staging[..n]) as *const [u8]) };
    Ok(assembler.push(bytes).map(|()| n))
}
