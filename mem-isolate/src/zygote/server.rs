//! The zygote process: a single-threaded copy of the program as it was at
//! [`start`](super::start), serving fork requests until its caller goes away.
//!
//! It holds only its channel and, per call in flight, the worker's pidfd and
//! the reply socket. Each worker is forked from here, closes everything but
//! its result pipe, decodes its arguments and runs the requested function
//! through the crate's child code, writing its frame straight into the
//! caller's pipe (the result never passes through the zygote). The zygote
//! reaps each worker and reports its status and usage to its caller. A
//! worker whose caller hung up is killed at once, unless the caller said it
//! delivered its result first (then it gets a second to exit); a request
//! whose caller has already hung up starts nothing. Since it is single-threaded, the workers it forks may take any
//! lock and allocate freely.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};
use std::time::Instant;

use super::wire::{Reply, Request, INLINE_ARGS_MAX, REQUEST_HEADER_LEN};
use super::{anchor, Entry};
use crate::capture::ChildCapture;
use crate::child::ChildSetup;
use crate::parent::DELIVERED_EXIT_GRACE;
use crate::report::ReportPage;
use crate::sys::{self, Pid};

/// The zygote's first message: it is set up and serving.
pub(super) const READY: &[u8] = b"mem-isolate zygote ready";

struct Worker {
    pid: Pid,
    pidfd: OwnedFd,
    reply: OwnedFd,
    report: Option<ReportPage>,
    /// The caller said the worker delivered its result (it is only exiting).
    delivered: bool,
    /// Set when the caller hung up: the worker is killed if still running
    /// then (at once, unless it delivered).
    kill_after: Option<Instant>,
}

/// Runs the zygote. Never returns.
pub(super) fn serve(channel: OwnedFd, caller: Pid, sigint: libc::sighandler_t) -> ! {
    sys::set_process_name(c"mem-isolate-zyg");
    if sys::die_with_parent(caller).is_err() {
        sys::exit_immediately(1);
    }
    sys::close_all_except(&[channel.as_raw_fd()]);
    let code = sys::executable_ranges().unwrap_or_default();
    // Ready: `start` returns once this arrives.
    if sys::send_with_fds(channel.as_fd(), READY, &[], false).is_err() {
        sys::exit_immediately(1);
    }
    let zygote = Zygote {
        channel,
        pid: sys::current_pid(),
        sigint,
        code,
        workers: Vec::new(),
    };
    zygote.run()
}

struct Zygote {
    channel: OwnedFd,
    pid: Pid,
    /// The caller's `SIGINT` disposition, restored in workers.
    sigint: libc::sighandler_t,
    /// Where code may be: the executable mappings at start.
    code: Vec<(usize, usize)>,
    workers: Vec<Worker>,
}

impl Zygote {
    fn run(mut self) -> ! {
        let mut datagram = vec![0u8; REQUEST_HEADER_LEN + INLINE_ARGS_MAX];
        let mut pollfds = Vec::new();
        loop {
            pollfds.clear();
            pollfds.push(pollfd(self.channel.as_fd()));
            for worker in &self.workers {
                pollfds.push(pollfd(worker.pidfd.as_fd()));
                // A reply socket whose caller hung up stays readable: watch
                // it only until then.
                pollfds.push(libc::pollfd {
                    fd: if worker.kill_after.is_none() {
                        worker.reply.as_raw_fd()
                    } else {
                        -1
                    },
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            let timeout = self.next_kill().map_or(-1, |at| {
                let left = at.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis() + 1).unwrap_or(i32::MAX)
            });
            // SAFETY: `pollfds` is a valid array of pollfds of its length.
            let ready =
                unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, timeout) };
            if ready < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                sys::exit_immediately(1);
            }
            if pollfds[0].revents != 0 {
                self.take_request(&mut datagram);
            }
            let now = Instant::now();
            let mut index = 0;
            self.workers.retain_mut(|worker| {
                let slot = 1 + 2 * index;
                index += 1;
                let (ended, reply_ready) = pollfds
                    .get(slot..slot + 2)
                    .map_or((false, false), |p| (p[0].revents != 0, p[1].revents != 0));
                if reply_ready && worker.kill_after.is_none() && caller_hung_up(worker) {
                    let grace = if worker.delivered {
                        DELIVERED_EXIT_GRACE
                    } else {
                        std::time::Duration::ZERO
                    };
                    worker.kill_after = Some(now + grace);
                }
                if worker.kill_after.is_some_and(|at| now >= at) {
                    let _ = sys::pidfd_kill(worker.pidfd.as_fd());
                }
                !(ended && reap(worker))
            });
        }
    }

    fn next_kill(&self) -> Option<Instant> {
        self.workers.iter().filter_map(|w| w.kill_after).min()
    }

    /// Takes one request off the channel and starts its worker. End of
    /// file: the caller is gone, and so is the zygote (its workers die with
    /// it: `PR_SET_PDEATHSIG`).
    fn take_request(&mut self, datagram: &mut [u8]) {
        let received = match sys::recv_with_fds(self.channel.as_fd(), datagram, true) {
            Ok(received) => received,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => sys::exit_immediately(0),
        };
        if received.len == 0 && received.fds.is_empty() {
            sys::exit_immediately(0);
        }
        let bytes = &datagram[..received.len];
        let fd_count = received.fds.len();
        let mut fds = received.fds.into_iter();
        let (Some(result_pipe), Some(reply)) = (fds.next(), fds.next()) else {
            return; // Nobody to answer: drop what came.
        };
        let valid = (!received.truncated)
            .then(|| Request::decode(bytes))
            .flatten()
            .filter(|(request, _)| request.fd_count() == fd_count);
        let Some((request, inline_args)) = valid else {
            send(reply.as_fd(), &Reply::Rejected, None);
            return;
        };
        let (args_file, capture) = optional_descriptors(&request, fds);
        let (Some(entry), Some(function)) = (
            self.code_at(request.entry_offset),
            self.code_at(request.function_offset),
        ) else {
            send(reply.as_fd(), &Reply::Rejected, None);
            return;
        };
        if sys::wait_readable(reply.as_fd(), Some(Instant::now())).unwrap_or(true) {
            // The caller gave up (timed out) before the worker could start:
            // start nothing.
            return;
        }
        let report = ReportPage::new();
        // SAFETY: the zygote is single-threaded; the worker runs `worker`,
        // which never returns.
        match unsafe { sys::fork() } {
            Err(e) => {
                send(
                    reply.as_fd(),
                    &Reply::ForkFailed {
                        errno: e.raw_os_error().unwrap_or(libc::EAGAIN),
                    },
                    None,
                );
            }
            Ok(sys::ForkResult::Child) => self.worker(
                entry,
                function,
                &request,
                inline_args,
                result_pipe,
                args_file.as_ref(),
                capture,
                report.as_ref(),
            ),
            Ok(sys::ForkResult::Parent { child }) => {
                if let Some(report) = &report {
                    report.keep_out_of_later_forks();
                }
                drop(result_pipe);
                drop(args_file);
                drop(capture);
                let Ok(pidfd) = sys::pidfd_open(child) else {
                    let _ = sys::kill_hard(child);
                    let _ = sys::wait_with_usage(child);
                    send(
                        reply.as_fd(),
                        &Reply::ForkFailed {
                            errno: libc::ENOSYS,
                        },
                        None,
                    );
                    return;
                };
                let told = send(
                    reply.as_fd(),
                    &Reply::Started { pid: child },
                    Some(pidfd.as_fd()),
                );
                if !told {
                    // Nobody waits for this worker.
                    let _ = sys::pidfd_kill(pidfd.as_fd());
                }
                self.workers.push(Worker {
                    pid: child,
                    pidfd,
                    reply,
                    report,
                    delivered: false,
                    kill_after: (!told).then(Instant::now),
                });
            }
        }
    }

    /// The address `offset` names, if it lies in the program's code.
    fn code_at(&self, offset: i64) -> Option<usize> {
        let address =
            (anchor as fn() as usize).checked_add_signed(isize::try_from(offset).ok()?)?;
        self.code
            .iter()
            .any(|&(start, end)| (start..end).contains(&address))
            .then_some(address)
    }

    /// In the worker: keep only what the call needs, then run it.
    #[allow(clippy::too_many_arguments)]
    fn worker(
        &self,
        entry: usize,
        function: usize,
        request: &Request,
        inline_args: &[u8],
        result_pipe: OwnedFd,
        args_file: Option<&OwnedFd>,
        capture: Option<ChildCapture>,
        report: Option<&ReportPage>,
    ) -> ! {
        if sys::die_with_parent(self.pid).is_err() {
            sys::exit_immediately(1);
        }
        sys::restore_sigint(self.sigint);
        let capture_fd = |i: usize| {
            capture
                .as_ref()
                .map_or(-1, |capture| capture.write_ends[i].as_raw_fd())
        };
        let keep = [
            result_pipe.as_raw_fd(),
            args_file.map_or(-1, std::os::fd::AsRawFd::as_raw_fd),
            capture_fd(0),
            capture_fd(1),
        ];
        // The channel, other calls' reply sockets and pidfds: all gone.
        sys::close_all_except(&keep);
        let from_file;
        let args = match args_file {
            Some(file) => {
                let len = usize::try_from(request.args_len).unwrap_or(usize::MAX);
                from_file = sys::read_file_at_start(file.as_fd(), len).unwrap_or_default();
                &from_file[..]
            }
            None => inline_args,
        };
        // SAFETY: `entry` lies in the program's code, and the only process
        // holding the channel (the program that started this zygote, forked
        // from the same image, so with the same addresses) sends the address
        // of an `Entry` there.
        let entry: Entry = unsafe { std::mem::transmute::<usize, Entry>(entry) };
        entry(
            function,
            args,
            ChildSetup {
                read_end: None,
                write_end: result_pipe,
                capture,
                report,
                memory_limit: request.memory_limit,
                parent_pid: self.pid,
            },
        )
    }
}

/// The descriptors after the result pipe and the reply socket, in the
/// order the request's flags say: the arguments' memfd, then the capture
/// pipes' write ends (the count was checked against the flags).
fn optional_descriptors(
    request: &Request,
    mut fds: impl Iterator<Item = OwnedFd>,
) -> (Option<OwnedFd>, Option<ChildCapture>) {
    let args_file = if request.args_in_memfd {
        fds.next()
    } else {
        None
    };
    let capture = match (request.capture_output, fds.next(), fds.next()) {
        (true, Some(stdout), Some(stderr)) => Some(ChildCapture {
            write_ends: [stdout, stderr],
            parent_read_ends: [-1, -1],
        }),
        _ => None,
    };
    (args_file, capture)
}

fn pollfd(fd: BorrowedFd<'_>) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Reaps a worker whose pidfd became readable and tells its caller how it
/// ended; `true` once done.
fn reap(worker: &Worker) -> bool {
    let (status, usage) = match sys::try_wait_with_usage(worker.pid) {
        Ok(Some(ended)) => ended,
        Ok(None) => return false,
        // Gone without a status: the caller sees its reply socket close.
        Err(_) => return true,
    };
    let (failure_code, failure_errno) = worker
        .report
        .as_ref()
        .map_or((0, 0), |report| report.take_raw(worker.pid));
    let micros = |tv: libc::timeval| {
        u64::try_from(sys::timeval_to_duration(tv).as_micros()).unwrap_or(u64::MAX)
    };
    let ended = Reply::Ended {
        status: status.0,
        user_micros: micros(usage.ru_utime),
        system_micros: micros(usage.ru_stime),
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        failure_code,
        failure_errno,
    };
    send(worker.reply.as_fd(), &ended, None);
    true
}

/// Reads what the caller sent on a worker's reply socket: `true` once it
/// hung up. The caller's only message is "delivered" (any byte).
fn caller_hung_up(worker: &mut Worker) -> bool {
    let mut byte = [0u8; 8];
    match sys::recv_with_fds(worker.reply.as_fd(), &mut byte, true) {
        Ok(received) if received.len > 0 => {
            worker.delivered = true;
            false
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        _ => true,
    }
}

/// Best effort, never blocking: a caller that stopped listening is no
/// reason to stall the zygote. Whether it was sent.
fn send(reply: BorrowedFd<'_>, message: &Reply, fd: Option<BorrowedFd<'_>>) -> bool {
    let fds: &[BorrowedFd<'_>] = match &fd {
        Some(fd) => std::slice::from_ref(fd),
        None => &[],
    };
    sys::send_with_fds(reply, &message.encode(), fds, true).is_ok()
}
