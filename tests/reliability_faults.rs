//! Faults the OS cannot be made to produce on demand, injected through the
//! test-only seam over the syscall wrappers: each gives the right error
//! level, leaks no descriptor, leaves no child, and the next call works.

use std::sync::Mutex;
use std::time::Duration;

use mem_isolate::__private::fault::{self, Call};
use mem_isolate::errors::{
    CallableDidNotExecuteError as DidNotExecute, CallableExecutedError as Executed,
    CallableStatusUnknownError as Unknown,
};
use mem_isolate::{execute_in_isolated_process, Isolate, MemIsolateError};
use mem_isolate_suite::{child_pids, eventually, open_fd_count};

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs one faulty call under `fault`, checks nothing is left behind and
/// that the next call works, and returns the faulty call's error.
fn with_fault(
    call: Call,
    errno: i32,
    times: u32,
    run: impl FnOnce() -> Result<u32, MemIsolateError>,
) -> MemIsolateError {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    execute_in_isolated_process(|| 0u8).unwrap(); // lazily created state
    assert!(eventually(Duration::from_secs(5), || child_pids().is_empty()));
    let fds = open_fd_count();
    fault::fail_next(call, errno, times);
    let result = run();
    fault::clear();
    let err = result.expect_err("the injected fault must surface");
    assert!(
        eventually(Duration::from_secs(5), || child_pids().is_empty()),
        "children left after {call:?}/{errno}: {:?}",
        child_pids()
    );
    assert!(
        eventually(Duration::from_secs(5), || open_fd_count() == fds),
        "descriptor leaked after {call:?}/{errno}: {fds} before, {} after",
        open_fd_count()
    );
    assert_eq!(
        execute_in_isolated_process(|| 7u32).unwrap(),
        7,
        "next call after {call:?}"
    );
    err
}

fn os_error(e: &std::io::Error) -> Option<i32> {
    e.raw_os_error()
}

#[test]
fn pipe_failure_did_not_execute() {
    for errno in [libc::EMFILE, libc::ENFILE, libc::ENOMEM] {
        let err = with_fault(Call::Pipe, errno, 1, || {
            execute_in_isolated_process(|| 1u32)
        });
        assert!(
            matches!(&err, MemIsolateError::CallableDidNotExecute(DidNotExecute::PipeCreationFailed(e)) if os_error(e) == Some(errno)),
            "{err:?}"
        );
        assert!(err.is_safe_to_retry());
    }
}

#[test]
fn fork_failure_did_not_execute() {
    for errno in [libc::EAGAIN, libc::ENOMEM] {
        let err = with_fault(Call::Fork, errno, 1, || {
            execute_in_isolated_process(|| 1u32)
        });
        assert!(
            matches!(&err, MemIsolateError::CallableDidNotExecute(DidNotExecute::ForkFailed(e)) if os_error(e) == Some(errno)),
            "{err:?}"
        );
    }
}

#[test]
fn poll_and_read_failures_are_status_unknown() {
    for (call, errno) in [
        (Call::Poll, libc::EBADF),
        (Call::Poll, libc::ENOMEM),
        (Call::Read, libc::EBADF),
        (Call::Read, libc::EIO),
    ] {
        let err = with_fault(call, errno, 1, || execute_in_isolated_process(|| 1u32));
        assert!(
            matches!(&err, MemIsolateError::CallableStatusUnknown(Unknown::ParentPipeReadFailed(e)) if os_error(e) == Some(errno)),
            "{call:?}/{errno}: {err:?}"
        );
    }
}

#[test]
fn eintr_storms_are_absorbed() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for call in [Call::Poll, Call::Read, Call::Write, Call::Wait] {
        fault::fail_next(call, libc::EINTR, 10_000);
        let (v, usage) = Isolate::new().execute_with_usage(|| 41u32 + 1).unwrap();
        fault::clear();
        assert_eq!(v, 42, "{call:?}");
        assert!(usage.wall > Duration::ZERO);
    }
}

#[test]
fn child_write_failure_is_reported_as_executed() {
    for errno in [libc::EPIPE, libc::EBADF, libc::ENOSPC] {
        let err = with_fault(Call::Write, errno, 1, || {
            execute_in_isolated_process(|| 1u32)
        });
        assert!(
            matches!(&err, MemIsolateError::CallableExecuted(Executed::ChildPipeWriteFailed(Some(e))) if os_error(e) == Some(errno)),
            "{errno}: {err:?}"
        );
    }
}

#[test]
fn wait_failure_is_status_unknown_and_the_child_is_still_reaped() {
    // `execute_with_usage` reaps in the caller, so `wait4` is on its path.
    let err = with_fault(Call::Wait, libc::EINVAL, 1, || {
        Isolate::new().execute_with_usage(|| 1u32).map(|(v, _)| v)
    });
    assert!(
        matches!(&err, MemIsolateError::CallableStatusUnknown(Unknown::WaitFailed(e)) if os_error(e) == Some(libc::EINVAL)),
        "{err:?}"
    );
    // A callable that dies without a result: the status is needed.
    let err = with_fault(Call::Wait, libc::EINVAL, 1, || {
        execute_in_isolated_process(|| -> u32 { std::process::exit(3) })
    });
    assert!(
        matches!(
            err,
            MemIsolateError::CallableStatusUnknown(Unknown::WaitFailed(_))
        ),
        "{err:?}"
    );
}

#[test]
fn kill_failure_on_timeout_is_retried() {
    let err = with_fault(Call::Kill, libc::EPERM, 1, || {
        Isolate::new()
            .timeout(Duration::from_millis(50))
            .execute(|| -> u32 {
                std::thread::sleep(Duration::from_secs(30));
                0
            })
    });
    assert!(
        matches!(
            err,
            MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(_))
        ),
        "{err:?}"
    );
}
