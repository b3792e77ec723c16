//! The caller's side of zygote mode: starting the zygote, sending a call,
//! and watching the worker it forks.

use std::io;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::{Reply, Request, INLINE_ARGS_MAX, REPLY_LEN};
use crate::capture::Capture;
use crate::child::{self, ChildSetup};
use crate::errors::{
    CallableDidNotExecuteError as DidNotExecute, CallableStatusUnknownError as StatusUnknown,
    MemIsolateError,
};
use crate::parent::{Child, Reaped, DELIVERED_EXIT_GRACE};
use crate::report::ChildFailure;
use crate::sys::{self, Pid, WaitStatus};

/// The zygote this process started.
#[derive(Debug)]
pub(crate) struct Zygote {
    /// The process that started it (a forked child sees its parent's).
    owner: Pid,
    pid: Pid,
    pidfd: OwnedFd,
    channel: OwnedFd,
    alive: AtomicBool,
}

static ZYGOTE: OnceLock<Zygote> = OnceLock::new();

pub(super) fn start() -> io::Result<()> {
    let refuse = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()));
    if !sys::is_main_thread() {
        return refuse("zygote::start must be called on the main thread");
    }
    if sys::thread_count()? != 1 {
        return refuse(
            "zygote::start must be called before any other thread starts (an isolated call made earlier starts the crate's reaper thread; so a zygote cannot be started again after one died)",
        );
    }
    if ZYGOTE.get().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a zygote was already started in this process",
        ));
    }
    let me = sys::current_pid();
    if let Err(e) = sys::pidfd_open(me) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("zygote mode needs pidfds (Linux 5.3): {e}"),
        ));
    }
    let (ours, theirs) = sys::seqpacket_pair()?;
    // Workers inherit the crate's hook from the zygote.
    crate::panic_hook::install();
    // And its C stdio buffers: empty, or each worker would print them again.
    let _ = sys::flush_c_stdio();
    // SAFETY: the process is single-threaded (checked above); the child runs
    // `serve`, which never returns.
    match unsafe { sys::fork() }? {
        sys::ForkResult::Child => {
            drop(ours);
            let sigint = sys::ignore_sigint().unwrap_or(libc::SIG_DFL);
            super::server::serve(theirs, me, sigint)
        }
        sys::ForkResult::Parent { child } => {
            drop(theirs);
            let pidfd = match sys::pidfd_open(child).and_then(|pidfd| {
                await_ready(ours.as_fd())?;
                Ok(pidfd)
            }) {
                Ok(pidfd) => pidfd,
                Err(e) => {
                    let _ = sys::kill_hard(child);
                    let _ = sys::wait_with_usage(child);
                    return Err(e);
                }
            };
            let zygote = Zygote {
                owner: me,
                pid: child,
                pidfd,
                channel: ours,
                alive: AtomicBool::new(true),
            };
            ZYGOTE
                .set(zygote)
                .map_err(|_| io::ErrorKind::AlreadyExists.into())
        }
    }
}

/// Waits (5 s at most) for the zygote to say it is serving.
fn await_ready(channel: BorrowedFd<'_>) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    if !sys::wait_readable(channel, Some(deadline))? {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the zygote did not start within 5 s",
        ));
    }
    let mut buf = [0u8; 64];
    let received = sys::recv_with_fds(channel, &mut buf, true)?;
    if &buf[..received.len] == super::server::READY {
        Ok(())
    } else {
        Err(io::Error::other("the zygote failed to start"))
    }
}

/// This process's zygote, if it started one and it is alive. Notices (and
/// reaps) a zygote that died.
pub(crate) fn current() -> Option<&'static Zygote> {
    let zygote = ZYGOTE.get()?;
    if zygote.owner != sys::current_pid() || !zygote.alive.load(Ordering::Acquire) {
        return None;
    }
    if sys::wait_readable(zygote.pidfd.as_fd(), Some(Instant::now())).unwrap_or(true) {
        zygote.retire();
        return None;
    }
    Some(zygote)
}

/// `parent`: the process this child was forked from. Only a child of the
/// zygote's owner inherited the channel; in a grandchild the number may by
/// now be one of its own descriptors (its result pipe, say).
pub(super) fn close_channel_in_child(parent: Pid) {
    if let Some(zygote) = ZYGOTE.get().filter(|zygote| zygote.owner == parent) {
        sys::close_inherited(zygote.channel.as_raw_fd());
    }
}

impl Zygote {
    /// Marks the zygote gone, making sure it is (killed and) reaped once.
    fn retire(&self) {
        if self.alive.swap(false, Ordering::AcqRel) {
            let _ = sys::pidfd_kill(self.pidfd.as_fd());
            let _ = sys::wait_with_usage(self.pid);
        }
    }
}

/// The function every worker starts in: `function` is a `fn(A) -> T`.
pub(crate) type Entry = for<'a> fn(usize, &'a [u8], ChildSetup<'a>) -> !;

/// The point function addresses are measured from (the same in the caller
/// and the zygote, which is a fork of it).
#[inline(never)]
pub(crate) fn anchor() {}

fn offset_from_anchor(address: usize) -> i64 {
    (address as i64).wrapping_sub(anchor as fn() as usize as i64)
}

fn worker_entry<A: DeserializeOwned, T: Serialize>(
    function: usize,
    args: &[u8],
    setup: ChildSetup<'_>,
) -> ! {
    // SAFETY: `function` is the address of a `fn(A) -> T`, sent by
    // `launch::<A, T>` together with this very instance of `worker_entry`.
    let function = unsafe { std::mem::transmute::<usize, fn(A) -> T>(function) };
    child::run(
        move || match crate::codec::decode::<A>(args) {
            Ok(args) => function(args),
            Err(e) => panic!("the worker could not decode the arguments: {e}"),
        },
        setup,
    )
}

/// Why a call did not go through the zygote.
#[derive(Debug)]
pub(crate) enum Launch {
    /// The zygote is gone; the function did not run (the caller may fork directly).
    Unavailable(io::Error),
    /// The call failed; the error says whether the function ran.
    Failed(MemIsolateError),
    /// The timeout passed before the zygote said the worker started.
    TimedOut,
}

/// The options of one call that the zygote needs to know.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaunchOptions {
    pub(crate) memory_limit: Option<u64>,
    /// Bytes of each output stream to keep, if output is captured.
    pub(crate) capture_output: Option<u64>,
    pub(crate) deadline: Option<Instant>,
}

/// Asks the zygote for a worker running `function(args)`. Returns the
/// worker, the read end of its result pipe and, when output is captured,
/// the read ends of its stdout and stderr.
pub(crate) fn launch<A, T>(
    zygote: &Zygote,
    function: fn(A) -> T,
    args: &A,
    options: &LaunchOptions,
) -> Result<(WorkerGuard, OwnedFd, Option<Capture>), Launch>
where
    A: Serialize + DeserializeOwned,
    T: Serialize + DeserializeOwned,
{
    let did_not_execute = |e| Launch::Failed(MemIsolateError::CallableDidNotExecute(e));
    let mut encoded = Vec::new();
    crate::codec::encode_into(args, &mut encoded)
        .map_err(|e| did_not_execute(DidNotExecute::ArgumentSerializationFailed(e)))?;
    // Until the zygote has its copies and ours are closed, no other call of
    // this process forks (its child would inherit them).
    let section = crate::fork_section::ForkSection::enter(sys::current_pid());
    let (read_end, write_end) =
        sys::pipe_cloexec().map_err(|e| did_not_execute(DidNotExecute::PipeCreationFailed(e)))?;
    let (reply, zygote_end) =
        sys::seqpacket_pair().map_err(|e| did_not_execute(DidNotExecute::PipeCreationFailed(e)))?;
    let (capture, child_capture) = match options.capture_output.map(crate::capture::pipes) {
        None => (None, None),
        Some(Ok((capture, child_capture))) => (Some(capture), Some(child_capture)),
        Some(Err(e)) => return Err(did_not_execute(DidNotExecute::PipeCreationFailed(e))),
    };
    let args_in_memfd = encoded.len() > INLINE_ARGS_MAX;
    let args_file = if args_in_memfd {
        Some(
            sys::memfd_with(&encoded)
                .map_err(|e| did_not_execute(DidNotExecute::PipeCreationFailed(e)))?,
        )
    } else {
        None
    };
    let entry: Entry = worker_entry::<A, T>;
    let request = Request {
        entry_offset: offset_from_anchor(entry as usize),
        function_offset: offset_from_anchor(function as usize),
        memory_limit: options.memory_limit,
        args_len: encoded.len() as u64,
        args_in_memfd,
        capture_output: child_capture.is_some(),
    };
    let mut datagram = Vec::with_capacity(super::wire::REQUEST_HEADER_LEN + INLINE_ARGS_MAX);
    request.encode(if args_in_memfd { &[] } else { &encoded }, &mut datagram);
    let sent = {
        let mut fds = vec![write_end.as_fd(), zygote_end.as_fd()];
        fds.extend(args_file.as_ref().map(|file| file.as_fd()));
        if let Some(child_capture) = &child_capture {
            fds.extend(child_capture.write_ends.iter().map(AsFd::as_fd));
        }
        sys::send_with_fds(zygote.channel.as_fd(), &datagram, &fds, false)
    };
    if let Err(e) = sent {
        zygote.retire();
        return Err(Launch::Unavailable(e));
    }
    // The zygote has its copies; the worker must be the only writer.
    drop((write_end, zygote_end, args_file, child_capture, section));
    let mut worker = WorkerGuard {
        pidfd: None,
        reply,
        state: WorkerState::Starting,
    };
    let deadline = options.deadline;
    match worker.receive(deadline) {
        Some(Reply::Started { .. }) if worker.pidfd.is_some() => {
            worker.state = WorkerState::Running;
            Ok((worker, read_end, capture))
        }
        // The kernel dropped the pidfd: this process is out of descriptors.
        // Hanging up (dropping `worker`) makes the zygote kill the worker.
        Some(Reply::Started { .. }) => Err(Launch::Failed(MemIsolateError::CallableStatusUnknown(
            StatusUnknown::WaitFailed(io::Error::other(
                "the worker's pidfd did not arrive (is this process out of descriptors?); the worker was killed",
            )),
        ))),
        Some(Reply::ForkFailed { errno }) => Err(did_not_execute(DidNotExecute::ForkFailed(
            io::Error::from_raw_os_error(errno),
        ))),
        Some(Reply::Rejected) => Err(Launch::Unavailable(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the zygote refused the request (the function is not in the code it knows)",
        ))),
        None if deadline.is_some_and(|d| Instant::now() >= d) => Err(Launch::TimedOut),
        _ => {
            // A dying zygote's sockets close before its pidfd turns
            // readable: give its death a moment to show before calling
            // the reply malformed.
            let _ = sys::wait_readable(
                zygote.pidfd.as_fd(),
                Some(Instant::now() + DEATH_SETTLE),
            );
            if current().is_none() {
                Err(Launch::Failed(MemIsolateError::CallableStatusUnknown(
                    StatusUnknown::ZygoteDied,
                )))
            } else {
                Err(Launch::Failed(MemIsolateError::CallableStatusUnknown(
                    StatusUnknown::WaitFailed(io::Error::other("malformed reply from the zygote")),
                )))
            }
        }
    }
}

/// A worker of the zygote: watched and killed through its pidfd, its end
/// reported by the zygote. Dropping it while it runs kills it (the zygote
/// reaps it).
#[derive(Debug)]
pub(crate) struct WorkerGuard {
    pidfd: Option<OwnedFd>,
    reply: OwnedFd,
    state: WorkerState,
}

#[derive(Debug)]
enum WorkerState {
    Starting,
    Running,
    Ended(io::Result<Reaped>, Option<ChildFailure>),
    /// Delivered and left to the zygote.
    Released,
}

/// How long a caller whose reply socket closed without a reply waits for
/// the zygote's pidfd to say it died.
const DEATH_SETTLE: Duration = Duration::from_millis(100);

/// How long a caller waits for the zygote's report once the worker is gone.
const REPORT_WAIT: Duration = Duration::from_secs(5);

impl WorkerGuard {
    /// One reply, until `deadline`; `None` if none came (deadline, hang-up
    /// or garbage). A descriptor attached to `Started` is kept as the pidfd.
    fn receive(&mut self, deadline: Option<Instant>) -> Option<Reply> {
        if !sys::wait_readable(self.reply.as_fd(), deadline).ok()? {
            return None;
        }
        let mut buf = [0u8; REPLY_LEN];
        let received = sys::recv_with_fds(self.reply.as_fd(), &mut buf, true).ok()?;
        let reply = Reply::decode(&buf[..received.len]).filter(|_| !received.truncated)?;
        let mut fds = received.fds.into_iter();
        if let (Reply::Started { .. }, WorkerState::Starting) = (&reply, &self.state) {
            self.pidfd = fds.next();
        }
        Some(reply)
    }

    /// Waits for the zygote's report of the worker's end until `deadline`.
    fn await_end(&mut self, deadline: Option<Instant>) -> bool {
        if !matches!(self.state, WorkerState::Running) {
            return true;
        }
        let ended = match self.receive(deadline) {
            Some(Reply::Ended {
                status,
                user_micros,
                system_micros,
                max_rss_kib,
                failure_code,
                failure_errno,
            }) => {
                // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
                let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
                usage.ru_utime = timeval(user_micros);
                usage.ru_stime = timeval(system_micros);
                usage.ru_maxrss = libc::c_long::try_from(max_rss_kib).unwrap_or(libc::c_long::MAX);
                WorkerState::Ended(
                    Ok(Reaped {
                        status: WaitStatus(status),
                        usage,
                    }),
                    ChildFailure::from_raw(failure_code, failure_errno),
                )
            }
            None if deadline.is_some_and(|d| Instant::now() >= d) => return false,
            _ => WorkerState::Ended(Err(zygote_died()), None),
        };
        self.state = ended;
        true
    }

    fn send_kill(&self) {
        if let Some(pidfd) = &self.pidfd {
            if sys::pidfd_kill(pidfd.as_fd()).is_err() {
                let _ = sys::pidfd_kill(pidfd.as_fd());
            }
        }
    }
}

fn timeval(micros: u64) -> libc::timeval {
    libc::timeval {
        tv_sec: libc::time_t::try_from(micros / 1_000_000).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::try_from(micros % 1_000_000).unwrap_or(0),
    }
}

/// The error behind a worker whose zygote died before reporting its end.
fn zygote_died() -> io::Error {
    io::Error::other(super::ZygoteDied)
}

impl Child for WorkerGuard {
    fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        match self.state {
            WorkerState::Running => self.pidfd.as_ref().map(|fd| fd.as_fd()),
            _ => None,
        }
    }

    fn has_ended(&self) -> bool {
        match (&self.state, &self.pidfd) {
            (WorkerState::Running, Some(pidfd)) => {
                sys::wait_readable(pidfd.as_fd(), Some(Instant::now())).unwrap_or(true)
            }
            _ => true,
        }
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> bool {
        if !matches!(self.state, WorkerState::Running) {
            return true;
        }
        if let Some(pidfd) = &self.pidfd {
            if !sys::wait_readable(pidfd.as_fd(), deadline).unwrap_or(true) {
                return false;
            }
        }
        // The worker is gone: the zygote's report follows at once (unless
        // the zygote died too).
        self.await_end(Some(Instant::now() + REPORT_WAIT))
    }

    fn kill(&mut self) {
        if matches!(self.state, WorkerState::Running) {
            self.send_kill();
            self.await_end(Some(Instant::now() + REPORT_WAIT));
        }
    }

    fn take_outcome(&mut self) -> io::Result<Reaped> {
        match &mut self.state {
            WorkerState::Ended(outcome, _) => std::mem::replace(
                outcome,
                Err(io::Error::other("the outcome was already taken")),
            ),
            _ => Err(io::Error::other("the worker has not ended")),
        }
    }

    fn take_failure(&mut self) -> Option<ChildFailure> {
        match &mut self.state {
            WorkerState::Ended(_, failure) => failure.take(),
            _ => None,
        }
    }

    fn finish_delivered(mut self) {
        // The zygote reaps it; told it delivered, it gives the worker a
        // second to exit after our hang-up (otherwise it kills at once).
        let _ = sys::send_with_fds(self.reply.as_fd(), b"d", &[], true);
        self.state = WorkerState::Released;
    }

    fn into_outcome(mut self) -> io::Result<Reaped> {
        if !self.wait_until(Some(Instant::now() + DELIVERED_EXIT_GRACE)) {
            self.kill();
        }
        self.take_outcome()
    }

    fn signal_kill(&mut self) {
        if matches!(self.state, WorkerState::Running) {
            self.send_kill();
        }
    }

    /// Dropping it kills it; the zygote reaps it.
    fn abandon(self) {}
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        if matches!(self.state, WorkerState::Running) {
            // The zygote reaps it; no need to wait here.
            self.send_kill();
        }
    }
}
