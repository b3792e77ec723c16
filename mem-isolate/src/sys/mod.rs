//! The one place that calls libc: thin, safe wrappers that turn `-1` into
//! [`io::Error`] and retry `EINTR` (except `close`, which Linux must not
//! retry: the descriptor is gone even when it reports `EINTR`).
//!
//! Everything here is usable in the child after `fork`: no wrapper allocates
//! or takes a lock.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd as _, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::fault::{self, Call};

pub(crate) type Pid = libc::pid_t;

/// `-1` → the thread's `errno` as an [`io::Error`].
fn cvt<T: Copy + PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Calls `f` until it fails with something other than `EINTR`.
fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// A pipe whose ends are both close-on-exec, so an `exec`'d grandchild never
/// inherits them.
pub(crate) fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    fault::check(Call::Pipe)?;
    let mut fds = [0 as RawFd; 2];
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        // SAFETY: `fds` is a valid, writable array of two descriptors.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // SAFETY: `fds` is a valid, writable array of two descriptors.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    }
    // SAFETY: the kernel just returned these two descriptors and nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // No `pipe2` here: set the flag right away (a concurrent exec may still race).
        set_cloexec(read.as_fd())?;
        set_cloexec(write.as_fd())?;
    }
    Ok((read, write))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_SETFD on a descriptor we own has no memory-safety preconditions.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
    Ok(())
}

/// Closes `fd`, reporting the error that dropping an [`OwnedFd`] would hide.
/// Never retried: on Linux the descriptor is released even on `EINTR`.
pub(crate) fn close(fd: OwnedFd) -> io::Result<()> {
    // SAFETY: `into_raw_fd` hands us sole ownership; nothing closes it again.
    cvt(unsafe { libc::close(fd.into_raw_fd()) })?;
    Ok(())
}

/// Closes descriptor `fd`, which this process inherited at `fork` inside a
/// value it will never drop (a static): the value's owner is the parent.
pub(crate) fn close_inherited(fd: RawFd) {
    // SAFETY: closing a descriptor has no memory-safety preconditions, and
    // the inherited owner is never dropped in this process.
    unsafe { libc::close(fd) };
}

/// Flushes every C stdio output stream (`fflush(NULL)`): what C code wrote
/// with `printf` or `fprintf` and the C library still buffers (all of it
/// when stdout is a file or a pipe). Takes each stream's lock: in a child
/// forked from a multi-threaded parent, only after the result is sent.
pub(crate) fn flush_c_stdio() -> io::Result<()> {
    // SAFETY: `fflush(NULL)` flushes every open output stream; it has no
    // memory-safety preconditions.
    if unsafe { libc::fflush(std::ptr::null_mut()) } == libc::EOF {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Caller side, before a fork: flushes C's `stdout` and `stderr` (what the
/// caller itself still buffers, which the child's [`flush_c_stdio`] would
/// print a second time), each only if no other thread holds its lock: never
/// waits. Not `fflush(NULL)`, which locks every open stream in turn: a
/// thread blocked in `fgets` on any stream (a REPL, a C library reading a
/// pipe) holds that stream's lock until input comes, and the call (whose
/// timeout starts only at the fork) would wait for that input.
#[cfg(target_os = "linux")]
pub(crate) fn flush_c_std_streams_if_free() {
    extern "C" {
        static mut stdout: *mut libc::FILE;
        static mut stderr: *mut libc::FILE;
        fn ftrylockfile(stream: *mut libc::FILE) -> libc::c_int;
        fn funlockfile(stream: *mut libc::FILE);
    }
    // SAFETY: glibc and musl define `stdout` and `stderr`, set before `main`
    // and never reassigned by this crate; reading the pointers is a copy.
    let streams = unsafe { [stdout, stderr] };
    for stream in streams {
        if stream.is_null() {
            continue;
        }
        // SAFETY: a valid stream; the lock is recursive, so `fflush` inside
        // our own `ftrylockfile` does not wait; it is released right after.
        unsafe {
            if ftrylockfile(stream) == 0 {
                libc::fflush(stream);
                funlockfile(stream);
            }
        }
    }
}

/// Elsewhere, every stream (`ftrylockfile` works the same, but the names
/// of `stdout` and `stderr` differ; untested there).
#[cfg(not(target_os = "linux"))]
pub(crate) fn flush_c_std_streams_if_free() {
    let _ = flush_c_stdio();
}

/// Makes `target` (a standard descriptor, 1 or 2) refer to what `fd`
/// refers to (`dup2`); the new descriptor is not close-on-exec, so programs
/// the caller `exec`s keep writing there. `fd` must not be `target`.
pub(crate) fn redirect(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    retry_eintr(|| {
        // SAFETY: `dup2` has no memory-safety preconditions; `target` is a
        // standard descriptor this process means to replace.
        cvt(unsafe { libc::dup2(fd.as_raw_fd(), target) })
    })?;
    Ok(())
}

/// A close-on-exec duplicate of `fd` numbered 3 or above, so that it
/// survives `target`s of [`redirect`] being replaced.
pub(crate) fn dup_above_stdio(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC has no memory-safety preconditions.
    let new = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Sets `O_NONBLOCK` on the description behind `fd` (the parent's read end
/// of a capture pipe: a `read` after `poll` then never blocks, even if a
/// sibling that inherited the read end took the bytes first).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own have no memory-safety preconditions.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// Whether the calling thread is the process's first thread (its thread id
/// is the pid). In a child just forked, that is the thread that forked.
pub(crate) fn is_first_thread() -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: `gettid` has no preconditions and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        tid == libc::c_long::from(current_pid())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        true
    }
}

/// Which side of a `fork` we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForkResult {
    Child,
    Parent { child: Pid },
}

/// `fork(2)`.
///
/// # Safety
///
/// In the child, only the calling thread exists: any lock another thread held
/// at the time stays locked forever. The caller must make the child run only
/// code that tolerates this and leave through [`exit_immediately`].
pub(crate) unsafe fn fork() -> io::Result<ForkResult> {
    fault::check(Call::Fork)?;
    // SAFETY: the caller upholds the contract above.
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        ForkResult::Child
    } else {
        ForkResult::Parent { child: pid }
    })
}

/// `_exit(2)`: ends the process at once, without running destructors,
/// `atexit` handlers or unwinding.
pub(crate) fn exit_immediately(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions and never returns.
    unsafe { libc::_exit(code) }
}

/// `read(2)` into initialized memory, retried on `EINTR`.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `&mut [u8]` is a valid `&mut [MaybeUninit<u8>]` as long as we only write bytes to it.
    let uninit = unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [MaybeUninit<u8>]) };
    read_uninit(fd, uninit)
}

/// `read(2)` into possibly uninitialized memory, retried on `EINTR`. On
/// success the first `n` bytes of `buf` are initialized.
///
/// Never blocks on Linux, whatever `O_NONBLOCK` says: the parent's read
/// ends are inherited by sibling children, which share their open file
/// description and so its flags. A sibling that clears `O_NONBLOCK` and
/// takes the bytes `poll` saw must not leave the parent blocked in `read`
/// (past its timeout, for as long as a grandchild holds the write end).
/// `preadv2(RWF_NOWAIT)` is non-blocking per call (pipes: Linux 5.9+);
/// where the kernel refuses it, a plain `read`. An empty pipe is
/// `WouldBlock`; callers only read after `poll` said readable.
pub(crate) fn read_uninit(fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    retry_eintr(|| {
        fault::check(Call::Read)?;
        let n = cvt(read_nowait(fd, buf))?;
        Ok(n.unsigned_abs())
    })
}

#[cfg(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))]
fn read_nowait(fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> isize {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Set once the kernel turned out to have no `preadv2`.
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if !UNSUPPORTED.load(Ordering::Relaxed) {
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: one iovec describing `buf`, valid for writes of its
        // length; offset -1 reads at the current position (a pipe has none).
        let n = unsafe { libc::preadv2(fd.as_raw_fd(), &raw const iov, 1, -1, libc::RWF_NOWAIT) };
        match errno() {
            _ if n >= 0 => return n,
            // No `preadv2` at all: never try again.
            libc::ENOSYS => UNSUPPORTED.store(true, Ordering::Relaxed),
            // Not for this kind of descriptor (or this kernel's pipes).
            libc::EOPNOTSUPP | libc::EINVAL => {}
            _ => return n,
        }
    }
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
}

#[cfg(not(all(target_os = "linux", any(target_env = "gnu", target_env = "musl"))))]
fn read_nowait(fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> isize {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
}

/// Writes all of `buf`, retrying `EINTR` and short writes (see
/// [`write_all_two`]).
pub(crate) fn write_all(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    write_all_two(fd, buf, &[])
}

/// Runs the write `f`, retrying `EINTR`, and waiting until `fd` is writable
/// when it would block: a callable may set `O_NONBLOCK` on the result pipe,
/// which the child's writes must not take for a failure.
fn retry_blocked(
    fd: BorrowedFd<'_>,
    mut f: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    loop {
        match retry_eintr(&mut f) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd. An error (EINTR) just retries the write.
                unsafe { libc::poll(&raw mut pfd, 1, -1) };
            }
            other => return other,
        }
    }
}

/// Writes all of `head`, then all of `body`, with `writev` (one system call
/// where the pipe takes it all), retrying `EINTR` and short writes.
pub(crate) fn write_all_two(
    fd: BorrowedFd<'_>,
    mut head: &[u8],
    mut body: &[u8],
) -> io::Result<()> {
    while !head.is_empty() || !body.is_empty() {
        let iov = [
            libc::iovec {
                iov_base: head.as_ptr().cast_mut().cast(),
                iov_len: head.len(),
            },
            libc::iovec {
                iov_base: body.as_ptr().cast_mut().cast(),
                iov_len: body.len(),
            },
        ];
        let n = retry_blocked(fd, || {
            fault::check(Call::Write)?;
            // SAFETY: both iovecs describe live slices, valid for reads of
            // their lengths; `writev` only reads them.
            let n = cvt(unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), 2) })?;
            Ok(n.unsigned_abs())
        })?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}

/// Sends all of `buf` into the pipe `fd` by reference (`vmsplice`, Linux):
/// the pipe holds the pages themselves and the reader copies straight out
/// of them, so the writer copies nothing and the reader frees no pipe
/// pages. Returns once the pipe is empty again, that is once the reader has
/// copied every byte out of these pages: the caller may then free or reuse
/// `buf` (a `Serialize` may hand over a temporary). Falls back to `write`
/// where `vmsplice` is refused.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn splice_until_read(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let iov = libc::iovec {
            iov_base: buf.as_ptr().cast_mut().cast(),
            iov_len: buf.len(),
        };
        let sent = retry_blocked(fd, || {
            fault::check(Call::Write)?;
            // SAFETY: `iov` describes `buf`, valid for reads for its length;
            // without SPLICE_F_GIFT the kernel only reads the pages.
            let n = cvt(unsafe { libc::vmsplice(fd.as_raw_fd(), &raw const iov, 1, 0) })?;
            Ok(n.unsigned_abs())
        });
        match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EPERM)
                ) =>
            {
                return write_all(fd, buf);
            }
            Err(e) => return Err(e),
        }
    }
    // The pipe may still refer to the last pages: wait for the reader.
    let mut nap = Duration::from_micros(20);
    while poller::bytes_available(fd)? > 0 {
        std::thread::sleep(nap);
        // The reader takes a pipe's worth in well under a millisecond:
        // short naps, so the child goes on soon after.
        nap = (nap * 2).min(Duration::from_micros(200));
    }
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn splice_until_read(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    write_all(fd, buf)
}

/// Waits until `fd` is readable (or hung up), until `deadline` at the latest.
/// Returns `false` when the deadline passed first. `EINTR` restarts the wait
/// with the time that is left.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<bool> {
    Ok(wait_any_readable([Some(fd)], deadline)?[0])
}

/// Waits until any of `fds` is readable (or hung up), until `deadline` at the
/// latest; `None` entries are skipped. Returns which are ready (all `false`:
/// the deadline passed). `EINTR` restarts the wait with the time that is left.
pub(crate) fn wait_any_readable<const N: usize>(
    fds: [Option<BorrowedFd<'_>>; N],
    deadline: Option<Instant>,
) -> io::Result<[bool; N]> {
    let mut pfds = fds.map(|fd| libc::pollfd {
        fd: fd.map_or(-1, |fd| fd.as_raw_fd()),
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    0
                } else {
                    // Round up, so we never wake a little early and spin.
                    i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
                }
            }
        };
        let count = libc::nfds_t::try_from(N).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `pfds` is an array of `N` valid pollfds.
        let polled = fault::check(Call::Poll)
            .and_then(|()| cvt(unsafe { libc::poll(pfds.as_mut_ptr(), count, timeout_ms) }));
        match polled {
            Ok(0) if timeout_ms == 0 => return Ok([false; N]),
            Ok(0) => {}
            Ok(_) => return Ok(pfds.map(|p| p.revents != 0)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A descriptor that refers to one process (Linux ≥ 5.3 `pidfd_open`): it
/// becomes readable when the process ends, and signals sent through it can
/// never reach another process that reused the pid. `Err` on kernels
/// without pidfds.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    fault::check(Call::Pidfd)?;
    // SAFETY: `pidfd_open` takes a pid and flags and touches no memory of ours.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this descriptor (close-on-exec) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pidfd_open(_pid: Pid) -> io::Result<OwnedFd> {
    Err(io::ErrorKind::Unsupported.into())
}

/// `SIGKILL` through a pidfd: reaches exactly the process it was opened for.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pidfd_kill(pidfd: BorrowedFd<'_>) -> io::Result<()> {
    fault::check(Call::Kill)?;
    // SAFETY: a null `siginfo` is allowed; no memory of ours is touched.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pidfd_kill(_pidfd: BorrowedFd<'_>) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// A `waitpid` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaitStatus(pub(crate) libc::c_int);

impl WaitStatus {
    /// `WEXITSTATUS` if the process exited.
    pub(crate) fn exit_status(self) -> Option<i32> {
        libc::WIFEXITED(self.0).then(|| libc::WEXITSTATUS(self.0))
    }
    /// `WTERMSIG` if a signal killed the process.
    pub(crate) fn terminating_signal(self) -> Option<i32> {
        libc::WIFSIGNALED(self.0).then(|| libc::WTERMSIG(self.0))
    }
}

/// `wait4(pid, WNOHANG)`: the status and resource usage if the child has
/// ended (it is then reaped), `None` if it is still running.
pub(crate) fn try_wait_with_usage(pid: Pid) -> io::Result<Option<(WaitStatus, libc::rusage)>> {
    wait4(pid, libc::WNOHANG)
}

fn wait4(pid: Pid, flags: libc::c_int) -> io::Result<Option<(WaitStatus, libc::rusage)>> {
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let ret = retry_eintr(|| {
        fault::check(Call::Wait)?;
        // SAFETY: `status` and `usage` are valid out-pointers.
        cvt(unsafe { libc::wait4(pid, &raw mut status, flags, &raw mut usage) })
    })?;
    Ok((ret == pid).then_some((WaitStatus(status), usage)))
}

/// Whether `pid` has ended, without reaping it (`waitid` with `WNOWAIT`).
pub(crate) fn has_ended(pid: Pid) -> io::Result<bool> {
    // SAFETY: an all-zero `siginfo_t` is a valid value of this plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let id = libc::id_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    retry_eintr(|| {
        fault::check(Call::Wait)?;
        // SAFETY: `info` is a valid out-pointer.
        cvt(unsafe {
            libc::waitid(
                libc::P_PID,
                id,
                &raw mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        })
    })?;
    // SAFETY: `waitid` filled `info`; with WNOHANG and no ended child, si_pid stays 0.
    Ok(unsafe { info.si_pid() } != 0)
}

/// Blocks until `pid` ends and reaps it, returning its status and resource usage.
pub(crate) fn wait_with_usage(pid: Pid) -> io::Result<(WaitStatus, libc::rusage)> {
    wait4(pid, 0)?.ok_or_else(|| io::Error::other("wait4 returned without a status"))
}

/// `kill(pid, SIGKILL)`.
pub(crate) fn kill_hard(pid: Pid) -> io::Result<()> {
    fault::check(Call::Kill)?;
    // SAFETY: sending a signal has no memory-safety preconditions.
    cvt(unsafe { libc::kill(pid, libc::SIGKILL) })?;
    Ok(())
}

/// The calling thread's `errno` (async-signal-safe).
pub(crate) fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Sets the calling thread's `errno` to 0.
pub(crate) fn clear_errno() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let location = libc::__errno_location;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let location = libc::__error;
    // SAFETY: the function returns a valid pointer to this thread's errno.
    unsafe { *location() = 0 };
}

/// Installs `handler` for `SIGABRT`, to run once (the disposition goes back
/// to the default before it runs, so `abort` still ends the process).
pub(crate) fn on_abort_once(handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: an all-zero `sigaction` is a valid value of this plain C struct.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as libc::sighandler_t;
    action.sa_flags = libc::SA_RESETHAND;
    // SAFETY: `action` is a valid sigaction and the old one is not asked for;
    // the handler only does async-signal-safe work.
    cvt(unsafe { libc::sigaction(libc::SIGABRT, &raw const action, std::ptr::null_mut()) })?;
    Ok(())
}

/// `getpid(2)`.
pub(crate) fn current_pid() -> Pid {
    // SAFETY: `getpid` has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// Asks the kernel to `SIGKILL` this process when its parent dies, then
/// checks that the parent is still `expected_parent` (it may have died
/// between `fork` and this call, before the request was in place).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn die_with_parent(expected_parent: Pid) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and has no memory-safety preconditions.
    cvt(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) })?;
    // SAFETY: `getppid` has no preconditions and cannot fail.
    if unsafe { libc::getppid() } != expected_parent {
        exit_immediately(libc::EXIT_FAILURE);
    }
    Ok(())
}

/// Grows a pipe's buffer (Linux `F_SETPIPE_SZ`), so large results move in
/// fewer, bigger chunks. Best effort: the kernel caps it at
/// `/proc/sys/fs/pipe-max-size`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn grow_pipe(fd: BorrowedFd<'_>, bytes: usize) {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_SETPIPE_SZ on a pipe we own has no memory-safety preconditions.
    let _ = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn grow_pipe(_fd: BorrowedFd<'_>, _bytes: usize) {}

/// Sets the soft and hard `RLIMIT_AS` of this process.
pub(crate) fn limit_address_space(bytes: u64) -> io::Result<()> {
    set_limit(libc::RLIMIT_AS, bytes)
}

/// Sets the soft and hard `RLIMIT_DATA` of this process: private writable
/// memory, which also counts committing memory that was only reserved (a
/// `malloc` arena turning its `PROT_NONE` reservation writable).
pub(crate) fn limit_data(bytes: u64) -> io::Result<()> {
    set_limit(libc::RLIMIT_DATA, bytes)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
type Resource = libc::c_int;

fn set_limit(resource: Resource, bytes: u64) -> io::Result<()> {
    let value = libc::rlim_t::try_from(bytes).unwrap_or(libc::RLIM_INFINITY);
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: `limit` is a valid rlimit.
    cvt(unsafe { libc::setrlimit(resource, &raw const limit) })?;
    Ok(())
}

/// What this process has mapped, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemorySizes {
    /// The whole address space (what `RLIMIT_AS` counts).
    pub(crate) address_space: u64,
    /// Data and stack (what `RLIMIT_DATA` counts, plus the stack).
    pub(crate) data: u64,
}

/// This process's mapped sizes (Linux: fields 1 and 6 of `/proc/self/statm`,
/// in pages). Reads into a stack buffer: no allocation, so it is safe in a
/// child forked from a multi-threaded parent.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn memory_sizes() -> io::Result<MemorySizes> {
    let path = c"/proc/self/statm";
    let fd = retry_eintr(|| {
        // SAFETY: `path` is a valid NUL-terminated string.
        cvt(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })
    })?;
    // SAFETY: `open` just returned this descriptor and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut buf = [0u8; 128];
    let n = read(fd.as_fd(), &mut buf)?;
    let mut fields = buf[..n].split(|b| *b == b' ').map(|field| {
        field
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u64, |acc, b| {
                acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
            })
    });
    let pages = page_size();
    let address_space = fields.next().unwrap_or(0).saturating_mul(pages);
    let data = fields.nth(4).unwrap_or(0).saturating_mul(pages);
    Ok(MemorySizes {
        address_space,
        data,
    })
}

/// No portable way to read the sizes: the limits are absolute.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn memory_sizes() -> io::Result<MemorySizes> {
    Ok(MemorySizes {
        address_space: 0,
        data: 0,
    })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn page_size() -> u64 {
    // SAFETY: `sysconf` has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// A page of memory shared between a parent and the children it forks
/// afterwards (`MAP_SHARED | MAP_ANONYMOUS`).
pub(crate) fn map_shared_page(len: usize) -> io::Result<*mut libc::c_void> {
    // SAFETY: an anonymous mapping at an address of the kernel's choice touches no existing memory.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANON,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(ptr)
    }
}

/// Keeps `ptr..ptr + len` out of processes forked from now on
/// (`MADV_DONTFORK`, Linux): a page shared with one child is not handed to
/// the children other threads fork later. Best effort.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn keep_out_of_later_forks(ptr: *mut libc::c_void, len: usize) {
    // SAFETY: MADV_DONTFORK changes what `fork` copies, never the contents
    // or validity of the mapping in this process.
    let _ = unsafe { libc::madvise(ptr, len, libc::MADV_DONTFORK) };
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn keep_out_of_later_forks(_ptr: *mut libc::c_void, _len: usize) {}

/// Unmaps a mapping made by [`map_shared_page`].
///
/// # Safety
///
/// `ptr` and `len` come from one [`map_shared_page`] call, and no reference
/// into the mapping outlives this call.
pub(crate) unsafe fn unmap(ptr: *mut libc::c_void, len: usize) {
    // SAFETY: the caller guarantees the mapping is ours and unused.
    unsafe { libc::munmap(ptr, len) };
}

/// `getrusage` time as a [`Duration`].
pub(crate) fn timeval_to_duration(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0);
    Duration::new(secs, micros.saturating_mul(1000))
}

/// `ru_maxrss` in bytes (Linux reports KiB, macOS bytes).
pub(crate) fn max_rss_bytes(usage: &libc::rusage) -> u64 {
    let raw = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    if cfg!(any(target_os = "macos", target_os = "ios")) {
        raw
    } else {
        raw.saturating_mul(1024)
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux;
mod mapped;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use linux::*;
pub(crate) use mapped::{advise_fresh_allocation, prefault, MappedBuffer};

pub(crate) mod poller;

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod read_tests {
    use super::*;

    /// A blocking, empty pipe (as a sibling that stole the bytes after
    /// `poll` and cleared `O_NONBLOCK` would leave it) does not block the
    /// read: it gives `WouldBlock`, and bytes that are there still come.
    #[test]
    fn reads_never_block_even_on_a_blocking_description() {
        let (read_end, write_end) = pipe_cloexec().unwrap();
        let mut buf = [0u8; 8];
        let mut probe = 0u8;
        let iov = libc::iovec {
            iov_base: std::ptr::from_mut(&mut probe).cast(),
            iov_len: 1,
        };
        // SAFETY: one iovec describing `probe`.
        let n = unsafe {
            libc::preadv2(
                read_end.as_raw_fd(),
                &raw const iov,
                1,
                -1,
                libc::RWF_NOWAIT,
            )
        };
        if n < 0 && errno() != libc::EAGAIN {
            eprintln!("skipped: this kernel has no RWF_NOWAIT for pipes");
            return;
        }
        let err = read(read_end.as_fd(), &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        write_all(write_end.as_fd(), b"abc").unwrap();
        assert_eq!(read(read_end.as_fd(), &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        drop(write_end);
        assert_eq!(read(read_end.as_fd(), &mut buf).unwrap(), 0);
    }
}
