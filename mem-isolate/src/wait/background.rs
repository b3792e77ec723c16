//! The background wait: one thread of the crate ("mem-isolate-waiter")
//! watches every async call in flight and wakes each call's future when the
//! call's ending is known and its child settled.
//!
//! A call puts its child's guard and the read end of its result pipe, with
//! its deadline, into the thread's table, and adds the pipe and the pidfd
//! to the thread's readiness set itself (epoll on Linux, so the thread
//! needs no wake-up for it; `poll` elsewhere, which does; a child without a
//! pidfd is checked for liveness every 20 ms). The thread waits on all of
//! them at once, feeds the bytes readable now into the call's
//! [`FrameAssembler`](crate::frame::FrameAssembler), and enforces the
//! deadlines itself: its wait times out at the nearest one, so no runtime
//! timer is needed. Once the ending is known it closes the pipe and
//! *settles* the child: kills it where the blocking path would, and waits
//! for it to end where finishing would otherwise block (a usage report
//! needs the child reaped; a child that sent nothing is waited for until
//! the deadline). Only then is the future woken, and the finish step on the
//! executor's thread finds nothing left to wait for.
//!
//! Dropping a future before that takes its call out of the table, kills the
//! child and hands it to the reaper; the dropping thread never waits.
//!
//! The same rules as the blocking wait, for the same adversary: the thread
//! trusts nothing from a child. It reads only what `FIONREAD` says is
//! there (a sibling that inherited the read end and set `O_NONBLOCK` on
//! it, or cleared it, changes nothing), stops reading once the child has
//! ended (a grandchild may hold the pipe open), and never blocks on one
//! child. The epoll instance and the wake-up descriptor are closed in every
//! child the crate forks before the callable runs, so no callable can add
//! to, remove from or wake the set; in a forked child the thread does not
//! exist, and an async call there starts the child's own.
//!
//! Room to grow: an event's token names the call (table index and
//! generation) and which of its descriptors it is about ([`Source`]); two
//! more sources fit (captured output would be drained like the pipe).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::AnyChild;
use crate::capture::Capture;
use crate::frame::{FrameAssembler, FrameError};
use crate::isolate::Started;
use crate::parent::{self, Child, Ending, DELIVERED_EXIT_GRACE, HOUSEKEEPING_GRACE};
use crate::sys::{self, poller::Ready, poller::Wakeup, Pid};

/// How often a child without a pidfd is checked for liveness.
const LIVENESS_CHECK: Duration = Duration::from_millis(20);
/// Staging buffer for headers and small payloads (bigger ones are read in place).
const STAGING_LEN: usize = 512;
/// Bytes read for one call per wake-up, so that one big result does not
/// hold up the others (the rest is still readable next time round).
const READ_BUDGET: usize = 4 << 20;
/// The token of the wake-up descriptor.
const WAKE_TOKEN: u64 = u64::MAX;

/// What the wait hands to the finish step.
pub(crate) type Settled = (Ending, AnyChild, Option<Capture>);

/// Starts this process's waiter if it is not running yet. Called before a
/// call creates its pipe, so that the thread's two descriptors are taken
/// first: near `RLIMIT_NOFILE` the call then fails to start
/// (`CallableDidNotExecute`, `EMFILE`) rather than taking the last
/// descriptors and leaving the waiter none, which would block the polling
/// thread for the whole call.
pub(crate) fn prepare() {
    let _ = waiter_of_this_process();
}

/// Waits for a started call's ending in the background. The fallback, when
/// the thread cannot run, is the blocking wait at the first poll.
pub(crate) fn wait(
    started: Started<AnyChild>,
    deadline: Option<Instant>,
    need_usage: bool,
    max_result_size: u64,
) -> Wait {
    let Some(shared) = waiter_of_this_process() else {
        return Wait(State::Blocking(Some(Box::new((
            started,
            deadline,
            max_result_size,
        )))));
    };
    let slot = Arc::new(Slot::default());
    let call = Call {
        slot: Arc::clone(&slot),
        child: started.child,
        capture: started.capture,
        deadline,
        need_usage,
        pidfd_watched: false,
        next_liveness_check: None,
        phase: Phase::Receiving {
            pipe: started.read_end,
            assembler: FrameAssembler::new(max_result_size),
            grace_deadline: None,
        },
        generation: 0,
    };
    let key = shared.register(call);
    Wait(State::Registered { slot, shared, key })
}

/// The future of one call's wait.
#[derive(Debug)]
pub(crate) struct Wait(State);

/// A call waited for on the polling thread: started, deadline, result limit.
type BlockingCall = (Started<AnyChild>, Option<Instant>, u64);

#[derive(Debug)]
enum State {
    Registered {
        slot: Arc<Slot>,
        shared: &'static Shared,
        key: Key,
    },
    /// No background thread: wait on the polling thread.
    Blocking(Option<Box<BlockingCall>>),
    Done,
}

impl std::future::Future for Wait {
    type Output = Settled;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Settled> {
        match &mut self.0 {
            State::Registered { slot, .. } => {
                let mut state = slot.lock();
                if let Some(settled) = state.settled.take() {
                    drop(state);
                    self.0 = State::Done;
                    return Poll::Ready(settled);
                }
                let replaced = match &state.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => None,
                    _ => state.waker.replace(cx.waker().clone()),
                };
                drop(state);
                // Dropped unlocked: the old waker's `Drop` is the executor's
                // code, and may drop another call's future, which takes the
                // table's lock (the thread takes the table's, then a slot's).
                drop(replaced);
                Poll::Pending
            }
            State::Blocking(call) => {
                let (started, deadline, max_result_size) =
                    *call.take().expect("a finished wait is not polled again");
                let Started {
                    mut child,
                    read_end,
                    mut capture,
                    ..
                } = started;
                let ending = parent::receive(
                    read_end.as_fd(),
                    &mut child,
                    deadline,
                    max_result_size,
                    capture.as_mut(),
                );
                self.0 = State::Done;
                Poll::Ready((ending, child, capture))
            }
            State::Done => panic!("a finished wait is not polled again"),
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        let State::Registered { slot, shared, key } = &self.0 else {
            return;
        };
        let (settled, waker) = {
            let mut state = slot.lock();
            state.cancelled = true;
            (state.settled.take(), state.waker.take())
        };
        // The executor's code, dropped here and unlocked: otherwise the
        // thread may hold the slot's last reference, and drop the waker
        // under the table's lock.
        drop(waker);
        let child = match settled {
            // Settled but never taken: the result is not wanted.
            Some((_, child, _)) => Some(child),
            // Still watched (unless the thread settled it just now, saw
            // `cancelled` and abandoned it itself).
            None => shared.unregister(*key).map(|call| call.child),
        };
        // Kills it and leaves the reaping to the reaper: nothing here blocks.
        if let Some(child) = child {
            child.abandon();
        }
    }
}

/// Where the thread leaves a call's outcome for its future.
#[derive(Debug, Default)]
struct Slot(Mutex<SlotState>);

#[derive(Debug, Default)]
struct SlotState {
    waker: Option<Waker>,
    settled: Option<Settled>,
    /// The future is gone: whoever holds the child abandons it.
    cancelled: bool,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Generations count in 29 bits, so that no token is [`WAKE_TOKEN`].
const GENERATION_MASK: u32 = (1 << 29) - 1;

/// A call's place in the table: its index, and the generation of that
/// index (an event or a cancellation for an earlier call there is stale).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    index: u32,
    generation: u32,
}

/// Which of a call's descriptors an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    ResultPipe = 0,
    Pidfd = 1,
    /// The read end of its captured stdout.
    Stdout = 2,
    /// The read end of its captured stderr.
    Stderr = 3,
}

impl Key {
    /// The token of one of the call's descriptors: generation, index, source.
    fn token(self, source: Source) -> u64 {
        (u64::from(self.generation) << 34) | (u64::from(self.index) << 2) | source as u64
    }

    // Each field was put in with its bit width (see `token`).
    #[allow(clippy::cast_possible_truncation)]
    fn from_token(token: u64) -> (Self, Option<Source>) {
        let key = Self {
            index: ((token >> 2) & u64::from(u32::MAX)) as u32,
            generation: (token >> 34) as u32,
        };
        let source = match token & 3 {
            0 => Some(Source::ResultPipe),
            1 => Some(Source::Pidfd),
            2 => Some(Source::Stdout),
            _ => Some(Source::Stderr),
        };
        (key, source)
    }
}

/// The thread's end of things, shared with the callers of this process.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The process this waiter belongs to.
    owner: Pid,
    poller: Poller,
    wakeup: Wakeup,
    /// Callers add calls here (and their descriptors to the set) and take
    /// cancelled ones out themselves; the thread does the rest.
    calls: Mutex<Calls>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a call to the table and its descriptors to the set. Wakes the
    /// thread only when it must look at the call before its next timer
    /// (with epoll, new descriptors need no wake-up: a call without a
    /// deadline costs the thread nothing until its child writes).
    fn register(&self, mut call: Call) -> Key {
        let mut calls = self.lock();
        let index = calls.free.pop().unwrap_or_else(|| {
            calls.table.push(None);
            calls.table.len() - 1
        });
        let generation = calls.generations.get(index).copied().unwrap_or(0);
        if calls.generations.len() <= index {
            calls.generations.resize(index + 1, 0);
        }
        let key = Key {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            generation,
        };
        call.generation = generation;
        if let Some(pidfd) = call.child.pidfd() {
            call.pidfd_watched = self.poller.add(pidfd, key.token(Source::Pidfd)).is_ok();
        }
        if !call.pidfd_watched {
            call.next_liveness_check = Some(Instant::now() + LIVENESS_CHECK);
        }
        let mut added = match &call.phase {
            Phase::Receiving { pipe, .. } => {
                self.poller.add(pipe.as_fd(), key.token(Source::ResultPipe))
            }
            Phase::Settling { .. } => Ok(()),
        };
        if let Some(capture) = &call.capture {
            let [out, err] = capture.fds();
            for (fd, source) in [(out, Source::Stdout), (err, Source::Stderr)] {
                if let (Some(fd), Ok(())) = (fd, &added) {
                    added = self.poller.add(fd, key.token(source));
                }
            }
        }
        calls.table[index] = Some(call);
        let mut wake = Poller::WAKE_ON_ADD;
        if let Err(e) = added {
            // Out of watch slots (`max_user_watches`): the call cannot be
            // watched, so it fails like a failed read (the thread kills and
            // settles the child).
            let mut done = Done::default();
            settle(self, &mut calls, index, Ending::ReadFailed(e), &mut done);
            drop(calls);
            done.run();
            self.wakeup.wake();
            return key;
        }
        let timer = calls.table[index].as_ref().and_then(Call::next_timer);
        if timer.is_some_and(|at| calls.sleeping_until.is_none_or(|until| at < until)) {
            wake = true;
        }
        drop(calls);
        if wake {
            self.wakeup.wake();
        }
        key
    }

    /// Takes a cancelled call out of the table and the set, if the thread
    /// has not settled it yet.
    fn unregister(&self, key: Key) -> Option<Call> {
        let mut calls = self.lock();
        let index = key.index as usize;
        let current = calls.table.get(index)?.as_ref()?;
        if current.generation != key.generation {
            return None;
        }
        Some(remove(self, &mut calls, index))
    }
}

/// The waiter of the process that last started one. A forked child sees
/// its parent's here, recognises it by `owner`, and never touches it.
static WAITER: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());
/// The pid of the process whose thread is starting a waiter (0: none).
static STARTING: AtomicI32 = AtomicI32::new(0);

fn waiter_of_this_process() -> Option<&'static Shared> {
    let me = sys::current_pid();
    // SAFETY: a non-null `WAITER` points to a leaked, never freed `Shared`.
    let current = unsafe { WAITER.load(Ordering::Acquire).as_ref() };
    if let Some(shared) = current.filter(|s| s.owner == me) {
        return Some(shared);
    }
    // One thread starts it; the others wait until it is there (never long:
    // a thread spawn). A child forked mid-start sees another pid and
    // starts its own.
    loop {
        let starting = STARTING.load(Ordering::Acquire);
        if starting != me
            && STARTING
                .compare_exchange(starting, me, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            break;
        }
        std::thread::yield_now();
        // SAFETY: as above.
        let current = unsafe { WAITER.load(Ordering::Acquire).as_ref() };
        if let Some(shared) = current.filter(|s| s.owner == me) {
            return Some(shared);
        }
    }
    let started = start(me);
    STARTING.store(0, Ordering::Release);
    started
}

fn start(me: Pid) -> Option<&'static Shared> {
    // SAFETY: as in `waiter_of_this_process`.
    if let Some(shared) = unsafe { WAITER.load(Ordering::Acquire).as_ref() } {
        if shared.owner == me {
            return Some(shared);
        }
    }
    let poller = Poller::new().ok()?;
    let wakeup = Wakeup::new().ok()?;
    poller.add(wakeup.fd(), WAKE_TOKEN).ok()?;
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        owner: me,
        poller,
        wakeup,
        calls: Mutex::new(Calls::default()),
    }));
    let spawned = std::thread::Builder::new()
        .name("mem-isolate-waiter".into())
        .stack_size(128 * 1024)
        .spawn(move || serve(shared));
    if spawned.is_err() {
        // Tried again on a later call; meanwhile calls wait on their own
        // thread. The leaked `Shared` holds two descriptors.
        return None;
    }
    WAITER.store(std::ptr::from_ref(shared).cast_mut(), Ordering::Release);
    Some(shared)
}

/// In a child the crate forked, before the callable runs: close the
/// epoll instance and wake-up descriptor of `parent`, the process that
/// forked it (the child's copies would let a callable change what the
/// parent's thread watches). A waiter of an earlier ancestor was closed by
/// `parent` itself when it was forked, and its numbers may be reused since.
pub(crate) fn close_in_child(parent: Pid) {
    // SAFETY: a non-null `WAITER` points to a leaked, never freed `Shared`.
    let shared = unsafe { WAITER.load(Ordering::Acquire).as_ref() };
    if let Some(shared) = shared.filter(|shared| shared.owner == parent) {
        for fd in shared.poller.raw_fds() {
            if fd >= 0 {
                sys::close_inherited(fd);
            }
        }
        for fd in shared.wakeup.raw_fds() {
            if fd >= 0 {
                sys::close_inherited(fd);
            }
        }
    }
}

/// One call on the thread.
#[derive(Debug)]
struct Call {
    slot: Arc<Slot>,
    child: AnyChild,
    /// Its captured output, drained while the frame is read.
    capture: Option<Capture>,
    deadline: Option<Instant>,
    need_usage: bool,
    /// The child's pidfd is in the set.
    pidfd_watched: bool,
    /// Without a pidfd: when to check next whether the child has ended.
    next_liveness_check: Option<Instant>,
    phase: Phase,
    /// Of its index in the table.
    generation: u32,
}

#[derive(Debug)]
enum Phase {
    /// Reading the frame.
    Receiving {
        pipe: OwnedFd,
        assembler: FrameAssembler,
        /// Once the frame is whole: how long the child may take to send
        /// its done mark.
        grace_deadline: Option<Instant>,
    },
    /// The ending is known; waiting for the child to end. At `kill_at` it
    /// is killed (and a call that was waiting for its exit times out).
    Settling {
        ending: Ending,
        kill_at: Option<Instant>,
    },
}

impl Call {
    /// When the thread must look at this call again without an event.
    fn next_timer(&self) -> Option<Instant> {
        let limit = match &self.phase {
            Phase::Receiving {
                assembler,
                grace_deadline,
                ..
            } => {
                if assembler.is_frame_complete() {
                    *grace_deadline
                } else {
                    self.deadline
                }
            }
            Phase::Settling { kill_at, .. } => *kill_at,
        };
        match (limit, self.next_liveness_check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The table of calls in flight.
#[derive(Debug, Default)]
struct Calls {
    table: Vec<Option<Call>>,
    /// Per index, the generation of the call there (or of the next one).
    generations: Vec<u32>,
    free: Vec<usize>,
    /// When the thread's wait times out (`None`: when an event comes).
    sleeping_until: Option<Instant>,
}

/// Work to do once the table is unlocked: wake futures, abandon children
/// whose futures are gone.
#[derive(Default)]
struct Done {
    wakers: Vec<Waker>,
    abandoned: Vec<AnyChild>,
}

impl Done {
    fn run(self) {
        for child in self.abandoned {
            child.abandon();
        }
        for waker in self.wakers {
            // A waker is the executor's code (or the caller's): one that
            // panics must not end the thread every async call of the
            // process waits on. Its own future is not woken; the others are.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
        }
    }
}

fn serve(shared: &'static Shared) {
    let mut ready = Vec::new();
    let mut staging = [MaybeUninit::<u8>::uninit(); STAGING_LEN];
    loop {
        let timeout_ms = {
            let mut calls = shared.lock();
            let nearest = calls
                .table
                .iter()
                .flatten()
                .filter_map(Call::next_timer)
                .min();
            calls.sleeping_until = nearest;
            nearest.map_or(-1, |at| {
                let left = at.saturating_duration_since(Instant::now());
                // Round up, so the thread never wakes a little early and spins.
                i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
            })
        };
        ready.clear();
        if shared.poller.wait(&mut ready, timeout_ms).is_err() {
            // Not expected (EBADF, EINVAL): do not spin.
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut done = Done::default();
        let mut calls = shared.lock();
        for event in &ready {
            if event.token == WAKE_TOKEN {
                shared.wakeup.reset();
                continue;
            }
            let (key, source) = Key::from_token(event.token);
            let index = key.index as usize;
            let Some(Some(call)) = calls.table.get_mut(index) else {
                continue;
            };
            if call.generation != key.generation {
                continue;
            }
            let step = match source {
                Some(Source::Pidfd) => on_child_ended(call, &mut staging),
                Some(Source::ResultPipe) => on_pipe_ready(call, *event, &mut staging),
                Some(Source::Stdout) => on_output_ready(shared, call, 0),
                Some(Source::Stderr) => on_output_ready(shared, call, 1),
                None => Step::Continue,
            };
            apply(shared, &mut calls, index, step, &mut done);
        }
        // Deadlines, and children watched without a pidfd.
        let now = Instant::now();
        for index in 0..calls.table.len() {
            let Some(call) = &mut calls.table[index] else {
                continue;
            };
            if call.next_timer().is_none_or(|at| at > now) {
                continue;
            }
            let step = on_timer(call, now, &mut staging);
            apply(shared, &mut calls, index, step, &mut done);
        }
        drop(calls);
        done.run();
    }
}

fn apply(shared: &Shared, calls: &mut Calls, index: usize, step: Step, done: &mut Done) {
    match step {
        Step::Settled => complete(shared, calls, index, done),
        Step::Ending(ending) => settle(shared, calls, index, ending, done),
        Step::Continue => {}
    }
}

/// What an event did to a call.
#[allow(clippy::large_enum_variant)] // the ending's inline payload; moved once per call
enum Step {
    Continue,
    /// The ending is known (the call moves on to settling).
    Ending(Ending),
    /// The child is settled: hand the call to its future.
    Settled,
}

/// Takes a call out of the table and the set.
fn remove(shared: &Shared, calls: &mut Calls, index: usize) -> Call {
    let call = calls.table[index].take().expect("the call is in the table");
    calls.generations[index] = calls.generations[index].wrapping_add(1) & GENERATION_MASK;
    calls.free.push(index);
    if let Phase::Receiving { pipe, .. } = &call.phase {
        shared.poller.remove(pipe.as_fd());
        unwatch_output(shared, call.capture.as_ref());
    }
    if call.pidfd_watched {
        if let Some(pidfd) = call.child.pidfd() {
            shared.poller.remove(pidfd);
        }
    }
    call
}

/// The ending is known: close the pipe and settle the child, as the
/// blocking path's finish step would (kill now, or give it until `kill_at`).
fn settle(shared: &Shared, calls: &mut Calls, index: usize, ending: Ending, done: &mut Done) {
    let call = calls.table[index]
        .as_mut()
        .expect("the call is in the table");
    if let Phase::Receiving { pipe, .. } = &call.phase {
        shared.poller.remove(pipe.as_fd());
        // What is left is read by the finish step (`Capture::drain_now`).
        unwatch_output(shared, call.capture.as_ref());
    }
    let now = Instant::now();
    let kill_at = match &ending {
        Ending::Frame {
            lingering: false, ..
        } if !call.need_usage => {
            // Delivered: the finish step hands it to the reaper at once.
            call.phase = Phase::Settling {
                ending,
                kill_at: None,
            };
            complete(shared, calls, index, done);
            return;
        }
        // A usage report needs it reaped: it has a second to exit.
        Ending::Frame {
            lingering: false, ..
        } => Some(now + DELIVERED_EXIT_GRACE),
        // It may still exit by itself until the deadline.
        Ending::NoFrame => call.deadline,
        Ending::Frame {
            lingering: true, ..
        }
        | Ending::TimedOut
        | Ending::Malformed(_)
        | Ending::ReadFailed(_) => {
            call.child.signal_kill();
            None
        }
    };
    call.phase = Phase::Settling { ending, kill_at };
    if !call.pidfd_watched {
        call.next_liveness_check = Some(now);
    }
}

/// Hands a settled call to its future (or abandons its child if the future
/// is gone).
fn complete(shared: &Shared, calls: &mut Calls, index: usize, done: &mut Done) {
    let call = remove(shared, calls, index);
    let Phase::Settling { ending, .. } = call.phase else {
        unreachable!("only a settling call completes");
    };
    let mut state = call.slot.lock();
    if state.cancelled {
        drop(state);
        done.abandoned.push(call.child);
        return;
    }
    state.settled = Some((ending, call.child, call.capture));
    if let Some(waker) = state.waker.take() {
        done.wakers.push(waker);
    }
}

fn on_pipe_ready(call: &mut Call, event: Ready, staging: &mut [MaybeUninit<u8>]) -> Step {
    let Phase::Receiving {
        pipe,
        assembler,
        grace_deadline,
    } = &mut call.phase
    else {
        return Step::Continue;
    };
    let mut budget = READ_BUDGET;
    loop {
        let available = match sys::poller::bytes_available(pipe.as_fd()) {
            Ok(n) => n,
            Err(e) => return Step::Ending(Ending::ReadFailed(e)),
        };
        if available == 0 {
            if event.hung_up {
                // Every writer is gone and nothing is left: end-of-file.
                return Step::Ending(take_ending(assembler, false, Ending::NoFrame));
            }
            // Readable a moment ago, empty now: a sibling that inherited
            // the read end took the bytes. Nothing to do here.
            return Step::Continue;
        }
        match read_available(pipe.as_fd(), assembler, staging, available) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Continue,
            Err(e) => return Step::Ending(Ending::ReadFailed(e)),
            Ok(Err(malformed)) => return Step::Ending(Ending::Malformed(malformed)),
            Ok(Ok(0)) => return Step::Ending(take_ending(assembler, false, Ending::NoFrame)),
            Ok(Ok(n)) => budget = budget.saturating_sub(n),
        }
        if assembler.is_done() {
            return Step::Ending(take_ending(assembler, false, Ending::NoFrame));
        }
        if assembler.is_frame_complete() && grace_deadline.is_none() {
            *grace_deadline = Some(Instant::now() + HOUSEKEEPING_GRACE);
        }
        if budget == 0 {
            return Step::Continue;
        }
    }
}

/// Captured output (stream 0: stdout, 1: stderr) is readable: keep what
/// `max_bytes` allows, and stop watching a stream at its end (a sibling
/// holding a copy of the read end would otherwise keep the ended stream
/// readable, and the thread spinning).
fn on_output_ready(shared: &Shared, call: &mut Call, stream: usize) -> Step {
    if !matches!(call.phase, Phase::Receiving { .. }) {
        return Step::Continue;
    }
    let Some(capture) = &mut call.capture else {
        return Step::Continue;
    };
    let mut ready = [false; 2];
    ready[stream] = true;
    capture.read_ready(ready);
    if capture.fds()[stream].is_none() {
        if let Some(fd) = capture.all_fds()[stream] {
            shared.poller.remove(fd);
        }
    }
    Step::Continue
}

/// Takes a call's output streams out of the set.
fn unwatch_output(shared: &Shared, capture: Option<&Capture>) {
    for fd in capture
        .map_or([None, None], Capture::all_fds)
        .into_iter()
        .flatten()
    {
        shared.poller.remove(fd);
    }
}

/// The child ended (its pidfd is readable, or the liveness check says so).
fn on_child_ended(call: &mut Call, staging: &mut [MaybeUninit<u8>]) -> Step {
    match &mut call.phase {
        Phase::Receiving {
            pipe, assembler, ..
        } => Step::Ending(drain(pipe.as_fd(), assembler, staging)),
        Phase::Settling { .. } => Step::Settled,
    }
}

fn on_timer(call: &mut Call, now: Instant, staging: &mut [MaybeUninit<u8>]) -> Step {
    if call.next_liveness_check.is_some_and(|at| at <= now) {
        call.next_liveness_check = Some(now + LIVENESS_CHECK);
        if call.child.has_ended() {
            return on_child_ended(call, staging);
        }
    }
    match &mut call.phase {
        Phase::Receiving {
            assembler,
            grace_deadline,
            ..
        } => {
            let limit = if assembler.is_frame_complete() {
                *grace_deadline
            } else {
                call.deadline
            };
            if limit.is_some_and(|limit| now >= limit) {
                // A whole frame without its done mark: `lingering` (killed).
                return Step::Ending(take_ending(assembler, true, Ending::TimedOut));
            }
            Step::Continue
        }
        Phase::Settling { ending, kill_at } => {
            if kill_at.is_some_and(|at| now >= at) {
                *kill_at = None;
                call.child.signal_kill();
                if matches!(ending, Ending::NoFrame) {
                    // It sent nothing and did not end in time.
                    *ending = Ending::TimedOut;
                }
            }
            Step::Continue
        }
    }
}

/// The child has ended: take what is in the pipe right now and stop (a
/// grandchild may hold the pipe open, and even keep writing: only the
/// bytes there at this moment are read, which hold all the child wrote).
fn drain(
    pipe: BorrowedFd<'_>,
    assembler: &mut FrameAssembler,
    staging: &mut [MaybeUninit<u8>],
) -> Ending {
    let mut left = match sys::poller::bytes_available(pipe) {
        Ok(n) => n,
        Err(e) => return Ending::ReadFailed(e),
    };
    while left > 0 && !assembler.is_done() {
        match read_available(pipe, assembler, staging, left) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Ending::ReadFailed(e),
            Ok(Err(malformed)) => return Ending::Malformed(malformed),
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => left = left.saturating_sub(n),
        }
    }
    take_ending(assembler, false, Ending::NoFrame)
}

/// The frame if it is complete, `otherwise` if not (the assembler is left
/// empty).
fn take_ending(assembler: &mut FrameAssembler, lingering: bool, otherwise: Ending) -> Ending {
    let lingering = lingering && !assembler.is_done();
    let assembler = std::mem::replace(assembler, FrameAssembler::new(0));
    match assembler.into_frame() {
        Some(frame) => Ending::Frame { frame, lingering },
        None => otherwise,
    }
}

/// One `read` of at most `available` bytes (what the pipe holds, so it
/// cannot block unless a sibling takes them first): payload bytes straight
/// into the frame's buffer when many are expected, the rest through
/// `staging`. `Ok(Ok(0))` is end-of-file.
fn read_available(
    pipe: BorrowedFd<'_>,
    assembler: &mut FrameAssembler,
    staging: &mut [MaybeUninit<u8>],
    available: usize,
) -> io::Result<Result<usize, FrameError>> {
    let target = match assembler.direct_target(staging.len()) {
        Ok(target) => target,
        Err(out_of_memory) => return Ok(Err(out_of_memory)),
    };
    if let Some(target) = target {
        let len = target.len().min(available);
        // Fault the pages in before the read, not inside it holding the pipe's lock.
        sys::prefault(&mut target[..len]);
        let n = sys::read_uninit(pipe, &mut target[..len])?;
        // SAFETY: `read` initialized the first `n` bytes of the target.
        unsafe { assembler.commit_direct(n) };
        return Ok(Ok(n));
    }
    let len = staging.len().min(available);
    let n = sys::read_uninit(pipe, &mut staging[..len])?;
    // SAFETY: `read` initialized the first `n` bytes of `staging`.
    let bytes =
        unsafe { &*(std::ptr::from_ref::<[MaybeUninit<u8>]>(&staging[..n]) as *const [u8]) };
    Ok(assembler.push(bytes).map(|()| n))
}

/// The readiness set: epoll on Linux, `poll` over a list elsewhere.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[derive(Debug)]
struct Poller(sys::poller::Epoll);

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Poller {
    /// Descriptors added while the thread waits are watched at once.
    const WAKE_ON_ADD: bool = false;

    fn new() -> io::Result<Self> {
        sys::poller::Epoll::new().map(Self)
    }
    fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.0.add(fd, token)
    }
    fn remove(&self, fd: BorrowedFd<'_>) {
        self.0.remove(fd);
    }
    fn wait(&self, ready: &mut Vec<Ready>, timeout_ms: i32) -> io::Result<()> {
        self.0.wait(ready, timeout_ms)
    }
    fn raw_fds(&self) -> [std::os::fd::RawFd; 1] {
        [self.0.raw()]
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[derive(Debug)]
struct Poller(Mutex<Vec<(std::os::fd::RawFd, u64)>>);

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Poller {
    /// `poll` watches the list as it was when the wait began.
    const WAKE_ON_ADD: bool = true;

    fn new() -> io::Result<Self> {
        Ok(Self(Mutex::new(Vec::new())))
    }
    fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd as _;
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((fd.as_raw_fd(), token));
        Ok(())
    }
    fn remove(&self, fd: BorrowedFd<'_>) {
        use std::os::fd::AsRawFd as _;
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(raw, _)| *raw != fd.as_raw_fd());
    }
    fn wait(&self, ready: &mut Vec<Ready>, timeout_ms: i32) -> io::Result<()> {
        let fds = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        sys::poller::poll_tokens(&fds, ready, timeout_ms)
    }
    fn raw_fds(&self) -> [std::os::fd::RawFd; 0] {
        []
    }
}
