//! `SIGCHLD` blocked or ignored by the program. Blocked changes nothing (the
//! crate never waits for the signal). Ignored (`SIG_IGN`) makes the kernel
//! reap children itself, so their exit statuses are gone: calls that deliver
//! a result still work; a child that dies without one is `WaitFailed(ECHILD)`.
//! (Its own test binary: signal dispositions are process-wide.)

use std::sync::Mutex;
use std::time::Duration;

use mem_isolate::errors::{
    CallableExecutedError as Executed, CallableStatusUnknownError as Unknown,
};
use mem_isolate::{execute_in_isolated_process, Isolate, MemIsolateError};
use mem_isolate_suite::{child_pids, eventually};

static SERIAL: Mutex<()> = Mutex::new(());

fn set_sigchld(handler: libc::sighandler_t) {
    // SAFETY: installing SIG_IGN or SIG_DFL has no memory-safety preconditions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        libc::sigemptyset(&raw mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGCHLD, &raw const action, std::ptr::null_mut()),
            0
        );
    }
}

fn block_sigchld(block: bool) {
    // SAFETY: `set` is a valid signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGCHLD);
        let how = if block {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        assert_eq!(
            libc::pthread_sigmask(how, &raw const set, std::ptr::null_mut()),
            0
        );
    }
}

#[test]
fn blocked_sigchld_changes_nothing() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    block_sigchld(true);
    assert_eq!(execute_in_isolated_process(|| 5u8).unwrap(), 5);
    let err = execute_in_isolated_process(|| -> u8 { std::process::exit(3) }).unwrap_err();
    assert!(matches!(
        err,
        MemIsolateError::CallableStatusUnknown(Unknown::UnexpectedChildExitStatus(3))
    ));
    let ((), usage) = Isolate::new().execute_with_usage(|| ()).unwrap();
    assert!(usage.wall > Duration::ZERO);
    block_sigchld(false);
}

#[test]
fn ignored_sigchld_keeps_results_and_loses_statuses() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    set_sigchld(libc::SIG_IGN);
    let results: Vec<_> = (0..20u32)
        .map(|i| execute_in_isolated_process(move || i * 2))
        .collect();
    let panicked = execute_in_isolated_process(|| -> u8 { panic!("still reported") });
    let exited = execute_in_isolated_process(|| -> u8 { std::process::exit(3) });
    let timed_out = Isolate::new()
        .timeout(Duration::from_millis(100))
        .execute(|| std::thread::sleep(Duration::from_secs(30)));
    let usage = Isolate::new().execute_with_usage(|| 1u8);
    set_sigchld(libc::SIG_DFL);

    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), u32::try_from(i).unwrap() * 2);
    }
    assert!(matches!(
        panicked,
        Err(MemIsolateError::CallableExecuted(
            Executed::CallablePanicked(_)
        ))
    ));
    assert!(
        matches!(&exited, Err(MemIsolateError::CallableStatusUnknown(Unknown::WaitFailed(e))) if e.raw_os_error() == Some(libc::ECHILD)),
        "{exited:?}"
    );
    assert!(
        matches!(
            timed_out,
            Err(MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(_)))
        ),
        "{timed_out:?}"
    );
    assert!(
        matches!(
            usage,
            Err(MemIsolateError::CallableStatusUnknown(Unknown::WaitFailed(
                _
            )))
        ),
        "{usage:?}"
    );
    assert!(eventually(Duration::from_secs(5), || child_pids().is_empty()));
}
