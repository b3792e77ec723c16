//! A byte buffer in its own anonymous mapping, advised to use transparent
//! huge pages before its first byte is touched, that grows by `mremap`
//! (page tables move, bytes are not copied).
//!
//! A `Vec` grown step by step does not get huge pages: `realloc` copies the
//! old bytes into fresh 4 KiB pages before any advice can be given, and
//! advice given to an interior range splits the mapping so that the next
//! `mremap` fails and `realloc` copies again. A buffer of its own avoids
//! both, and its advice ends with it (`munmap`), never lingering on a heap
//! range the allocator hands out again.

use std::io;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// Mappings this big are advised to use huge pages. Smaller ones are not:
/// a huge-page fault may compact memory first (with `defrag` at `madvise`,
/// the default), which costs more than it saves on a few MiB.
const ADVISE_MAPPING_LEN: usize = 8 << 20;

/// Huge page size on x86-64 and most arm64 kernels; capacities are rounded
/// to it so that the kernel can align the mapping to it.
const HUGE_PAGE: usize = 2 << 20;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct MappedBuffer {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
}

// SAFETY: the buffer owns its mapping exclusively, like a `Vec<u8>`.
unsafe impl Send for MappedBuffer {}
// SAFETY: shared access only reads.
unsafe impl Sync for MappedBuffer {}

impl Default for MappedBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl MappedBuffer {
    /// An empty buffer; nothing is mapped until the first reservation.
    pub(crate) const fn new() -> Self {
        Self {
            ptr: NonNull::dangling(),
            len: 0,
            capacity: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of the mapping are initialized (the
        // kernel zero-fills it; `len` only covers bytes we wrote).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped room after the bytes written so far.
    pub(crate) fn spare_capacity_mut(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: `len..capacity` lies inside the mapping, which we own.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.as_ptr().add(self.len).cast(),
                self.capacity - self.len,
            )
        }
    }

    /// Forgets the bytes written; the room stays.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Marks `n` more bytes as written.
    ///
    /// # Safety
    ///
    /// The first `n` bytes of [`Self::spare_capacity_mut`] were initialized.
    pub(crate) unsafe fn advance(&mut self, n: usize) {
        debug_assert!(self.len + n <= self.capacity);
        self.len += n;
    }

    /// Room for `additional` more bytes: at least twice the current
    /// capacity, in whole huge pages. `Err` when the memory cannot be had
    /// (an address-space limit, say), never an abort.
    pub(crate) fn try_reserve(&mut self, additional: usize) -> io::Result<()> {
        if self.capacity - self.len >= additional {
            return Ok(());
        }
        let needed = self
            .len
            .checked_add(additional)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let capacity = needed
            .max(self.capacity.saturating_mul(2))
            .checked_next_multiple_of(HUGE_PAGE)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        self.ptr = if self.capacity == 0 {
            imp::map(capacity)?
        } else {
            imp::remap(self.ptr, self.capacity, capacity)?
        };
        if capacity >= ADVISE_MAPPING_LEN && self.capacity < ADVISE_MAPPING_LEN {
            // The whole mapping, so that it stays one piece for `mremap`.
            imp::advise(self.ptr.as_ptr(), capacity);
        }
        self.capacity = capacity;
        Ok(())
    }

    /// Appends `bytes` (after [`Self::try_reserve`] made room).
    #[inline]
    pub(crate) fn extend_from_reserved(&mut self, bytes: &[u8]) {
        assert!(self.capacity - self.len >= bytes.len(), "reserve first");
        // SAFETY: the destination lies inside the mapping (checked above)
        // and cannot overlap `bytes`, which the caller borrows elsewhere.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.ptr.as_ptr().add(self.len),
                bytes.len(),
            );
        }
        self.len += bytes.len();
    }

    /// Appends one byte (after [`Self::try_reserve`] made room).
    #[inline]
    pub(crate) fn push_reserved(&mut self, byte: u8) {
        assert!(self.len < self.capacity, "reserve first");
        // SAFETY: `len < capacity`: inside the mapping.
        unsafe { self.ptr.as_ptr().add(self.len).write(byte) };
        self.len += 1;
    }
}

/// `MADV_HUGEPAGE` on a fresh allocation from the global allocator,
/// before its first byte is written (Linux; best effort). Only for
/// allocations of at least [`ADVISE_ALLOCATION_LEN`]: glibc serves those
/// with a mapping of their own (its threshold for that never rises above
/// 32 MiB), so the advice ends with the allocation rather than lingering on
/// a heap range handed out again. The advice covers every page the
/// allocation touches, which is the whole of that mapping: advice on an
/// interior range would split it in two, and growing it (`realloc`) would
/// then copy the bytes instead of moving page tables with `mremap`.
pub(crate) fn advise_fresh_allocation(spare: &mut [MaybeUninit<u8>]) {
    if spare.len() < ADVISE_ALLOCATION_LEN {
        return;
    }
    let start = spare.as_ptr() as usize;
    let page_start = start / PAGE * PAGE;
    imp::advise(page_start as *mut u8, start + spare.len() - page_start);
}

/// Writes a zero into every page of `room` (memory about to be read into
/// from a pipe), so that the kernel allocates and zeroes those pages now.
/// Otherwise it does so inside the `read`, holding the pipe's lock, and the
/// child writing into the pipe waits: a fresh huge page takes longer to zero
/// than a pipe's worth of bytes takes to copy.
pub(crate) fn prefault(room: &mut [MaybeUninit<u8>]) {
    for page in room.chunks_mut(PAGE) {
        page[0].write(0);
    }
}

/// The smallest page size; where pages are bigger, `madvise` refuses the
/// unaligned start and the advice is just not given.
const PAGE: usize = 4096;

/// See [`advise_fresh_allocation`].
pub(crate) const ADVISE_ALLOCATION_LEN: usize = 32 << 20;

impl Drop for MappedBuffer {
    fn drop(&mut self) {
        if self.capacity > 0 {
            imp::unmap(self.ptr, self.capacity);
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use super::{io, NonNull};

    pub(super) fn map(len: usize) -> io::Result<NonNull<u8>> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
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
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
    }

    pub(super) fn remap(ptr: NonNull<u8>, old: usize, new: usize) -> io::Result<NonNull<u8>> {
        // SAFETY: `ptr..ptr + old` is exactly one mapping made by `map`
        // (whole, one advice, so one VMA); MREMAP_MAYMOVE may move it, and
        // the caller replaces its pointer with the result.
        let moved = unsafe { libc::mremap(ptr.as_ptr().cast(), old, new, libc::MREMAP_MAYMOVE) };
        if moved == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(moved.cast()).ok_or_else(|| io::Error::other("mremap returned null"))
    }

    pub(super) fn advise(start: *mut u8, len: usize) {
        // SAFETY: the caller passes a range of memory it owns; MADV_HUGEPAGE
        // changes how it is backed, never its contents.
        let _ = unsafe { libc::madvise(start.cast(), len, libc::MADV_HUGEPAGE) };
    }

    pub(super) fn unmap(ptr: NonNull<u8>, len: usize) {
        // SAFETY: `ptr..ptr + len` is a mapping made by `map`/`remap` that
        // nothing refers to any more (the buffer is being dropped).
        let _ = unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    //! Elsewhere: the global allocator, with no advice and a copy on growth.
    use super::{io, NonNull};
    use std::alloc::{alloc, dealloc, realloc, Layout};

    fn layout(len: usize) -> io::Result<Layout> {
        Layout::from_size_align(len, super::HUGE_PAGE)
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))
    }

    pub(super) fn map(len: usize) -> io::Result<NonNull<u8>> {
        // SAFETY: `len` is non-zero (a whole number of huge pages).
        NonNull::new(unsafe { alloc(layout(len)?) })
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))
    }

    pub(super) fn remap(ptr: NonNull<u8>, old: usize, new: usize) -> io::Result<NonNull<u8>> {
        // SAFETY: `ptr` came from `map`/`remap` with `layout(old)`.
        NonNull::new(unsafe { realloc(ptr.as_ptr(), layout(old)?, new) })
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))
    }

    pub(super) fn advise(_start: *mut u8, _len: usize) {}

    pub(super) fn unmap(ptr: NonNull<u8>, len: usize) {
        if let Ok(layout) = layout(len) {
            // SAFETY: `ptr` came from `map`/`remap` with this layout.
            unsafe { dealloc(ptr.as_ptr(), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_keeping_its_bytes() {
        let mut buf = MappedBuffer::new();
        let mut expected = Vec::new();
        for round in 0..6u8 {
            let piece = vec![round; (1 << 20) + usize::from(round)];
            buf.try_reserve(piece.len()).unwrap();
            buf.extend_from_reserved(&piece);
            expected.extend_from_slice(&piece);
        }
        buf.try_reserve(1).unwrap();
        buf.push_reserved(42);
        expected.push(42);
        assert_eq!(buf.as_slice(), &expected[..]);
        assert_eq!(buf.capacity() % HUGE_PAGE, 0);
    }

    /// The kernel's flags for the mapping that holds `addr` (`hg`: huge
    /// pages advised).
    #[cfg(target_os = "linux")]
    fn vm_flags(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((start, end)) = range.split_once('-') {
                    if let (Ok(start), Ok(end)) = (
                        usize::from_str_radix(start, 16),
                        usize::from_str_radix(end, 16),
                    ) {
                        inside = (start..end).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    return flags.to_owned();
                }
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn big_buffers_and_only_big_ones_are_advised_as_one_mapping() {
        let mut buf = MappedBuffer::new();
        buf.try_reserve(1).unwrap();
        buf.extend_from_reserved(b"x");
        assert!(!vm_flags(buf.as_slice().as_ptr() as usize).contains(" hg"));
        // Grown past the threshold: advised, and still one mapping (the
        // last byte lies in the mapping that holds the first).
        buf.try_reserve(ADVISE_MAPPING_LEN).unwrap();
        let start = buf.as_slice().as_ptr() as usize;
        assert!(vm_flags(start).contains(" hg"), "{}", vm_flags(start));
        assert_eq!(vm_flags(start), vm_flags(start + buf.capacity() - 1));
        buf.try_reserve(buf.capacity()).unwrap();
        let start = buf.as_slice().as_ptr() as usize;
        assert!(vm_flags(start).contains(" hg"));
        assert_eq!(buf.as_slice(), b"x");
    }

    #[test]
    fn an_impossible_reservation_is_an_error() {
        let mut buf = MappedBuffer::new();
        assert!(buf.try_reserve(usize::MAX - 10).is_err());
        buf.try_reserve(10).unwrap();
        buf.extend_from_reserved(b"0123456789");
        assert!(buf.try_reserve(usize::MAX - 5).is_err());
        assert_eq!(buf.as_slice(), b"0123456789");
    }
}
