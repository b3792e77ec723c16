//! `Isolate::capture_output`: a call's stdout and stderr, captured through
//! real pipes that become the child's descriptors 1 and 2, drained while
//! the parent waits, bounded, and available with the value and with every
//! error (panic, segfault, timeout), with nothing left behind.

#![cfg(unix)]

use std::io::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mem_isolate::{CallReport, Isolate};
use mem_isolate_suite::{child_pids, eventually, no_children_left, settled_fds, write_raw};

/// Tests that count descriptors or children must not overlap other calls.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// The test harness captures `print!` and `eprint!` in its own buffer (in
// the child too), so these tests write to descriptors 1 and 2 themselves.
// Not through `io::stdout()`: the harness's main thread prints results
// under Rust's stdout lock, and a child forked while it holds that lock
// would wait for it forever (the hazard of forking a multi-threaded
// program; the one test that uses Rust's stdout holds the lock across the
// fork itself).
macro_rules! out {
    ($($arg:tt)*) => { write_raw(1, format!($($arg)*).as_bytes()) };
}
macro_rules! err {
    ($($arg:tt)*) => { write_raw(2, format!($($arg)*).as_bytes()) };
}

fn output<T>(report: &CallReport<T>) -> &mem_isolate::CapturedOutput {
    report.output.as_ref().expect("output was captured")
}

#[test]
fn stdout_and_stderr_are_captured_together_from_rust_and_c() {
    let _serial = serial();
    // Held across the fork, so no other thread holds it there; the child's
    // copy of this thread owns it too (the lock is reentrant).
    let stdout = std::io::stdout().lock();
    let report = Isolate::new().capture_output(1 << 20).execute_report(|| {
        // Buffered in Rust's stdout (no newline): flushed after the result.
        write!(std::io::stdout(), "rust-out ").unwrap();
        err!("rust-err ");
        // SAFETY: NUL-terminated strings without conversions.
        unsafe {
            libc::printf(c"c-out".as_ptr()); // buffered: flushed after the result
            libc::write(2, c"c-err".as_ptr().cast(), 5);
        }
        42
    });
    drop(stdout);
    assert_eq!(report.result.as_ref().unwrap(), &42);
    let out = output(&report);
    assert_eq!(out.stdout_lossy(), "rust-out c-out");
    assert_eq!(out.stderr_lossy(), "rust-err c-err");
    assert!(!out.stdout_truncated && !out.stderr_truncated);
    assert!(report.usage.is_some());
}

#[test]
fn output_bigger_than_a_pipe_does_not_deadlock_and_is_kept_whole_up_to_the_limit() {
    let _serial = serial();
    // 6 MiB on each stream, interleaved, far beyond a pipe's 64 KiB.
    let chunk = vec![b'x'; 64 * 1024];
    let write_both = move || {
        for i in 0..96u8 {
            let mut line = chunk.clone();
            line[0] = i;
            write_raw(1, &line);
            write_raw(2, &line);
        }
        String::from("done")
    };
    let report = Isolate::new()
        .timeout(Duration::from_secs(60))
        .capture_output(8 << 20)
        .execute_report(write_both.clone());
    assert_eq!(report.result.unwrap(), "done");
    let out = report.output.unwrap();
    assert_eq!(out.stdout.len(), 96 * 64 * 1024);
    assert_eq!(out.stderr.len(), 96 * 64 * 1024);
    assert!(!out.stdout_truncated && !out.stderr_truncated);
    for (i, block) in out.stdout.chunks(64 * 1024).enumerate() {
        assert_eq!(usize::from(block[0]), i);
    }

    // Kept up to the limit, the rest read and dropped (the child never blocks).
    let report = Isolate::new()
        .timeout(Duration::from_secs(60))
        .capture_output(1_000_000)
        .execute_report(write_both);
    assert_eq!(report.result.unwrap(), "done");
    let out = report.output.unwrap();
    assert_eq!(out.stdout.len(), 1_000_000);
    assert_eq!(out.stderr.len(), 1_000_000);
    assert!(out.stdout_truncated && out.stderr_truncated);
    assert_eq!(out.stdout[64 * 1024], 1);
}

#[test]
fn output_and_location_come_with_a_panic() {
    let _serial = serial();
    let report = Isolate::new()
        .capture_output(1 << 20)
        .execute_report(|| -> u8 {
            out!("before the panic\n");
            err!("on stderr\n");
            // The line of the `panic!` itself, whatever formatting does.
            panic!("boom at line {}", line!())
        });
    let err = report.result.as_ref().unwrap_err();
    let message = err.panic_message().unwrap();
    let line: u32 = message
        .strip_prefix("boom at line ")
        .unwrap()
        .parse()
        .unwrap();
    let location = report.panic_location.as_ref().unwrap();
    assert!(location.file.ends_with("output_capture.rs"), "{location}");
    assert_eq!(location.line, line);
    assert!(location.column > 1, "{location}");
    let out = output(&report);
    assert_eq!(out.stdout_lossy(), "before the panic\n");
    // The crate's hook keeps the child's panic message off stderr: it is in the error.
    assert_eq!(out.stderr_lossy(), "on stderr\n");
    assert!(report.usage.is_some());
}

#[test]
fn a_panic_in_another_thread_of_the_child_has_no_location_of_its_own() {
    let _serial = serial();
    let report = Isolate::new()
        .capture_output(1 << 20)
        .execute_report(|| -> u8 {
            let joined = std::thread::spawn(|| panic!("in a thread")).join();
            std::panic::resume_unwind(joined.unwrap_err())
        });
    assert_eq!(
        report.result.unwrap_err().panic_message(),
        Some("in a thread")
    );
    assert_eq!(report.panic_location, None);
    // The crate's hook is silent on every thread of the child.
    assert_eq!(report.output.unwrap().stderr_lossy(), "");
}

#[test]
fn output_comes_with_a_segfault() {
    let _serial = serial();
    let report = Isolate::new()
        .capture_output(1 << 20)
        .execute_report(|| -> u8 {
            out!("flushed before the crash; ");
            err!("stderr before the crash");
            // SAFETY: not safe at all: a real invalid write, which is the point.
            unsafe { std::ptr::null_mut::<u8>().write_volatile(1) };
            0
        });
    let err = report.result.as_ref().unwrap_err();
    assert_eq!(err.signal().map(mem_isolate::Signal::name), Some("SIGSEGV"));
    let out = output(&report);
    assert_eq!(out.stdout_lossy(), "flushed before the crash; ");
    assert_eq!(out.stderr_lossy(), "stderr before the crash");
    let usage = report.usage.unwrap();
    assert!(usage.peak_rss_bytes > 0);
}

#[test]
fn output_printed_before_a_timeout_is_kept() {
    let _serial = serial();
    let limit = Duration::from_millis(300);
    let started = Instant::now();
    let report = Isolate::new()
        .timeout(limit)
        .capture_output(1 << 20)
        .execute_report(|| {
            out!("started\n");
            err!("still working\n");
            std::thread::sleep(Duration::from_secs(60));
        });
    assert!(started.elapsed() < limit + Duration::from_secs(1));
    assert!(report.result.as_ref().unwrap_err().is_timeout());
    let out = output(&report);
    assert_eq!(out.stdout_lossy(), "started\n");
    assert_eq!(out.stderr_lossy(), "still working\n");
    let usage = report.usage.unwrap();
    assert!(usage.wall >= limit);
}

#[test]
fn a_child_that_never_stops_printing_still_times_out() {
    let _serial = serial();
    let limit = Duration::from_millis(300);
    let started = Instant::now();
    let report = Isolate::new()
        .timeout(limit)
        .capture_output(4096)
        .execute_report(|| -> u8 {
            loop {
                out!("spam ");
            }
        });
    assert!(started.elapsed() < limit + Duration::from_secs(1));
    assert!(report.result.unwrap_err().is_timeout());
    let out = report.output.unwrap();
    assert_eq!(out.stdout.len(), 4096);
    assert!(out.stdout_truncated);
}

#[cfg(target_os = "linux")]
#[test]
fn a_grandchild_holding_the_capture_pipes_does_not_hold_the_call() {
    let _serial = serial();
    for flood in [false, true] {
        let started = Instant::now();
        let report = Isolate::new()
            .capture_output(1 << 20)
            .execute_report(move || {
                out!("from the child\n");
                // SAFETY: the grandchild only writes and sleeps, then `_exit`s.
                match unsafe { libc::fork() } {
                    0 => {
                        let start = Instant::now();
                        while start.elapsed() < Duration::from_secs(30) {
                            if flood {
                                // SAFETY: a valid buffer of its length.
                                unsafe { libc::write(1, c"flood ".as_ptr().cast(), 6) };
                            } else {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                        // SAFETY: `_exit` has no preconditions.
                        unsafe { libc::_exit(0) }
                    }
                    grandchild => grandchild,
                }
            });
        let grandchild = report.result.as_ref().copied().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "flood={flood}: {:?}",
            started.elapsed()
        );
        let out = report.output.unwrap();
        assert!(
            out.stdout_lossy().starts_with("from the child\n"),
            "flood={flood}"
        );
        // SAFETY: the grandchild is alive (it sleeps 30 s); it is not ours to
        // reap: its parent exited and it was re-parented.
        unsafe { libc::kill(grandchild, libc::SIGKILL) };
    }
}

#[test]
fn no_descriptor_or_child_is_left_behind() {
    let _serial = serial();
    let before = settled_fds();
    let isolate = Isolate::new()
        .timeout(Duration::from_millis(200))
        .capture_output(1024);
    for _ in 0..3 {
        assert!(isolate.execute_report(|| out!("ok")).result.is_ok());
        assert!(isolate
            .execute_report(|| -> u8 { panic!("p") })
            .result
            .is_err());
        assert!(isolate
            .execute_report(|| std::thread::sleep(Duration::from_secs(60)))
            .result
            .is_err());
        assert!(isolate.execute(|| out!("{}", "x".repeat(10_000))).is_ok());
    }
    assert!(no_children_left(), "{:?}", child_pids());
    assert!(eventually(Duration::from_secs(5), || settled_fds() == before));
}

#[test]
fn execute_with_capture_drops_the_output_and_keeps_the_value() {
    let _serial = serial();
    let v = Isolate::new()
        .capture_output(16)
        .execute(|| {
            println!("{}", "silenced ".repeat(10_000));
            5
        })
        .unwrap();
    assert_eq!(v, 5);
}

#[test]
fn without_capture_there_is_no_output_in_the_report() {
    let _serial = serial();
    let report = Isolate::new().execute_report(|| 1);
    assert_eq!(report.result.unwrap(), 1);
    assert!(report.output.is_none());
    assert!(report.usage.is_some());
}

/// Through the zygote (which must start first in `main`, so in a probe
/// process): the worker's descriptors 1 and 2 are the call's capture pipes,
/// sent to the zygote with the request.
#[cfg(target_os = "linux")]
#[test]
fn capture_works_through_the_zygote() {
    let _serial = serial(); // its probe is a child of this process
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zygote-probe"))
        .arg("capture")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let facts: std::collections::HashMap<&str, &str> =
        stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let fact = |key: &str| {
        *facts
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
    };
    assert_eq!(fact("value-is-zygote"), "true");
    assert_eq!(fact("stdout"), "ooooo|c-stdout");
    assert_eq!(fact("stderr-empty"), "true");
    assert_eq!(fact("big-ok"), "true");
    assert_eq!(fact("big-kept"), (1 << 20).to_string());
    assert_eq!(fact("big-truncated"), "true");
    assert_eq!(fact("panic"), "panicked:worker-panic");
    assert_eq!(fact("panic-stdout"), "before the panic");
    assert_eq!(fact("panic-stderr"), "stderr before the panic");
    assert!(
        fact("panic-location-file").ends_with("zygote-probe.rs"),
        "{stdout}"
    );
    assert!(fact("timeout").starts_with("timeout"), "{stdout}");
    assert_eq!(fact("timeout-stdout"), "before the hang");
    assert_eq!(fact("segv"), "signal:SIGSEGV");
    assert_eq!(fact("segv-stderr"), "before the crash");
    assert_eq!(fact("segv-usage"), "true");
    assert_eq!(fact("quiet"), "panicked:worker-panic");
    assert_eq!(fact("fds-settled"), "true");
    // Nothing a worker printed reached the probe's own stdout or stderr.
    assert!(stdout.lines().all(|line| line.contains('=')), "{stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("before the"));
}

/// The async calls capture too: the crate's background thread drains the
/// pipes while it reads the frame, so a child writing far more than a pipe
/// holds does not block, and nothing is left behind, cancelled calls
/// included.
#[test]
fn async_calls_capture_output_without_deadlock_and_leave_nothing_behind() {
    let _serial = serial();
    // The first async call starts the crate's waiter thread (and its
    // descriptors, kept for the process's life).
    futures::executor::block_on(Isolate::new().execute_async(|| ())).unwrap();
    let before = settled_fds();
    let isolate = Isolate::new()
        .timeout(Duration::from_secs(60))
        .capture_output(1_000_000);
    let write_lots = || {
        let line = vec![b'y'; 64 * 1024];
        for _ in 0..48 {
            write_raw(1, &line);
            write_raw(2, &line);
        }
        7u8
    };
    // Several at once on one thread, under `block_on`.
    let calls = (0..4).map(|_| isolate.execute_report_async(write_lots));
    let reports = futures::executor::block_on(futures::future::join_all(calls));
    for report in reports {
        assert_eq!(report.result.unwrap(), 7);
        let out = report.output.unwrap();
        assert_eq!((out.stdout.len(), out.stderr.len()), (1_000_000, 1_000_000));
        assert!(out.stdout_truncated && out.stderr_truncated);
        assert!(report.usage.is_some());
    }

    // With a panic and a timeout, under tokio.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let report = isolate
            .execute_report_async(|| -> u8 {
                err!("about to fail\n");
                panic!("async boom")
            })
            .await;
        assert_eq!(
            report.result.unwrap_err().panic_message(),
            Some("async boom")
        );
        assert_eq!(report.output.unwrap().stderr_lossy(), "about to fail\n");
        assert!(report.panic_location.is_some());

        let report = isolate
            .clone()
            .timeout(Duration::from_millis(100))
            .execute_report_async(|| {
                out!("before the hang\n");
                std::thread::sleep(Duration::from_secs(60));
            })
            .await;
        assert!(report.result.unwrap_err().is_timeout());
        assert_eq!(report.output.unwrap().stdout_lossy(), "before the hang\n");

        // A dropped call that was printing is killed; its pipes are closed.
        let call = isolate.execute_report_async(|| -> u8 {
            loop {
                out!("forever ");
            }
        });
        let _ = tokio::time::timeout(Duration::from_millis(50), call).await;
    });
    drop(runtime);
    assert!(no_children_left(), "{:?}", child_pids());
    assert!(eventually(Duration::from_secs(5), || settled_fds() == before));
}
