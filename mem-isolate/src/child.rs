//! Everything the child runs after `fork`. It is short on purpose: the child
//! of a multi-threaded parent may find any lock held forever, so before the
//! result is sent the crate's own code here takes no lock and allocates
//! nothing but the buffer of a result too big for the stack frame (a
//! mapping of its own, not `malloc`'s heap, so no allocator lock); it
//! never returns or unwinds into the caller's frames and leaves through
//! `_exit`.

use std::any::Any;
use std::io::Write as _;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;

use crate::capture::ChildCapture;
use crate::codec;
use crate::frame::{self, FrameKind, Progress, SmallValueFrame, ValueSink, DONE_MARK};
use crate::panic_hook;
use crate::report::{ChildFailure, ReportPage};
use crate::sys;

/// What the child needs besides the callable.
pub(crate) struct ChildSetup<'a> {
    /// The child's copy of the result pipe's read end (a zygote's worker
    /// never had one).
    pub(crate) read_end: Option<OwnedFd>,
    pub(crate) write_end: OwnedFd,
    /// Where stdout and stderr go, when the call captures them.
    pub(crate) capture: Option<ChildCapture>,
    pub(crate) report: Option<&'a ReportPage>,
    pub(crate) memory_limit: Option<u64>,
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    pub(crate) parent_pid: sys::Pid,
}

/// Exits the child if anything ever unwinds past [`run`] (it cannot: every
/// user-supplied piece runs under `catch_unwind`; this is the backstop that
/// keeps a child from returning into the caller's frames).
struct ExitOnUnwind;

impl Drop for ExitOnUnwind {
    fn drop(&mut self) {
        sys::exit_immediately(libc::EXIT_FAILURE);
    }
}

/// Runs `callable` and sends its outcome to the parent. Never returns.
pub(crate) fn run<F, T>(callable: F, setup: ChildSetup<'_>) -> !
where
    F: FnOnce() -> T,
    T: Serialize,
{
    let _backstop = ExitOnUnwind;
    let fail = |failure: ChildFailure| -> ! {
        if let Some(report) = setup.report {
            report.record(&failure);
        }
        sys::exit_immediately(libc::EXIT_FAILURE)
    };

    #[cfg(any(target_os = "linux", target_os = "android"))]
    if sys::die_with_parent(setup.parent_pid).is_err() {
        // Not fatal: the child still works, it just would outlive a killed parent.
    }
    panic_hook::mark_isolated_child();
    // Without the read end, a child whose parent died gets EPIPE instead of
    // blocking forever on a full pipe.
    let forked_directly = setup.read_end.is_some();
    if let Some(read_end) = setup.read_end {
        if let Err(e) = sys::close(read_end) {
            fail(ChildFailure::ClosePipe(e));
        }
        // Requests to the zygote come from the program itself only.
        crate::zygote::close_channel_in_child(setup.parent_pid);
        // Nor can it reach the parent's background waiter.
        crate::wait::background::close_in_child(setup.parent_pid);
    }
    let write_end = match setup.capture {
        Some(capture) => capture.install(setup.write_end, forked_directly),
        None => setup.write_end,
    };
    if let Some(limit) = setup.memory_limit {
        // Address space bounds new mappings; data bounds committing memory
        // the parent only reserved (a thread's `malloc` arena), which does
        // not grow the address space.
        let applied = sys::memory_sizes().and_then(|current| {
            sys::limit_address_space(current.address_space.saturating_add(limit))?;
            sys::limit_data(current.data.saturating_add(limit))
        });
        if let Err(e) = applied {
            fail(ChildFailure::MemoryLimit(e));
        }
        if let Some(report) = setup.report {
            // Best effort: without it the abort is reported as a plain SIGABRT.
            let _ = report.watch_for_out_of_memory();
        }
        // An `ENOMEM` left over from the caller is not the callable's.
        sys::clear_errno();
    }

    let fd = write_end.as_fd();
    let sent = match catch_unwind(AssertUnwindSafe(callable)) {
        Ok(value) => {
            let sent = send_value(&value, fd);
            // The value's destructor is the user's code and the process is about to end.
            std::mem::forget(value);
            sent
        }
        Err(payload) => {
            let text = panic_hook::panic_text(&panic_message(&*payload));
            std::mem::forget(payload);
            frame::send_message(fd, FrameKind::Panic, &text).map(|()| text.len() as u64)
        }
    };
    let sent = match sent {
        Ok(bytes) => bytes,
        Err(e) => fail(ChildFailure::WriteResult(e)),
    };
    // Only now: a subscriber may take locks another thread held at `fork`.
    #[cfg(feature = "tracing")]
    {
        let _span = tracing::debug_span!("mem_isolate.child", pid = sys::current_pid()).entered();
        tracing::debug!(bytes = sent, "result sent");
    }
    // The result is out; now the housekeeping that may block on a lock
    // another thread held at `fork` (the parent bounds how long it waits).
    let _ = catch_unwind(|| std::io::stdout().flush());
    // And what C code printed: C stdio buffers everything when stdout is a
    // file or a pipe, and `_exit` drops the buffers.
    let _ = sys::flush_c_stdio();
    let _ = sys::write_all(fd, &[DONE_MARK]);
    #[cfg(not(feature = "tracing"))]
    let _ = sent;
    sys::exit_immediately(0)
}

/// Sends the value, serialized once: into the stack frame and sent with one
/// write when it fits, else streamed chunk by chunk while it is encoded
/// (see [`ValueSink`]). A `Serialize` that fails or panics becomes a
/// `SerializationFailed` message, sent after whatever part of the value
/// went out. `Err`: the pipe refused the bytes.
fn send_value<T: Serialize>(value: &T, fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    let mut small = SmallValueFrame::new();
    let mut progress = Progress::default();
    let sent = catch_unwind(AssertUnwindSafe(|| {
        let sink = ValueSink::new(fd, &mut small, &mut progress);
        codec::encode_to_sink(value, sink)?.finish()
    }));
    if let Some(e) = progress.write_error.take() {
        return Err(e);
    }
    let failure = match sent {
        Ok(Ok(())) => return Ok(progress.sent),
        Ok(Err(e)) => e.to_string(),
        Err(payload) => panicked(payload),
    };
    frame::abandon_value(fd, &progress, FrameKind::SerializationFailed, &failure)
        .map(|()| progress.sent + failure.len() as u64)
}

/// The message for a `Serialize` that panicked. The payload is forgotten,
/// not dropped: its destructor is the user's code.
fn panicked(payload: Box<dyn Any + Send>) -> String {
    let message = format!("`Serialize` panicked: {}", panic_message(&*payload));
    std::mem::forget(payload);
    message
}

/// The text of a panic payload: `&str` and `String` as themselves, anything
/// else described by its absence of text.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        panic_hook::NON_STRING_PAYLOAD.to_owned()
    }
}
