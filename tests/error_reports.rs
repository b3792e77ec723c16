//! Errors that explain themselves: the one-line report of the whole chain
//! (`report()` and `{:#}`), the accessors, `Debug` naming the signal, and
//! the child's usage reported when a call fails.

#![cfg(unix)]

use std::time::{Duration, Instant};

use mem_isolate::errors::{CallableDidNotExecuteError, CallableStatusUnknownError};
use mem_isolate::{Isolate, MemIsolateError};

const LEVEL_UNKNOWN: &str = "the callable may or may not have executed";

#[test]
fn a_timeout_reports_its_cause_on_one_line() {
    let err = Isolate::new()
        .timeout(Duration::from_millis(100))
        .execute(|| std::thread::sleep(Duration::from_secs(60)))
        .unwrap_err();
    // `{}` is the level only, so reporters that walk `source()` show each once.
    assert_eq!(err.to_string(), LEVEL_UNKNOWN);
    let line = format!("{LEVEL_UNKNOWN}: the callable timed out after 100ms");
    assert_eq!(format!("{err:#}"), line);
    assert_eq!(err.report().to_string(), line);
    assert!(err.is_timeout());
    assert!(!err.is_safe_to_retry());
    assert_eq!(
        (err.signal(), err.exit_code(), err.panic_message()),
        (None, None, None)
    );
}

#[test]
fn a_signal_is_named_in_the_report_the_accessor_and_debug() {
    let err = mem_isolate::execute_in_isolated_process(|| -> u8 {
        // SAFETY: not safe at all: a real invalid write, which is the point.
        unsafe { std::ptr::null_mut::<u8>().write_volatile(1) };
        0
    })
    .unwrap_err();
    let signal = err.signal().unwrap();
    assert_eq!((signal.number(), signal.name()), (libc::SIGSEGV, "SIGSEGV"));
    assert_eq!(
        err.report().to_string(),
        format!(
            "{LEVEL_UNKNOWN}: the child process was killed by signal SIGSEGV ({})",
            libc::SIGSEGV
        )
    );
    let debug = format!("{err:?}");
    assert!(debug.contains("ChildProcessKilledBySignal"), "{debug}");
    assert!(debug.contains("SIGSEGV"), "{debug}");
    assert!(!err.is_timeout() && err.exit_code().is_none());
}

#[test]
fn exit_codes_and_panic_messages_are_one_call_away() {
    let exited =
        mem_isolate::execute_in_isolated_process(|| -> u8 { std::process::exit(7) }).unwrap_err();
    assert_eq!(exited.exit_code(), Some(7));
    assert_eq!(
        format!("{exited:#}"),
        format!("{LEVEL_UNKNOWN}: the child process exited with unexpected status 7")
    );
    let exited0 =
        mem_isolate::execute_in_isolated_process(|| -> u8 { std::process::exit(0) }).unwrap_err();
    assert_eq!(exited0.exit_code(), Some(0));

    let panicked =
        mem_isolate::execute_in_isolated_process(|| -> u8 { panic!("bad input: {}", 3) })
            .unwrap_err();
    assert_eq!(panicked.panic_message(), Some("bad input: 3"));
    assert_eq!(
        panicked.report().to_string(),
        "the callable executed, but its result could not be returned: the callable panicked: bad input: 3"
    );
    assert!(panicked.signal().is_none() && panicked.exit_code().is_none());
}

#[test]
fn the_report_includes_the_os_error_and_retry_is_safe_only_before_the_start() {
    let err = MemIsolateError::CallableDidNotExecute(CallableDidNotExecuteError::ForkFailed(
        std::io::Error::from_raw_os_error(libc::EAGAIN),
    ));
    let line = err.report().to_string();
    assert!(
        line.starts_with("the callable did not execute: failed to fork the child process: "),
        "{line}"
    );
    assert!(line.contains("os error 11"), "{line}");
    assert!(err.is_safe_to_retry());
    // Every level appears once in the line.
    for level in ["the callable did not execute", "failed to fork", "os error"] {
        assert_eq!(line.matches(level).count(), 1, "{level} in {line}");
    }
}

#[test]
fn debug_of_the_signal_variant_names_it() {
    let inner = CallableStatusUnknownError::ChildProcessKilledBySignal(libc::SIGABRT);
    assert_eq!(
        format!("{inner:?}"),
        format!(
            "ChildProcessKilledBySignal({} /* SIGABRT */)",
            libc::SIGABRT
        )
    );
    // The other variants print as a derived `Debug` would.
    assert_eq!(
        format!(
            "{:?}",
            CallableStatusUnknownError::TimedOut(Duration::from_millis(5))
        ),
        "TimedOut(5ms)"
    );
    assert_eq!(
        format!(
            "{:?}",
            CallableStatusUnknownError::MemoryLimitExceeded { limit: 4 }
        ),
        "MemoryLimitExceeded { limit: 4 }"
    );
}

#[test]
fn usage_is_reported_when_the_call_fails() {
    // A crash.
    let report = Isolate::new().execute_report(|| -> u8 {
        let v = vec![1u8; 32 << 20];
        std::hint::black_box(&v);
        std::process::abort()
    });
    assert_eq!(
        report.result.unwrap_err().signal().unwrap().name(),
        "SIGABRT"
    );
    let usage = report.usage.expect("usage after a crash");
    assert!(usage.peak_rss_bytes >= 32 << 20, "{usage:?}");

    // A timeout, with the CPU it burnt.
    let limit = Duration::from_millis(300);
    let started = Instant::now();
    let report = Isolate::new().timeout(limit).execute_report(|| -> u64 {
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    });
    assert!(started.elapsed() < limit + Duration::from_secs(1));
    assert!(report.result.unwrap_err().is_timeout());
    let usage = report.usage.expect("usage after a timeout");
    assert!(usage.wall >= limit);
    assert!(
        usage.user_cpu + usage.system_cpu > Duration::ZERO,
        "{usage:?}"
    );

    // A memory-limit hit (its "memory allocation failed" line captured, not printed).
    let report = Isolate::new()
        .memory_limit(64 << 20)
        .capture_output(1 << 20)
        .execute_report(|| vec![1u8; 1 << 30].len());
    let err = report.result.unwrap_err();
    assert!(
        err.is_memory_limit_exceeded() || err.signal().is_some(),
        "{err:#}"
    );
    assert!(
        report
            .usage
            .expect("usage after a memory-limit hit")
            .peak_rss_bytes
            > 0
    );

    // A panic.
    let report = Isolate::new().execute_report(|| -> u8 { panic!("p") });
    assert!(report.result.is_err());
    assert!(report.usage.is_some());
}

#[test]
fn execute_with_usage_still_fails_without_usage() {
    let err = Isolate::new()
        .execute_with_usage(|| -> u8 { panic!("p") })
        .unwrap_err();
    assert_eq!(err.panic_message(), Some("p"));
}
