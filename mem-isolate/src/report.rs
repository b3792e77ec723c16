//! An out-of-band channel for the child's *own* failures.
//!
//! A callable can exit with any status and raise any signal, so neither can
//! tell the parent "the crate's code in the child failed" without being
//! mistaken for something the callable did (mem-isolate 0.1.6 reports a
//! callable's `exit(3)` as "did not execute"). Instead each thread keeps one
//! page mapped `MAP_SHARED` before it forks; the child writes a failure code
//! and `errno` there, and the parent reads it when no result arrived.
//!
//! The page is mapped once per thread and reused (a per-call `mmap` would
//! cost two syscalls), zeroed by the parent before each `fork`, and touched
//! by the child only when something fails, so the success path never faults
//! on it. A child forgets its inherited page right after `fork`, so calls it
//! makes itself (nested isolation) map their own and cannot scribble on the
//! parent's.

use std::cell::Cell;
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use crate::sys;

/// What the crate's child-side code could not do.
#[derive(Debug)]
pub(crate) enum ChildFailure {
    /// Closing the child's copy of the pipe's read end failed.
    ClosePipe(io::Error),
    /// Applying the memory limit failed.
    MemoryLimit(io::Error),
    /// Writing the result frame failed.
    WriteResult(io::Error),
}

const NONE: u32 = 0;
const CLOSE_PIPE: u32 = 1;
const MEMORY_LIMIT: u32 = 2;
const WRITE_RESULT: u32 = 3;

#[repr(C)]
struct Words {
    code: AtomicU32,
    errno: AtomicI32,
}

const PAGE_LEN: usize = 4096;

/// The calling thread's page, unmapped when the thread exits.
struct Slot(Cell<*mut Words>);

impl Drop for Slot {
    fn drop(&mut self) {
        let page = self.0.get();
        if !page.is_null() {
            // SAFETY: the page came from `map_shared_page(PAGE_LEN)` and no `ReportPage` outlives the thread.
            unsafe { sys::unmap(page.cast(), PAGE_LEN) };
        }
    }
}

thread_local! {
    static SLOT: Slot = const { Slot(Cell::new(ptr::null_mut())) };
}

/// A handle on the calling thread's report page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReportPage(NonNull<Words>);

impl ReportPage {
    /// The calling thread's page, cleared for a new call; `None` if it cannot
    /// be mapped (the call then goes on without the side channel).
    pub(crate) fn for_this_thread() -> Option<Self> {
        let words = SLOT
            .try_with(|slot| {
                if slot.0.get().is_null() {
                    if let Ok(page) = sys::map_shared_page(PAGE_LEN) {
                        slot.0.set(page.cast());
                    }
                }
                slot.0.get()
            })
            .ok()?;
        let page = Self(NonNull::new(words)?);
        page.words().code.store(NONE, Ordering::Relaxed);
        Some(page)
    }

    /// In the child, right after `fork`: let nested calls map their own page.
    /// The inherited mapping stays valid for this handle.
    pub(crate) fn detach_in_child() {
        let _ = SLOT.try_with(|slot| slot.0.set(ptr::null_mut()));
    }

    fn words(&self) -> &Words {
        // SAFETY: the pointer is a live mapping of at least `size_of::<Words>()`
        // bytes, page aligned, and only ever accessed through atomics.
        unsafe { self.0.as_ref() }
    }

    /// Child side: record a failure of the crate's own code.
    pub(crate) fn record(self, failure: &ChildFailure) {
        let (code, error) = match failure {
            ChildFailure::ClosePipe(e) => (CLOSE_PIPE, e),
            ChildFailure::MemoryLimit(e) => (MEMORY_LIMIT, e),
            ChildFailure::WriteResult(e) => (WRITE_RESULT, e),
        };
        let words = self.words();
        words
            .errno
            .store(error.raw_os_error().unwrap_or(0), Ordering::Relaxed);
        words.code.store(code, Ordering::Release);
    }

    /// Parent side, after the child is gone: what it recorded, if anything.
    pub(crate) fn take(self) -> Option<ChildFailure> {
        let words = self.words();
        let code = words.code.swap(NONE, Ordering::Acquire);
        let error = || io::Error::from_raw_os_error(words.errno.load(Ordering::Relaxed));
        match code {
            CLOSE_PIPE => Some(ChildFailure::ClosePipe(error())),
            MEMORY_LIMIT => Some(ChildFailure::MemoryLimit(error())),
            WRITE_RESULT => Some(ChildFailure::WriteResult(error())),
            _ => None,
        }
    }
}
