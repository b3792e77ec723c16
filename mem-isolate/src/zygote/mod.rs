//! Zygote (fork-server) mode: calls that cost the same at any parent size
//! and are safe in multi-threaded programs.
//!
//! `fork()` copies the caller's page tables (tens of milliseconds per GiB of
//! resident memory), makes the caller pay a copy-on-write fault on its next
//! write to every page it shared, and in a multi-threaded program leaves
//! every lock another thread held locked forever in the child. Zygote mode
//! avoids all three: [`start`] forks a small single-threaded helper (the
//! zygote) first thing in `main`, and each [`Isolate::call`] asks it for a
//! fresh worker instead of forking the caller.
//!
//! **What changes:** the worker sees the program as it was when [`start`]
//! ran (statics, lazily initialised state, environment, working directory),
//! plus the arguments it is sent, serialized. So only plain functions with
//! serializable arguments can go through it ([`Isolate::call`], or
//! `#[isolated(zygote)]`); closures ([`Isolate::execute`]) keep forking the
//! caller directly. Every option and error keeps its meaning: the timeout,
//! the memory limit (relative to the worker), usage, panics, signals, exit
//! codes.
//!
//! ```
//! fn checksum(data: Vec<u8>) -> u32 {
//!     data.iter().map(|&b| u32::from(b)).sum()
//! }
//!
//! // First thing in `main`, before any thread starts. If it is refused,
//! // calls fork the caller directly, with the same results.
//! match mem_isolate::zygote::start() {
//!     Ok(()) => assert!(mem_isolate::zygote::is_running()),
//!     Err(e) => eprintln!("no zygote ({e}); calls fork directly"),
//! }
//! let sum = mem_isolate::Isolate::new().call(checksum, vec![1, 2, 3])?;
//! assert_eq!(sum, 6);
//! # Ok::<(), mem_isolate::MemIsolateError>(())
//! ```
//!
//! How it works: the zygote holds one end of a `SOCK_SEQPACKET` socket pair
//! and nothing else of the caller's. A call sends one datagram (the
//! function, its serialized arguments, the options) with the write end of
//! its result pipe, a reply socket and, when it captures its output, the
//! write ends of its stdout and stderr pipes attached (`SCM_RIGHTS`); no lock is
//! taken in the caller, so any number of threads call at once. Functions are
//! sent as offsets from an anchor function, and the zygote checks that they
//! land in the program's code before it jumps. The zygote forks a worker,
//! sends back the worker's pidfd, and later its wait status and usage; the
//! caller reads the result from its pipe, watches and kills the worker
//! through the pidfd, and never waits for a process it did not start.
//!
//! Lifetime: the zygote ignores `SIGINT` (a Ctrl-C reaches the caller, and
//! the zygote goes with it; workers keep the caller's disposition), dies with
//! the caller (`PR_SET_PDEATHSIG` from the main thread, and end-of-file on
//! its channel), and its workers die with it. If it dies, the calls in flight
//! fail with [`ZygoteDied`](crate::errors::CallableStatusUnknownError::ZygoteDied)
//! and later calls fork directly (or fail with
//! [`ZygoteUnavailable`](crate::errors::CallableDidNotExecuteError::ZygoteUnavailable)
//! under [`Isolate::require_zygote`]).
//!
//! Linux only (it needs pidfds, Linux 5.3): elsewhere [`start`] returns
//! [`io::ErrorKind::Unsupported`] and calls fork directly.
//!
//! [`Isolate::call`]: crate::Isolate::call
//! [`Isolate::execute`]: crate::Isolate::execute
//! [`Isolate::require_zygote`]: crate::Isolate::require_zygote

#[cfg(any(target_os = "linux", target_os = "android"))]
mod client;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod server;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod wire;

use std::io;

#[cfg(any(target_os = "linux", target_os = "android"))]
use client::{anchor, Entry};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use client::{current, launch, Launch, LaunchOptions, WorkerGuard};

/// The cause behind a call whose zygote died before reporting its worker's end.
#[derive(Debug)]
pub(crate) struct ZygoteDied;

impl std::fmt::Display for ZygoteDied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the zygote died during the call")
    }
}

impl std::error::Error for ZygoteDied {}

/// Starts the zygote. Call it first in `main`, before any thread starts.
///
/// # Errors
///
/// Nothing is started, and calls keep forking the caller directly, when:
/// the process already has other threads or this is not the main thread
/// ([`io::ErrorKind::InvalidInput`]; a thread's locks could be held in the
/// zygote forever), a zygote is already running
/// ([`io::ErrorKind::AlreadyExists`]), the platform has no pidfds
/// ([`io::ErrorKind::Unsupported`]), or creating the channel or forking failed.
///
/// ```
/// // On a thread other than `main`'s, start is refused and nothing changes.
/// let refused = std::thread::spawn(mem_isolate::zygote::start).join().unwrap();
/// assert_eq!(refused.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
/// ```
pub fn start() -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        client::start()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Whether this process started a zygote that is still alive (so
/// [`Isolate::call`](crate::Isolate::call) goes through it). `false` in an
/// isolated child or a worker, which fork directly.
///
/// ```
/// // Nothing started here.
/// assert!(!mem_isolate::zygote::is_running());
/// ```
#[must_use]
pub fn is_running() -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        client::current().is_some()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        false
    }
}

/// In a child forked directly from `parent`: close the channel it
/// inherited (if `parent` started the zygote), so only the program itself
/// can send requests.
pub(crate) fn close_channel_in_child(parent: crate::sys::Pid) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    client::close_channel_in_child(parent);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = parent;
}
