//! The wait step of a call, in its two variations.
//!
//! A call is **start** (fork the caller or ask the zygote:
//! [`Isolate::start_direct`](crate::isolate::Isolate::start_direct),
//! [`Isolate::start_through_zygote`](crate::isolate::Isolate::start_through_zygote)),
//! **wait** for the child's frame and end, and **finish** (decode, reap or
//! hand off, map the outcome to an error:
//! [`Isolate::finish`](crate::isolate::Isolate::finish)). Sync and async
//! calls differ only in the wait:
//!
//! - blocking, on the caller's thread: [`crate::parent::receive`];
//! - in the background: [`background`], one thread of the crate that
//!   watches every async call in flight and wakes its future once the
//!   call's ending is known and the child is settled, so that finishing
//!   does not block the executor.
//!
//! Both feed the bytes readable now into a [`FrameAssembler`](crate::frame::FrameAssembler),
//! watch the child through its guard ([`Child`]) and follow the same rules
//! about what a child may do to the descriptors it shares with the parent.

pub(crate) mod background;

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Instant;

use crate::parent::{Child, ChildGuard, Reaped};
use crate::report::ChildFailure;

/// The child of a call, started either way: the wait and finish steps take
/// it as a [`Child`], and the background waiter needs one concrete type.
#[derive(Debug)]
pub(crate) enum AnyChild {
    /// Forked from the caller.
    Direct(ChildGuard),
    /// A zygote's worker.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Worker(crate::zygote::WorkerGuard),
}

impl From<ChildGuard> for AnyChild {
    fn from(child: ChildGuard) -> Self {
        Self::Direct(child)
    }
}

/// `$child.$method($args)` on whichever guard it is.
macro_rules! either {
    ($self:expr, $child:ident => $call:expr) => {
        match $self {
            AnyChild::Direct($child) => $call,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            AnyChild::Worker($child) => $call,
        }
    };
}

impl Child for AnyChild {
    fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        either!(self, c => c.pidfd())
    }
    fn has_ended(&self) -> bool {
        either!(self, c => c.has_ended())
    }
    fn wait_until(&mut self, deadline: Option<Instant>) -> bool {
        either!(self, c => c.wait_until(deadline))
    }
    fn kill(&mut self) {
        either!(self, c => c.kill());
    }
    fn take_outcome(&mut self) -> io::Result<Reaped> {
        either!(self, c => c.take_outcome())
    }
    fn take_failure(&mut self) -> Option<ChildFailure> {
        either!(self, c => c.take_failure())
    }
    fn finish_delivered(self) {
        either!(self, c => c.finish_delivered());
    }
    fn into_outcome(self) -> io::Result<Reaped> {
        either!(self, c => c.into_outcome())
    }
    fn signal_kill(&mut self) {
        either!(self, c => c.signal_kill());
    }
    fn abandon(self) {
        either!(self, c => c.abandon());
    }
}
