//! [`CallReport`]: everything one call can tell, on success and on failure:
//! the result, what the child used, what it printed, where it panicked.

use std::fmt;

use crate::errors::MemIsolateError;
use crate::isolate::ResourceUsage;

/// Everything an isolated call can tell: returned by
/// [`Isolate::execute_report`](crate::Isolate::execute_report) and
/// [`Isolate::call_report`](crate::Isolate::call_report).
///
/// Unlike [`execute_with_usage`](crate::Isolate::execute_with_usage), it
/// reports the child's usage and output when the call *fails* too: a crash,
/// a timeout and a memory-limit hit are when they matter most.
///
/// ```
/// use mem_isolate::Isolate;
///
/// let report = Isolate::new()
///     .capture_output(64 * 1024)
///     .execute_report(|| -> u32 {
///         println!("working on it");
///         panic!("no input")
///     });
/// let err = report.result.unwrap_err();
/// assert_eq!(err.panic_message(), Some("no input"));
/// let output = report.output.unwrap();
/// assert_eq!(output.stdout, b"working on it\n");
/// let location = report.panic_location.unwrap();
/// assert!(location.file.ends_with(".rs"));
/// let usage = report.usage.unwrap(); // the child was reaped by this call
/// assert!(usage.peak_rss_bytes > 0);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct CallReport<T> {
    /// The value, or why there is none: the same as
    /// [`Isolate::execute`](crate::Isolate::execute) returns.
    pub result: Result<T, MemIsolateError>,
    /// What the child used, whenever this call reaped it (on success and
    /// on a panic, a crash, a timeout or a memory-limit hit). `None` when
    /// no child was started, or its status could not be had (for example
    /// with `SIGCHLD` ignored the kernel reaps it and its usage is lost).
    pub usage: Option<ResourceUsage>,
    /// What the child wrote to its stdout and stderr, with
    /// [`Isolate::capture_output`](crate::Isolate::capture_output) (`None`
    /// without it, or when no child was started).
    pub output: Option<CapturedOutput>,
    /// Where the callable panicked, when
    /// [`CallablePanicked`](crate::errors::CallableExecutedError::CallablePanicked)
    /// is the error and the panicking thread was the one running the
    /// callable.
    pub panic_location: Option<PanicLocation>,
}

/// What an isolated child wrote to its stdout (descriptor 1) and stderr
/// (descriptor 2), whoever wrote it: Rust's `print!`, C's `printf` and
/// `fprintf(stderr, ...)`, a panic message, a program it ran. See
/// [`Isolate::capture_output`](crate::Isolate::capture_output).
///
/// ```
/// use mem_isolate::Isolate;
///
/// let report = Isolate::new().capture_output(4).execute_report(|| eprint!("too long"));
/// let output = report.output.unwrap();
/// assert_eq!(output.stderr, b"too ");
/// assert!(output.stderr_truncated && !output.stdout_truncated);
/// assert_eq!(output.stderr_lossy(), "too ");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CapturedOutput {
    /// The first bytes written to stdout, at most the configured maximum.
    pub stdout: Vec<u8>,
    /// The first bytes written to stderr, at most the configured maximum.
    pub stderr: Vec<u8>,
    /// More was written to stdout than was kept.
    pub stdout_truncated: bool,
    /// More was written to stderr than was kept.
    pub stderr_truncated: bool,
}

impl CapturedOutput {
    /// [`stdout`](Self::stdout) as text (invalid UTF-8 replaced).
    ///
    /// ```
    /// let report = mem_isolate::Isolate::new().capture_output(1024).execute_report(|| print!("hi"));
    /// assert_eq!(report.output.unwrap().stdout_lossy(), "hi");
    /// ```
    #[must_use]
    pub fn stdout_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    /// [`stderr`](Self::stderr) as text (invalid UTF-8 replaced).
    ///
    /// ```
    /// let report = mem_isolate::Isolate::new().capture_output(1024).execute_report(|| eprint!("oops"));
    /// assert_eq!(report.output.unwrap().stderr_lossy(), "oops");
    /// ```
    #[must_use]
    pub fn stderr_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }
}

/// Where a callable panicked, as the panic hook saw it in the child.
/// Displays as `file:line:column`.
///
/// ```
/// let report = mem_isolate::Isolate::new().execute_report(|| -> u8 { panic!("boom") });
/// let location = report.panic_location.unwrap();
/// assert_eq!(location.to_string(), format!("{}:{}:{}", location.file, location.line, location.column));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PanicLocation {
    /// The source file, as the compiler names it.
    pub file: String,
    /// The line, from 1.
    pub line: u32,
    /// The column, from 1.
    pub column: u32,
}

impl fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}
