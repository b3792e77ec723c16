//! Keeps one call's fresh descriptors and pages out of the children that
//! other threads of the program fork for their own calls.
//!
//! A child gets a copy of every descriptor its parent has open at `fork`,
//! whichever thread opened it. If thread B forked while thread A held the
//! write end of its result pipe, B's child could write a forged frame into
//! A's call and A would return that value as `Ok`. So the steps from
//! creating a call's pipe (and report page) to closing the parent's copy of
//! the write end, with the `fork` between them, form a section that only one
//! thread of the process is in at a time: no call of this crate ever forks
//! while another call's write end is open. (The kernel serialises concurrent
//! forks of one process on its address-space lock anyway, so this costs
//! little.) Read ends stay open for the whole call and are still inherited:
//! a child that reads from one can only make that call fail.
//!
//! The lock is a pid, not a `Mutex`: a child forked inside the section
//! inherits it held, sees a pid that is not its own, and takes it over for
//! its own nested calls instead of waiting forever.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::sys;

/// The pid of the process one of whose threads is in the section (0: none).
static HOLDER: AtomicI32 = AtomicI32::new(0);

/// Being in the section; leaving it on drop.
#[derive(Debug)]
pub(crate) struct ForkSection(());

impl ForkSection {
    /// Waits until no other thread of this process (pid `me`) is in the section.
    pub(crate) fn enter(me: sys::Pid) -> Self {
        loop {
            let holder = HOLDER.load(Ordering::Acquire);
            // Free, or held by an ancestor at the moment this process was forked.
            if holder != me
                && HOLDER
                    .compare_exchange(holder, me, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                return Self(());
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for ForkSection {
    fn drop(&mut self) {
        HOLDER.store(0, Ordering::Release);
    }
}
