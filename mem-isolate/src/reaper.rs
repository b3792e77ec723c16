//! Reaping children off the caller's path.
//!
//! Once a child has sent its result and its "done" mark, all that is left is
//! its exit, and about half of fork-plus-wait is the kernel tearing down the
//! child's address space. Instead of blocking the caller on that, the call
//! hands the pid to one background thread ("mem-isolate-reaper", started on
//! first use) that `waitpid`s each pid in turn. The caller returns as soon
//! as the result is in; the child is reaped a moment later, with nobody's
//! help, and no zombie accumulates.
//!
//! The thread waits for specific pids only (never `waitpid(-1)`), so it
//! cannot steal the exit status of a child the program started itself. It
//! spends its life blocked in `recv` or `waitpid` and allocates only the
//! channel's message blocks, so a `fork` from another thread finds it holding
//! no lock the child needs beyond the allocator's, which the C library's fork
//! handlers already make consistent.
//!
//! Calls that need the exit status or the usage (timeouts, errors,
//! [`execute_with_usage`](crate::Isolate::execute_with_usage)) still reap
//! before they return. A process forked by an isolated call (nested
//! isolation) does not inherit the thread, only the handle, so it reaps its
//! own children synchronously.

use std::sync::mpsc::{self, Sender};
use std::sync::OnceLock;

use crate::sys::{self, Pid};

struct Reaper {
    /// The process whose thread this is.
    owner: Pid,
    pids: Sender<Pid>,
}

static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();

fn start(owner: Pid) -> Option<Reaper> {
    let (pids, incoming) = mpsc::channel::<Pid>();
    std::thread::Builder::new()
        .name("mem-isolate-reaper".into())
        .spawn(move || {
            for pid in incoming {
                // ECHILD (SIGCHLD ignored, or someone else reaped it) is fine.
                let _ = sys::wait(pid);
            }
        })
        .ok()?;
    Some(Reaper { owner, pids })
}

/// Hands `pid`, a child that has ended or is about to, to the reaper.
/// Returns `false` if the caller must reap it itself (no reaper thread in
/// this process, or it could not be started).
pub(crate) fn reap_later(pid: Pid, current_pid: Pid) -> bool {
    match REAPER.get_or_init(|| start(current_pid)) {
        Some(reaper) if reaper.owner == current_pid && std::env::var_os("ZZ_SYNC").is_none() => {
            reaper.pids.send(pid).is_ok()
        }
        _ => false,
    }
}
