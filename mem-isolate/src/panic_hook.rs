//! Keeps an isolated child off the program's panic hook.
//!
//! Before `catch_unwind` sees a panic, std runs the panic hook; the default
//! one takes std's output and backtrace locks, which another thread of the
//! parent may have held at `fork`: in the child they stay locked forever,
//! and a panicking callable would hang instead of reporting its panic. The
//! message travels back in the result frame anyway, so the crate installs,
//! before its first `fork`, a hook that wraps the program's and stays silent
//! in an isolated child. In every other process it calls the hook it
//! wrapped, so the program's panics print as before.
//!
//! A hook the program installs *after* its first isolated call replaces this
//! one (std keeps one hook), and then runs in the child too.

use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

use crate::sys;

const NOT_INSTALLED: u8 = 0;
const INSTALLING: u8 = 1;
const INSTALLED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(NOT_INSTALLED);

/// The pid of the isolated child this process is, if it is one (set by the
/// child right after `fork`; a process forked from it has another pid).
static ISOLATED_CHILD: AtomicI32 = AtomicI32::new(0);

/// Parent side, before each `fork`: wraps the current hook once. Never
/// waits: a thread that finds another installing it goes on (its child may
/// then run the plain hook, as before this existed).
pub(crate) fn install() {
    if STATE.load(Ordering::Acquire) != NOT_INSTALLED || std::thread::panicking() {
        return;
    }
    if STATE
        .compare_exchange(
            NOT_INSTALLED,
            INSTALLING,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        return;
    }
    let wrapped = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !in_isolated_child() {
            wrapped(info);
        }
    }));
    STATE.store(INSTALLED, Ordering::Release);
}

/// Child side, right after `fork`.
pub(crate) fn mark_isolated_child() {
    ISOLATED_CHILD.store(sys::current_pid(), Ordering::Relaxed);
}

fn in_isolated_child() -> bool {
    ISOLATED_CHILD.load(Ordering::Relaxed) == sys::current_pid()
}
