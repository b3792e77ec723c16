//! Hardening: real forks, signals and pipes against the defects the runtime
//! was redesigned for (commit c10c086 fails these). A child that writes into
//! every descriptor it inherited or forges its own result, the caller's
//! values outliving the child, options at their extremes, a parent under
//! its own `RLIMIT_AS`, memory limits on every thread, the reaper's start-up
//! racing with nested forks, a grandchild holding the pipe, panics while
//! another thread holds the panic machinery, and a `Deserialize` that panics.
//!
//! Tests that need a whole process (its stderr, its limits, its first call)
//! run `isolate-probe MODE`, bounded by a generous "did not hang" deadline.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mem_isolate::errors::{
    CallableExecutedError as Executed, CallableStatusUnknownError as Unknown,
};
use mem_isolate::{execute_in_isolated_process, Isolate, MemIsolateError};
use mem_isolate_suite::{
    child_pids, eventually, no_children_left, open_fd_count, result_pipe, settled_fds, write_raw,
};
use serde::{Deserialize, Serialize};

/// These tests count this process's children and descriptors, and some find
/// a call's pipe as "the descriptor that is new since the call began": one
/// at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------- probes

struct ProbeRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for ProbeRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status: {:?}\n--- stdout ---\n{}\n--- stderr (tail) ---\n{}",
            self.status,
            self.stdout,
            tail(&self.stderr, 4000)
        )
    }
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Reads a pipe to its end, keeping at most the first 4 MiB.
fn collect(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if kept.len() < 4 << 20 {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// Runs `isolate-probe MODE` with `envs`; kills it and fails if it has not
/// ended within `limit`.
fn run_probe(mode: &str, envs: &[(&str, &str)], limit: Duration) -> ProbeRun {
    let mut probe = Command::new(env!("CARGO_BIN_EXE_isolate-probe"))
        .arg(mode)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn isolate-probe");
    let stdout = collect(probe.stdout.take().unwrap());
    let stderr = collect(probe.stderr.take().unwrap());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = probe.try_wait().expect("try_wait on the probe") {
            break Some(status);
        }
        if start.elapsed() > limit {
            let _ = probe.kill();
            let _ = probe.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let run = |status| ProbeRun {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    if let Some(status) = status {
        return run(status);
    }
    let killed = run(ExitStatus::default());
    panic!("probe {mode} {envs:?} hung: killed after {limit:?}\n{killed:?}");
}

// ------------------------------------ 1. nothing a child writes hurts the parent

/// The callable writes 4-byte pids (of a `sleep 2` and a `sleep 30` the
/// probe started itself with `Command`, 1, 0, -1), garbage and a stray byte
/// into every descriptor it inherited (in a fresh process, so the harness's
/// own descriptors are not among them): five times through a new
/// non-blocking open of `/proc/self/fd/N`, five times after setting
/// `O_NONBLOCK` on the shared description, while sibling calls run on another
/// thread. Then 25 calls return their values; the probe's `wait()` on
/// `sleep 2` gives exit 0 (no `ECHILD`), `try_wait()` on `sleep 30` says
/// "running" and, once killed, `wait()` gives `SIGKILL`; every isolated child
/// is reaped.
#[test]
fn vandalized_descriptors_cannot_redirect_or_stop_reaping() {
    let _serial = serial();
    let run = run_probe("hostile-descriptors", &[], Duration::from_secs(60));
    assert!(run.status.success(), "{run:?}");
    assert!(run.stdout.contains("hostile-descriptors ok"), "{run:?}");
}

/// A complete `Value` frame for a `u32` below 251 (bincode 2 standard: one
/// varint byte), followed by the done mark (see `frame.rs`).
fn forged_frame(value: u8) -> Vec<u8> {
    assert!(value < 251);
    let mut frame = vec![0xA1];
    frame.extend_from_slice(&1u32.to_le_bytes());
    frame.push(value);
    frame.extend_from_slice(&0u32.to_le_bytes());
    frame.push(0xD0);
    frame
}

/// The callable sends a complete frame and the done mark itself, then keeps
/// running: the call returns the forged value, and the child is killed and
/// reaped within a few seconds, with or without usage.
#[test]
fn a_forged_frame_and_done_mark_then_running_on_is_killed_and_reaped() {
    let _serial = serial();
    Isolate::new().execute(|| ()).unwrap();
    assert!(no_children_left());
    let fds = open_fd_count();
    for with_usage in [false, true] {
        let before = settled_fds();
        let start = Instant::now();
        let callable = move || -> u32 {
            write_raw(result_pipe(&before), &forged_frame(77));
            std::thread::sleep(Duration::from_secs(30));
            1
        };
        let isolate = Isolate::new().timeout(Duration::from_secs(60));
        let value = if with_usage {
            isolate.execute_with_usage(callable).map(|(v, _)| v)
        } else {
            isolate.execute(callable)
        };
        assert_eq!(value.unwrap(), 77, "with usage: {with_usage}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "with usage: {with_usage}: {:?}",
            start.elapsed()
        );
        assert!(
            no_children_left(),
            "with usage: {with_usage}: the forger is still there: {:?}",
            child_pids()
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "with usage: {with_usage}: {:?}",
            start.elapsed()
        );
    }
    assert!(eventually(Duration::from_secs(5), || open_fd_count() == fds));
}

/// In a child: writes "the crate's code failed to close the pipe (EBADF)"
/// into every one-page shared anonymous mapping it can see (the per-call
/// report pages, see `report.rs`: a failure code, then an `errno`). Returns
/// how many it found.
fn forge_report_pages() -> u32 {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut found = 0;
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [range, "rw-s", _, _, _, "/dev/zero", "(deleted)"] = fields[..] else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        if end - start != 4096 {
            continue;
        }
        let words = start as *mut u32;
        // SAFETY: a page-aligned, writable mapping of this process, listed
        // in its maps; written through volatile stores of aligned words.
        unsafe {
            words.add(1).write_volatile(libc::EBADF.unsigned_abs());
            words.write_volatile(1);
        }
        found += 1;
    }
    found
}

/// A concurrent sibling's child writes into every report page it inherited.
/// A call whose child exits with 3 must still say
/// `UnexpectedChildExitStatus(3)`, never a forged "did not execute" (which
/// tells the caller a retry is safe although the callable ran).
#[test]
fn a_sibling_cannot_forge_another_calls_child_failure() {
    let _serial = serial();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let vandal = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let isolate = Isolate::new().timeout(Duration::from_secs(20));
            while !stop.load(Ordering::Relaxed) {
                let _ = isolate.execute(forge_report_pages);
            }
        })
    };
    let isolate = Isolate::new().timeout(Duration::from_secs(20));
    let mut wrong = Vec::new();
    for call in 0..300 {
        let result = isolate.execute(|| -> u8 {
            std::thread::sleep(Duration::from_millis(10));
            std::process::exit(3)
        });
        if !matches!(
            result,
            Err(MemIsolateError::CallableStatusUnknown(
                Unknown::UnexpectedChildExitStatus(3)
            ))
        ) {
            wrong.push(format!("call {call}: {result:?}"));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    vandal.join().unwrap();
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(no_children_left());
}

// ----------------------------------------------------- 2. the caller's values

static TEMP_FILES: AtomicU32 = AtomicU32::new(0);

/// Deletes its file when dropped (in whichever process drops it).
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn new(contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "mem-isolate-hardening-{}-{}",
            std::process::id(),
            TEMP_FILES.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        Self { path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn read_after_a_while(file: &TempFile) -> Result<String, String> {
    std::thread::sleep(Duration::from_millis(200));
    std::fs::read_to_string(&file.path).map_err(|e| e.to_string())
}

/// The parent drops the closure (and the temp-file guard it owns) only
/// after the child has ended: the body, reading the file 200 ms in, finds it.
#[test]
fn a_captured_guard_outlives_the_child() {
    let _serial = serial();
    let file = TempFile::new("still here");
    let path = file.path.clone();
    let read = Isolate::new()
        .timeout(Duration::from_secs(20))
        .execute(move || read_after_a_while(&file))
        .unwrap();
    assert_eq!(read, Ok("still here".to_owned()));
    assert!(!path.exists(), "the guard ran in the parent too");
    assert!(no_children_left());
}

#[mem_isolate::isolated(timeout = "20s")]
fn read_guarded(file: TempFile) -> Result<String, String> {
    read_after_a_while(&file)
}

/// The same through `#[isolated]`: the argument moved into the body is
/// dropped in the parent only after the child has ended.
#[test]
fn an_isolated_fn_argument_outlives_the_child() {
    let _serial = serial();
    let file = TempFile::new("argument");
    let path = file.path.clone();
    assert_eq!(read_guarded(file).unwrap(), Ok("argument".to_owned()));
    assert!(!path.exists());
    assert!(no_children_left());
}

/// Panics when dropped in the process that created it (not in the child).
struct PanicsOnDropInParent {
    parent: u32,
}

impl Drop for PanicsOnDropInParent {
    #[allow(clippy::manual_assert)] // the payload must be this `&str`
    fn drop(&mut self) {
        if std::process::id() == self.parent {
            panic!("capture dropped in the parent");
        }
    }
}

/// A capture whose `Drop` panics in the parent: the panic reaches the
/// caller (which catches it), and the child is not left behind.
#[test]
fn a_capture_that_panics_when_dropped_leaves_no_child() {
    let _serial = serial();
    Isolate::new().execute(|| ()).unwrap();
    assert!(no_children_left());
    let fds = open_fd_count();
    for slow_child in [false, true] {
        let capture = PanicsOnDropInParent {
            parent: std::process::id(),
        };
        let caught = catch_unwind(AssertUnwindSafe(|| {
            Isolate::new()
                .timeout(Duration::from_secs(20))
                .execute(move || {
                    let _keep = &capture;
                    if slow_child {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    5u32
                })
        }));
        let payload = caught.expect_err("the capture's panic reaches the caller");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"capture dropped in the parent")
        );
        assert!(
            no_children_left(),
            "slow child: {slow_child}: {:?}",
            child_pids()
        );
    }
    // A later call is unaffected.
    assert_eq!(execute_in_isolated_process(|| 6u8).unwrap(), 6);
    assert!(no_children_left());
    assert!(eventually(Duration::from_secs(5), || open_fd_count() == fds));
}

/// Makes an isolated call of its own when dropped (in both processes).
struct CallsWhenDropped {
    seen: Arc<Mutex<Vec<Result<u32, String>>>>,
}

impl Drop for CallsWhenDropped {
    fn drop(&mut self) {
        let got = Isolate::new()
            .timeout(Duration::from_secs(20))
            .execute(|| 9u32)
            .map_err(|e| format!("{e:?}"));
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(got);
    }
}

/// A capture whose `Drop` makes an isolated call on the same thread. The
/// outer call, however it ends (a value, a value with usage, `exit(3)`, an
/// abort, a timeout), reports its own outcome; the inner call works; no child
/// is left.
#[test]
fn a_capture_whose_drop_makes_an_isolated_call() {
    #[derive(Debug, Clone, Copy)]
    enum Ending {
        Value,
        ValueWithUsage,
        Exit3,
        Abort,
        Timeout,
    }
    let _serial = serial();
    for ending in [
        Ending::Value,
        Ending::ValueWithUsage,
        Ending::Exit3,
        Ending::Abort,
        Ending::Timeout,
    ] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let capture = CallsWhenDropped {
            seen: Arc::clone(&seen),
        };
        let limit = if matches!(ending, Ending::Timeout) {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(20)
        };
        let isolate = Isolate::new().timeout(limit);
        let callable = move || -> u32 {
            let _keep = &capture;
            // Still running while the parent would drop the capture early.
            std::thread::sleep(Duration::from_millis(200));
            match ending {
                Ending::Value | Ending::ValueWithUsage => 41,
                Ending::Exit3 => std::process::exit(3),
                Ending::Abort => std::process::abort(),
                Ending::Timeout => {
                    std::thread::sleep(Duration::from_secs(30));
                    0
                }
            }
        };
        let outer = if matches!(ending, Ending::ValueWithUsage) {
            isolate.execute_with_usage(callable).map(|(v, _)| v)
        } else {
            isolate.execute(callable)
        };
        let right = match ending {
            Ending::Value | Ending::ValueWithUsage => matches!(outer, Ok(41)),
            Ending::Exit3 => matches!(
                outer,
                Err(MemIsolateError::CallableStatusUnknown(
                    Unknown::UnexpectedChildExitStatus(3)
                ))
            ),
            Ending::Abort => matches!(
                outer,
                Err(MemIsolateError::CallableStatusUnknown(
                    Unknown::ChildProcessKilledBySignal(libc::SIGABRT)
                ))
            ),
            Ending::Timeout => matches!(
                outer,
                Err(MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(l))) if l == limit
            ),
        };
        assert!(right, "{ending:?}: {outer:?}");
        assert_eq!(*seen.lock().unwrap(), [Ok(9)], "{ending:?}");
        assert!(no_children_left(), "{ending:?}: {:?}", child_pids());
    }
}

// --------------------------------------------------- 3. options never panic

/// `Duration::MAX`, `u64::MAX` seconds and `u64::MAX` sizes are accepted and
/// mean "no limit in practice": the call returns its value.
#[test]
fn extreme_options_are_accepted() {
    let _serial = serial();
    for timeout in [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::new(u64::MAX, 999_999_999),
        Duration::from_secs(u64::MAX / 2),
    ] {
        let isolate = Isolate::new().timeout(timeout);
        assert_eq!(isolate.execute(|| 3u8).unwrap(), 3, "{timeout:?}");
        let (v, _) = isolate.execute_with_usage(|| 4u8).unwrap();
        assert_eq!(v, 4, "{timeout:?}");
        let all = isolate
            .clone()
            .memory_limit(u64::MAX)
            .max_result_size(u64::MAX);
        assert_eq!(all.execute(|| vec![5u8; 1000]).unwrap(), vec![5u8; 1000]);
    }
    assert!(no_children_left());
}

// ------------------------------ 4. a result the parent cannot allocate

/// The probe runs under an `RLIMIT_AS` 64 MiB above its size and asks for a
/// 200 MiB result (under `max_result_size`): an error, never an abort, and
/// the child is killed and reaped.
#[test]
fn a_result_the_parent_cannot_allocate_is_an_error() {
    let _serial = serial();
    let run = run_probe("result-beyond-own-rlimit", &[], Duration::from_secs(60));
    assert!(run.status.success(), "{run:?}");
    assert!(
        run.stdout
            .contains("error: CallableExecuted(ResultAllocationFailed {")
            || run
                .stdout
                .contains("error: CallableExecuted(DeserializationFailed("),
        "{run:?}"
    );
    assert!(run.stdout.contains("children left: 0"), "{run:?}");
}

// ------------------------------------------------------ 5. memory limits

/// For limits of 1, 4 and 64 MiB, called from the main thread, from a
/// spawned thread, and allocating on a thread the callable spawns: half the
/// limit (in 64 KiB chunks, written) is `Ok`; twice the limit plus 8 MiB is
/// `MemoryLimitExceeded { limit }`; a plain `abort()` stays `SIGABRT`.
#[test]
fn memory_limits_hold_on_every_thread() {
    let _serial = serial();
    let run = run_probe("memory-limits", &[], Duration::from_secs(120));
    assert!(run.status.success(), "{run:?}");
    let verdicts: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("FAIL "))
        .collect();
    // 3 limits x (3 sites x 2 sizes + 1 abort), and the reaping check.
    assert_eq!(verdicts.len(), 22, "{run:?}");
    let failed: Vec<&&str> = verdicts.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(failed.is_empty(), "{failed:#?}\n{run:?}");
}

fn set_errno(value: i32) {
    // SAFETY: `__errno_location` returns this thread's errno.
    unsafe { *libc::__errno_location() = value };
}

/// An `abort()` that no allocation failure preceded stays a plain
/// `SIGABRT`, even when the calling thread's `errno` happened to be
/// `ENOMEM` when it called (the child inherits the caller's `errno`).
#[test]
fn an_abort_with_a_stale_enomem_is_still_a_plain_sigabrt() {
    let _serial = serial();
    let isolate = Isolate::new().memory_limit(64 << 20);
    set_errno(libc::ENOMEM);
    let err = isolate
        .execute(|| -> u8 { std::process::abort() })
        .unwrap_err();
    assert!(
        matches!(
            err,
            MemIsolateError::CallableStatusUnknown(Unknown::ChildProcessKilledBySignal(
                libc::SIGABRT
            ))
        ),
        "{err:?}"
    );
    assert!(no_children_left());
}

// ---------------------------------------------- 6. reaper start-up races

/// Twelve threads make their first calls at once, a third of them plain,
/// the others forking children that make nested calls (with and without
/// usage). Seven fresh processes; each must finish, every call `Ok`.
#[test]
fn first_calls_racing_with_nested_forks_never_hang() {
    let _serial = serial();
    for round in 0..7 {
        let run = run_probe("reaper-race", &[], Duration::from_secs(20));
        assert!(run.status.success(), "round {round}: {run:?}");
        assert!(
            run.stdout.contains("reaper-race ok"),
            "round {round}: {run:?}"
        );
    }
}

// ------------------------------- 7. a grandchild holding the pipe open

/// A pipe for a child to report its grandchild's pid through.
fn pid_pipe() -> [i32; 2] {
    let mut ends = [0; 2];
    // SAFETY: `ends` has room for two descriptors.
    let made = unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(made, 0);
    ends
}

/// Reads the grandchild's pid from the pipe (the child wrote it before it
/// ended), kills the grandchild, closes the pipe; whether there was a pid.
fn kill_reported_grandchild([pid_read, pid_write]: [i32; 2]) -> bool {
    // Our write end first: if the child never wrote (it failed early), the
    // read sees end-of-file instead of blocking forever. The grandchild holds
    // no copy of it (only the child wrote, before it ended).
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(pid_write) };
    let mut pid = [0u8; 4];
    // SAFETY: `pid` is valid for writes of 4 bytes.
    let n = unsafe { libc::read(pid_read, pid.as_mut_ptr().cast(), 4) };
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(pid_read) };
    if n != 4 {
        return false;
    }
    // SAFETY: killing the stray grandchild (no longer anybody's but init's).
    unsafe { libc::kill(i32::from_ne_bytes(pid), libc::SIGKILL) };
    true
}

/// The child forks a grandchild that keeps the pipe's write end for 5 s,
/// then exits with 3: the call returns `UnexpectedChildExitStatus(3)` well
/// before the grandchild lets go.
#[test]
fn a_child_that_exits_while_a_grandchild_holds_the_pipe() {
    let _serial = serial();
    let [pid_read, pid_write] = pid_pipe();
    let start = Instant::now();
    let err = Isolate::new()
        .timeout(Duration::from_secs(30))
        .execute(move || -> u8 {
            // SAFETY: the grandchild only closes stdio, sleeps and `_exit`s.
            let grandchild = unsafe { libc::fork() };
            if grandchild == 0 {
                // SAFETY: closing this grandchild's own copies.
                unsafe { (libc::close(1), libc::close(2)) };
                std::thread::sleep(Duration::from_secs(5));
                // SAFETY: `_exit` has no preconditions.
                unsafe { libc::_exit(0) };
            }
            write_raw(pid_write, &grandchild.to_ne_bytes());
            std::process::exit(3)
        })
        .unwrap_err();
    let took = start.elapsed();
    let killed = kill_reported_grandchild([pid_read, pid_write]);
    assert!(
        matches!(
            err,
            MemIsolateError::CallableStatusUnknown(Unknown::UnexpectedChildExitStatus(3))
        ),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(killed, "the grandchild's pid");
    assert!(no_children_left());
}

/// As above, but the grandchild keeps the pipe busy: it sends the header of
/// a 1 MiB frame, then a byte every 5 ms for 10 s. The child's end must still
/// end the call promptly (the pipe being readable must not hide it).
#[test]
fn a_child_that_exits_while_a_grandchild_trickles_into_the_pipe() {
    let _serial = serial();
    // Whatever the crate opens once per process exists before `before`.
    Isolate::new().execute(|| ()).unwrap();
    let [pid_read, pid_write] = pid_pipe();
    let before = settled_fds();
    let start = Instant::now();
    let result = Isolate::new()
        .timeout(Duration::from_secs(30))
        .execute(move || -> u8 {
            let pipe = result_pipe(&before);
            // SAFETY: the grandchild only closes stdio, writes, sleeps and `_exit`s.
            let grandchild = unsafe { libc::fork() };
            if grandchild == 0 {
                // SAFETY: closing this grandchild's own copies.
                unsafe { (libc::close(1), libc::close(2)) };
                let mut header = vec![0xA1];
                header.extend_from_slice(&(1u32 << 20).to_le_bytes());
                write_raw(pipe, &header);
                for _ in 0..2000 {
                    std::thread::sleep(Duration::from_millis(5));
                    // SAFETY: one byte from a valid buffer; failure ends the loop.
                    if unsafe { libc::write(pipe, [0x55u8].as_ptr().cast(), 1) } != 1 {
                        break;
                    }
                }
                // SAFETY: `_exit` has no preconditions.
                unsafe { libc::_exit(0) };
            }
            write_raw(pid_write, &grandchild.to_ne_bytes());
            // Let the trickle start before this child goes.
            std::thread::sleep(Duration::from_millis(50));
            std::process::exit(3)
        });
    let took = start.elapsed();
    let killed = kill_reported_grandchild([pid_read, pid_write]);
    assert!(
        matches!(
            result,
            Err(MemIsolateError::CallableStatusUnknown(
                Unknown::UnexpectedChildExitStatus(3)
            ))
        ),
        "{result:?} after {took:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(killed, "the grandchild's pid");
    assert!(no_children_left());
}

// ----------------------------------------------------------- 8. panic hook

fn panic_storm(backtrace: &str) {
    let run = run_probe(
        "panic-storm",
        &[("RUST_BACKTRACE", backtrace)],
        Duration::from_secs(120),
    );
    assert!(run.status.success(), "{run:?}");
    assert!(run.stdout.contains("panic-storm ok"), "{run:?}");
}

/// A background thread panics through the default hook in a loop while 40
/// isolated calls panic: every one is `CallablePanicked("boom")`, none a
/// timeout (a child forked while the hook held its locks would hang in it).
#[test]
fn panics_in_children_while_another_thread_panics_with_full_backtraces() {
    let _serial = serial();
    panic_storm("full");
}

#[test]
fn panics_in_children_while_another_thread_panics_without_backtraces() {
    let _serial = serial();
    panic_storm("0");
}

/// The child's panic comes back as the error and prints nothing; a panic in
/// the parent still prints the default hook's message.
#[test]
fn a_childs_panic_is_silent_and_the_parents_is_not() {
    let _serial = serial();
    let run = run_probe("panic-output", &[], Duration::from_secs(30));
    assert!(run.status.success(), "{run:?}");
    assert!(run.stdout.contains("panic-output ok"), "{run:?}");
    assert!(
        !run.stderr.contains("secret-from-the-isolated-child"),
        "{run:?}"
    );
    assert!(run.stderr.contains("panicked at"), "{run:?}");
    assert!(run.stderr.contains("visible-from-the-parent"), "{run:?}");
}

/// Same with a hook the program installed before its first call: the parent's
/// panics still go through it, the child's do not.
#[test]
fn a_programs_own_hook_still_sees_the_parents_panics_only() {
    let _serial = serial();
    let run = run_probe("panic-output-custom-hook", &[], Duration::from_secs(30));
    assert!(run.status.success(), "{run:?}");
    assert!(run.stdout.contains("panic-output ok"), "{run:?}");
    assert!(
        !run.stderr.contains("secret-from-the-isolated-child"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("custom hook saw: visible-from-the-parent"),
        "{run:?}"
    );
}

// ------------------------------------------- 9. decoding and child failures

/// Serializes as one byte; its `Deserialize` panics.
#[derive(Debug)]
struct Bomb;

impl Serialize for Bomb {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(1)
    }
}

impl<'de> Deserialize<'de> for Bomb {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _ = u8::deserialize(d)?;
        panic!("Deserialize went off");
    }
}

/// A `Deserialize` that panics on the child's bytes is
/// `DeserializationFailed`, not an unwind out of `execute`; no child is left.
#[test]
fn a_panicking_deserialize_is_a_deserialization_error() {
    let _serial = serial();
    for with_usage in [false, true] {
        let returned = catch_unwind(|| {
            if with_usage {
                Isolate::new().execute_with_usage(|| Bomb).map(|(b, _)| b)
            } else {
                Isolate::new().execute(|| Bomb)
            }
        });
        let result = returned.expect("no unwind out of execute");
        assert!(
            matches!(
                &result,
                Err(MemIsolateError::CallableExecuted(Executed::DeserializationFailed(m)))
                    if m.contains("Deserialize went off")
            ),
            "with usage: {with_usage}: {result:?}"
        );
        assert!(no_children_left());
    }
}

/// Every level of an error, as an error reporter shows it.
fn chain(err: &MemIsolateError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        text.push_str(" / ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// A failure of the child's own code that carries no OS error (here: the
/// result write failing with `errno` 0) never reads "Success (os error 0)".
#[test]
fn a_child_failure_without_an_os_error_does_not_claim_success() {
    use mem_isolate::__private::fault::{self, Call};
    let _serial = serial();
    fault::fail_next(Call::Write, 0, 1);
    let result = Isolate::new()
        .timeout(Duration::from_secs(20))
        .execute(|| 5u8);
    let _ = fault::clear();
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            MemIsolateError::CallableExecuted(Executed::ChildPipeWriteFailed(Some(_)))
        ),
        "{err:?}"
    );
    let text = chain(&err);
    assert!(!text.contains("os error 0"), "{text}");
    assert!(!text.contains("Success"), "{text}");
    assert!(no_children_left());
}
