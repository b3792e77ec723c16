//! [`Isolate`]: the options of an isolated call, and the call itself.

use std::future::Future;
use std::os::fd::{AsFd as _, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::call_report::{CallReport, CapturedOutput, PanicLocation};
use crate::capture::{self, Capture};
use crate::child::{self, ChildSetup};
use crate::errors::{
    CallableDidNotExecuteError as DidNotExecute, CallableExecutedError as Executed,
    CallableStatusUnknownError as StatusUnknown, MemIsolateError,
};
use crate::fork_section::ForkSection;
use crate::frame::{Frame, FrameError, FrameKind};
use crate::panic_hook;
use crate::parent::{self, Child, ChildGuard, Ending, Reaped, Received};
use crate::report::{ChildFailure, ReportPage};
use crate::sys;
use crate::trace::debug;
use crate::wait::AnyChild;

/// The default of [`Isolate::max_result_size`]: 1 GiB.
///
/// ```
/// assert_eq!(mem_isolate::DEFAULT_MAX_RESULT_SIZE, 1 << 30);
/// ```
pub const DEFAULT_MAX_RESULT_SIZE: u64 = 1 << 30;

/// Options for isolated calls; one `Isolate` can serve any number of calls,
/// from any number of threads.
///
/// ```
/// use mem_isolate::Isolate;
/// use std::time::Duration;
///
/// let isolate = Isolate::new()
///     .timeout(Duration::from_secs(5))
///     .memory_limit(256 << 20);
/// let sum: u64 = isolate.execute(|| (1..=100u64).sum())?;
/// assert_eq!(sum, 5050);
/// # Ok::<(), mem_isolate::MemIsolateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolate {
    timeout: Option<Duration>,
    memory_limit: Option<u64>,
    max_result_size: u64,
    require_zygote: bool,
    capture_output: Option<u64>,
}

impl Default for Isolate {
    fn default() -> Self {
        Self::new()
    }
}

/// What the child used, from the kernel's accounting (`wait4`).
///
/// ```
/// let (v, usage) = mem_isolate::Isolate::new().execute_with_usage(|| vec![1u8; 32 << 20].len())?;
/// assert_eq!(v, 32 << 20);
/// assert!(usage.peak_rss_bytes >= 32 << 20);
/// # Ok::<(), mem_isolate::MemIsolateError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceUsage {
    /// The child's peak resident set size. It counts pages the child shares
    /// with the parent (inherited at `fork`, copy-on-write) as soon as the
    /// child touches them, so it is not only what the callable allocated.
    pub peak_rss_bytes: u64,
    /// CPU time the child spent in user mode.
    pub user_cpu: Duration,
    /// CPU time the child spent in the kernel (including its `fork` setup and exit).
    pub system_cpu: Duration,
    /// Wall-clock time from just before `fork` until the child was reaped.
    pub wall: Duration,
}

impl Isolate {
    /// No timeout, no memory limit, results up to [`DEFAULT_MAX_RESULT_SIZE`].
    ///
    /// ```
    /// assert_eq!(mem_isolate::Isolate::new().execute(|| 1 + 1)?, 2);
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        Self {
            timeout: None,
            memory_limit: None,
            max_result_size: DEFAULT_MAX_RESULT_SIZE,
            require_zygote: false,
            capture_output: None,
        }
    }

    /// Wall-clock limit on the child. When it passes, the child gets
    /// `SIGKILL`, is reaped, and the call returns
    /// [`TimedOut`](crate::errors::CallableStatusUnknownError::TimedOut)
    /// within a few milliseconds of the limit. The blocking calls decode a
    /// big result while it arrives, so for them the limit also covers
    /// decoding it (a result that takes longer than the limit to decode
    /// times out; a child cannot stretch the limit by sending bytes that
    /// are slow to decode). The async calls decode after the result is in,
    /// outside the limit.
    ///
    /// ```
    /// use mem_isolate::{errors::CallableStatusUnknownError, Isolate, MemIsolateError};
    /// use std::time::Duration;
    ///
    /// let err = Isolate::new()
    ///     .timeout(Duration::from_millis(50))
    ///     .execute(|| std::thread::sleep(Duration::from_secs(60)))
    ///     .unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     MemIsolateError::CallableStatusUnknown(CallableStatusUnknownError::TimedOut(_))
    /// ));
    /// ```
    #[must_use]
    pub const fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Lets the callable grow the child's address space by at most `bytes`
    /// beyond what it inherited, so a parent with a big heap can still give
    /// its child a small limit.
    ///
    /// On Linux this is `RLIMIT_AS`, set in the child to its current size plus
    /// `bytes`: address space, not resident memory, so reservations and thread
    /// stacks count; and `RLIMIT_DATA`, set the same way, which also counts
    /// committing memory the parent only reserved (a thread's `malloc`
    /// arena), so the limit bites at about `bytes` from any thread. Going
    /// past it is an allocation failure in the child, which Rust answers
    /// with an abort: the call fails with
    /// [`MemoryLimitExceeded`](crate::errors::CallableStatusUnknownError::MemoryLimitExceeded)
    /// (or with
    /// [`ChildProcessKilledBySignal(SIGABRT)`](crate::errors::CallableStatusUnknownError::ChildProcessKilledBySignal)
    /// when `RUST_BACKTRACE` is set: the backtrace Rust then prints hides the
    /// cause). A callable that handles allocation failure itself may instead
    /// panic or return an error of its own. Never an `Ok`, and the parent is
    /// unaffected.
    /// On other Unix systems, which offer no portable way to read the current
    /// size, the limit is absolute.
    ///
    /// ```
    /// use mem_isolate::Isolate;
    ///
    /// let isolate = Isolate::new().memory_limit(64 << 20);
    /// assert_eq!(isolate.execute(|| vec![1u8; 16 << 20].len())?, 16 << 20);
    /// assert!(isolate.execute(|| vec![1u8; 1 << 30].len()).is_err());
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    #[must_use]
    pub const fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Largest encoded result the parent accepts (default
    /// [`DEFAULT_MAX_RESULT_SIZE`], 1 GiB). A child that claims or sends more
    /// is killed and the call fails with
    /// [`ResultTooLarge`](crate::errors::CallableExecutedError::ResultTooLarge).
    ///
    /// ```
    /// use mem_isolate::{errors::CallableExecutedError, Isolate, MemIsolateError};
    ///
    /// let err = Isolate::new().max_result_size(1024).execute(|| vec![0u8; 4096]).unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     MemIsolateError::CallableExecuted(CallableExecutedError::ResultTooLarge { limit: 1024 })
    /// ));
    /// ```
    #[must_use]
    pub const fn max_result_size(mut self, bytes: u64) -> Self {
        self.max_result_size = bytes;
        self
    }

    /// Makes [`call`](Self::call) fail with
    /// [`ZygoteUnavailable`](crate::errors::CallableDidNotExecuteError::ZygoteUnavailable)
    /// instead of forking the caller directly when no [zygote](crate::zygote)
    /// runs (never started, refused, died; or this process is an isolated
    /// child). For programs where forking a big or multi-threaded caller
    /// must not happen. [`execute`](Self::execute) is not affected.
    ///
    /// ```
    /// use mem_isolate::{errors::CallableDidNotExecuteError, Isolate, MemIsolateError};
    ///
    /// fn one(_: ()) -> u8 {
    ///     1
    /// }
    /// // No zygote was started in this doc test.
    /// let err = Isolate::new().require_zygote(true).call(one, ()).unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     MemIsolateError::CallableDidNotExecute(CallableDidNotExecuteError::ZygoteUnavailable(_))
    /// ));
    /// ```
    #[must_use]
    pub const fn require_zygote(mut self, required: bool) -> Self {
        self.require_zygote = required;
        self
    }

    /// Captures what the child writes to its stdout and stderr (descriptors
    /// 1 and 2: Rust's `print!`, C's `printf`, a panic message, programs it
    /// runs), keeping at most `max_bytes` of each; the rest is read and
    /// dropped, and the stream is marked truncated. The output is in the
    /// [`CallReport`] of [`execute_report`](Self::execute_report) and
    /// [`call_report`](Self::call_report), with the value and with every
    /// error; [`execute`](Self::execute) and the other methods drop it, which
    /// keeps a child quiet. Without this option the child writes to the
    /// caller's stdout and stderr.
    ///
    /// The parent reads both pipes while it waits for the result, so a
    /// child that writes far more than a pipe holds neither blocks nor
    /// deadlocks; what was written before a crash or a timeout is kept.
    /// Once the call is over the parent takes what is readable at that
    /// moment (for at most 100 ms) and stops: a grandchild that inherited
    /// the pipes cannot hold the call open. Through the [zygote](crate::zygote)
    /// the worker's output is captured the same way.
    ///
    /// ```
    /// use mem_isolate::Isolate;
    ///
    /// let report = Isolate::new().capture_output(1 << 20).execute_report(|| {
    ///     println!("to stdout");
    ///     eprintln!("to stderr");
    ///     7
    /// });
    /// assert_eq!(report.result?, 7);
    /// let output = report.output.unwrap();
    /// assert_eq!(output.stdout, b"to stdout\n");
    /// assert_eq!(output.stderr, b"to stderr\n");
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    #[must_use]
    pub const fn capture_output(mut self, max_bytes: u64) -> Self {
        self.capture_output = Some(max_bytes);
        self
    }

    /// Runs `callable` in a forked child and returns its result.
    ///
    /// ```
    /// let v = mem_isolate::Isolate::new().execute(|| String::from("from the child"))?;
    /// assert_eq!(v, "from the child");
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// See [`MemIsolateError`]: the variant says whether the callable ran.
    pub fn execute<F, T>(&self, callable: F) -> Result<T, MemIsolateError>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned,
    {
        self.traced(|| self.run_direct(callable, false)).result
    }

    /// Like [`execute`](Self::execute), and also reports what the child
    /// used. Only with the value: for usage after a failure (a crash, a
    /// timeout, a memory-limit hit), use [`execute_report`](Self::execute_report).
    ///
    /// ```
    /// let (_, usage) = mem_isolate::Isolate::new().execute_with_usage(|| ())?;
    /// assert!(usage.wall > std::time::Duration::ZERO);
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute); also
    /// [`WaitFailed`](crate::errors::CallableStatusUnknownError::WaitFailed) if
    /// the child could not be reaped by this call (with `SIGCHLD` ignored the
    /// kernel reaps it and its usage is lost).
    pub fn execute_with_usage<F, T>(
        &self,
        callable: F,
    ) -> Result<(T, ResourceUsage), MemIsolateError>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned,
    {
        self.traced(|| self.run_direct(callable, true)).with_usage()
    }

    /// Like [`execute`](Self::execute), and reports everything the call can
    /// tell, on success and on failure alike: the child's
    /// [usage](CallReport::usage) (also after a crash, a timeout or a
    /// memory-limit hit), its [output](CallReport::output) with
    /// [`capture_output`](Self::capture_output), and where it
    /// [panicked](CallReport::panic_location). Like
    /// [`execute_with_usage`](Self::execute_with_usage), it waits for the
    /// child's exit to read its usage (a plain `execute` returns as soon as
    /// the result is in).
    ///
    /// ```
    /// use mem_isolate::Isolate;
    /// use std::time::Duration;
    ///
    /// let report = Isolate::new()
    ///     .timeout(Duration::from_millis(100))
    ///     .capture_output(1 << 20)
    ///     .execute_report(|| {
    ///         println!("started");
    ///         std::thread::sleep(Duration::from_secs(60));
    ///     });
    /// assert!(report.result.unwrap_err().is_timeout());
    /// assert_eq!(report.output.unwrap().stdout, b"started\n"); // printed before the hang
    /// assert!(report.usage.unwrap().wall >= Duration::from_millis(100));
    /// ```
    pub fn execute_report<F, T>(&self, callable: F) -> CallReport<T>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned,
    {
        self.traced(|| self.run_direct(callable, true))
            .into_report()
    }

    /// Runs `function(args)` in a fresh child and returns its result.
    ///
    /// Unlike [`execute`](Self::execute), the work is a plain function and
    /// its serialized arguments, so it goes through the
    /// [zygote](crate::zygote) when this process started one: the call then
    /// costs the same at any size of the caller, and the worker sees the
    /// program as it was at [`zygote::start`](crate::zygote::start) plus the
    /// arguments. Otherwise (no zygote, or this process is itself an
    /// isolated child or a worker) the caller is forked directly, with the
    /// same results and errors.
    ///
    /// ```
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    /// assert_eq!(mem_isolate::Isolate::new().call(square, 12)?, 144);
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute); through the zygote also
    /// [`ArgumentSerializationFailed`](crate::errors::CallableDidNotExecuteError::ArgumentSerializationFailed)
    /// and [`ZygoteDied`](crate::errors::CallableStatusUnknownError::ZygoteDied),
    /// and, under [`require_zygote`](Self::require_zygote),
    /// [`ZygoteUnavailable`](crate::errors::CallableDidNotExecuteError::ZygoteUnavailable).
    pub fn call<A, T>(&self, function: fn(A) -> T, args: A) -> Result<T, MemIsolateError>
    where
        A: Serialize + DeserializeOwned,
        T: Serialize + DeserializeOwned,
    {
        self.traced(|| self.run_call(function, args, false)).result
    }

    /// Like [`call`](Self::call), and also reports what the child used.
    ///
    /// ```
    /// fn total(v: Vec<u32>) -> u32 {
    ///     v.iter().sum()
    /// }
    /// let (sum, usage) = mem_isolate::Isolate::new().call_with_usage(total, vec![1, 2, 3])?;
    /// assert_eq!(sum, 6);
    /// assert!(usage.wall > std::time::Duration::ZERO);
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call) and [`execute_with_usage`](Self::execute_with_usage).
    pub fn call_with_usage<A, T>(
        &self,
        function: fn(A) -> T,
        args: A,
    ) -> Result<(T, ResourceUsage), MemIsolateError>
    where
        A: Serialize + DeserializeOwned,
        T: Serialize + DeserializeOwned,
    {
        self.traced(|| self.run_call(function, args, true))
            .with_usage()
    }

    /// Like [`call`](Self::call), and reports everything the call can tell:
    /// see [`execute_report`](Self::execute_report).
    ///
    /// ```
    /// fn shout(word: String) -> usize {
    ///     println!("{}!", word.to_uppercase());
    ///     word.len()
    /// }
    /// let report = mem_isolate::Isolate::new().capture_output(1024).call_report(shout, "hey".into());
    /// assert_eq!(report.result?, 3);
    /// assert_eq!(report.output.unwrap().stdout_lossy(), "HEY!\n");
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    pub fn call_report<A, T>(&self, function: fn(A) -> T, args: A) -> CallReport<T>
    where
        A: Serialize + DeserializeOwned,
        T: Serialize + DeserializeOwned,
    {
        self.traced(|| self.run_call(function, args, true))
            .into_report()
    }
}

/// Async calls: the same start and finish steps, with the wait done by the
/// crate's background thread (`crate::wait`).
impl Isolate {
    /// Like [`execute`](Self::execute), as a future: awaiting it never
    /// blocks the executor's thread, and needs no thread per call.
    ///
    /// The child is forked when the future is first polled. One background
    /// thread of the crate watches every call in flight and wakes the
    /// future when the call is over; it also enforces the
    /// [timeout](Self::timeout), so no runtime timer is needed and any
    /// executor works (tokio, smol, `futures::executor::block_on`). The
    /// future copies the options (it does not borrow `self`), is `Send`
    /// when the closure and the value are, and borrows only what the
    /// closure does, so `tokio::spawn(isolate.execute_async(f))` works.
    ///
    /// Dropping the future before it is ready kills the child, which the
    /// crate then reaps in the background; the closure's captures are
    /// dropped with the future (the child has been sent `SIGKILL` by then,
    /// or is about to be: a cancelled call's result is never looked at).
    ///
    /// ```
    /// use mem_isolate::Isolate;
    ///
    /// let isolate = Isolate::new();
    /// let call = isolate.execute_async(|| 6 * 7);
    /// assert_eq!(futures::executor::block_on(call)?, 42);
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`execute`](Self::execute).
    pub fn execute_async<F, T>(
        &self,
        callable: F,
    ) -> impl Future<Output = Result<T, MemIsolateError>>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned,
    {
        let isolate = self.clone();
        async move { isolate.run_direct_async(callable, false).await.result }
    }

    /// Like [`execute_with_usage`](Self::execute_with_usage), as a future
    /// (see [`execute_async`](Self::execute_async)). The child is reaped in
    /// the background before the future is ready.
    ///
    /// ```
    /// let call = mem_isolate::Isolate::new().execute_with_usage_async(|| vec![1u8; 8 << 20].len());
    /// let (len, usage) = futures::executor::block_on(call)?;
    /// assert_eq!(len, 8 << 20);
    /// assert!(usage.peak_rss_bytes >= 8 << 20);
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`execute_with_usage`](Self::execute_with_usage).
    pub fn execute_with_usage_async<F, T>(
        &self,
        callable: F,
    ) -> impl Future<Output = Result<(T, ResourceUsage), MemIsolateError>>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned,
    {
        let isolate = self.clone();
        async move { isolate.run_direct_async(callable, true).await.with_usage() }
    }

    /// Like [`call`](Self::call), as a future (see
    /// [`execute_async`](Self::execute_async)): through the
    /// [zygote](crate::zygote) when this process started one, else by
    /// forking the caller. Asking the zygote for a worker waits for its
    /// short reply on the polling thread; the rest of the call waits in the
    /// background.
    ///
    /// ```
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    /// let call = mem_isolate::Isolate::new().call_async(square, 12);
    /// assert_eq!(futures::executor::block_on(call)?, 144);
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call).
    pub fn call_async<A, T>(
        &self,
        function: fn(A) -> T,
        args: A,
    ) -> impl Future<Output = Result<T, MemIsolateError>>
    where
        A: Serialize + DeserializeOwned,
        T: Serialize + DeserializeOwned,
    {
        let isolate = self.clone();
        async move { isolate.run_call_async(function, args, false).await.result }
    }

    /// Like [`call_with_usage`](Self::call_with_usage), as a future (see
    /// [`call_async`](Self::call_async)).
    ///
    /// ```
    /// fn total(v: Vec<u32>) -> u32 {
    ///     v.iter().sum()
    /// }
    /// let call = mem_isolate::Isolate::new().call_with_usage_async(total, vec![1, 2, 3]);
    /// let (sum, usage) = futures::executor::block_on(call)?;
    /// assert_eq!(sum, 6);
    /// assert!(usage.wall > std::time::Duration::ZERO);
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`call_with_usage`](Self::call_with_usage).
    pub fn call_with_usage_async<A, T>(
        &self,
        function: fn(A) -> T,
        args: A,
    ) -> impl Future<Output = Result<(T, ResourceUsage), MemIsolateError>>
    where
        A: Serialize + DeserializeOwned,
        T: Serialize + DeserializeOwned,
    {
        let isolate = self.clone();
        async move {
            isolate
                .run_call_async(function, args, true)
                .await
                .with_usage()
        }
    }

    /// Like [`execute_report`](Self::execute_report), as a future (see
    /// [`execute_async`](Self::execute_async)).
    ///
    /// ```
    /// use mem_isolate::Isolate;
    ///
    /// let call = Isolate::new().capture_output(1 << 10).execute_report_async(|| -> u8 {
    ///     eprintln!("giving up");
    ///     panic!("no input")
    /// });
    /// let report = futures::executor::block_on(call);
    /// assert_eq!(report.result.unwrap_err().panic_message(), Some("no input"));
    /// assert_eq!(report.output.unwrap().stderr, b"giving up\n");
    /// assert!(report.usage.is_some());
    /// ```
    pub fn execute_report_async<F, T>(&self, callable: F) -> impl Future<Output = CallReport<T>>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned,
    {
        let isolate = self.clone();
        async move { isolate.run_direct_async(callable, true).await.into_report() }
    }

    /// Like [`call_report`](Self::call_report), as a future (see
    /// [`call_async`](Self::call_async)).
    ///
    /// ```
    /// fn shout(word: String) -> usize {
    ///     println!("{}!", word.to_uppercase());
    ///     word.len()
    /// }
    /// let call = mem_isolate::Isolate::new().capture_output(1024).call_report_async(shout, "hey".into());
    /// let report = futures::executor::block_on(call);
    /// assert_eq!(report.result?, 3);
    /// assert_eq!(report.output.unwrap().stdout_lossy(), "HEY!\n");
    /// # Ok::<(), mem_isolate::MemIsolateError>(())
    /// ```
    pub fn call_report_async<A, T>(
        &self,
        function: fn(A) -> T,
        args: A,
    ) -> impl Future<Output = CallReport<T>>
    where
        A: Serialize + DeserializeOwned,
        T: Serialize + DeserializeOwned,
    {
        let isolate = self.clone();
        async move {
            isolate
                .run_call_async(function, args, true)
                .await
                .into_report()
        }
    }

    /// [`Self::run_direct`] with the background wait.
    async fn run_direct_async<F, T>(self, callable: F, need_usage: bool) -> Finished<T>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned,
    {
        let mut callable = Some(callable);
        crate::wait::background::prepare();
        let finished = match self.start_direct(&mut callable) {
            Err(e) => Finished::failed(e),
            Ok(started) => {
                self.wait_and_finish_async(started.into_any(), need_usage)
                    .await
            }
        };
        // As in `run_direct`: after the child is gone or handed off.
        drop(callable);
        finished
    }

    /// [`Self::run_call`] with the background wait.
    async fn run_call_async<A, T>(
        self,
        function: fn(A) -> T,
        args: A,
        need_usage: bool,
    ) -> Finished<T>
    where
        A: Serialize + DeserializeOwned,
        T: Serialize + DeserializeOwned,
    {
        crate::wait::background::prepare();
        match self.start_through_zygote(function, &args) {
            Err(e) => Finished::failed(e),
            Ok(Some(started)) => {
                let finished = self.wait_and_finish_async(started, need_usage).await;
                drop(args);
                finished
            }
            Ok(None) => {
                self.run_direct_async(move || function(args), need_usage)
                    .await
            }
        }
    }

    /// The background wait step, then finish.
    async fn wait_and_finish_async<T: DeserializeOwned>(
        &self,
        started: Started<AnyChild>,
        need_usage: bool,
    ) -> Finished<T> {
        let at = started.at;
        let (ending, child, capture) = crate::wait::background::wait(
            started,
            self.deadline(at),
            need_usage,
            self.max_result_size,
        )
        .await;
        self.finish(Received::Ending(ending), child, capture, at, need_usage)
    }
}

impl Started<ChildGuard> {
    fn into_any(self) -> Started<AnyChild> {
        Started {
            child: self.child.into(),
            read_end: self.read_end,
            capture: self.capture,
            at: self.at,
        }
    }
}

/// A started child: the guard that kills and reaps it on every path, the
/// read end of its result pipe, the read ends of its captured output, and
/// when it started.
#[derive(Debug)]
pub(crate) struct Started<C> {
    pub(crate) child: C,
    pub(crate) read_end: OwnedFd,
    pub(crate) capture: Option<Capture>,
    pub(crate) at: Instant,
}

/// How a call ended: the value or error, and what else it learned.
pub(crate) struct Finished<T> {
    result: Result<T, MemIsolateError>,
    /// How the child ended, when usage was asked for and a child started.
    reaped: Option<std::io::Result<Reaped>>,
    /// From just before the start to the end of the call.
    wall: Duration,
    output: Option<CapturedOutput>,
    panic_location: Option<PanicLocation>,
}

impl<T> Finished<T> {
    /// A call that failed before a child started.
    fn failed(error: MemIsolateError) -> Self {
        Self {
            result: Err(error),
            reaped: None,
            wall: Duration::ZERO,
            output: None,
            panic_location: None,
        }
    }

    fn with_usage(self) -> Result<(T, ResourceUsage), MemIsolateError> {
        let value = self.result?;
        let reaped = self
            .reaped
            .unwrap_or_else(|| Err(std::io::Error::other("no usage reported")))
            .map_err(|e| MemIsolateError::CallableStatusUnknown(StatusUnknown::WaitFailed(e)))?;
        Ok((value, usage_of(&reaped, self.wall)))
    }

    fn into_report(self) -> CallReport<T> {
        let usage = match &self.reaped {
            Some(Ok(reaped)) => Some(usage_of(reaped, self.wall)),
            _ => None,
        };
        CallReport {
            result: self.result,
            usage,
            output: self.output,
            panic_location: self.panic_location,
        }
    }
}

fn usage_of(reaped: &Reaped, wall: Duration) -> ResourceUsage {
    ResourceUsage {
        peak_rss_bytes: sys::max_rss_bytes(&reaped.usage),
        user_cpu: sys::timeval_to_duration(reaped.usage.ru_utime),
        system_cpu: sys::timeval_to_duration(reaped.usage.ru_stime),
        wall,
    }
}

/// The three steps of a call: **start** a child ([`Isolate::start_direct`]
/// forks the caller, [`Isolate::start_through_zygote`] asks the zygote for a
/// worker), **wait** for its frame (blocking: [`parent::receive`] in
/// [`Isolate::wait_and_finish`]; or through the crate's background thread:
/// [`crate::wait::background`]), **finish** (decode, reap or hand off, map
/// the outcome to an error: [`Isolate::finish`]).
impl Isolate {
    // `self` names the options in the `tracing` span.
    #[cfg_attr(not(feature = "tracing"), allow(clippy::unused_self))]
    fn traced<T>(&self, run: impl FnOnce() -> Finished<T>) -> Finished<T> {
        #[cfg(feature = "tracing")]
        let _span = tracing::debug_span!(
            "mem_isolate.parent",
            pid = sys::current_pid(),
            timeout = ?self.timeout,
            memory_limit = ?self.memory_limit,
        )
        .entered();
        let finished = run();
        #[cfg(feature = "tracing")]
        if let Err(e) = &finished.result {
            let cause = std::error::Error::source(e).map(ToString::to_string);
            tracing::error!(error = %e, cause = cause.as_deref().unwrap_or(""), "isolated call failed");
        }
        finished
    }

    /// When a call started at `started` times out (`None`: never; a limit
    /// too far away to be represented is no limit).
    pub(crate) fn deadline(&self, started: Instant) -> Option<Instant> {
        self.timeout.and_then(|limit| started.checked_add(limit))
    }

    /// Start by forking the caller, then wait and finish on this thread.
    fn run_direct<F, T>(&self, callable: F, need_usage: bool) -> Finished<T>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned,
    {
        let mut callable = Some(callable);
        let finished = match self.start_direct(&mut callable) {
            Err(e) => Finished::failed(e),
            Ok(started) => self.wait_and_finish(started, need_usage),
        };
        // Only now, after the child has been reaped or handed off: what the
        // captures refer to (a temp file, a handle) stays valid while the
        // child runs.
        drop(callable);
        finished
    }

    /// The start step, forking the caller: the child takes `callable` (the
    /// parent's copy stays in place, to be dropped once the child is gone).
    pub(crate) fn start_direct<F, T>(
        &self,
        callable: &mut Option<F>,
    ) -> Result<Started<ChildGuard>, MemIsolateError>
    where
        F: FnOnce() -> T,
        T: Serialize + DeserializeOwned,
    {
        let did_not_execute = |e| MemIsolateError::CallableDidNotExecute(e);
        let parent_pid = sys::current_pid();
        panic_hook::install();
        // What C code in this process still buffers on stdout and stderr
        // would otherwise be written a second time by the child's flush
        // after its result. Outside the fork section: it may block on a
        // full stdout pipe (never on another thread's stream lock).
        sys::flush_c_std_streams_if_free();
        // From the pipe's creation to closing our write end: no other call
        // forks meanwhile (see `fork_section`).
        let section = ForkSection::enter(parent_pid);
        let report = ReportPage::new();
        let (read_end, write_end) = sys::pipe_cloexec()
            .map_err(|e| did_not_execute(DidNotExecute::PipeCreationFailed(e)))?;
        let (capture, child_capture) = match self.capture_output.map(capture::pipes) {
            None => (None, None),
            Some(Ok((capture, child_capture))) => (Some(capture), Some(child_capture)),
            Some(Err(e)) => return Err(did_not_execute(DidNotExecute::PipeCreationFailed(e))),
        };
        let at = Instant::now();
        // SAFETY: the child runs `child::run`, which takes no lock before the
        // result is sent and leaves through `_exit`, never returning here.
        let pid = match unsafe { sys::fork() } {
            Err(e) => return Err(did_not_execute(DidNotExecute::ForkFailed(e))),
            Ok(sys::ForkResult::Child) => match callable.take() {
                Some(callable) => child::run(
                    callable,
                    ChildSetup {
                        read_end: Some(read_end),
                        write_end,
                        capture: child_capture,
                        report: report.as_ref(),
                        memory_limit: self.memory_limit,
                        parent_pid,
                    },
                ),
                None => sys::exit_immediately(libc::EXIT_FAILURE),
            },
            Ok(sys::ForkResult::Parent { child }) => child,
        };
        if let Some(report) = &report {
            report.keep_out_of_later_forks();
        }
        let closed = sys::close(write_end);
        drop(child_capture);
        drop(section);
        let child = ChildGuard::new(pid, report);
        debug!(child_pid = pid, "forked the child");
        if let Err(e) = closed {
            return Err(MemIsolateError::CallableStatusUnknown(
                StatusUnknown::ParentPipeCloseFailed(e),
            ));
        }
        Ok(Started {
            child,
            read_end,
            capture,
            at,
        })
    }

    /// Start through the zygote when there is one, else by forking directly.
    fn run_call<A, T>(&self, function: fn(A) -> T, args: A, need_usage: bool) -> Finished<T>
    where
        A: Serialize + DeserializeOwned,
        T: Serialize + DeserializeOwned,
    {
        match self.start_through_zygote(function, &args) {
            Err(e) => Finished::failed(e),
            Ok(Some(started)) => self.wait_and_finish(started, need_usage),
            Ok(None) => self.run_direct(move || function(args), need_usage),
        }
    }

    /// The start step through the zygote: `Ok(None)` when no zygote serves
    /// this process and the caller may be forked instead.
    pub(crate) fn start_through_zygote<A, T>(
        &self,
        function: fn(A) -> T,
        args: &A,
    ) -> Result<Option<Started<AnyChild>>, MemIsolateError>
    where
        A: Serialize + DeserializeOwned,
        T: Serialize + DeserializeOwned,
    {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(zygote) = crate::zygote::current() {
            use crate::zygote::Launch;
            let at = Instant::now();
            let options = crate::zygote::LaunchOptions {
                memory_limit: self.memory_limit,
                capture_output: self.capture_output,
                deadline: self.deadline(at),
            };
            match crate::zygote::launch(zygote, function, args, &options) {
                Ok((worker, read_end, capture)) => {
                    debug!("the zygote started a worker");
                    return Ok(Some(Started {
                        child: AnyChild::Worker(worker),
                        read_end,
                        capture,
                        at,
                    }));
                }
                Err(Launch::TimedOut) => return Err(timed_out(self.timeout)),
                Err(Launch::Failed(e)) => return Err(e),
                Err(Launch::Unavailable(e)) if self.require_zygote => {
                    return Err(MemIsolateError::CallableDidNotExecute(
                        DidNotExecute::ZygoteUnavailable(e),
                    ))
                }
                Err(Launch::Unavailable(_)) => {}
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = (function, args);
        if self.require_zygote {
            return Err(MemIsolateError::CallableDidNotExecute(
                DidNotExecute::ZygoteUnavailable(std::io::Error::other(
                    "no zygote serves this process (zygote::start was not called here or failed, the zygote died, or this process is itself an isolated child or a zygote worker)",
                )),
            ));
        }
        Ok(None)
    }

    /// The blocking wait step on this thread, then finish.
    fn wait_and_finish<T: DeserializeOwned>(
        &self,
        started: Started<impl Child>,
        need_usage: bool,
    ) -> Finished<T> {
        let Started {
            mut child,
            read_end,
            mut capture,
            at,
        } = started;
        let received = parent::receive_value(
            read_end.as_fd(),
            &mut child,
            self.deadline(at),
            self.max_result_size,
            capture.as_mut(),
        );
        let finished = self.finish(received, child, capture, at, need_usage);
        drop(read_end);
        finished
    }

    /// The finish step, shared by both waits: decode, reap or hand off,
    /// map the outcome to an error, collect the captured output.
    pub(crate) fn finish<T: DeserializeOwned>(
        &self,
        received: Received<T>,
        mut child: impl Child,
        capture: Option<Capture>,
        started: Instant,
        need_usage: bool,
    ) -> Finished<T> {
        let deadline = self.deadline(started);
        let mut panic_location = None;
        let mut reaped = None;
        let ending = match received {
            Received::Value { result, lingering } => {
                debug!(lingering, "result frame received");
                reaped = deliver(child, lingering, need_usage);
                return finished(
                    result.map_err(|e| {
                        MemIsolateError::CallableExecuted(Executed::DeserializationFailed(e))
                    }),
                    reaped,
                    started,
                    capture,
                    None,
                );
            }
            Received::Ending(ending) => ending,
        };
        let result = match ending {
            Ending::Frame { frame, lingering } => {
                debug!(kind = ?frame.kind, bytes = frame.payload().len(), lingering, "result frame received");
                reaped = deliver(child, lingering, need_usage);
                let (result, location) = decode_frame(&frame);
                panic_location = location;
                result
            }
            Ending::NoFrame => {
                if child.wait_until(deadline) {
                    let outcome = child.take_outcome();
                    if need_usage {
                        reaped = outcome.as_ref().ok().map(|reaped| Ok(*reaped));
                    }
                    Err(no_result_error(
                        child.take_failure(),
                        outcome,
                        self.memory_limit,
                    ))
                } else {
                    reaped = kill_for_usage(&mut child, need_usage);
                    Err(timed_out(self.timeout))
                }
            }
            Ending::TimedOut => {
                debug!("timed out: killing the child");
                reaped = kill_for_usage(&mut child, need_usage);
                Err(timed_out(self.timeout))
            }
            Ending::Malformed(malformed) => {
                reaped = kill_for_usage(&mut child, need_usage);
                Err(MemIsolateError::CallableExecuted(match malformed {
                    FrameError::TooLarge { limit, .. } => Executed::ResultTooLarge { limit },
                    FrameError::OutOfMemory { bytes } => Executed::ResultAllocationFailed {
                        bytes: bytes as u64,
                    },
                    other => Executed::DeserializationFailed(other.to_string()),
                }))
            }
            Ending::ReadFailed(e) => {
                reaped = kill_for_usage(&mut child, need_usage);
                Err(MemIsolateError::CallableStatusUnknown(
                    StatusUnknown::ParentPipeReadFailed(e),
                ))
            }
        };
        finished(result, reaped, started, capture, panic_location)
    }
}

/// The call's outcome with its captured output.
fn finished<T>(
    result: Result<T, MemIsolateError>,
    reaped: Option<std::io::Result<Reaped>>,
    started: Instant,
    capture: Option<Capture>,
    panic_location: Option<PanicLocation>,
) -> Finished<T> {
    // The result is in (the child flushed its output before its done
    // mark) or the child is gone: its output is in the pipes by now.
    let output = capture.map(|mut capture| {
        capture.drain_now();
        capture.into_output()
    });
    Finished {
        result,
        reaped,
        wall: started.elapsed(),
        output,
        panic_location,
    }
}

/// A child that delivered its result: killed if it lingers (it delivered,
/// then hung, on a lock held at `fork`?), then reaped here when usage is
/// wanted, off the caller's path otherwise.
fn deliver(
    mut child: impl Child,
    lingering: bool,
    need_usage: bool,
) -> Option<std::io::Result<Reaped>> {
    if lingering {
        child.kill();
    }
    if need_usage {
        Some(child.into_outcome())
    } else {
        child.finish_delivered();
        None
    }
}

/// Kills the child (and has it reaped); how it ended, if usage is wanted.
fn kill_for_usage(child: &mut impl Child, need_usage: bool) -> Option<std::io::Result<Reaped>> {
    child.kill();
    need_usage.then(|| child.take_outcome())
}

fn timed_out(limit: Option<Duration>) -> MemIsolateError {
    MemIsolateError::CallableStatusUnknown(StatusUnknown::TimedOut(limit.unwrap_or_default()))
}

/// The value, panic or serialization error a complete frame carries.
fn decode_frame<T: DeserializeOwned>(
    frame: &Frame,
) -> (Result<T, MemIsolateError>, Option<PanicLocation>) {
    let text = || String::from_utf8_lossy(frame.payload()).into_owned();
    match frame.kind {
        FrameKind::Value => {
            // The user's `Deserialize` may panic on what the child sent: an
            // error, never an unwind out of the call.
            let decoded = catch_unwind(AssertUnwindSafe(|| crate::codec::decode(frame.payload())))
                .unwrap_or_else(|payload| {
                    Err(format!(
                        "`Deserialize` panicked: {}",
                        crate::child::panic_message(&*payload)
                    ))
                });
            let result = decoded
                .map_err(|e| MemIsolateError::CallableExecuted(Executed::DeserializationFailed(e)));
            (result, None)
        }
        FrameKind::Panic => {
            // The location travels on the text's first line (see `panic_hook`).
            let text = text();
            let (location, message) = panic_hook::split_panic_text(&text);
            let error =
                MemIsolateError::CallableExecuted(Executed::CallablePanicked(message.to_owned()));
            (Err(error), location)
        }
        FrameKind::SerializationFailed => (
            Err(MemIsolateError::CallableExecuted(
                Executed::SerializationFailed(text()),
            )),
            None,
        ),
    }
}

/// Why a child that sent no result ended: the crate's own failure if the
/// child recorded one, otherwise what the kernel says.
fn no_result_error(
    recorded: Option<ChildFailure>,
    reaped: std::io::Result<Reaped>,
    memory_limit: Option<u64>,
) -> MemIsolateError {
    match recorded {
        Some(ChildFailure::ClosePipe(e)) => {
            return MemIsolateError::CallableDidNotExecute(DidNotExecute::ChildPipeCloseFailed(
                Some(e),
            ))
        }
        Some(ChildFailure::MemoryLimit(e)) => {
            return MemIsolateError::CallableDidNotExecute(DidNotExecute::MemoryLimitSetupFailed(e))
        }
        Some(ChildFailure::WriteResult(e)) => {
            return MemIsolateError::CallableExecuted(Executed::ChildPipeWriteFailed(Some(e)))
        }
        Some(ChildFailure::OutOfMemory) | None => {}
    }
    let status = match reaped {
        Ok(reaped) => reaped.status,
        Err(e)
            if e.get_ref().is_some_and(
                <dyn std::error::Error + Send + Sync>::is::<crate::zygote::ZygoteDied>,
            ) =>
        {
            return MemIsolateError::CallableStatusUnknown(StatusUnknown::ZygoteDied)
        }
        Err(e) => return MemIsolateError::CallableStatusUnknown(StatusUnknown::WaitFailed(e)),
    };
    // Only an abort counts: the record alone is bytes a callable could write.
    if let (Some(ChildFailure::OutOfMemory), Some(limit), Some(libc::SIGABRT)) =
        (&recorded, memory_limit, status.terminating_signal())
    {
        return MemIsolateError::CallableStatusUnknown(StatusUnknown::MemoryLimitExceeded {
            limit,
        });
    }
    MemIsolateError::CallableStatusUnknown(if let Some(code) = status.exit_status() {
        if code == 0 {
            StatusUnknown::CallableProcessDiedDuringExecution
        } else {
            StatusUnknown::UnexpectedChildExitStatus(code)
        }
    } else if let Some(signal) = status.terminating_signal() {
        StatusUnknown::ChildProcessKilledBySignal(signal)
    } else {
        StatusUnknown::UnexpectedWaitpidReturnValue(status.0)
    })
}
