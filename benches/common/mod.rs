//! Pieces shared by the benchmarks: the hand-written floor and parent ballast.

#![allow(dead_code)] // each benchmark uses a different subset

use std::hint::black_box;

/// The floor every isolated call is measured against: `pipe2` + `fork` +
/// an 8-byte write + read + `waitpid`, nothing else.
pub(crate) fn fork_floor() -> u64 {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only writes and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let value = black_box(42u64).to_ne_bytes();
        // SAFETY: `value` is 8 readable bytes; `_exit` never returns.
        unsafe {
            libc::write(fds[1], value.as_ptr().cast(), 8);
            libc::_exit(0);
        }
    }
    let mut value = [0u8; 8];
    // SAFETY: closing our copy of the write end; `value` is 8 writable bytes;
    // `status` is a valid out-pointer.
    unsafe {
        libc::close(fds[1]);
        assert_eq!(libc::read(fds[0], value.as_mut_ptr().cast(), 8), 8);
        libc::close(fds[0]);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &raw mut status, 0), pid);
    }
    u64::from_ne_bytes(value)
}

/// Resident memory held by the parent during a group of measurements.
pub(crate) struct Ballast {
    ptr: *mut libc::c_void,
    len: usize,
}

/// How the ballast is backed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pages {
    /// 4 KiB pages (`MADV_NOHUGEPAGE`).
    Small,
    /// Transparent huge pages (`MADV_HUGEPAGE`).
    Huge,
}

impl Ballast {
    /// Maps and touches `len` bytes.
    pub(crate) fn new(len: usize, pages: Pages) -> Self {
        if len == 0 {
            return Self {
                ptr: std::ptr::null_mut(),
                len,
            };
        }
        // SAFETY: an anonymous private mapping touches no existing memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        let advice = match pages {
            Pages::Small => libc::MADV_NOHUGEPAGE,
            Pages::Huge => libc::MADV_HUGEPAGE,
        };
        // SAFETY: advising a mapping we own; then writing inside it.
        unsafe {
            libc::madvise(ptr, len, advice);
            std::ptr::write_bytes(ptr.cast::<u8>(), 0x5A, len);
        }
        Self { ptr, len }
    }

    /// Writes one byte in every page.
    pub(crate) fn touch_every_page(&self) {
        for offset in (0..self.len).step_by(4096) {
            // SAFETY: `offset` lies inside the mapping made in `new`.
            unsafe { self.ptr.cast::<u8>().add(offset).write_volatile(0x5B) };
        }
    }
}

impl Drop for Ballast {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping made in `new`, unused after this.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}
