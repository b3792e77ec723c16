//! Reaping children off the caller's path.
//!
//! Once a child has sent its result and its "done" mark, all that is left is
//! its exit, and about half of fork-plus-wait is the kernel tearing down the
//! child's address space. Instead of blocking the caller on that, a child
//! that has delivered hands *itself* to one background thread
//! ("mem-isolate-reaper", started before the first `fork`): it writes its pid
//! into the reaper's pipe just before its done mark, and the thread
//! `waitpid`s each pid it reads. The caller returns as soon as the mark is
//! in, without a single extra step of its own; the child is reaped a moment
//! later, with nobody's help, and no zombie accumulates.
//!
//! Who reaps is settled once per call on the shared report page
//! ([`ReportPage::claim_for_reaper`](crate::report::ReportPage::claim_for_reaper)
//! in the child, [`ReportPage::claim_for_parent`](crate::report::ReportPage::claim_for_parent)
//! in the parent): whichever side claims first owns the child, so a child is
//! never waited for twice and never killed after the reaper may have reaped
//! it. Calls that need the exit status or the usage (timeouts, errors,
//! [`execute_with_usage`](crate::Isolate::execute_with_usage)) claim it for
//! the parent and reap before they return.
//!
//! The thread waits for specific pids only (never `waitpid(-1)`), so it
//! cannot steal the exit status of a child the program started itself. It
//! spends its life blocked in `read` or `waitpid` and never allocates or
//! takes a lock, so a `fork` from another thread never finds it holding
//! anything the child could need. A process forked by an isolated call
//! (nested isolation) inherits the pipe but not the thread, so its own calls
//! reap synchronously.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use crate::sys::{self, Pid};

struct Reaper {
    /// The process whose thread this is.
    owner: Pid,
    /// Where children write their pid.
    pids: OwnedFd,
}

static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();

fn start(owner: Pid) -> Option<Reaper> {
    let (incoming, pids) = sys::pipe_cloexec().ok()?;
    std::thread::Builder::new()
        .name("mem-isolate-reaper".into())
        .spawn(move || reap_forever(&incoming))
        .ok()?;
    Some(Reaper { owner, pids })
}

/// How long the reaper lets hand-overs accumulate between batches.
const BATCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

fn reap_forever(incoming: &OwnedFd) {
    let mut buf = [0u8; 4 * 64];
    let mut filled = 0;
    loop {
        match sys::read(incoming.as_fd(), &mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        let whole = filled - filled % 4;
        for chunk in buf[..whole].chunks_exact(4) {
            let pid = Pid::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            // Every child inherits this pipe, so a callable could write to it:
            // never turn its bytes into `waitpid(0)` or `waitpid(-1)`, which
            // would reap any child of the process, the program's own included.
            if pid > 0 {
                // ECHILD (SIGCHLD ignored, or someone else reaped it) is fine.
                let _ = sys::wait_with_usage(pid);
            }
        }
        buf.copy_within(whole..filled, 0);
        filled -= whole;
        // Let hand-overs pile up for a moment: a write to a pipe nobody is
        // waiting on wakes nobody, so under load the thread wakes once per
        // batch rather than once per call.
        std::thread::sleep(BATCH_PAUSE);
    }
}

/// The pipe a child of `current_pid` can hand itself to, starting the reaper
/// on first use; `None` in a process that cannot have one (the thread could
/// not start, or this process is itself an isolated child).
pub(crate) fn pipe_for(current_pid: Pid) -> Option<BorrowedFd<'static>> {
    match REAPER.get_or_init(|| start(current_pid)) {
        Some(reaper) if reaper.owner == current_pid => Some(reaper.pids.as_fd()),
        _ => None,
    }
}

/// Child side: tells the reaper to wait for this process. Four bytes are
/// below `PIPE_BUF`, so concurrent children never interleave.
pub(crate) fn hand_over(pipe: BorrowedFd<'_>, pid: Pid) -> std::io::Result<()> {
    sys::write_all(pipe, &pid.to_ne_bytes())
}
