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
//! on it. Each page remembers the process that mapped it, so calls a child
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

/// Who reaps the child (see [`crate::reaper`]).
const UNCLAIMED: u32 = 0;
const REAPER_OWNS: u32 = 1;
const PARENT_OWNS: u32 = 2;

#[repr(C)]
struct Words {
    code: AtomicU32,
    errno: AtomicI32,
    reaper: AtomicU32,
}

const PAGE_LEN: usize = 4096;

/// The calling thread's page and the process that mapped it; unmapped when
/// the thread exits.
struct Slot {
    page: Cell<*mut Words>,
    owner: Cell<sys::Pid>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let page = self.page.get();
        if !page.is_null() && self.owner.get() == sys::current_pid() {
            // SAFETY: the page came from `map_shared_page(PAGE_LEN)` in this
            // process, and no `ReportPage` outlives the thread.
            unsafe { sys::unmap(page.cast(), PAGE_LEN) };
        }
    }
}

thread_local! {
    static SLOT: Slot = const { Slot { page: Cell::new(ptr::null_mut()), owner: Cell::new(0) } };
}

/// A handle on the calling thread's report page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReportPage(NonNull<Words>);

impl ReportPage {
    /// The calling thread's page, cleared for a new call; `None` if it cannot
    /// be mapped (the call then goes on without the side channel).
    ///
    /// `current_pid` tells a page this process mapped from one it inherited:
    /// a child making calls of its own (nested isolation) maps a fresh page
    /// instead of scribbling on its parent's, and the child never has to
    /// write to its thread-local slot after `fork` (one copy-on-write fault
    /// less on every call).
    pub(crate) fn for_this_thread(current_pid: sys::Pid) -> Option<Self> {
        let words = SLOT
            .try_with(|slot| {
                if slot.page.get().is_null() || slot.owner.get() != current_pid {
                    if let Ok(page) = sys::map_shared_page(PAGE_LEN) {
                        slot.page.set(page.cast());
                        slot.owner.set(current_pid);
                    }
                }
                slot.page.get()
            })
            .ok()?;
        let page = Self(NonNull::new(words)?);
        page.words().code.store(NONE, Ordering::Relaxed);
        page.words().reaper.store(UNCLAIMED, Ordering::Relaxed);
        Some(page)
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

    /// Child side: claims the child for the reaper thread. `false` if the
    /// parent claimed it first.
    pub(crate) fn claim_for_reaper(self) -> bool {
        self.claim(REAPER_OWNS)
    }

    /// Parent side: claims the child for the caller to kill and reap.
    /// `false` if the child already handed itself to the reaper.
    pub(crate) fn claim_for_parent(self) -> bool {
        self.claim(PARENT_OWNS)
    }

    /// Child side: undoes [`Self::claim_for_reaper`] when the hand-over failed.
    pub(crate) fn release_to_parent(self) {
        self.words().reaper.store(PARENT_OWNS, Ordering::Release);
    }

    fn claim(self, owner: u32) -> bool {
        let words = self.words();
        match words
            .reaper
            .compare_exchange(UNCLAIMED, owner, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(current) => current == owner,
        }
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
