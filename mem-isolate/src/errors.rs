//! The error taxonomy: what happened to the callable, which step failed, and
//! the OS error behind it.
//!
//! [`MemIsolateError`] has exactly three variants, one per answer to "did the
//! callable run?". The set is closed, so a `match` with three arms and no
//! wildcard (the pattern taught by mem-isolate 0.1.6) keeps compiling. The
//! inner enums are `#[non_exhaustive]`: new causes can be added to them.
//!
//! Every level is reachable through [`std::error::Error::source`]: an error
//! reporter that walks the chain prints the level, then the step, then the OS
//! error, each once.
//!
//! | level | meaning | retry? |
//! | --- | --- | --- |
//! | [`CallableDidNotExecute`](MemIsolateError::CallableDidNotExecute) | the callable never started | always safe |
//! | [`CallableExecuted`](MemIsolateError::CallableExecuted) | the callable ran (to completion or to a panic) | only if it is idempotent |
//! | [`CallableStatusUnknown`](MemIsolateError::CallableStatusUnknown) | the child died, timed out or could not be observed | only if it is idempotent |
//!
//! ```
//! use mem_isolate::{execute_in_isolated_process, MemIsolateError};
//!
//! match execute_in_isolated_process(|| 6 * 7) {
//!     Ok(v) => assert_eq!(v, 42),
//!     Err(MemIsolateError::CallableDidNotExecute(e)) => eprintln!("safe to retry: {e}"),
//!     Err(MemIsolateError::CallableExecuted(e)) => eprintln!("ran, then failed: {e}"),
//!     Err(MemIsolateError::CallableStatusUnknown(e)) => eprintln!("unknown: {e}"),
//! }
//! ```

use std::io;
use std::time::Duration;

use thiserror::Error;

/// Why an isolated call failed, grouped by whether the callable ran.
///
/// Not `#[non_exhaustive]` on purpose: these three answers are the whole
/// question, and code written for mem-isolate 0.1.6 matches them exhaustively.
///
/// ```
/// use mem_isolate::{execute_in_isolated_process, MemIsolateError};
///
/// let err = execute_in_isolated_process(|| -> u8 { std::process::abort() }).unwrap_err();
/// assert!(matches!(err, MemIsolateError::CallableStatusUnknown(_)));
/// // The inner level says why, and names the signal.
/// let inner = std::error::Error::source(&err).unwrap();
/// assert!(inner.to_string().contains("SIGABRT"));
/// ```
#[derive(Debug, Error)]
pub enum MemIsolateError {
    /// The callable never started; retrying is always safe.
    #[error("the callable did not execute")]
    CallableDidNotExecute(#[source] CallableDidNotExecuteError),
    /// The callable ran (to its end or to a panic), but no value came back.
    #[error("the callable executed, but its result could not be returned")]
    CallableExecuted(#[source] CallableExecutedError),
    /// The child died, timed out or could not be observed: the callable may
    /// or may not have run, in part or in whole.
    #[error("the callable may or may not have executed")]
    CallableStatusUnknown(#[source] CallableStatusUnknownError),
}

impl MemIsolateError {
    /// Whether retrying the same call can be done without running the
    /// callable twice: true only for [`MemIsolateError::CallableDidNotExecute`].
    ///
    /// ```
    /// use mem_isolate::errors::{CallableDidNotExecuteError, MemIsolateError};
    /// use std::io;
    ///
    /// let e = MemIsolateError::CallableDidNotExecute(CallableDidNotExecuteError::ForkFailed(
    ///     io::Error::from_raw_os_error(libc::EAGAIN),
    /// ));
    /// assert!(e.is_safe_to_retry());
    /// ```
    #[must_use]
    pub fn is_safe_to_retry(&self) -> bool {
        matches!(self, Self::CallableDidNotExecute(_))
    }
}

/// A step before the callable started failed.
///
/// ```
/// use mem_isolate::errors::CallableDidNotExecuteError;
///
/// let e = CallableDidNotExecuteError::ForkFailed(std::io::Error::from_raw_os_error(libc::EAGAIN));
/// assert_eq!(e.to_string(), "failed to fork the child process");
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CallableDidNotExecuteError {
    /// `pipe2` failed, usually because the process is out of descriptors
    /// (`EMFILE`).
    #[error("failed to create the result pipe")]
    PipeCreationFailed(#[source] io::Error),
    /// `fork` failed (`EAGAIN`: process limit, `ENOMEM`: no memory for the
    /// child's page tables).
    #[error("failed to fork the child process")]
    ForkFailed(#[source] io::Error),
    /// The child could not close its copy of the pipe's read end.
    #[error("the child failed to close the read end of the result pipe")]
    ChildPipeCloseFailed(#[source] Option<io::Error>),
    /// The child could not apply the memory limit (`setrlimit` failed).
    #[error("the child failed to apply the memory limit")]
    MemoryLimitSetupFailed(#[source] io::Error),
    /// [`Isolate::call`](crate::Isolate::call) could not serialize the
    /// arguments to send them to the zygote.
    #[error("failed to serialize the arguments for the zygote: {0}")]
    ArgumentSerializationFailed(String),
    /// [`Isolate::require_zygote`](crate::Isolate::require_zygote) is set and
    /// no zygote could take the call.
    #[error("no zygote could take the call")]
    ZygoteUnavailable(#[source] io::Error),
}

/// The callable ran, but its value could not be delivered.
///
/// ```
/// use mem_isolate::{errors::CallableExecutedError, execute_in_isolated_process, MemIsolateError};
///
/// let err = execute_in_isolated_process(|| -> u8 { panic!("no input") }).unwrap_err();
/// let MemIsolateError::CallableExecuted(CallableExecutedError::CallablePanicked(message)) = err else {
///     panic!("expected a panic");
/// };
/// assert_eq!(message, "no input");
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CallableExecutedError {
    /// The value's `Serialize` implementation failed in the child.
    #[error("failed to serialize the result in the child: {0}")]
    SerializationFailed(String),
    /// The bytes that arrived could not be decoded as the result type.
    #[error("failed to deserialize the result in the parent: {0}")]
    DeserializationFailed(String),
    /// The child could not write its result to the pipe.
    #[error("the child failed to write its result to the pipe")]
    ChildPipeWriteFailed(#[source] Option<io::Error>),
    /// The callable panicked; the panic message (or a description of a
    /// non-string payload) is carried back.
    #[error("the callable panicked: {0}")]
    CallablePanicked(String),
    /// The child's result was larger than [`Isolate::max_result_size`](crate::Isolate::max_result_size).
    #[error("the result is larger than the limit of {limit} bytes")]
    ResultTooLarge {
        /// The configured limit in bytes.
        limit: u64,
    },
    /// The parent could not allocate room for the result's bytes (for
    /// example under its own `RLIMIT_AS`); the child was killed.
    #[error("the parent could not allocate {bytes} bytes to receive the result")]
    ResultAllocationFailed {
        /// The size of the allocation that failed.
        bytes: u64,
    },
}

/// The child ended, or could not be observed, without delivering a result.
///
/// ```
/// use mem_isolate::{errors::CallableStatusUnknownError, execute_in_isolated_process, MemIsolateError};
///
/// let err = execute_in_isolated_process(|| -> u8 { std::process::exit(3) }).unwrap_err();
/// assert!(matches!(
///     err,
///     MemIsolateError::CallableStatusUnknown(CallableStatusUnknownError::UnexpectedChildExitStatus(3))
/// ));
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CallableStatusUnknownError {
    /// Closing the parent's copy of the pipe failed.
    #[error("failed to close the parent's end of the result pipe")]
    ParentPipeCloseFailed(#[source] io::Error),
    /// `waitpid`/`wait4` failed (for example `ECHILD` when `SIGCHLD` is
    /// ignored and the kernel reaped the child itself).
    #[error("failed to wait for the child process")]
    WaitFailed(#[source] io::Error),
    /// Reading the result pipe failed.
    #[error("failed to read the result pipe")]
    ParentPipeReadFailed(#[source] io::Error),
    /// The child exited with status 0 without sending a result (the callable
    /// called `exit(0)`, or a frame arrived truncated).
    #[error("the child process died during execution without sending a result")]
    CallableProcessDiedDuringExecution,
    /// The child exited with a non-zero status without sending a result
    /// (the callable called `exit(n)`).
    #[error("the child process exited with unexpected status {0}")]
    UnexpectedChildExitStatus(i32),
    /// The child was killed by a signal (`SIGSEGV`, `SIGABRT`, ...) before it
    /// sent a result. Under a memory limit, `SIGABRT` is what an allocation
    /// failure looks like.
    #[error("the child process was killed by signal {name} ({0})", name = crate::signal_name(*.0))]
    ChildProcessKilledBySignal(i32),
    /// An allocation failed in the child while a
    /// [`memory_limit`](crate::Isolate::memory_limit) was in force, and the
    /// child aborted (Rust's reaction to allocation failure). Told apart from
    /// other aborts by `errno == ENOMEM` at the moment of the abort; an abort
    /// without it stays
    /// [`ChildProcessKilledBySignal(SIGABRT)`](Self::ChildProcessKilledBySignal).
    #[error("the child ran out of memory under its memory limit of {limit} bytes and aborted")]
    MemoryLimitExceeded {
        /// The configured limit in bytes.
        limit: u64,
    },
    /// The zygote died while the call was in flight (its worker died with
    /// it). Later calls fork directly, or fail with
    /// [`ZygoteUnavailable`](CallableDidNotExecuteError::ZygoteUnavailable)
    /// under [`Isolate::require_zygote`](crate::Isolate::require_zygote).
    #[error("the zygote died during the call")]
    ZygoteDied,
    /// `waitpid` returned something that is neither an exit nor a signal.
    #[error("waitpid returned an unexpected value: {0}")]
    UnexpectedWaitpidReturnValue(i32),
    /// The child ran past the configured timeout and was killed with
    /// `SIGKILL` and reaped.
    #[error("the callable timed out after {0:?}")]
    TimedOut(Duration),
}
