//! Helpers shared by the workspace's integration tests, examples and
//! benchmarks. Not published.

use std::time::{Duration, Instant};

/// Resident set size of this process in bytes (Linux: `/proc/self/statm`).
#[must_use]
pub fn current_rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

fn page_size() -> u64 {
    // SAFETY: `sysconf` has no memory-safety preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// Number of descriptors this process has open.
#[must_use]
pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Pids of this process's live or zombie children, over all its threads.
#[must_use]
pub fn child_pids() -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    pids
}

/// Waits until `cond` holds, up to `limit`; returns whether it did.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Pids of this process's children are gone (reaped), within 5 s.
#[must_use]
pub fn no_children_left() -> bool {
    eventually(Duration::from_secs(5), || child_pids().is_empty())
}

/// The descriptors this process has open.
#[must_use]
pub fn open_fds() -> std::collections::HashSet<i32> {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The descriptors this process has open once earlier calls have settled:
/// their children reaped and the pidfds the reaper held for them closed (a
/// closed number can be reused by the next call's pipe).
///
/// # Panics
///
/// If children are still there after 5 s.
#[must_use]
pub fn settled_fds() -> std::collections::HashSet<i32> {
    assert!(no_children_left(), "children left: {:?}", child_pids());
    let mut last = open_fds();
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let now = open_fds();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// In an isolated child: its result pipe's write end, the one write-only
/// descriptor the parent did not have (`before`) when the call began.
///
/// # Panics
///
/// If there is none.
#[must_use]
pub fn result_pipe<S: std::hash::BuildHasher>(before: &std::collections::HashSet<i32, S>) -> i32 {
    open_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        // SAFETY: F_GETFL on a descriptor of this process.
        .find(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_ACCMODE == libc::O_WRONLY)
        .expect("the result pipe")
}

/// Writes all of `bytes` to descriptor `fd`.
///
/// # Panics
///
/// If a write fails.
pub fn write_raw(fd: i32, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: `rest` is valid for reads of its length.
        let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
        assert!(n > 0, "write failed");
        rest = &rest[n.unsigned_abs()..];
    }
}

/// How many threads this process has (`Threads:` in `/proc/self/status`).
///
/// # Panics
///
/// If the file has no such line.
#[must_use]
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line in /proc/self/status")
}

/// Forging the crate's wire format from inside a child (see `frame.rs` in
/// the crate): the hostile-child tests write these bytes into the result
/// pipe themselves.
pub mod wire {
    /// Frame kinds.
    pub const VALUE: u8 = 0xA1;
    pub const PANIC: u8 = 0xA2;
    pub const SER_FAILED: u8 = 0xA3;
    /// The child's "done" mark.
    pub const DONE: u8 = 0xD0;
    /// In place of a chunk length: the value ends; it is abandoned.
    pub const END: [u8; 4] = [0; 4];
    pub const ABANDON: [u8; 4] = [0xFF; 4];

    /// One chunk: its length (u32 LE), then `bytes`.
    ///
    /// # Panics
    ///
    /// If `bytes` is longer than a `u32` can say.
    #[must_use]
    pub fn chunk(bytes: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(bytes.len()).unwrap().to_le_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    /// A whole value frame (one chunk) with the done mark.
    #[must_use]
    pub fn value_frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![VALUE];
        if !payload.is_empty() {
            f.extend_from_slice(&chunk(payload));
        }
        f.extend_from_slice(&END);
        f.push(DONE);
        f
    }

    /// A varint-prefixed length (bincode 2 standard) claiming `n`.
    #[must_use]
    pub fn varint(n: u64) -> Vec<u8> {
        if let Ok(small) = u8::try_from(n) {
            if small <= 250 {
                return vec![small];
            }
        }
        let mut v;
        if let Ok(n) = u16::try_from(n) {
            v = vec![251];
            v.extend_from_slice(&n.to_le_bytes());
        } else if let Ok(n) = u32::try_from(n) {
            v = vec![252];
            v.extend_from_slice(&n.to_le_bytes());
        } else {
            v = vec![253];
            v.extend_from_slice(&n.to_le_bytes());
        }
        v
    }

    /// Ends the calling process at once (`_exit`).
    pub fn exit_now(code: i32) -> ! {
        // SAFETY: `_exit` has no preconditions.
        unsafe { libc::_exit(code) }
    }
}
