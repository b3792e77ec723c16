//! An out-of-band channel for the child's *own* failures.
//!
//! A callable can exit with any status and raise any signal, so neither can
//! tell the parent "the crate's code in the child failed" without being
//! mistaken for something the callable did (mem-isolate 0.1.6 reports a
//! callable's `exit(3)` as "did not execute"). Instead each call maps one
//! page `MAP_SHARED` before it forks; the child writes a failure code and
//! `errno` there, and the parent reads it when no result arrived.
//!
//! The page belongs to one call: the parent maps it before `fork`, keeps it
//! out of the children that other threads fork afterwards
//! (`MADV_DONTFORK`), and unmaps it when the call ends, so a child that
//! outlives its call (or a sibling) cannot write into a later call's page.
//! The child touches it only when something fails, so the success path never
//! faults on it. What the parent reads there is untrusted like every other
//! byte a child can reach: an unknown code counts as nothing recorded, and a
//! record counts only if the call's own child wrote it (its pid is stored
//! with it). A sibling forked by another thread in the moment between the
//! `mmap` and the `MADV_DONTFORK` inherits the page; a blind write from it is
//! ignored (one that names our child's pid is no more than what it can do to
//! the result pipe it inherited in the same moment; see the README's
//! Limitations).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, Ordering};

use crate::sys;

/// What the crate's child-side code could not do, or saw go wrong.
#[derive(Debug)]
pub(crate) enum ChildFailure {
    /// Closing the child's copy of the pipe's read end failed.
    ClosePipe(io::Error),
    /// Applying the memory limit failed.
    MemoryLimit(io::Error),
    /// Writing the result frame failed.
    WriteResult(io::Error),
    /// The child aborted right after an allocation failed (`errno` was
    /// `ENOMEM`) while a memory limit was in force.
    OutOfMemory,
}

const NONE: u32 = 0;
const CLOSE_PIPE: u32 = 1;
const MEMORY_LIMIT: u32 = 2;
const WRITE_RESULT: u32 = 3;
const OUT_OF_MEMORY: u32 = 4;

#[repr(C)]
struct Words {
    code: AtomicU32,
    errno: AtomicI32,
    /// Who wrote the record: it counts only from the call's own child.
    writer: AtomicI32,
}

const PAGE_LEN: usize = 4096;

/// One call's page. The parent owns the mapping and unmaps it on drop; the
/// child only ever writes to its copy and leaves through `_exit`.
#[derive(Debug)]
pub(crate) struct ReportPage(NonNull<Words>);

// SAFETY: the page is only accessed through atomics.
unsafe impl Send for ReportPage {}

impl ReportPage {
    /// A fresh, zeroed page; `None` if it cannot be mapped (the call then
    /// goes on without the side channel).
    pub(crate) fn new() -> Option<Self> {
        let page = sys::map_shared_page(PAGE_LEN).ok()?;
        NonNull::new(page.cast()).map(Self)
    }

    /// Parent side, right after `fork`: keep the page out of the children
    /// other threads fork later.
    pub(crate) fn keep_out_of_later_forks(&self) {
        sys::keep_out_of_later_forks(self.0.as_ptr().cast(), PAGE_LEN);
    }

    fn words(&self) -> &Words {
        // SAFETY: the pointer is a live mapping of `PAGE_LEN` bytes, page
        // aligned, and only ever accessed through atomics.
        unsafe { self.0.as_ref() }
    }

    /// Child side: record a failure of the crate's own code.
    pub(crate) fn record(&self, failure: &ChildFailure) {
        let (code, errno) = match failure {
            ChildFailure::ClosePipe(e) => (CLOSE_PIPE, e.raw_os_error()),
            ChildFailure::MemoryLimit(e) => (MEMORY_LIMIT, e.raw_os_error()),
            ChildFailure::WriteResult(e) => (WRITE_RESULT, e.raw_os_error()),
            ChildFailure::OutOfMemory => (OUT_OF_MEMORY, Some(libc::ENOMEM)),
        };
        record_words(self.words(), code, errno.unwrap_or(0));
    }

    /// Child side: from now on an abort that follows a failed allocation is
    /// recorded here (installed only when a memory limit is set).
    pub(crate) fn watch_for_out_of_memory(&self) -> io::Result<()> {
        ABORT_REPORT.store(self.0.as_ptr(), Ordering::Release);
        sys::on_abort_once(record_abort_after_enomem)
    }

    /// Parent side, after `child` is gone: what it recorded, if anything.
    pub(crate) fn take(&self, child: sys::Pid) -> Option<ChildFailure> {
        let (code, errno) = self.take_raw(child);
        ChildFailure::from_raw(code, errno)
    }

    /// The code and `errno` that `child` recorded (`NONE` if another
    /// process wrote the page: a sibling forked before `MADV_DONTFORK` took
    /// effect inherits it), to forward them elsewhere.
    pub(crate) fn take_raw(&self, child: sys::Pid) -> (u32, i32) {
        let words = self.words();
        let code = words.code.swap(NONE, Ordering::Acquire);
        if words.writer.load(Ordering::Relaxed) != child {
            return (NONE, 0);
        }
        (code, words.errno.load(Ordering::Relaxed))
    }
}

impl ChildFailure {
    /// A failure from its recorded code and `errno`; `None` for "nothing"
    /// and for any code that is not one of ours.
    pub(crate) fn from_raw(code: u32, errno: i32) -> Option<Self> {
        let error = || {
            if errno == 0 {
                io::Error::other("the child recorded no OS error")
            } else {
                io::Error::from_raw_os_error(errno)
            }
        };
        match code {
            CLOSE_PIPE => Some(ChildFailure::ClosePipe(error())),
            MEMORY_LIMIT => Some(ChildFailure::MemoryLimit(error())),
            WRITE_RESULT => Some(ChildFailure::WriteResult(error())),
            OUT_OF_MEMORY => Some(ChildFailure::OutOfMemory),
            _ => None,
        }
    }
}

impl Drop for ReportPage {
    fn drop(&mut self) {
        // SAFETY: the page came from `map_shared_page(PAGE_LEN)` and no
        // reference into it outlives `self`.
        unsafe { sys::unmap(self.0.as_ptr().cast(), PAGE_LEN) };
    }
}

fn record_words(words: &Words, code: u32, errno: i32) {
    words.writer.store(sys::current_pid(), Ordering::Relaxed);
    words.errno.store(errno, Ordering::Relaxed);
    words.code.store(code, Ordering::Release);
}

/// The page the `SIGABRT` handler writes to (set in the child only).
static ABORT_REPORT: AtomicPtr<Words> = AtomicPtr::new(std::ptr::null_mut());

/// `SIGABRT` handler: an abort whose `errno` is `ENOMEM` is the allocation
/// failure a memory limit causes (Rust's allocation-error handler prints one
/// line, which leaves `errno` alone, and aborts). Async-signal-safe: it
/// reads `errno` and the pid and stores three atomics.
extern "C" fn record_abort_after_enomem(_signal: libc::c_int) {
    let errno = sys::errno();
    let page = ABORT_REPORT.load(Ordering::Acquire);
    if errno == libc::ENOMEM && !page.is_null() {
        // SAFETY: the pointer was set from a live report page in this process,
        // which the child never unmaps.
        record_words(unsafe { &*page }, OUT_OF_MEMORY, errno);
    }
}
