//! A helper program for the integration tests that need a whole process of
//! their own (its stdout, its death, its limits, its first call).
//! `isolate-probe MODE`.

use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use mem_isolate::errors::{
    CallableExecutedError as Executed, CallableStatusUnknownError as Unknown,
};
use mem_isolate::{Isolate, MemIsolateError};
use mem_isolate_suite::{child_pids, eventually};

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        // The child prints without a newline; the parent exits right after
        // the call, skipping every cleanup. The text must still appear.
        "print-tail" => {
            let v = mem_isolate::execute_in_isolated_process(|| {
                print!("tail-without-newline");
                7
            })
            .unwrap();
            assert_eq!(v, 7);
            // SAFETY: `_exit` has no preconditions.
            unsafe { libc::_exit(0) };
        }
        // The child reports its pid, then sleeps; the test kills this process.
        "hang-in-call" => {
            let _ = mem_isolate::execute_in_isolated_process(|| {
                let line = format!("{}\n", std::process::id());
                std::io::stdout().write_all(line.as_bytes()).unwrap();
                std::io::stdout().flush().unwrap();
                std::thread::sleep(std::time::Duration::from_secs(300));
            });
        }
        "hostile-descriptors" => hostile_descriptors(),
        "result-beyond-own-rlimit" => result_beyond_own_rlimit(),
        "memory-limits" => memory_limits(),
        "reaper-race" => reaper_race(),
        "panic-storm" => panic_storm(),
        "c-printf" => c_printf(),
        "capture-quiet" => capture_quiet(),
        "capture-closed-stdio" => capture_closed_stdio(),
        "panic-output" => panic_output(false),
        "panic-output-custom-hook" => panic_output(true),
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}

/// Closes everything but stdio that the test harness let this process
/// inherit (a jobserver pipe, say), so that a hostile child only finds
/// what this program and the crate opened. Before any thread starts.
fn close_inherited_descriptors() {
    for fd in mem_isolate_suite::open_fds()
        .into_iter()
        .filter(|&fd| fd > 2)
    {
        // SAFETY: closing a descriptor nothing in this process uses yet.
        unsafe { libc::close(fd) };
    }
}

/// In an isolated child: writes 4-byte pids (`targets`, 1, 0, -1), garbage
/// and a stray byte (after which `targets` come again, misaligned) into
/// every descriptor above stdio it inherited. Gently (`set_flags` false):
/// through a new non-blocking open of `/proc/self/fd/N`, which reaches the
/// pipe behind either end without touching the parent's description and
/// never blocks. Or roughly: `O_NONBLOCK` set on the inherited description
/// itself (which the parent shares), then written to directly.
fn vandalize_inherited_descriptors(targets: [i32; 2], set_flags: bool) {
    let mut bytes = Vec::new();
    for pid in [targets[0], targets[1], 1, 0, -1, targets[0], targets[1]] {
        bytes.extend_from_slice(&pid.to_ne_bytes());
    }
    bytes.extend_from_slice(&[0xA1, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0xD0, 0x13, 0x37]);
    bytes.push(0x5A); // the stray byte
    for pid in targets {
        bytes.extend_from_slice(&pid.to_ne_bytes());
    }
    for fd in mem_isolate_suite::open_fds()
        .into_iter()
        .filter(|&fd| fd > 2)
    {
        let (target_fd, reopened) = if set_flags {
            // SAFETY: F_GETFL/F_SETFL on a descriptor number; a closed one fails.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
                }
            }
            (fd, false)
        } else {
            let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).unwrap();
            // SAFETY: `path` is a valid NUL-terminated string.
            let reopened = unsafe {
                libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
                )
            };
            if reopened < 0 {
                continue;
            }
            (reopened, true)
        };
        // In pieces too: a reader that takes whatever is there sees splits.
        for chunk in [&bytes[..], &bytes[..1], &bytes[1..3], &bytes[3..]] {
            // SAFETY: `chunk` is valid for reads of its length; a descriptor
            // that is not writable just fails.
            let _ = unsafe { libc::write(target_fd, chunk.as_ptr().cast(), chunk.len()) };
        }
        if reopened {
            // SAFETY: closing the descriptor opened above.
            unsafe { libc::close(target_fd) };
        }
    }
}

/// Every descriptor an isolated child inherits is written to by an
/// adversary: the program's own children (started with
/// `std::process::Command`: `sleep 2`, which ends by itself meanwhile, and
/// `sleep 30`, which the program kills) must stay the program's to wait for,
/// with their true statuses, and every later isolated child must still be
/// reaped.
fn hostile_descriptors() {
    close_inherited_descriptors();
    // Whatever per-process machinery the crate starts exists from here on.
    for i in 0..3u32 {
        assert_eq!(Isolate::new().execute(move || i).unwrap(), i);
    }
    let sleep = |seconds: &str| {
        Command::new("sleep")
            .arg(seconds)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sleep")
    };
    let mut short = sleep("2");
    let mut long = sleep("30");
    let targets = [short.id(), long.id()].map(|pid| i32::try_from(pid).unwrap());

    // Sibling calls in flight on another thread, so that a hostile child
    // also inherits their pipes and pidfds.
    let stop = Arc::new(AtomicBool::new(false));
    let sibling = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let isolate = Isolate::new().timeout(Duration::from_secs(20));
            let mut calls = 0u32;
            while !stop.load(Ordering::Relaxed) {
                // A sibling's pipe may carry the vandal's bytes: any result
                // is fine, as long as the call returns.
                let _ = isolate.execute(move || {
                    std::thread::sleep(Duration::from_millis(30));
                    calls
                });
                calls += 1;
            }
            calls
        })
    };

    let hostile = Isolate::new().timeout(Duration::from_secs(20));
    for round in 0..10 {
        // Gently first, then flags on the shared descriptions too.
        let act = move || {
            vandalize_inherited_descriptors(targets, round >= 5);
            7u32
        };
        let outcome = if round % 2 == 0 {
            hostile.execute(act).map(|v| format!("Ok({v})"))
        } else {
            hostile
                .execute_with_usage(act)
                .map(|(v, _)| format!("Ok({v}) with usage"))
        };
        println!("hostile call {round}: {outcome:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let sibling_calls = sibling.join().expect("sibling thread");
    println!("sibling calls: {sibling_calls}");

    let isolate = Isolate::new().timeout(Duration::from_secs(20));
    for i in 0..25u32 {
        assert_eq!(isolate.execute(move || i * 3).unwrap(), i * 3, "call {i}");
    }
    // `sleep 2` may or may not have ended by now; either way it is ours.
    let early = short.try_wait();
    assert!(
        early.is_ok(),
        "try_wait on the program's own child: {early:?}"
    );
    let status = short
        .wait()
        .expect("the program's own child: wait must not fail (ECHILD)");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        matches!(long.try_wait(), Ok(None)),
        "the program's own `sleep 30` must still be running and its own"
    );
    long.kill().expect("kill sleep");
    let status = long
        .wait()
        .expect("the program's own child: wait must not fail (ECHILD)");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "{status:?}"
    );
    assert!(
        eventually(Duration::from_secs(5), || child_pids().is_empty()),
        "isolated children left unreaped: {:?}",
        child_pids()
    );
    println!("hostile-descriptors ok");
}

/// A byte buffer that serializes as bytes (the probe cannot use the
/// dev-dependency `serde_bytes`).
struct Bytes(Vec<u8>);

impl serde::Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

fn address_space_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: `sysconf` has no memory-safety preconditions.
    pages * u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap()
}

fn set_soft_address_space_limit(bytes: libc::rlim_t) {
    // SAFETY: `limit` is a valid rlimit, read then written.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &raw mut limit), 0);
        limit.rlim_cur = bytes.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &raw const limit), 0);
    }
}

/// The parent runs under its own `RLIMIT_AS` (64 MiB above its size) and
/// asks for a 200 MiB result, which is under `max_result_size`: the call
/// must fail with an error (never abort), and the child must be reaped.
fn result_beyond_own_rlimit() {
    assert_eq!(Isolate::new().execute(|| 1u8).unwrap(), 1);
    // That call started the crate's reaper thread; once it has reaped the
    // child it is up (a thread still starting when the address space runs
    // out cannot map its signal stack, and Rust aborts the process).
    assert!(eventually(Duration::from_secs(5), || child_pids().is_empty()));
    set_soft_address_space_limit(address_space_bytes() + (64 << 20));
    let result = Isolate::new()
        .max_result_size(1 << 30)
        .timeout(Duration::from_secs(60))
        .execute(|| {
            // The child lifts the limit it inherited, to build its result.
            set_soft_address_space_limit(libc::RLIM_INFINITY);
            Bytes(vec![0x5A; 200 << 20])
        });
    match result {
        Ok(bytes) => println!("unexpected Ok: {} bytes", bytes.0.len()),
        Err(e) => println!("error: {e:?}"),
    }
    let reaped = eventually(Duration::from_secs(5), || child_pids().is_empty());
    println!(
        "children left: {}",
        if reaped { 0 } else { child_pids().len() }
    );
}

/// Allocates `total` bytes in 64 KiB chunks (below glibc's mmap threshold,
/// so they come from the thread's `malloc` arena) and writes every byte.
fn allocate_and_touch(total: usize) -> usize {
    const CHUNK: usize = 64 << 10;
    let mut chunks = Vec::with_capacity(total / CHUNK + 1);
    let mut done = 0;
    while done < total {
        let n = CHUNK.min(total - done);
        chunks.push(vec![0xA5u8; n]);
        done += n;
    }
    std::hint::black_box(&chunks);
    chunks.iter().map(Vec::len).sum()
}

/// Where the call is made from (in the parent) and where the callable
/// allocates (in the child).
#[derive(Debug, Clone, Copy)]
enum Site {
    /// Called from `main`'s thread, allocating on the child's only thread.
    MainThread,
    /// Called from a thread spawned in the parent (its `malloc` arena is a
    /// 64 MiB reservation the child inherits).
    SpawnedCaller,
    /// The callable spawns a thread in the child and allocates there.
    ThreadInChild,
}

fn limited_call(
    site: Site,
    limit: u64,
    bytes: usize,
) -> Result<Result<usize, String>, MemIsolateError> {
    let isolate = Isolate::new()
        .memory_limit(limit)
        .timeout(Duration::from_secs(60));
    let callable = move || -> Result<usize, String> {
        match site {
            Site::ThreadInChild => std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || allocate_and_touch(bytes))
                .map_err(|e| format!("spawn failed: {e}"))?
                .join()
                .map_err(|_| "the allocating thread panicked".to_owned()),
            _ => Ok(allocate_and_touch(bytes)),
        }
    };
    match site {
        Site::SpawnedCaller => std::thread::spawn(move || {
            // Make sure this thread has its own arena before the fork.
            std::hint::black_box(vec![1u8; 4096]);
            isolate.execute(callable)
        })
        .join()
        .expect("caller thread"),
        _ => isolate.execute(callable),
    }
}

/// For each limit and site: half the limit is `Ok`, twice the limit plus
/// 8 MiB is `MemoryLimitExceeded { limit }`, and a plain `abort` stays a
/// `SIGABRT`. Prints one line per case, `ok ...` or `FAIL ...`.
fn memory_limits() {
    // A thread that ends leaves its arena on glibc's free list, where a
    // thread started in a child finds it (already reserved).
    std::thread::spawn(|| std::hint::black_box(vec![1u8; 4096]))
        .join()
        .unwrap();
    for limit_mib in [1u64, 4, 64] {
        let limit = limit_mib << 20;
        let half = usize::try_from(limit / 2).unwrap();
        let over = usize::try_from(2 * limit + (8 << 20)).unwrap();
        for site in [Site::MainThread, Site::SpawnedCaller, Site::ThreadInChild] {
            let got = limited_call(site, limit, half);
            let verdict = if matches!(got, Ok(Ok(n)) if n == half) {
                "ok"
            } else {
                "FAIL"
            };
            println!("{verdict} {site:?} limit={limit_mib}MiB alloc={half}: {got:?}");
            let got = limited_call(site, limit, over);
            let verdict = if matches!(
                got,
                Err(MemIsolateError::CallableStatusUnknown(Unknown::MemoryLimitExceeded { limit: l })) if l == limit
            ) {
                "ok"
            } else {
                "FAIL"
            };
            println!("{verdict} {site:?} limit={limit_mib}MiB alloc={over}: {got:?}");
        }
        let got = Isolate::new()
            .memory_limit(limit)
            .execute(|| -> u8 { std::process::abort() });
        let verdict = if matches!(
            got,
            Err(MemIsolateError::CallableStatusUnknown(
                Unknown::ChildProcessKilledBySignal(libc::SIGABRT)
            ))
        ) {
            "ok"
        } else {
            "FAIL"
        };
        println!("{verdict} abort limit={limit_mib}MiB: {got:?}");
    }
    let reaped = eventually(Duration::from_secs(5), || child_pids().is_empty());
    println!("{} children reaped", if reaped { "ok" } else { "FAIL" });
}

/// Many threads make their first isolated call at once, while others fork
/// children that make nested calls (the child starts whatever the crate
/// starts per process, maybe while the parent is in the middle of it).
fn reaper_race() {
    const THREADS: usize = 12;
    const CALLS: u32 = 4;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let t = u32::try_from(t).unwrap();
                for call in 0..CALLS {
                    let want = t * 100 + call;
                    let got = match t % 3 {
                        0 => Isolate::new().execute(move || want),
                        1 => Isolate::new()
                            .execute_with_usage(move || {
                                Isolate::new().execute(move || want).unwrap_or(u32::MAX)
                            })
                            .map(|(v, _)| v),
                        _ => Isolate::new().execute(move || {
                            Isolate::new()
                                .execute_with_usage(move || want)
                                .map_or(u32::MAX, |(v, _)| v)
                        }),
                    };
                    assert_eq!(got.unwrap(), want, "thread {t} call {call}");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("a racing thread failed");
    }
    assert!(eventually(Duration::from_secs(5), || child_pids().is_empty()));
    println!("reaper-race ok");
}

/// A background thread panics (and catches) in a loop, through the default
/// hook, while this thread makes 40 isolated calls that panic: each must
/// come back as the panic, none as a timeout.
fn panic_storm() {
    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut panics = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = catch_unwind(|| panic!("background panic"));
                panics += 1;
            }
            panics
        })
    };
    // Let the storm get going.
    std::thread::sleep(Duration::from_millis(20));
    let isolate = Isolate::new().timeout(Duration::from_secs(1));
    let mut wrong = Vec::new();
    for i in 0..40 {
        match isolate.execute(|| -> u8 { panic!("boom") }) {
            Err(MemIsolateError::CallableExecuted(Executed::CallablePanicked(m)))
                if m == "boom" => {}
            other => wrong.push(format!("call {i}: {other:?}")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let panics = storm.join().expect("storm thread");
    for line in &wrong {
        println!("FAIL {line}");
    }
    println!("background panics: {panics}");
    if wrong.is_empty() {
        println!("panic-storm ok");
    }
}

/// A panic in an isolated child prints nothing to stderr; a panic in this
/// process still goes through the program's hook (the default one, or one
/// the program installed before its first call).
fn panic_output(custom_hook: bool) {
    if custom_hook {
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .unwrap_or("?");
            eprintln!("custom hook saw: {message}");
        }));
    }
    let err = mem_isolate::execute_in_isolated_process(|| -> u8 {
        panic!("secret-from-the-isolated-child")
    })
    .unwrap_err();
    assert!(
        matches!(&err, MemIsolateError::CallableExecuted(Executed::CallablePanicked(m)) if m == "secret-from-the-isolated-child"),
        "{err:?}"
    );
    let caught = catch_unwind(AssertUnwindSafe(|| panic!("visible-from-the-parent")));
    assert!(caught.is_err());
    println!("panic-output ok");
}

/// C stdio through an isolated call, with stdout redirected by the test (a
/// file or a pipe, so C buffers it all): the parent's own pending `printf`
/// text must appear once (not again from the child), the child's must
/// appear although it leaves through `_exit`.
fn c_printf() {
    // SAFETY: a NUL-terminated format without conversions.
    unsafe { libc::printf(c"parent-pending|".as_ptr()) };
    let v = mem_isolate::execute_in_isolated_process(|| {
        // SAFETY: as above.
        unsafe { libc::printf(c"c-printf-from-the-child".as_ptr()) };
        7
    })
    .unwrap();
    assert_eq!(v, 7);
    // SAFETY: `fflush(NULL)` and `_exit` have no preconditions; `_exit`
    // skips every cleanup, so only what was flushed appears.
    unsafe {
        libc::printf(c"|parent-after".as_ptr());
        libc::fflush(std::ptr::null_mut());
        libc::_exit(0);
    }
}

/// With `capture_output`, a child's prints (Rust, C, a panic) reach the
/// report only, never this process's stdout or stderr.
fn capture_quiet() {
    let isolate = Isolate::new().capture_output(1 << 20);
    let err = isolate
        .execute(|| -> u8 {
            println!("quiet-stdout");
            eprintln!("quiet-stderr");
            // SAFETY: NUL-terminated strings without conversions.
            unsafe {
                libc::printf(c"quiet-c-stdout\n".as_ptr());
                libc::write(2, c"quiet-c-stderr\n".as_ptr().cast(), 15);
            }
            panic!("quiet-panic")
        })
        .unwrap_err();
    assert_eq!(err.panic_message(), Some("quiet-panic"));
    println!("done");
}

/// A daemon that closed its standard descriptors: the call's new pipes then
/// get numbers 0, 1 and 2, and the child must still end up with its result
/// pipe intact and descriptors 1 and 2 on the capture pipes. Exits 0 when
/// every check held, 1 otherwise (there is no stderr to say why).
fn capture_closed_stdio() {
    // SAFETY: closing the standard descriptors; nothing here uses them again.
    unsafe {
        libc::close(0);
        libc::close(1);
        libc::close(2);
    }
    let isolate = Isolate::new()
        .capture_output(1 << 20)
        .timeout(Duration::from_secs(30));
    let mut ok = true;
    for _ in 0..3 {
        let report = isolate.execute_report(|| {
            std::io::stdout().write_all(b"to fd 1").unwrap();
            std::io::stdout().flush().unwrap();
            std::io::stderr().write_all(b"to fd 2").unwrap();
            41 + 1
        });
        let output = report.output.unwrap_or_default();
        ok &= matches!(report.result, Ok(42));
        ok &= output.stdout == b"to fd 1" && output.stderr == b"to fd 2";
        let report = isolate.execute_report(|| -> u8 { panic!("closed-stdio-panic") });
        ok &= report
            .result
            .is_err_and(|e| e.panic_message() == Some("closed-stdio-panic"));
    }
    // SAFETY: `_exit` has no preconditions.
    unsafe { libc::_exit(i32::from(!ok)) };
}
