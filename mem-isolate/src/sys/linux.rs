//! Linux-only wrappers for the zygote: `SOCK_SEQPACKET` sockets that carry
//! descriptors (`SCM_RIGHTS`), `memfd`, closing every other descriptor, and
//! questions about the process's threads. Same rules as the parent module:
//! `-1` becomes [`io::Error`], `EINTR` is retried, nothing allocates.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::{cvt, retry_eintr};

/// Most descriptors one message carries.
pub(crate) const MAX_FDS: usize = 6;

/// A connected pair of `SOCK_SEQPACKET` Unix sockets (close-on-exec): each
/// `send` is one message, delivered whole or not at all, never merged.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid, writable array of two descriptors.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: the kernel just returned these two descriptors and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Room for the control message of [`MAX_FDS`] descriptors, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct ControlBuffer([u8; 64]);

/// Sends one message with `fds` attached. Never blocks when `nonblocking`
/// (`EAGAIN` instead), and never raises `SIGPIPE` (`EPIPE` instead).
pub(crate) fn send_with_fds(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    nonblocking: bool,
) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS);
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let mut control = ControlBuffer([0; 64]);
    // SAFETY: an all-zero `msghdr` is a valid value of this plain C struct.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = u32::try_from(std::mem::size_of_val(fds)).unwrap_or(u32::MAX);
        // SAFETY: CMSG_SPACE is arithmetic.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: `msg` points at `control`, big enough for one header and
        // `MAX_FDS` descriptors, so the first header and its data are in bounds.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&raw const msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(data_len) as _;
            let data = libc::CMSG_DATA(header);
            for (i, fd) in fds.iter().enumerate() {
                let bytes = fd.as_raw_fd().to_ne_bytes();
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    data.add(i * bytes.len()),
                    bytes.len(),
                );
            }
        }
    }
    let flags = libc::MSG_NOSIGNAL | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    let sent = retry_eintr(|| {
        // SAFETY: `msg` describes valid buffers for the duration of the call.
        cvt(unsafe { libc::sendmsg(socket.as_raw_fd(), &raw const msg, flags) })
    })?;
    if sent.unsigned_abs() == bytes.len() {
        Ok(())
    } else {
        Err(io::ErrorKind::WriteZero.into())
    }
}

/// One received message: its length, and the descriptors that came with it
/// (owned: closed on drop unless taken). `len == 0`: the peer hung up.
#[derive(Debug, Default)]
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) fds: Vec<OwnedFd>,
    /// The message did not fit in the buffer (it is cut).
    pub(crate) truncated: bool,
}

/// Receives one message into `buf`, taking ownership of every descriptor
/// that came with it (close-on-exec), so none leaks whatever the message says.
pub(crate) fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    nonblocking: bool,
) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = ControlBuffer([0; 64]);
    // SAFETY: an all-zero `msghdr` is a valid value of this plain C struct.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    let flags = libc::MSG_CMSG_CLOEXEC | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    let n = retry_eintr(|| {
        // SAFETY: `msg` describes valid, writable buffers for the duration of the call.
        cvt(unsafe { libc::recvmsg(socket.as_raw_fd(), &raw mut msg, flags) })
    })?;
    let mut received = Received {
        len: n.unsigned_abs(),
        fds: Vec::new(),
        truncated: msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0,
    };
    // SAFETY: the kernel filled `msg.msg_control` with well-formed headers
    // within `msg_controllen`; the CMSG_* macros walk them within bounds.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&raw const msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header);
                let data_len = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let mut bytes = [0u8; std::mem::size_of::<RawFd>()];
                for i in 0..data_len / bytes.len() {
                    std::ptr::copy_nonoverlapping(
                        data.add(i * bytes.len()),
                        bytes.as_mut_ptr(),
                        bytes.len(),
                    );
                    // The kernel installed these descriptors for us: we own them.
                    received
                        .fds
                        .push(OwnedFd::from_raw_fd(RawFd::from_ne_bytes(bytes)));
                }
            }
            header = libc::CMSG_NXTHDR(&raw const msg, header);
        }
    }
    Ok(received)
}

/// An anonymous memory file (close-on-exec) holding `bytes`, for data too
/// big for one message.
pub(crate) fn memfd_with(bytes: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: the name is a valid NUL-terminated string.
    let fd = cvt(unsafe { libc::memfd_create(c"mem-isolate-args".as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    super::write_all(std::os::fd::AsFd::as_fd(&fd), bytes)?;
    Ok(fd)
}

/// Reads exactly `len` bytes from the start of `fd` (a memfd) into a new `Vec`.
pub(crate) fn read_file_at_start(fd: BorrowedFd<'_>, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(len)
        .map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))?;
    let spare = &mut buf.spare_capacity_mut()[..len];
    let mut filled = 0;
    while filled < len {
        let rest = &mut spare[filled..];
        let offset = libc::off_t::try_from(filled).map_err(|_| io::ErrorKind::InvalidInput)?;
        let n = retry_eintr(|| {
            // SAFETY: `rest` is valid for writes of its length.
            cvt(unsafe {
                libc::pread(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len(), offset)
            })
        })?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n.unsigned_abs();
    }
    // SAFETY: the first `len` bytes were written by `pread`.
    unsafe { buf.set_len(len) };
    Ok(buf)
}

/// Closes every descriptor of this process except 0, 1, 2 and `keep`.
pub(crate) fn close_all_except(keep: &[RawFd]) {
    let mut keep: [RawFd; MAX_FDS] = {
        let mut k = [-1; MAX_FDS];
        for (slot, fd) in k.iter_mut().zip(keep) {
            *slot = *fd;
        }
        k
    };
    keep.sort_unstable();
    let mut from: RawFd = 3;
    for &fd in keep.iter().filter(|fd| **fd >= 3) {
        if fd > from {
            close_range(from, fd - 1);
        }
        from = from.max(fd + 1);
    }
    close_range(from, RawFd::MAX);
}

fn close_range(first: RawFd, last: RawFd) {
    // SAFETY: closing descriptors has no memory-safety preconditions; the
    // caller owns every descriptor in the range.
    let done = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) } == 0;
    if !done {
        // Kernels before 5.9: close one by one up to the descriptor limit.
        // SAFETY: `sysconf` has no memory-safety preconditions.
        let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
        let end = RawFd::try_from(max).unwrap_or(1 << 16).min(last);
        for fd in first..=end {
            // SAFETY: as above; EBADF for a closed slot is fine.
            unsafe { libc::close(fd) };
        }
    }
}

/// How many threads this process has (`/proc/self/task`, counted without
/// allocating by reading `Threads:` from `/proc/self/status`).
pub(crate) fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// Whether the calling thread is the process's main thread.
pub(crate) fn is_main_thread() -> bool {
    // SAFETY: `gettid` has no preconditions and cannot fail.
    unsafe { libc::gettid() == libc::getpid() }
}

/// Ignores `SIGINT` in this process, returning the disposition it had.
pub(crate) fn ignore_sigint() -> io::Result<libc::sighandler_t> {
    // SAFETY: SIG_IGN is a valid disposition.
    let old = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    if old == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(old)
    }
}

/// Puts back a `SIGINT` disposition that [`ignore_sigint`] returned.
pub(crate) fn restore_sigint(disposition: libc::sighandler_t) {
    // SAFETY: the disposition is one this process had before.
    unsafe { libc::signal(libc::SIGINT, disposition) };
}

/// Names the process for `ps` and `top` (`PR_SET_NAME`, 15 bytes at most).
pub(crate) fn set_process_name(name: &std::ffi::CStr) {
    // SAFETY: `name` is a valid NUL-terminated string.
    let _ = unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
}

/// The executable mappings of this process (`r-xp` lines of
/// `/proc/self/maps`), as address ranges.
pub(crate) fn executable_ranges() -> io::Result<Vec<(usize, usize)>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    Ok(maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            if !perms.starts_with("r-x") {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect())
}
