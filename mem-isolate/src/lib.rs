//! Run a function in a `fork()`ed child process and get its serde-serialized
//! result back, so that nothing the function does to memory (leaks, heap
//! fragmentation, writes to statics, a segfault, a panic, a hang) reaches the
//! caller.
//!
//! ```
//! use mem_isolate::execute_in_isolated_process;
//!
//! fn leaky_work(n: u32) -> u32 {
//!     std::mem::forget(vec![0u8; 8 << 20]); // 8 MiB leaked ... in the child
//!     n * 2
//! }
//!
//! let v = execute_in_isolated_process(|| leaky_work(21))?;
//! assert_eq!(v, 42);
//! # Ok::<(), mem_isolate::MemIsolateError>(())
//! ```
//!
//! [`Isolate`] adds options: a [timeout](Isolate::timeout) that kills and
//! reaps, a [memory limit](Isolate::memory_limit), a
//! [maximum result size](Isolate::max_result_size), and
//! [resource usage](Isolate::execute_with_usage) of the child. The
//! [`macro@isolated`] attribute turns a whole function into an isolated one:
//!
//! ```
//! #[mem_isolate::isolated(timeout = "5s", memory_limit = "512 MiB")]
//! fn parse(input: String) -> Vec<String> {
//!     input.split(',').map(str::to_owned).collect()
//! }
//!
//! assert_eq!(parse("a,b".into())?, ["a", "b"]);
//! # Ok::<(), mem_isolate::MemIsolateError>(())
//! ```
//!
//! Async programs await calls without holding a thread:
//! [`Isolate::execute_async`] and [`Isolate::call_async`] return futures
//! that work under any executor, and dropping one kills its child.
//!
//! ```
//! # futures::executor::block_on(async {
//! let isolate = mem_isolate::Isolate::new();
//! let (a, b) = futures::join!(isolate.execute_async(|| 1 + 1), isolate.execute_async(|| 2 + 2));
//! assert_eq!((a?, b?), (2, 4));
//! # Ok::<(), mem_isolate::MemIsolateError>(())
//! # }).unwrap();
//! ```
//!
//! # When to use it
//!
//! - calling leaky or crash-prone code (C/C++ bindings, fragmenting
//!   allocators) without letting it damage the caller;
//! - bounding a computation's time or memory from outside;
//! - a throwaway snapshot of the process's memory: whatever the function
//!   changes is gone when it returns.
//!
//! # When not to use it
//!
//! - The result must be serializable; references into the parent's memory
//!   cannot come back. Side effects on memory are lost by design, including
//!   through `&mut` arguments.
//! - Each call costs a `fork`: hundreds of microseconds for a small process,
//!   growing with the parent's resident memory (tens of milliseconds per GiB
//!   in 4 KiB pages, far less with huge pages), and afterwards the parent
//!   pays a copy-on-write fault on its next write to each page. Not for hot
//!   loops of tiny calls. [Zygote mode](zygote) keeps the cost flat at any
//!   size of the caller.
//! - Forking a multi-threaded program gives a child with one thread; any lock
//!   another thread held at that moment (your own mutexes, stdout, locks in C
//!   libraries) stays held in the child. The crate's own code does not
//!   depend on such locks before the result is sent, but the callable may:
//!   use a [timeout](Isolate::timeout) as the guard, or [zygote mode](zygote),
//!   whose workers are forked from a single-threaded process.
//! - The callable's captures are dropped in both processes: in the child
//!   when it is consumed, in the parent once the child has ended or been
//!   handed off.
//! - Memory shared with the child (`MAP_SHARED` mappings, files, sockets) is
//!   shared: writes there reach the parent.
//!
//! # How it works
//!
//! Each call creates a close-on-exec pipe and forks (or asks the
//! [`zygote`] for a worker). The child runs the callable under
//! `catch_unwind` and sends the result (or the panic message): a big one in
//! chunks while it is encoded. Then it flushes stdout, writes a one-byte
//! "done" mark and leaves with `_exit`; it never returns or unwinds into the
//! caller's frames. The parent decodes the result as it arrives (the async
//! calls: once it is all in) while watching the child through a pidfd,
//! without trusting any length it contains, reads byte strings straight
//! into the buffers it returns, and returns as soon as the mark is in,
//! handing the child to the crate's
//! reaper thread: the child's exit (half the cost of fork-plus-wait for a
//! big parent) and its reaping happen off the caller's path. Errors say
//! whether the callable ran: see [`MemIsolateError`] and the [`errors`]
//! module.
//!
//! # Guarantees
//!
//! After every call the child is reaped (before the call returns, or by the
//! reaper thread within about a millisecond of its exit), every descriptor the
//! call opened is closed, and the parent's memory never grew by more than
//! the bytes that actually arrived. Nothing a child writes to the
//! descriptors or pages it inherits can make the crate wait for, reap or kill
//! a process that is not its own in-flight child. The crate keeps one reaper
//! thread per process (and, once an async call is made, one waiter thread)
//! and a panic hook that wraps the program's (silent in isolated children).
//!
//! # Output, errors and usage in a service
//!
//! The child writes to the caller's stdout and stderr, and flushes Rust's
//! stdout and C stdio (`fflush(NULL)`) after sending its result, so what a
//! C library `printf`ed is not lost when stdout is a file or a pipe.
//! [`Isolate::capture_output`] sends both streams to pipes instead, and
//! [`Isolate::execute_report`] returns everything a call can tell, on
//! success and failure alike: the value or error, the child's
//! [usage](ResourceUsage) (also after a crash or a timeout), its
//! [output](CapturedOutput) and where it [panicked](PanicLocation).
//! Errors print their whole chain on one line with
//! [`report`](MemIsolateError::report) (or `{:#}`), and answer
//! [`is_safe_to_retry`](MemIsolateError::is_safe_to_retry),
//! [`is_timeout`](MemIsolateError::is_timeout),
//! [`signal`](MemIsolateError::signal), [`exit_code`](MemIsolateError::exit_code)
//! and [`panic_message`](MemIsolateError::panic_message).
//!
//! ```
//! use mem_isolate::Isolate;
//! use std::time::Duration;
//!
//! let isolate = Isolate::new().timeout(Duration::from_secs(5)).capture_output(1 << 20);
//! let report = isolate.execute_report(|| -> u32 {
//!     eprintln!("parsing");
//!     panic!("unexpected byte")
//! });
//! let err = report.result.unwrap_err();
//! assert_eq!(
//!     err.report().to_string(),
//!     "the callable executed, but its result could not be returned: the callable panicked: unexpected byte"
//! );
//! assert!(!err.is_safe_to_retry()); // it ran: retry only if it is idempotent
//! assert_eq!(report.output.unwrap().stderr, b"parsing\n");
//! assert!(report.panic_location.is_some());
//! assert!(report.usage.is_some());
//! ```
//!
//! **The panic hook.** Before its first fork the crate wraps the program's
//! panic hook: in an isolated child (on any of its threads) the wrapper
//! prints nothing and notes where the callable's thread panicked; in every
//! other process it calls the program's hook. A hook installed after the
//! first isolated call replaces the wrapper and runs in the child too
//! (printing there as if the caller panicked): install it before, or
//! capture the output, which also keeps a child quiet with
//! [`execute`](Isolate::execute). Under `cargo test`, `print!` goes to the
//! harness's buffer, in the child too (where it is lost); write to
//! `std::io::stdout()` to see it.
//!
//! # Patterns
//!
//! **Arguments are copied by `fork`, not serialized**: the child is a copy
//! of the caller, so the callable (or an `#[isolated]` function) may take
//! C handles, raw pointers and `&`-references. Only the result is
//! serialized. Not in [zygote mode](zygote), whose workers receive their
//! arguments serialized.
//!
//! ```
//! # use mem_isolate::isolated;
//! /// A handle of a C library, say.
//! struct Context {
//!     table: *const u32,
//! }
//!
//! #[isolated]
//! fn lookup(context: &Context, index: usize) -> u32 {
//!     // SAFETY: the caller keeps the table alive; the child has a copy of it.
//!     unsafe { *context.table.add(index) }
//! }
//!
//! let table = [10u32, 20, 30];
//! let context = Context { table: table.as_ptr() };
//! assert_eq!(lookup(&context, 2)?, 30);
//! # Ok::<(), mem_isolate::MemIsolateError>(())
//! ```
//!
//! **Returning `Result<T, E>`** needs `E: Serialize + DeserializeOwned`
//! too. `anyhow::Error`, `Box<dyn Error>` and `std::io::Error` are not:
//! return `Result<T, String>` or a serde error enum.
//!
//! ```
//! use mem_isolate::isolated;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! enum ParseError {
//!     Empty,
//!     NotANumber(String),
//! }
//!
//! #[isolated]
//! fn parse(text: String) -> Result<u32, ParseError> {
//!     if text.is_empty() {
//!         return Err(ParseError::Empty);
//!     }
//!     text.parse().map_err(|e: std::num::ParseIntError| ParseError::NotANumber(e.to_string()))
//! }
//!
//! #[isolated]
//! fn read_config(path: String) -> Result<String, String> {
//!     std::fs::read_to_string(path).map_err(|e| e.to_string())
//! }
//!
//! assert_eq!(parse("42".into())?, Ok(42));
//! assert_eq!(parse(String::new())?, Err(ParseError::Empty));
//! assert!(read_config("/nonexistent".into())?.is_err());
//! # Ok::<(), mem_isolate::MemIsolateError>(())
//! ```
//!
//! **Per-call environment**: set it inside the body; only the child's
//! environment changes.
//!
//! ```
//! #[mem_isolate::isolated]
//! fn in_utc() -> String {
//!     // SAFETY: the child runs only this thread's code from here on.
//!     unsafe { std::env::set_var("TZ", "UTC") };
//!     std::env::var("TZ").unwrap()
//! }
//!
//! let before = std::env::var_os("TZ");
//! assert_eq!(in_utc()?, "UTC");
//! assert_eq!(std::env::var_os("TZ"), before); // the caller's is unchanged
//! # Ok::<(), mem_isolate::MemIsolateError>(())
//! ```
//!
//! **From async code**: await [`Isolate::execute_async`],
//! [`Isolate::call_async`] or [`Isolate::execute_report_async`]: no
//! thread is held per call, dropping the future kills
//! the child, and timeouts need no runtime timer. A sync call on a blocking
//! pool (`spawn_blocking`) holds a thread per call, and cancelling its task
//! does not stop the child: it runs on until it ends or times out.
//!
//! Examples in these docs that use `libc` (signal numbers, `errno` values)
//! need it as a dependency of your crate: `libc = "0.2"`.
//!
//! # Features
//!
//! - `macros` (default): the [`macro@isolated`] attribute.
//! - `tokio`: `#[isolated] async fn` bodies run inside a fresh
//!   current-thread tokio runtime in the child (see [`macro@isolated`]). The
//!   async calls themselves ([`Isolate::execute_async`]) need no feature and
//!   no runtime.
//! - `tracing`: a `mem_isolate.parent` span around each call (fields `pid`,
//!   `timeout`, `memory_limit`), debug events for each step (the first
//!   carries `child_pid`), an
//!   error event when a call fails, and in the child a `mem_isolate.child`
//!   span with one debug event once the result is sent. The child emits
//!   nothing before its result is out: a subscriber may take locks another
//!   thread held at `fork`. If one does afterwards, the child is killed after
//!   the 100 ms grace period and the call still returns its result.
//!
//! # Platforms
//!
//! Linux first; other Unix systems build. `PR_SET_PDEATHSIG` (the child dies
//! with its parent), the relative memory limit (read from `/proc`), large
//! pipe buffers and `vmsplice` are Linux-only. Windows has no `fork`.

#![warn(missing_docs, unreachable_pub)]

mod block_on;
mod call_report;
mod capture;
mod child;
mod codec;
pub mod errors;
mod fault;
mod fork_section;
mod frame;
mod isolate;
mod panic_hook;
mod parent;
mod reaper;
mod report;
mod stream;
mod sys;
mod trace;
mod wait;
pub mod zygote;

pub use call_report::{CallReport, CapturedOutput, PanicLocation};
pub use errors::{MemIsolateError, Signal};
pub use isolate::{Isolate, ResourceUsage, DEFAULT_MAX_RESULT_SIZE};
pub use serde::de::DeserializeOwned;
pub use serde::Serialize;

/// Runs a function's body in a forked child process: callers get
/// `Result<T, MemIsolateError>` where the function returned `T`.
///
/// ```
/// use mem_isolate::{isolated, MemIsolateError};
///
/// #[isolated(timeout = "5s", memory_limit = "512 MiB")]
/// fn leaky_work(n: u32) -> Vec<u32> {
///     std::mem::forget(vec![0u8; 1 << 20]); // leaks in the child only
///     (0..n).collect()
/// }
///
/// let v: Result<Vec<u32>, MemIsolateError> = leaky_work(3);
/// assert_eq!(v?, [0, 1, 2]);
/// # Ok::<(), MemIsolateError>(())
/// ```
///
/// The function keeps its name, visibility, generics, `where` clause,
/// arguments, attributes and docs. Its return type `T` becomes
/// `Result<T, MemIsolateError>` (`Result<(), MemIsolateError>` when it returns
/// nothing), and its body runs through [`Isolate::execute`] as a `move`
/// closure returning `T`, so `return` and `?` inside it keep their meaning.
/// `T` must be [`Serialize`] + [`DeserializeOwned`]. A documented function
/// gets an `# Errors` section appended to its docs (unless it has one).
///
/// # Arguments
///
/// | argument | meaning |
/// | --- | --- |
/// | `timeout = "250ms"` | [`Isolate::timeout`]: a number (`"5"`, `"1.5"`), optional spaces, a unit: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h` |
/// | `memory_limit = "64 MiB"` | [`Isolate::memory_limit`]: a number, optional spaces, a unit: `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`, `TB`, `TiB`; or bytes, as `"4096"` or `4096` (`4096u64` too) |
/// | `timeout = expr`, `memory_limit = expr` | any other expression, of type `Duration` or `u64` (bytes), evaluated at each call |
/// | `isolate = expr` | an [`Isolate`] (or a reference to one) to start from, evaluated at each call; `timeout` and `memory_limit` given alongside apply on top of it |
/// | `zygote` | the call goes through [`Isolate::call`]: see [Zygote mode](#zygote-mode) |
/// | `crate = "path::to::mem_isolate"` | where the runtime is, when the dependency is renamed or re-exported |
///
/// Literals are checked at compile time: a malformed, zero or overflowing
/// value is a compile error on the literal, and every wrong argument is
/// reported, not only the first. The grammar of durations and sizes is under
/// [Argument grammar](#argument-grammar) below.
///
/// ```
/// use mem_isolate::isolated;
///
/// #[isolated(timeout = "1.5 s", memory_limit = "0.5 GiB")]
/// fn sum(values: Vec<u64>) -> u64 {
///     values.iter().sum()
/// }
///
/// #[isolated(timeout = "250 ms", memory_limit = 67_108_864u64)] // bytes
/// fn len(text: String) -> usize {
///     text.len()
/// }
///
/// assert_eq!(sum(vec![1, 2, 3])?, 6);
/// assert_eq!(len("abc".into())?, 3);
/// # Ok::<(), mem_isolate::MemIsolateError>(())
/// ```
///
/// ## Options computed at each call
///
/// Any other expression is evaluated by the caller at each call, before the
/// body's closure takes the arguments, so it may read the function's
/// arguments and `self`. A value of the wrong type is a compile error on
/// that expression.
///
/// ```
/// use std::time::Duration;
/// use mem_isolate::{errors::CallableStatusUnknownError, isolated, Isolate, MemIsolateError};
///
/// struct Renderer {
///     budget: u64,
///     isolate: Isolate,
/// }
///
/// impl Renderer {
///     #[isolated(timeout = deadline, memory_limit = self.budget)]
///     fn render(&self, deadline: Duration, pixels: usize) -> usize {
///         vec![0u8; pixels].len()
///     }
///
///     /// `isolate` starts from an `Isolate` (here borrowed from `self`);
///     /// the `timeout` beside it applies on top.
///     #[isolated(isolate = &self.isolate, timeout = "100ms")]
///     fn stall(&self) -> u8 {
///         std::thread::sleep(Duration::from_secs(60));
///         0
///     }
/// }
///
/// let renderer = Renderer {
///     budget: 64 << 20,
///     isolate: Isolate::new().memory_limit(64 << 20),
/// };
/// assert_eq!(renderer.render(Duration::from_secs(5), 1 << 20)?, 1 << 20);
/// assert!(renderer.render(Duration::from_secs(5), 1 << 30).is_err()); // over budget
/// assert!(matches!(
///     renderer.stall(),
///     Err(MemIsolateError::CallableStatusUnknown(CallableStatusUnknownError::TimedOut(_)))
/// ));
/// # Ok::<(), MemIsolateError>(())
/// ```
///
/// # Zygote mode
///
/// With `zygote`, the body becomes a plain function of the arguments packed
/// in one tuple, and the call goes through [`Isolate::call`], so that a
/// zygote (fork server) can run it. The arguments, and `self` for methods,
/// are sent serialized, so each must be [`Serialize`] +
/// [`DeserializeOwned`]; the compile error for one that is not points at
/// that argument. Borrowed arguments (`&str`, `&[T]`, `&T`, `&self`,
/// `&mut self`) are sent as `Cow::Borrowed` (nothing is cloned in the
/// caller) and arrive as owned values (`String`, `Vec<T>`, `T`) that the
/// body borrows; `&T` and `&self` therefore also need `T: Clone` (through
/// `ToOwned`). A `&mut` argument is changed in the child only, as every write
/// to memory there is. Generic functions work: each instantiation is its own
/// function. Not accepted with `zygote`: `async fn`, `impl Trait`, trait
/// object and function pointer arguments (a closure cannot be sent), more
/// than 16 arguments.
///
/// ```
/// use mem_isolate::{isolated, DeserializeOwned, Serialize};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Index {
///     words: Vec<String>,
/// }
///
/// impl Index {
///     #[isolated(zygote, timeout = "5s")]
///     fn count(&self, prefix: &str) -> usize {
///         self.words.iter().filter(|w| w.starts_with(prefix)).count()
///     }
/// }
///
/// #[isolated(zygote)]
/// fn largest<T: Ord + Serialize + DeserializeOwned>(items: Vec<T>) -> Option<T> {
///     items.into_iter().max()
/// }
///
/// let index = Index { words: vec!["apple".into(), "avocado".into(), "pear".into()] };
/// assert_eq!(index.count("a")?, 2);
/// assert_eq!(largest(vec![3, 9, 2])?, Some(9));
/// # Ok::<(), mem_isolate::MemIsolateError>(())
/// ```
///
/// # Async functions
///
/// `#[isolated] async fn f(args) -> T` becomes an `async fn` returning
/// `Result<T, MemIsolateError>`, called through
/// [`Isolate::execute_async`]: callers `.await` it under any executor, the
/// wait blocks no thread, dropping the future kills the child, and the
/// options keep their meaning. The body runs in the child, as a future
/// driven to completion there: by a minimal executor (it parks the child's
/// thread between wake-ups), or, with the feature `tokio`, inside a fresh
/// current-thread tokio runtime with IO and time enabled, on a fresh thread
/// of the child (so `tokio::time::sleep(..).await` and tokio's sockets work
/// in the body, even when the caller runs on a tokio runtime, whose
/// "inside a runtime" marker the child inherits). Because the body may be
/// driven on another thread, the arguments (and `self`) must be `Send`, and
/// so must `T`; the error for one that is not points at the return type.
/// `#[isolated(zygote)] async fn` is a compile error.
///
/// ```
/// use mem_isolate::isolated;
///
/// #[isolated(timeout = "5s")]
/// async fn checksum(data: Vec<u8>) -> u32 {
///     let data = std::future::ready(data).await; // any future, driven in the child
///     data.iter().map(|&b| u32::from(b)).sum()
/// }
///
/// let sum = futures::executor::block_on(checksum(vec![1, 2, 3]))?;
/// assert_eq!(sum, 6);
/// # Ok::<(), mem_isolate::MemIsolateError>(())
/// ```
///
/// # Supported shapes
///
/// - free functions, in any module, with any visibility;
/// - inherent methods taking `&self`, `&mut self` (the mutation happens in the
///   child and is lost, like every other write to memory) or `self`;
/// - methods in trait impls (the trait declares `-> Result<T, MemIsolateError>`);
/// - generic functions and `where` clauses, `impl Trait` arguments, pattern
///   arguments like `(a, b): (u32, u32)`, explicit and elided lifetimes;
/// - `unsafe fn`;
/// - `async fn` (see [Async functions](#async-functions));
/// - functions returning `Result<T, E>`: callers get
///   `Result<Result<T, E>, MemIsolateError>`, and `E` must be
///   `Serialize + DeserializeOwned` too (`anyhow::Error` and
///   `std::io::Error` are not: return `Result<T, String>` or a serde error
///   enum, see [Patterns](crate#patterns));
/// - any argument type: arguments are copied into the child by `fork`, not
///   serialized, so C handles, raw pointers and references work (except
///   in [zygote mode](#zygote-mode)).
///
/// Rejected at compile time, each with an error on the offending tokens that
/// says what to write instead: `const fn`, `extern "C" fn`,
/// variadic functions, items that are not functions (`const`, `impl`,
/// `trait`, `extern` blocks...), unknown, repeated or malformed arguments,
/// `#[isolated]` applied twice, `#[track_caller]` (the body runs in a
/// closure in another process), `#[should_panic]` on an isolated test (the
/// panic happens in the child: assert on
/// [`CallablePanicked`](errors::CallableExecutedError::CallablePanicked)
/// instead), `-> impl Trait`, `-> !`, return types holding a borrow
/// (`&str`, `Option<&str>`, `(u8, &[u8])`; `PhantomData<&T>` is fine), and
/// return types that are not `Serialize + DeserializeOwned` (the error points
/// at the return type).
///
/// ```
/// use mem_isolate::isolated;
///
/// struct Counter(u32);
///
/// impl Counter {
///     #[isolated]
///     fn bump(&mut self) -> u32 {
///         self.0 += 1; // in the child's copy
///         self.0
///     }
/// }
///
/// let mut c = Counter(1);
/// assert_eq!(c.bump()?, 2);
/// assert_eq!(c.0, 1);
/// # Ok::<(), mem_isolate::MemIsolateError>(())
/// ```
///
/// A panic in the body is an error the caller (or a test) can match:
///
/// ```
/// use mem_isolate::{errors::CallableExecutedError, isolated, MemIsolateError};
///
/// #[isolated]
/// fn explode() -> u8 {
///     panic!("boom")
/// }
///
/// assert!(matches!(
///     explode(),
///     Err(MemIsolateError::CallableExecuted(CallableExecutedError::CallablePanicked(m))) if m.contains("boom")
/// ));
/// ```
///
/// # Rename package
///
/// If you depend on this crate under another name, say where it is:
///
/// ```
/// # extern crate mem_isolate as isolation;
/// #[isolation::isolated(crate = "isolation")]
/// fn answer() -> u8 {
///     42
/// }
/// # assert_eq!(answer().unwrap(), 42);
/// ```
///
/// # What it expands to
///
/// ```
/// # use mem_isolate::isolated;
/// #[isolated(timeout = "5s")]
/// fn work(n: u32) -> u32 {
///     n * 2
/// }
/// # assert_eq!(work(2).unwrap(), 4);
/// ```
///
/// becomes (the options are evaluated first, then the runtime is called by
/// path, so no trait method named `execute` in scope can take over)
///
/// ```
/// fn work(
///     n: u32,
/// ) -> ::core::result::Result<u32, ::mem_isolate::__private::MemIsolateError> {
///     let __isolate = ::mem_isolate::__private::Isolate::new()
///         .timeout(::core::time::Duration::from_nanos(5000000000u64));
///     <::mem_isolate::__private::Isolate>::execute(&__isolate, move || -> u32 { n * 2 })
/// }
/// # assert_eq!(work(2).unwrap(), 4);
/// ```
#[cfg(feature = "macros")]
#[doc(inline)]
pub use mem_isolate_macros::isolated;

use errors::MemIsolateError as Error;

/// Runs `callable` in a forked child process and returns its result: the
/// same as `Isolate::new().execute(callable)`, with the signature of
/// mem-isolate 0.1.6.
///
/// ```
/// let mut counter = 0;
/// let seen = mem_isolate::execute_in_isolated_process(|| {
///     counter += 1; // changes the child's copy only
///     counter
/// })?;
/// assert_eq!((seen, counter), (1, 0));
/// # Ok::<(), mem_isolate::MemIsolateError>(())
/// ```
///
/// # Errors
///
/// See [`MemIsolateError`]: the variant says whether the callable ran.
pub fn execute_in_isolated_process<F, T>(callable: F) -> Result<T, Error>
where
    F: FnOnce() -> T,
    T: Serialize + DeserializeOwned,
{
    Isolate::new().execute(callable)
}

/// The conventional name of signal `signo` (`"SIGSEGV"`), or `"unknown signal"`.
///
/// (This example uses the `libc` crate: `libc = "0.2"` in `Cargo.toml`.)
///
/// ```
/// assert_eq!(mem_isolate::signal_name(libc::SIGSEGV), "SIGSEGV");
/// assert_eq!(mem_isolate::signal_name(libc::SIGKILL), "SIGKILL");
/// ```
#[must_use]
pub fn signal_name(signo: i32) -> &'static str {
    const NAMES: &[(i32, &str)] = &[
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGCHLD, "SIGCHLD"),
        (libc::SIGCONT, "SIGCONT"),
        (libc::SIGSTOP, "SIGSTOP"),
        (libc::SIGTSTP, "SIGTSTP"),
        (libc::SIGTTIN, "SIGTTIN"),
        (libc::SIGTTOU, "SIGTTOU"),
        (libc::SIGURG, "SIGURG"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGWINCH, "SIGWINCH"),
        (libc::SIGIO, "SIGIO"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == signo)
        .map_or("unknown signal", |(_, name)| name)
}

/// Not public API: what code generated by `#[isolated]` calls, and the
/// test-only fault-injection seam. May change in any release.
#[doc(hidden)]
pub mod __private {
    /// The fault-injection seam (feature `fault-injection`).
    #[cfg(feature = "fault-injection")]
    pub mod fault {
        pub use crate::fault::{clear, fail_next, Call};
    }
    pub use crate::isolate::Isolate;
    pub use crate::MemIsolateError;

    /// Runs an `#[isolated] async fn`'s body in the child: the future
    /// `make()` returns, driven to completion (inside a fresh tokio runtime
    /// on a fresh thread with feature `tokio`, else by a minimal executor).
    pub fn run_async_body<M, F, T>(make: M) -> T
    where
        M: FnOnce() -> F + Send,
        F: core::future::Future<Output = T>,
        T: Send,
    {
        crate::block_on::run_body(make)
    }

    /// Feeds `data`, as if it came from a child, through the frame decoder
    /// and (when it holds a whole frame) the guarded codec, as several result
    /// types. For the fuzz target: it must never panic, abort or allocate by
    /// a length found in `data`.
    pub fn decode_untrusted(data: &[u8]) {
        crate::stream::decode_untrusted(data);
    }
    pub use core::result::Result;
    pub use serde::de::DeserializeOwned;
    pub use serde::Serialize;
}
