//! Timeouts, memory limits, usage, and process lifetime: every child is
//! reaped, none holds a call open, none outlives its parent.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::{Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mem_isolate::errors::CallableStatusUnknownError as Unknown;
use mem_isolate::{execute_in_isolated_process, Isolate, MemIsolateError};
use mem_isolate_suite::{child_pids, eventually, no_children_left, open_fd_count};

/// Tests here count this process's children and descriptors, so they run one
/// at a time ("any test that creates child processes must grab this mutex").
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn timed_out(err: &MemIsolateError) -> Duration {
    match err {
        MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(limit)) => *limit,
        other => panic!("expected TimedOut, got {other:?}"),
    }
}

#[test]
fn timeout_kills_and_reaps_a_sleeping_child() {
    let _serial = serial();
    let limit = Duration::from_millis(200);
    let start = Instant::now();
    let err = Isolate::new()
        .timeout(limit)
        .execute(|| std::thread::sleep(Duration::from_secs(120)))
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(timed_out(&err), limit);
    assert!(
        took >= limit && took < limit + Duration::from_secs(1),
        "{took:?}"
    );
    assert!(
        child_pids().is_empty(),
        "timed-out child must be reaped before the call returns"
    );
}

#[test]
fn timeout_kills_and_reaps_a_busy_child() {
    let _serial = serial();
    let limit = Duration::from_millis(300);
    let start = Instant::now();
    let err = Isolate::new()
        .timeout(limit)
        .execute(|| -> u64 {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        })
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(timed_out(&err), limit);
    assert!(
        took >= limit && took < limit + Duration::from_secs(1),
        "{took:?}"
    );
    assert!(child_pids().is_empty());
    // A call that finishes in time is unaffected.
    assert_eq!(Isolate::new().timeout(limit).execute(|| 5).unwrap(), 5);
}

/// Maps `bytes` of address space without touching it.
fn reserve(bytes: usize) -> *mut libc::c_void {
    // SAFETY: an anonymous private mapping touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p
}

#[test]
fn memory_limit_is_relative_to_the_inherited_address_space() {
    let _serial = serial();
    let reserved = reserve(2 << 30);
    let isolate = Isolate::new().memory_limit(128 << 20);
    let ok = isolate.execute(|| {
        let v = vec![1u8; 16 << 20];
        v.iter().map(|&b| u64::from(b)).sum::<u64>()
    });
    assert_eq!(ok.unwrap(), 16 << 20);
    let err = isolate.execute(|| vec![1u8; 1 << 30].len()).unwrap_err();
    assert!(
        matches!(err, MemIsolateError::CallableStatusUnknown(Unknown::ChildProcessKilledBySignal(s)) if s == libc::SIGABRT),
        "{err:?}"
    );
    // A callable that handles the failure itself sees it as an error, too.
    let handled = isolate.execute(|| {
        let mut v: Vec<u8> = Vec::new();
        v.try_reserve(1 << 30).is_err()
    });
    assert!(handled.unwrap());
    // SAFETY: `reserved` is the mapping made above, unused since.
    unsafe { libc::munmap(reserved, 2 << 30) };
}

#[test]
fn usage_reports_peak_rss_cpu_and_wall() {
    let _serial = serial();
    let (len, usage) = Isolate::new()
        .execute_with_usage(|| {
            let v = vec![7u8; 64 << 20];
            // Burn 150 ms of CPU (not of wall time: a loaded machine must
            // not make this test flaky).
            let mut x = 0u64;
            while own_user_cpu() < Duration::from_millis(150) {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            std::hint::black_box(&v).len()
        })
        .unwrap();
    assert_eq!(len, 64 << 20);
    assert!(usage.peak_rss_bytes >= 64 << 20, "{usage:?}");
    assert!(usage.user_cpu >= Duration::from_millis(150), "{usage:?}");
    assert!(usage.system_cpu > Duration::ZERO, "{usage:?}");
    assert!(usage.wall >= Duration::from_millis(150), "{usage:?}");
    assert!(usage.wall < Duration::from_secs(60), "{usage:?}");
}

/// User CPU time of the calling process so far.
fn own_user_cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid; `usage` is a valid out-pointer.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &raw mut usage);
        usage
    };
    Duration::from_secs(u64::try_from(usage.ru_utime.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(usage.ru_utime.tv_usec).unwrap_or(0))
}

#[test]
fn an_execd_grandchild_does_not_hold_the_call_open() {
    let _serial = serial();
    let start = Instant::now();
    let pid = execute_in_isolated_process(|| {
        #[allow(clippy::zombie_processes)] // the grandchild is reparented to init
        let child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.id()
    })
    .unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    // And when the child dies without a result while a grandchild lives on:
    let start = Instant::now();
    let err = execute_in_isolated_process(|| -> u8 {
        let _ = Command::new("sleep")
            .arg("3")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::process::exit(3)
    })
    .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        err,
        MemIsolateError::CallableStatusUnknown(Unknown::UnexpectedChildExitStatus(3))
    ));
    // SAFETY: killing the stray `sleep` started by the first call.
    unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGKILL) };
}

#[test]
fn a_forked_grandchild_does_not_hold_the_call_open() {
    let _serial = serial();
    let start = Instant::now();
    let err = execute_in_isolated_process(|| -> u8 {
        // SAFETY: the grandchild only closes stdio, sleeps and `_exit`s.
        if unsafe { libc::fork() } == 0 {
            // SAFETY: closing this grandchild's own copies.
            unsafe { (libc::close(1), libc::close(2)) };
            std::thread::sleep(Duration::from_secs(3));
            // SAFETY: `_exit` has no preconditions.
            unsafe { libc::_exit(0) };
        }
        std::process::exit(4)
    })
    .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(
        err,
        MemIsolateError::CallableStatusUnknown(Unknown::UnexpectedChildExitStatus(4))
    ));
    let v = execute_in_isolated_process(|| {
        // SAFETY: as above.
        if unsafe { libc::fork() } == 0 {
            // SAFETY: closing this grandchild's own copies.
            unsafe { (libc::close(1), libc::close(2)) };
            std::thread::sleep(Duration::from_secs(3));
            // SAFETY: `_exit` has no preconditions.
            unsafe { libc::_exit(0) };
        }
        11
    })
    .unwrap();
    assert_eq!(v, 11);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_stdout_lock_held_at_fork_costs_at_most_the_grace_period() {
    let _serial = serial();
    let locked = Barrier::new(2);
    let release = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut out = std::io::stdout().lock();
            locked.wait();
            release.wait();
            let _ = out.flush();
        });
        locked.wait();
        let start = Instant::now();
        // The callable itself stays away from stdout (taking a lock held at
        // `fork` is the callable's own hang, guarded by a timeout); the
        // crate's flush after the result is what meets the held lock.
        let v = execute_in_isolated_process(|| 21 * 2);
        let took = start.elapsed();
        release.wait();
        assert_eq!(v.unwrap(), 42);
        // The child's flush did meet the held lock: the call waited out the
        // 100 ms grace period for the done mark, and no longer.
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    });
    assert!(
        child_pids().is_empty(),
        "the lingering child must be killed and reaped"
    );
}

#[test]
fn output_without_a_newline_is_not_lost() {
    let _serial = serial();
    let out = Command::new(env!("CARGO_BIN_EXE_isolate-probe"))
        .arg("print-tail")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tail-without-newline");
}

#[cfg(target_os = "linux")]
#[test]
fn killing_the_parent_kills_its_isolated_child() {
    let _serial = serial();
    let mut probe = Command::new(env!("CARGO_BIN_EXE_isolate-probe"))
        .arg("hang-in-call")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(probe.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let child: i32 = line.trim().parse().unwrap();
    probe.kill().unwrap(); // SIGKILL
    probe.wait().unwrap();
    let dead = eventually(Duration::from_secs(5), || {
        // Gone, or a zombie waiting for init to reap it.
        std::fs::read_to_string(format!("/proc/{child}/stat")).map_or(true, |stat| {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    });
    assert!(dead, "isolated child {child} outlived its parent");
}

#[test]
fn mixed_calls_leave_no_descriptor_and_no_child() {
    let _serial = serial();
    execute_in_isolated_process(|| 0u8).unwrap(); // lazily created state
    assert!(no_children_left());
    let fds = open_fd_count();
    // A short limit only where the call must time out; room elsewhere, so
    // a loaded machine cannot turn a quick call into a timeout.
    let roomy = Isolate::new().timeout(Duration::from_secs(20));
    let short = Isolate::new().timeout(Duration::from_millis(20));
    for i in 0..200u32 {
        let result = match i % 5 {
            0 => roomy.execute(move || i),
            1 => roomy.execute(|| -> u32 { panic!("mixed") }),
            2 => roomy.execute(|| -> u32 { std::process::abort() }),
            3 => short.execute(|| -> u32 {
                std::thread::sleep(Duration::from_secs(10));
                0
            }),
            _ => roomy.execute(|| -> u32 { std::process::exit(1) }),
        };
        assert_eq!(result.is_ok(), i % 5 == 0, "call {i}: {result:?}");
    }
    assert!(no_children_left(), "children left: {:?}", child_pids());
    // Delivered children are reaped (and their pidfds closed) off the
    // caller's path, promptly.
    assert!(
        eventually(Duration::from_secs(5), || open_fd_count() == fds),
        "descriptors: {} before, {} after",
        fds,
        open_fd_count()
    );
}
