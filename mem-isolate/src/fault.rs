//! A test-only seam over the syscall wrappers in [`crate::sys`]: make the
//! next calls of one kind fail with a chosen `errno`, for faults the real OS
//! cannot be made to produce on demand (`EAGAIN` from `fork`, `EBADF` from
//! `poll`, an `EINTR` storm on `wait4`, ...). Compiled in only with the
//! hidden `fault-injection` feature; without it every check is an inline
//! `Ok(())`.
//!
//! The plan lives in a thread-local, so it affects only the arming thread,
//! and the child of a `fork` inherits it (that is how a child's `write` is
//! made to fail). Not a mock: everything else is the real OS.

use std::io;

/// Which wrapper a fault is injected into.
// Public through `__private::fault` with the `fault-injection` feature.
#[allow(unreachable_pub)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `pipe2` / `pipe`.
    Pipe,
    /// `fork`.
    Fork,
    /// `poll` on the result pipe.
    Poll,
    /// `read` from the result pipe.
    Read,
    /// `write` / `vmsplice` to the result pipe (in the child).
    Write,
    /// `waitpid` / `wait4` / `waitid`.
    Wait,
    /// `kill` / `pidfd_send_signal`.
    Kill,
    /// `pidfd_open` (the call then watches the child by pid, as on kernels
    /// without pidfds).
    Pidfd,
}

#[cfg(feature = "fault-injection")]
mod plan {
    use std::cell::Cell;

    use super::Call;

    #[derive(Clone, Copy)]
    pub(super) struct Plan {
        pub(super) call: Call,
        pub(super) errno: i32,
        pub(super) remaining: u32,
    }

    thread_local! {
        pub(super) static PLAN: Cell<Option<Plan>> = const { Cell::new(None) };
    }
}

/// Makes the next `times` calls of kind `call` on this thread (and in
/// children forked from it) fail with `errno`.
#[cfg(feature = "fault-injection")]
pub fn fail_next(call: Call, errno: i32, times: u32) {
    plan::PLAN.with(|p| {
        p.set(Some(plan::Plan {
            call,
            errno,
            remaining: times,
        }));
    });
}

/// Disarms any injected fault on this thread; returns how many injections
/// were left unused.
#[cfg(feature = "fault-injection")]
#[allow(clippy::must_use_candidate)] // callers usually only disarm
pub fn clear() -> u32 {
    plan::PLAN.with(|p| p.take().map_or(0, |plan| plan.remaining))
}

/// Called by every wrapper before its syscall.
#[cfg(feature = "fault-injection")]
#[inline]
pub(crate) fn check(call: Call) -> io::Result<()> {
    plan::PLAN
        .try_with(|p| match p.get() {
            Some(mut plan) if plan.call == call && plan.remaining > 0 => {
                plan.remaining -= 1;
                p.set(Some(plan));
                Err(io::Error::from_raw_os_error(plan.errno))
            }
            _ => Ok(()),
        })
        .unwrap_or(Ok(()))
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn check(_call: Call) -> io::Result<()> {
    Ok(())
}
