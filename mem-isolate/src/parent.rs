//! The parent's side of a call: read the child's frame, bound every wait, and
//! make sure the child is reaped whatever happens.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::frame::{Frame, FrameAssembler, FrameError};
use crate::report::ReportPage;
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

/// Owns a child process until it has been reaped, or until it has handed
/// itself to the reaper thread. Dropping it otherwise kills and reaps the
/// child, so no early return can leave a child behind.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    pid: Pid,
    /// Where the child may have handed itself to the reaper.
    report: Option<ReportPage>,
    state: ChildState,
}

#[derive(Debug)]
enum ChildState {
    /// Not reaped, and nobody has claimed it yet.
    Running,
    /// Claimed for this caller: it must be reaped here.
    Owned,
    /// Reaped here (or found reaped by the kernel: the error).
    Reaped(io::Result<Reaped>),
    /// The child handed itself to the reaper thread; hands off.
    WithReaper,
}

impl ChildGuard {
    pub(crate) fn new(pid: Pid, report: Option<ReportPage>) -> Self {
        Self {
            pid,
            report,
            state: ChildState::Running,
        }
    }

    /// Settles who reaps the child; `true` if it is this caller (now or
    /// earlier), `false` once it is reaped or with the reaper.
    fn owned_here(&mut self) -> bool {
        if let ChildState::Running = self.state {
            let child_handed_over = self.report.is_some_and(|r| !r.claim_for_parent());
            self.state = if child_handed_over {
                ChildState::WithReaper
            } else {
                ChildState::Owned
            };
        }
        matches!(self.state, ChildState::Owned)
    }

    /// Whether the child has ended, without reaping it (so that who reaps it
    /// can still be settled). An error counts as ended: with `SIGCHLD`
    /// ignored the kernel reaps children itself.
    fn has_ended(&self) -> bool {
        match self.state {
            ChildState::Running | ChildState::Owned => sys::has_ended(self.pid).unwrap_or(true),
            ChildState::Reaped(_) | ChildState::WithReaper => true,
        }
    }

    /// Waits for the child to end and reaps it, until `deadline` at the
    /// latest (`None`: as long as it takes). Returns whether it ended.
    pub(crate) fn wait_until(&mut self, deadline: Option<Instant>) -> bool {
        if !self.owned_here() {
            return true;
        }
        let Some(deadline) = deadline else {
            let outcome =
                sys::wait_with_usage(self.pid).map(|(status, usage)| Reaped { status, usage });
            if let Err(e) = &outcome {
                self.after_failed_wait(e);
            }
            self.state = ChildState::Reaped(outcome);
            return true;
        };
        // Portable and rare (the pipe closed while the child still runs):
        // poll with a short, growing sleep.
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
    fn after_failed_wait(&self, error: &io::Error) {
        if error.raw_os_error() != Some(libc::ECHILD) {
            let current = sys::current_pid();
            if let Some(pipe) = crate::reaper::pipe_for(current) {
                let _ = crate::reaper::hand_over(pipe, self.pid);
            }
        }
    }

    /// Sends `SIGKILL` to a child this caller owns and reaps it.
    pub(crate) fn kill(&mut self) {
        self.send_kill();
        self.wait_until(None);
    }

    /// Sends `SIGKILL` to a child this caller owns (never to one the
    /// reaper may already have reaped: its pid could be reused).
    pub(crate) fn send_kill(&mut self) {
        // One retry: a failed `kill` would leave the caller waiting for a
        // child that was meant to die.
        if self.owned_here() && sys::kill_hard(self.pid).is_err() {
            let _ = sys::kill_hard(self.pid);
        }
    }

    /// For a child that delivered its result: it has handed itself to the
    /// reaper, or, if it could not, it is reaped here.
    pub(crate) fn finish_delivered(mut self) {
        self.wait_until(None);
    }

    /// How the child ended; waits for it if it has not yet.
    pub(crate) fn into_outcome(mut self) -> io::Result<Reaped> {
        self.wait_until(None);
        match std::mem::replace(&mut self.state, ChildState::WithReaper) {
            ChildState::Reaped(outcome) => outcome,
            _ => Err(io::Error::other("the child was handed to the reaper")),
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
                if child.has_ended() {
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
