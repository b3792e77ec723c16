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
//! error, each once. For a log line, [`MemIsolateError::report`] (or `{:#}`)
//! prints the whole chain on one line, and accessors answer the usual
//! questions without a `match`: [`is_safe_to_retry`](MemIsolateError::is_safe_to_retry),
//! [`is_timeout`](MemIsolateError::is_timeout),
//! [`signal`](MemIsolateError::signal), [`exit_code`](MemIsolateError::exit_code),
//! [`panic_message`](MemIsolateError::panic_message).
//!
//! ```
//! use mem_isolate::Isolate;
//! use std::time::Duration;
//!
//! let err = Isolate::new()
//!     .timeout(Duration::from_millis(50))
//!     .execute(|| std::thread::sleep(Duration::from_secs(60)))
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "the callable may or may not have executed");
//! assert_eq!(
//!     format!("{:#}", err),
//!     "the callable may or may not have executed: the callable timed out after 50ms"
//! );
//! assert_eq!(err.report().to_string(), format!("{err:#}"));
//! assert!(err.is_timeout() && !err.is_safe_to_retry());
//! ```
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

use std::error::Error as _;
use std::fmt;
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
///
/// `{}` prints this level only (each level is reachable through
/// [`source`](std::error::Error::source)); `{:#}` and [`report`](Self::report)
/// print the whole chain on one line.
#[derive(Debug, Error)]
pub enum MemIsolateError {
    /// The callable never started; retrying is always safe.
    CallableDidNotExecute(#[source] CallableDidNotExecuteError),
    /// The callable ran (to its end or to a panic), but no value came back.
    CallableExecuted(#[source] CallableExecutedError),
    /// The child died, timed out or could not be observed: the callable may
    /// or may not have run, in part or in whole.
    CallableStatusUnknown(#[source] CallableStatusUnknownError),
}

impl fmt::Display for MemIsolateError {
    /// This level's text; with `{:#}`, the whole chain (see [`Self::report`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CallableDidNotExecute(_) => "the callable did not execute",
            Self::CallableExecuted(_) => {
                "the callable executed, but its result could not be returned"
            }
            Self::CallableStatusUnknown(_) => "the callable may or may not have executed",
        })?;
        if f.alternate() {
            let mut cause = self.source();
            while let Some(error) = cause {
                fmt::Write::write_fmt(&mut OneLine(f), format_args!(": {error}"))?;
                cause = error.source();
            }
        }
        Ok(())
    }
}

/// Writes through to a formatter with control characters escaped as
/// `escape_debug` does (`\n`, `\r`, `\u{1b}`): a panic message (an
/// `assert_eq!` failure spans three lines) or a callable's text must not
/// break the one line of `{:#}` into several, or forge log lines.
struct OneLine<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for OneLine<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for part in s.split_inclusive(char::is_control) {
            let mut chars = part.chars();
            match chars.next_back() {
                Some(last) if last.is_control() => {
                    self.0.write_str(chars.as_str())?;
                    write!(self.0, "{}", last.escape_debug())?;
                }
                _ => self.0.write_str(part)?,
            }
        }
        Ok(())
    }
}

/// The whole chain of a [`MemIsolateError`] on one line, each level once,
/// separated by `": "`: what [`MemIsolateError::report`] returns. Control
/// characters in the chain (the line breaks of a multi-line panic message)
/// are escaped as `\n`, `\r`, `\u{1b}`;
/// [`panic_message`](MemIsolateError::panic_message) has the text as it was.
///
/// ```
/// use mem_isolate::execute_in_isolated_process;
///
/// let err = execute_in_isolated_process(|| -> u8 { std::process::exit(3) }).unwrap_err();
/// assert_eq!(
///     err.report().to_string(),
///     "the callable may or may not have executed: the child process exited with unexpected status 3"
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ErrorReport<'a>(&'a MemIsolateError);

impl fmt::Display for ErrorReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
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

    /// The whole chain on one line, for logs: `"the callable may or may
    /// not have executed: the child process was killed by signal SIGSEGV
    /// (11)"`. The same as `{:#}`. (`{}` prints the first level only, as
    /// `std` errors do, so reporters that walk
    /// [`source`](std::error::Error::source) show each level once.)
    ///
    /// ```
    /// use mem_isolate::execute_in_isolated_process;
    ///
    /// let err = execute_in_isolated_process(|| -> u8 { panic!("bad input") }).unwrap_err();
    /// assert_eq!(
    ///     err.report().to_string(),
    ///     "the callable executed, but its result could not be returned: the callable panicked: bad input"
    /// );
    /// ```
    #[must_use]
    pub fn report(&self) -> ErrorReport<'_> {
        ErrorReport(self)
    }

    /// Whether the child ran past the [timeout](crate::Isolate::timeout)
    /// and was killed.
    ///
    /// ```
    /// use mem_isolate::Isolate;
    /// use std::time::Duration;
    ///
    /// let err = Isolate::new()
    ///     .timeout(Duration::from_millis(20))
    ///     .execute(|| std::thread::sleep(Duration::from_secs(60)))
    ///     .unwrap_err();
    /// assert!(err.is_timeout());
    /// ```
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::CallableStatusUnknown(CallableStatusUnknownError::TimedOut(_))
        )
    }

    /// Whether an allocation failed under the
    /// [memory limit](crate::Isolate::memory_limit) and the child aborted
    /// ([`MemoryLimitExceeded`](CallableStatusUnknownError::MemoryLimitExceeded)).
    ///
    /// ```
    /// let err = mem_isolate::Isolate::new()
    ///     .memory_limit(16 << 20)
    ///     .execute(|| vec![1u8; 1 << 30].len())
    ///     .unwrap_err();
    /// # // Under RUST_BACKTRACE the cause is hidden (see `memory_limit`).
    /// # if std::env::var_os("RUST_BACKTRACE").is_none() {
    /// assert!(err.is_memory_limit_exceeded());
    /// # }
    /// ```
    #[must_use]
    pub fn is_memory_limit_exceeded(&self) -> bool {
        matches!(
            self,
            Self::CallableStatusUnknown(CallableStatusUnknownError::MemoryLimitExceeded { .. })
        )
    }

    /// The signal that killed the child before it sent a result
    /// ([`ChildProcessKilledBySignal`](CallableStatusUnknownError::ChildProcessKilledBySignal)),
    /// with its name. `None` for every other error, including a
    /// [timeout](Self::is_timeout) (the crate's own `SIGKILL`) and a
    /// [memory-limit hit](Self::is_memory_limit_exceeded) (an abort it
    /// recognised).
    ///
    /// ```
    /// let err = mem_isolate::execute_in_isolated_process(|| -> u8 { std::process::abort() })
    ///     .unwrap_err();
    /// let signal = err.signal().unwrap();
    /// assert_eq!(signal.number(), libc::SIGABRT);
    /// assert_eq!(signal.name(), "SIGABRT");
    /// ```
    #[must_use]
    pub fn signal(&self) -> Option<Signal> {
        match self {
            Self::CallableStatusUnknown(
                CallableStatusUnknownError::ChildProcessKilledBySignal(signo),
            ) => Some(Signal(*signo)),
            _ => None,
        }
    }

    /// The child's exit status, when it exited without sending a result: the
    /// callable called `exit(n)`
    /// ([`UnexpectedChildExitStatus`](CallableStatusUnknownError::UnexpectedChildExitStatus)),
    /// or `0` for
    /// [`CallableProcessDiedDuringExecution`](CallableStatusUnknownError::CallableProcessDiedDuringExecution).
    ///
    /// ```
    /// let err = mem_isolate::execute_in_isolated_process(|| -> u8 { std::process::exit(3) })
    ///     .unwrap_err();
    /// assert_eq!(err.exit_code(), Some(3));
    /// ```
    #[must_use]
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Self::CallableStatusUnknown(CallableStatusUnknownError::UnexpectedChildExitStatus(
                code,
            )) => Some(*code),
            Self::CallableStatusUnknown(
                CallableStatusUnknownError::CallableProcessDiedDuringExecution,
            ) => Some(0),
            _ => None,
        }
    }

    /// The panic message, when the callable panicked
    /// ([`CallablePanicked`](CallableExecutedError::CallablePanicked)).
    /// Where it panicked is in [`CallReport::panic_location`](crate::CallReport::panic_location).
    ///
    /// ```
    /// let err = mem_isolate::execute_in_isolated_process(|| -> u8 { panic!("no input") })
    ///     .unwrap_err();
    /// assert_eq!(err.panic_message(), Some("no input"));
    /// ```
    #[must_use]
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            Self::CallableExecuted(CallableExecutedError::CallablePanicked(message)) => {
                Some(message)
            }
            _ => None,
        }
    }
}

/// A signal number with its conventional name: what
/// [`MemIsolateError::signal`] returns. Displays as `SIGSEGV (11)`.
///
/// ```
/// use mem_isolate::Signal;
///
/// let signal = Signal::from_number(libc::SIGSEGV);
/// assert_eq!(signal.name(), "SIGSEGV");
/// assert_eq!(signal.to_string(), format!("SIGSEGV ({})", libc::SIGSEGV));
/// assert_eq!(format!("{signal:?}"), format!("Signal({} /* SIGSEGV */)", libc::SIGSEGV));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    /// The signal numbered `signo` on this platform.
    ///
    /// ```
    /// assert_eq!(mem_isolate::Signal::from_number(libc::SIGKILL).number(), libc::SIGKILL);
    /// ```
    #[must_use]
    pub const fn from_number(signo: i32) -> Self {
        Self(signo)
    }

    /// The signal's number.
    ///
    /// ```
    /// assert_eq!(mem_isolate::Signal::from_number(9).number(), 9);
    /// ```
    #[must_use]
    pub const fn number(self) -> i32 {
        self.0
    }

    /// The conventional name (`"SIGSEGV"`), or `"unknown signal"`: see
    /// [`signal_name`](crate::signal_name).
    ///
    /// ```
    /// assert_eq!(mem_isolate::Signal::from_number(libc::SIGABRT).name(), "SIGABRT");
    /// ```
    #[must_use]
    pub fn name(self) -> &'static str {
        crate::signal_name(self.0)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signal({} /* {} */)", self.0, self.name())
    }
}

/// A signal number that prints its name in `Debug`.
struct SignalNumber(i32);

impl fmt::Debug for SignalNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} /* {} */", self.0, crate::signal_name(self.0))
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
///
/// Its `Debug` names the signal of
/// [`ChildProcessKilledBySignal`](Self::ChildProcessKilledBySignal):
/// `ChildProcessKilledBySignal(11 /* SIGSEGV */)`.
#[derive(Error)]
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

impl fmt::Debug for CallableStatusUnknownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ParentPipeCloseFailed(e) => {
                f.debug_tuple("ParentPipeCloseFailed").field(e).finish()
            }
            Self::WaitFailed(e) => f.debug_tuple("WaitFailed").field(e).finish(),
            Self::ParentPipeReadFailed(e) => {
                f.debug_tuple("ParentPipeReadFailed").field(e).finish()
            }
            Self::CallableProcessDiedDuringExecution => {
                f.write_str("CallableProcessDiedDuringExecution")
            }
            Self::UnexpectedChildExitStatus(code) => f
                .debug_tuple("UnexpectedChildExitStatus")
                .field(code)
                .finish(),
            Self::ChildProcessKilledBySignal(signo) => f
                .debug_tuple("ChildProcessKilledBySignal")
                .field(&SignalNumber(*signo))
                .finish(),
            Self::MemoryLimitExceeded { limit } => f
                .debug_struct("MemoryLimitExceeded")
                .field("limit", limit)
                .finish(),
            Self::ZygoteDied => f.write_str("ZygoteDied"),
            Self::UnexpectedWaitpidReturnValue(status) => f
                .debug_tuple("UnexpectedWaitpidReturnValue")
                .field(status)
                .finish(),
            Self::TimedOut(limit) => f.debug_tuple("TimedOut").field(limit).finish(),
        }
    }
}
