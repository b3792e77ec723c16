//! Wrappers for the background waiter (`crate::wait::background`): a
//! readiness set (epoll on Linux), a wake-up descriptor (an eventfd on
//! Linux, a pipe elsewhere) and `FIONREAD`. Same rules as the parent module:
//! `-1` becomes [`io::Error`], `EINTR` is retried or reported as "nothing
//! ready", every descriptor is close-on-exec.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::os::fd::{FromRawFd, OwnedFd};

use super::{cvt, retry_eintr};

/// How many bytes `fd` (a pipe) holds right now (`FIONREAD`).
pub(crate) fn bytes_available(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one `c_int` through the pointer, which is valid.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &raw mut n) })?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// One ready descriptor: the token it was added with, and whether its
/// writers are all gone (a read then returns at once, with end-of-file at
/// the latest).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ready {
    pub(crate) token: u64,
    pub(crate) hung_up: bool,
}

/// An epoll instance (close-on-exec).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[derive(Debug)]
pub(crate) struct Epoll(OwnedFd);

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Epoll {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: `epoll_create1` takes flags only.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub(crate) fn raw(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }

    /// Watches `fd` for readability (level-triggered), reported with `token`.
    pub(crate) fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event; both descriptors are open.
        cvt(unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &raw mut event,
            )
        })?;
        Ok(())
    }

    /// Stops watching `fd` (before it is closed: a descriptor another
    /// process shares would otherwise stay in the set).
    pub(crate) fn remove(&self, fd: BorrowedFd<'_>) {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        let _ = unsafe {
            libc::epoll_ctl(
                self.0.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd.as_raw_fd(),
                std::ptr::null_mut(),
            )
        };
    }

    /// Waits up to `timeout_ms` (`-1`: no limit) and appends what is ready
    /// to `ready`. `EINTR` counts as nothing ready.
    pub(crate) fn wait(&self, ready: &mut Vec<Ready>, timeout_ms: i32) -> io::Result<()> {
        const BATCH: usize = 64;
        #[allow(clippy::cast_possible_truncation)] // 64
        const BATCH_C: libc::c_int = BATCH as libc::c_int;
        // SAFETY: an all-zero `epoll_event` is a valid value of this plain C struct.
        let mut events: [libc::epoll_event; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: `events` is valid for writes of `BATCH` entries.
        let n = match cvt(unsafe {
            libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), BATCH_C, timeout_ms)
        }) {
            Ok(n) => n.unsigned_abs() as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        ready.extend(events[..n].iter().map(|event| Ready {
            token: event.u64,
            hung_up: event.events & (libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0,
        }));
        Ok(())
    }
}

/// `poll(2)` over `fds` (each with its token) for readability, appending
/// what is ready to `ready`. `EINTR` counts as nothing ready.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn poll_tokens(
    fds: &[(std::os::fd::RawFd, u64)],
    ready: &mut Vec<Ready>,
    timeout_ms: i32,
) -> io::Result<()> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, _)| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let count = libc::nfds_t::try_from(pfds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: `pfds` is a valid array of `count` pollfds.
    match cvt(unsafe { libc::poll(pfds.as_mut_ptr(), count, timeout_ms) }) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
        Err(e) => return Err(e),
    }
    ready.extend(
        pfds.iter()
            .zip(fds)
            .filter(|(p, _)| p.revents != 0)
            .map(|(p, &(_, token))| Ready {
                token,
                hung_up: p.revents & libc::POLLHUP != 0,
            }),
    );
    Ok(())
}

/// A descriptor that other threads make readable to wake the waiter: an
/// eventfd on Linux, the read end of a pipe (with its write end) elsewhere.
#[derive(Debug)]
pub(crate) struct Wakeup {
    read: std::os::fd::OwnedFd,
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    write: std::os::fd::OwnedFd,
}

impl Wakeup {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: `eventfd` takes an initial value and flags only.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        let read = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { read })
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) fn new() -> io::Result<Self> {
        let (read, write) = super::pipe_cloexec()?;
        for fd in [&read, &write] {
            // SAFETY: F_SETFL on a descriptor we own has no memory-safety preconditions.
            cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) })?;
        }
        Ok(Self { read, write })
    }

    /// The descriptor to watch.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.read)
    }

    /// The descriptors to close in a forked child.
    pub(crate) fn raw_fds(&self) -> [std::os::fd::RawFd; 2] {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            [self.read.as_raw_fd(), -1]
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            [self.read.as_raw_fd(), self.write.as_raw_fd()]
        }
    }

    /// Makes the descriptor readable. Never blocks (a full counter or pipe
    /// already wakes the waiter).
    pub(crate) fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let fd = self.read.as_raw_fd();
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let fd = self.write.as_raw_fd();
        let _ = retry_eintr(|| {
            // SAFETY: `one` is valid for reads of its length.
            cvt(unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) })
        });
    }

    /// Makes the descriptor unreadable again.
    pub(crate) fn reset(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = retry_eintr(|| {
            // SAFETY: `buf` is valid for writes of its length.
            cvt(unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
        }) {
            if n <= 0 || cfg!(any(target_os = "linux", target_os = "android")) {
                break;
            }
        }
    }
}
