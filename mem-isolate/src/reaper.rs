//! Reaping delivered children off the caller's path.
//!
//! Once a child has sent its result and its "done" mark, all that is left is
//! its exit, and about half of fork-plus-wait is the kernel tearing down the
//! child's address space. Instead of blocking the caller on that, the caller
//! hands the child to one background thread ("mem-isolate-reaper") and
//! returns.
//!
//! Only the parent hands children over, through memory the children never
//! share: a queue inside this process, reached through a pointer that names
//! the process it belongs to. Nothing a child writes reaches the thread, so
//! a callable cannot make it wait for, reap or block on anything but the
//! crate's own delivered children, nor stop it. The thread never blocks on
//! one child: it polls them with `WNOHANG` (one pass per millisecond while
//! any is pending, so hand-overs are batched), and kills one that has not
//! exited a second after its hand-over (a callable can forge the done mark
//! and keep running). While calls keep coming it also looks for new ones
//! every few milliseconds by itself, so a caller wakes it (a futex wake and
//! a context switch on the caller's path) only after half a second of quiet.
//!
//! Forking is safe around it: a child forked by another thread finds the
//! queue of its parent (maybe locked forever) and never touches it, because
//! the queue names another process; the child starts a reaper of its own
//! if it makes calls of its own (nested isolation), and reaps synchronously
//! whenever the thread cannot be started (that is tried again on later calls).

use std::os::fd::{AsFd as _, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::sys::{self, Pid};

/// A delivered child, waiting to be reaped.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub(crate) pid: Pid,
    /// Kills without a pid-reuse window where the kernel has pidfds.
    pub(crate) pidfd: Option<OwnedFd>,
}

/// How long a delivered child may take to exit before the reaper kills it.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// How long the reaper lets hand-overs accumulate between passes.
const BATCH_PAUSE: Duration = Duration::from_millis(1);
/// How often an idle reaper looks for hand-overs before it parks...
const IDLE_PAUSE: Duration = Duration::from_millis(5);
/// ... which it does after this long without one (then a hand-over wakes it).
const STAY_AWAKE: Duration = Duration::from_millis(500);

struct Shared {
    /// The process this reaper belongs to.
    owner: Pid,
    queue: Mutex<Queue>,
    wake: Condvar,
}

struct Queue {
    incoming: Vec<Delivered>,
    /// The thread sleeps until notified (it has nothing pending).
    parked: bool,
}

/// The reaper of the process that last started one. A forked child sees its
/// parent's here, recognises it by `owner`, and never touches it.
static REAPER: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());
/// The pid of the process whose thread is starting a reaper right now (0:
/// none). Stale after a `fork` in the child, which is told apart by the pid.
static STARTING: AtomicI32 = AtomicI32::new(0);

/// Hands a delivered child to this process's reaper thread, starting it if
/// need be. Gives the child back if there is no thread to take it (it could
/// not be started, or another thread is starting it right now): the caller
/// then reaps it itself.
pub(crate) fn hand_off(child: Delivered) -> Result<(), Delivered> {
    let Some(shared) = reaper_of_this_process() else {
        return Err(child);
    };
    let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
    queue.incoming.push(child);
    if queue.parked {
        queue.parked = false;
        shared.wake.notify_one();
    }
    Ok(())
}

fn reaper_of_this_process() -> Option<&'static Shared> {
    let me = sys::current_pid();
    // SAFETY: a non-null `REAPER` points to a leaked, never freed `Shared`.
    let current = unsafe { REAPER.load(Ordering::Acquire).as_ref() };
    if let Some(shared) = current.filter(|s| s.owner == me) {
        return Some(shared);
    }
    // Only one thread starts it; the others reap synchronously meanwhile.
    // Never wait here: in a child forked mid-start, the starter is gone.
    let starting = STARTING.load(Ordering::Acquire);
    if starting == me
        || STARTING
            .compare_exchange(starting, me, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return None;
    }
    let started = start(me);
    STARTING.store(0, Ordering::Release);
    started
}

fn start(me: Pid) -> Option<&'static Shared> {
    // SAFETY: as above.
    if let Some(shared) = unsafe { REAPER.load(Ordering::Acquire).as_ref() } {
        if shared.owner == me {
            return Some(shared);
        }
    }
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        owner: me,
        queue: Mutex::new(Queue {
            incoming: Vec::new(),
            parked: false,
        }),
        wake: Condvar::new(),
    }));
    let spawned = std::thread::Builder::new()
        .name("mem-isolate-reaper".into())
        .stack_size(64 * 1024)
        .spawn(move || reap_forever(shared));
    if spawned.is_err() {
        // Tried again on a later call. The leaked `Shared` is a few words.
        return None;
    }
    REAPER.store(std::ptr::from_ref(shared).cast_mut(), Ordering::Release);
    Some(shared)
}

struct Pending {
    child: Delivered,
    kill_after: Instant,
    killed: bool,
}

fn reap_forever(shared: &Shared) {
    let mut pending: Vec<Pending> = Vec::new();
    let mut last_busy = Instant::now();
    loop {
        {
            let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.incoming.is_empty() && pending.is_empty() {
                if last_busy.elapsed() < STAY_AWAKE {
                    // Calls come in bursts: look again soon, so that callers
                    // never have to wake this thread while it is busy.
                    queue = shared
                        .wake
                        .wait_timeout(queue, IDLE_PAUSE)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                } else {
                    queue.parked = true;
                    while queue.incoming.is_empty() {
                        queue = shared
                            .wake
                            .wait(queue)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                    queue.parked = false;
                }
            }
            let now = Instant::now();
            if !queue.incoming.is_empty() {
                last_busy = now;
            }
            pending.extend(queue.incoming.drain(..).map(|child| Pending {
                child,
                kill_after: now + EXIT_GRACE,
                killed: false,
            }));
        }
        pending.retain_mut(|p| !reap_or_nudge(p));
        if !pending.is_empty() {
            std::thread::sleep(BATCH_PAUSE);
        }
    }
}

/// One pass over a pending child: `true` once it is reaped (or the kernel
/// reaped it: `SIGCHLD` ignored).
fn reap_or_nudge(p: &mut Pending) -> bool {
    // Reaped now, or gone already (ECHILD): done either way.
    if !matches!(sys::try_wait_with_usage(p.child.pid), Ok(None)) {
        return true;
    }
    if !p.killed && Instant::now() >= p.kill_after {
        p.killed = true;
        let _ = match &p.child.pidfd {
            Some(pidfd) => sys::pidfd_kill(pidfd.as_fd()),
            None => sys::kill_hard(p.child.pid),
        };
    }
    false
}
