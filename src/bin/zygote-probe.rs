//! A helper program for `tests/zygote.rs`: zygote mode needs a process that
//! starts the zygote first thing in `main`, which a test harness thread
//! cannot do. `zygote-probe SCENARIO` prints one `key=value` line per fact
//! the test checks, and exits 0 when the scenario ran to its end.

// Functions sent through `Isolate::call` take their arguments by value (they
// arrive deserialized); one `main` lists every scenario side by side.
#![allow(clippy::needless_pass_by_value, clippy::too_many_lines)]

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use mem_isolate::errors::{
    CallableDidNotExecuteError as DidNotExecute, CallableExecutedError as Executed,
    CallableStatusUnknownError as Unknown,
};
use mem_isolate::{zygote, Isolate, MemIsolateError};

/// Set to 1 before `zygote::start`, to 2 after: a worker sees 1.
static GENERATION: AtomicU32 = AtomicU32::new(0);
static SHARED: Mutex<u32> = Mutex::new(0);

fn generation(_: ()) -> u32 {
    GENERATION.load(Ordering::SeqCst)
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn square(n: u64) -> u64 {
    n * n
}

fn echo_len(s: String) -> usize {
    s.len()
}

fn panics(message: String) -> u8 {
    panic!("{message}")
}

fn raises(signal: i32) -> u8 {
    // SAFETY: raising a signal in the worker is what this test is about.
    unsafe { libc::raise(signal) };
    0
}

fn segfaults(_: ()) -> u8 {
    // SAFETY: not safe at all: a real invalid write, which is the point.
    unsafe { std::ptr::null_mut::<u8>().write_volatile(1) };
    0
}

fn exits(code: i32) -> u8 {
    std::process::exit(code)
}

fn sleeps(millis: u64) -> u8 {
    std::thread::sleep(Duration::from_millis(millis));
    0
}

fn allocates(bytes: usize) -> usize {
    let v = vec![1u8; bytes];
    v.iter().map(|&b| usize::from(b)).sum()
}

/// Burns `millis` of CPU time (not wall time: a loaded machine must not
/// change what the usage test sees).
fn burns_cpu(millis: u64) -> u64 {
    let cpu_time = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &raw mut ts) };
        Duration::new(
            ts.tv_sec.unsigned_abs(),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        )
    };
    let start = cpu_time();
    let mut x = 0u64;
    while cpu_time().saturating_sub(start) < Duration::from_millis(millis) {
        x = x.wrapping_mul(31).wrapping_add(7);
    }
    x
}

fn takes_locks(_: ()) -> u32 {
    let guard = SHARED.lock().unwrap();
    println!("the worker printed");
    std::io::stdout().flush().unwrap();
    *guard + 1
}

fn nested(n: u64) -> u64 {
    // A worker is not the process that started the zygote: this forks directly.
    assert!(!zygote::is_running());
    Isolate::new().call(square, n).unwrap()
}

fn reports_and_sleeps(_: ()) -> u8 {
    println!("worker={}", std::process::id());
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(300));
    0
}

/// Writes `bytes` bytes to stdout (in 64 KiB blocks), C text to stdout and
/// a line to stderr; returns its parent's pid (the zygote's, for a worker).
fn prints(bytes: usize) -> i32 {
    let block = vec![b'o'; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len());
        std::io::stdout().write_all(&block[..n]).unwrap();
        left -= n;
    }
    std::io::stdout().flush().unwrap();
    // SAFETY: a NUL-terminated format without conversions; `getppid` has no preconditions.
    unsafe {
        libc::printf(c"|c-stdout".as_ptr());
        libc::getppid()
    }
}

fn prints_then_panics(_: ()) -> u8 {
    println!("before the panic");
    eprintln!("stderr before the panic");
    panic!("worker-panic")
}

fn prints_then_sleeps(_: ()) -> u8 {
    println!("before the hang");
    std::thread::sleep(Duration::from_secs(60));
    0
}

fn prints_then_segfaults(_: ()) -> u8 {
    eprintln!("before the crash");
    segfaults(())
}

fn kind(e: &MemIsolateError) -> String {
    match e {
        MemIsolateError::CallableExecuted(Executed::CallablePanicked(m)) => format!("panicked:{m}"),
        MemIsolateError::CallableStatusUnknown(Unknown::ChildProcessKilledBySignal(s)) => {
            format!("signal:{}", mem_isolate::signal_name(*s))
        }
        MemIsolateError::CallableStatusUnknown(Unknown::UnexpectedChildExitStatus(c)) => {
            format!("exit:{c}")
        }
        MemIsolateError::CallableStatusUnknown(Unknown::CallableProcessDiedDuringExecution) => {
            "died".into()
        }
        MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(_)) => "timeout".into(),
        MemIsolateError::CallableStatusUnknown(Unknown::MemoryLimitExceeded { .. }) => {
            "memory-limit".into()
        }
        MemIsolateError::CallableStatusUnknown(Unknown::ZygoteDied) => "zygote-died".into(),
        MemIsolateError::CallableDidNotExecute(DidNotExecute::ZygoteUnavailable(_)) => {
            "zygote-unavailable".into()
        }
        other => format!("other:{other:?}"),
    }
}

fn say(key: &str, value: impl std::fmt::Display) {
    println!("{key}={value}");
    std::io::stdout().flush().unwrap();
}

/// The zygote: this process's child named `mem-isolate-zyg`.
fn zygote_pid() -> Option<i32> {
    mem_isolate_suite::child_pids().into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim() == "mem-isolate-zyg")
    })
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn children_of(pid: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    pids
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    if scenario == "refused-with-threads" {
        let _t = std::thread::spawn(|| std::thread::sleep(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(50));
        let err = zygote::start().unwrap_err();
        say("refused", format!("{:?}", err.kind()));
        say("running", zygote::is_running());
        return;
    }
    GENERATION.store(1, Ordering::SeqCst);
    let started = zygote::start();
    say("started", started.is_ok());
    if let Err(e) = started {
        say("start-error", e);
        std::process::exit(3);
    }
    GENERATION.store(2, Ordering::SeqCst);
    let isolate = Isolate::new();
    match scenario.as_str() {
        "basics" => {
            say("running", zygote::is_running());
            say(
                "again",
                format!("{:?}", zygote::start().map_err(|e| e.kind())),
            );
            say("square", isolate.call(square, 12).unwrap());
            say("worker-generation", isolate.call(generation, ()).unwrap());
            say(
                "direct-generation",
                isolate.execute(|| generation(())).unwrap(),
            );
            let worker = isolate.call(pid, ()).unwrap();
            say("worker-is-not-zygote", Some(worker as i32) != zygote_pid());
            say("worker-parent-is-zygote", {
                // The worker is gone by now; its parent was the zygote if
                // the zygote has no children left and the worker was not ours.
                !mem_isolate_suite::child_pids().contains(&(worker as i32))
            });
            let big = "x".repeat(1 << 20);
            say("big-args", isolate.call(echo_len, big).unwrap());
            say("nested", isolate.call(nested, 9).unwrap());
            say(
                "direct-child-falls-back",
                isolate
                    .execute(|| Isolate::new().call(square, 5).unwrap())
                    .unwrap(),
            );
            // A direct child closes the zygote channel it inherited; its own
            // child must not close that number again, which by then is one
            // of its own descriptors. With stdin closed, the nested call's
            // result pipe takes 0 and the channel's old number.
            say(
                "grandchild-keeps-its-pipe",
                format!(
                    "{:?}",
                    isolate
                        .execute(|| {
                            // SAFETY: closes this child's own stdin only.
                            unsafe { libc::close(0) };
                            Isolate::new().execute(|| 7u8).map_err(|e| e.to_string())
                        })
                        .unwrap()
                ),
            );
        }
        "capture" => {
            let fds_before = mem_isolate_suite::open_fds();
            let capturing = Isolate::new()
                .capture_output(1 << 20)
                .timeout(Duration::from_secs(30));
            let report = capturing.call_report(prints, 5);
            let out = report.output.unwrap();
            say("value-is-zygote", report.result.ok() == zygote_pid());
            say("stdout", out.stdout_lossy());
            say("stderr-empty", out.stderr.is_empty());
            let report = capturing.call_report(prints, 6 << 20);
            let out = report.output.unwrap();
            say("big-ok", report.result.is_ok());
            say("big-kept", out.stdout.len());
            say("big-truncated", out.stdout_truncated);
            let report = capturing.call_report(prints_then_panics, ());
            let out = report.output.unwrap();
            say("panic", kind(&report.result.unwrap_err()));
            say("panic-stdout", out.stdout_lossy().trim());
            say("panic-stderr", out.stderr_lossy().trim());
            say(
                "panic-location-file",
                report.panic_location.map(|l| l.file).unwrap_or_default(),
            );
            let report = capturing
                .clone()
                .timeout(Duration::from_millis(200))
                .call_report(prints_then_sleeps, ());
            say("timeout", kind(&report.result.unwrap_err()));
            say(
                "timeout-stdout",
                report.output.unwrap().stdout_lossy().trim(),
            );
            let report = capturing.call_report(prints_then_segfaults, ());
            say("segv", kind(&report.result.unwrap_err()));
            say("segv-stderr", report.output.unwrap().stderr_lossy().trim());
            say(
                "segv-usage",
                report.usage.is_some_and(|u| u.peak_rss_bytes > 0),
            );
            let quiet = isolate
                .clone()
                .capture_output(16)
                .call(prints_then_panics, ());
            say("quiet", kind(&quiet.unwrap_err()));
            let settled = mem_isolate_suite::eventually(Duration::from_secs(5), || {
                mem_isolate_suite::open_fds() == fds_before
            });
            say("fds-settled", settled);
        }
        "errors" => {
            say(
                "panic",
                kind(&isolate.call(panics, "boom".to_owned()).unwrap_err()),
            );
            say("segv", kind(&isolate.call(segfaults, ()).unwrap_err()));
            say(
                "term",
                kind(&isolate.call(raises, libc::SIGTERM).unwrap_err()),
            );
            say("exit3", kind(&isolate.call(exits, 3).unwrap_err()));
            say("exit0", kind(&isolate.call(exits, 0).unwrap_err()));
            let start = Instant::now();
            let timed = Isolate::new().timeout(Duration::from_millis(200));
            say("timeout", kind(&timed.call(sleeps, 60_000).unwrap_err()));
            say("timeout-took-ms", start.elapsed().as_millis());
            let limited = Isolate::new().memory_limit(64 << 20);
            say("under-limit", limited.call(allocates, 16 << 20).unwrap());
            say(
                "over-limit",
                kind(&limited.call(allocates, 1 << 30).unwrap_err()),
            );
            let (_, usage) = isolate.call_with_usage(burns_cpu, 200).unwrap();
            say(
                "usage-cpu-ms",
                usage.user_cpu.as_millis() + usage.system_cpu.as_millis(),
            );
            say("usage-rss-positive", usage.peak_rss_bytes > 0);
            let (_, usage) = isolate.call_with_usage(allocates, 64 << 20).unwrap();
            say("usage-rss-64mib", usage.peak_rss_bytes >= 64 << 20);
            say("still-running", zygote::is_running());
        }
        "locks" => {
            // Another thread holds a mutex and the stdout lock forever.
            let barrier = Arc::new(Barrier::new(2));
            let b = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let _m = SHARED.lock().unwrap();
                let _out = std::io::stdout().lock();
                b.wait();
                std::thread::sleep(Duration::from_secs(600));
            });
            barrier.wait();
            let timed = Isolate::new().timeout(Duration::from_secs(20));
            let v = timed.call(takes_locks, ());
            // Our own stdout is locked: report on stderr.
            eprintln!(
                "zygote-call={}",
                v.map_or_else(|e| kind(&e), |v| v.to_string())
            );
            let direct = Isolate::new()
                .timeout(Duration::from_millis(500))
                .execute(|| takes_locks(()));
            eprintln!(
                "direct-call={}",
                direct.map_or_else(|e| kind(&e), |v| v.to_string())
            );
            // SAFETY: `_exit` has no preconditions; stdout is locked by a thread.
            unsafe { libc::_exit(0) };
        }
        "threads" => {
            let threads: u64 = 8;
            let calls: u64 = 40;
            let ok = AtomicU32::new(0);
            std::thread::scope(|s| {
                for t in 0..threads {
                    let ok = &ok;
                    s.spawn(move || {
                        for i in 0..calls {
                            let n = t * 1000 + i;
                            if Isolate::new().call(square, n).unwrap() == n * n {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    });
                }
            });
            say("ok", ok.load(Ordering::SeqCst));
        }
        "leftovers" => {
            let zygote = zygote_pid()
                .unwrap_or_else(|| panic!("no zygote among {:?}", mem_isolate_suite::child_pids()));
            isolate.call(square, 1).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            let caller_fds = mem_isolate_suite::open_fd_count();
            let zygote_fds = fd_count(zygote);
            for i in 0..100u64 {
                let _ = match i % 4 {
                    0 => isolate.call(square, i).map(|_| ()),
                    1 => isolate.call(panics, "x".into()).map(|_| ()),
                    2 => isolate.call(raises, libc::SIGKILL).map(|_| ()),
                    _ => Isolate::new()
                        .timeout(Duration::from_millis(10))
                        .call(sleeps, 10_000)
                        .map(|_| ()),
                };
            }
            let settled = mem_isolate_suite::eventually(Duration::from_secs(5), || {
                children_of(zygote).is_empty()
                    && fd_count(zygote) == zygote_fds
                    && mem_isolate_suite::open_fd_count() == caller_fds
            });
            say("settled", settled);
            say("zygote-children", children_of(zygote).len());
            say("zygote-fds", format!("{zygote_fds}->{}", fd_count(zygote)));
            say(
                "caller-fds",
                format!("{caller_fds}->{}", mem_isolate_suite::open_fd_count()),
            );
            // The zygote keeps only stdio and its channel.
            say("zygote-fd-count", zygote_fds);
            say("caller-children", mem_isolate_suite::child_pids().len());
        }
        "zygote-killed" => {
            let zygote = zygote_pid().unwrap();
            let killer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                // SAFETY: plain `kill` of our own child.
                unsafe { libc::kill(zygote, libc::SIGKILL) };
                Instant::now()
            });
            let err = isolate.call(sleeps, 60_000).unwrap_err();
            let returned = Instant::now();
            let kill_time = killer.join().unwrap();
            say("in-flight", kind(&err));
            say("noticed-ms", returned.duration_since(kill_time).as_millis());
            say("running-after", zygote::is_running());
            say("fallback", isolate.call(square, 7).unwrap());
            say(
                "required",
                kind(
                    &Isolate::new()
                        .require_zygote(true)
                        .call(square, 7)
                        .unwrap_err(),
                ),
            );
            let gone = mem_isolate_suite::eventually(Duration::from_secs(5), || {
                mem_isolate_suite::child_pids().is_empty()
            });
            say("no-children", gone);
        }
        "parent-killed" => {
            say("zygote", zygote_pid().unwrap());
            let _ = isolate.call(reports_and_sleeps, ());
        }
        other => {
            eprintln!("unknown scenario {other:?}");
            std::process::exit(2);
        }
    }
    say("done", true);
}
