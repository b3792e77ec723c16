//! Every way a callable can fail maps to the error level that says whether it ran.

use std::error::Error as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mem_isolate::errors::{
    CallableExecutedError as Executed, CallableStatusUnknownError as Unknown,
};
use mem_isolate::{execute_in_isolated_process, MemIsolateError};
use serde::de::{self, Deserializer};
use serde::ser::{self, Serializer};
use serde::{Deserialize, Serialize};

fn panicked(err: MemIsolateError) -> String {
    match err {
        MemIsolateError::CallableExecuted(Executed::CallablePanicked(message)) => message,
        other => panic!("expected CallablePanicked, got {other:?}"),
    }
}

#[test]
fn panics_carry_their_message() {
    let err = execute_in_isolated_process(|| -> u8 { panic!("static message") }).unwrap_err();
    assert_eq!(panicked(err), "static message");
    let n = 42;
    let err = execute_in_isolated_process(move || -> u8 { panic!("formatted {n}") }).unwrap_err();
    assert_eq!(panicked(err), "formatted 42");
    let err = execute_in_isolated_process(|| -> u8 { std::panic::panic_any(17u32) }).unwrap_err();
    assert!(panicked(err).contains("not a string"));
}

#[test]
fn a_panic_never_unwinds_into_the_callers_frames() {
    let log = std::env::temp_dir().join(format!("mem-isolate-unwind-{}", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let result = execute_in_isolated_process(|| -> u8 { panic!("in the child") });
        // Only the parent may ever get here.
        std::fs::write(&log, format!("{}\n", std::process::id())).unwrap();
        result
    }));
    let result = outcome.expect("the parent itself must not panic");
    assert!(matches!(
        result,
        Err(MemIsolateError::CallableExecuted(
            Executed::CallablePanicked(_)
        ))
    ));
    let written = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    assert_eq!(written, format!("{}\n", std::process::id()));
}

fn killed_by(err: &MemIsolateError) -> i32 {
    match err {
        MemIsolateError::CallableStatusUnknown(Unknown::ChildProcessKilledBySignal(signal)) => {
            *signal
        }
        other => panic!("expected ChildProcessKilledBySignal, got {other:?}"),
    }
}

/// The whole `source()` chain, one line per level.
fn chain(err: &MemIsolateError) -> Vec<String> {
    let mut lines = vec![err.to_string()];
    let mut source = err.source();
    while let Some(inner) = source {
        lines.push(inner.to_string());
        source = inner.source();
    }
    lines
}

#[test]
fn a_segfault_is_a_named_signal() {
    let err = execute_in_isolated_process(|| -> u8 {
        // A real invalid access: write to a page mapped without permissions.
        // SAFETY: test-only; the child is meant to die here.
        unsafe {
            let page = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            std::ptr::write_volatile(page.cast::<u8>(), 1);
        }
        0
    })
    .unwrap_err();
    assert_eq!(killed_by(&err), libc::SIGSEGV);
    let lines = chain(&err);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("SIGSEGV"), "{lines:?}");
    assert_eq!(lines.iter().filter(|l| l.contains("SIGSEGV")).count(), 1);
}

#[test]
fn an_abort_is_a_named_signal() {
    let err = execute_in_isolated_process(|| -> u8 { std::process::abort() }).unwrap_err();
    assert_eq!(killed_by(&err), libc::SIGABRT);
    assert!(chain(&err)[1].contains("SIGABRT"));
    // (Not SIGSEGV/SIGBUS by `raise`: Rust's stack-overflow handler swallows a
    // raised one, since no fault repeats; a real fault is tested above.)
    for signal in [libc::SIGKILL, libc::SIGTERM, libc::SIGUSR1, libc::SIGQUIT] {
        let err = execute_in_isolated_process(move || -> u8 {
            // SAFETY: raising a signal in the child, which is meant to die of it.
            unsafe { libc::raise(signal) };
            0
        })
        .expect_err(mem_isolate::signal_name(signal));
        assert_eq!(killed_by(&err), signal);
        assert!(chain(&err)[1].contains(mem_isolate::signal_name(signal)));
    }
}

#[test]
fn every_exit_status_is_the_callables() {
    for code in [1, 2, 3, 42, 101, 127, 128, 255] {
        let err =
            execute_in_isolated_process(move || -> u8 { std::process::exit(code) }).unwrap_err();
        assert!(
            matches!(err, MemIsolateError::CallableStatusUnknown(Unknown::UnexpectedChildExitStatus(c)) if c == code),
            "exit({code}) gave {err:?}"
        );
    }
    let err = execute_in_isolated_process(|| -> u8 { std::process::exit(0) }).unwrap_err();
    assert!(matches!(
        err,
        MemIsolateError::CallableStatusUnknown(Unknown::CallableProcessDiedDuringExecution)
    ));
    // `_exit` skips Rust's cleanup, which changes nothing.
    // SAFETY: `_exit` has no preconditions.
    let err = execute_in_isolated_process(|| -> u8 { unsafe { libc::_exit(3) } }).unwrap_err();
    assert!(matches!(
        err,
        MemIsolateError::CallableStatusUnknown(Unknown::UnexpectedChildExitStatus(3))
    ));
}

#[derive(Debug, Deserialize)]
struct FailsToSerialize;

impl Serialize for FailsToSerialize {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(ser::Error::custom("refusing to serialize"))
    }
}

#[derive(Debug, Serialize)]
struct FailsToDeserialize;

impl<'de> Deserialize<'de> for FailsToDeserialize {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(de::Error::custom("refusing to deserialize"))
    }
}

/// Writes a huge integer, reads a `String`: bincode would size the string's
/// allocation by that integer.
#[derive(Debug)]
struct Liar;

impl Serialize for Liar {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::MAX / 3)
    }
}

impl<'de> Deserialize<'de> for Liar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|_| Liar)
    }
}

#[test]
fn serialize_and_deserialize_failures() {
    let err = execute_in_isolated_process(|| FailsToSerialize).unwrap_err();
    assert!(
        matches!(&err, MemIsolateError::CallableExecuted(Executed::SerializationFailed(m)) if m.contains("refusing to serialize")),
        "{err:?}"
    );
    let err = execute_in_isolated_process(|| FailsToDeserialize).unwrap_err();
    assert!(
        matches!(&err, MemIsolateError::CallableExecuted(Executed::DeserializationFailed(m)) if m.contains("refusing to deserialize")),
        "{err:?}"
    );
    let err = execute_in_isolated_process(|| Liar).unwrap_err();
    assert!(
        matches!(
            err,
            MemIsolateError::CallableExecuted(Executed::DeserializationFailed(_))
        ),
        "{err:?}"
    );
    // The wrong type altogether: a u8 where a String is expected.
    let err = mem_isolate::Isolate::new()
        .execute(|| Proxy::<Small, Big>::new(Small(200)))
        .unwrap_err();
    assert!(matches!(
        err,
        MemIsolateError::CallableExecuted(Executed::DeserializationFailed(_))
    ));
}

#[derive(Debug, Serialize)]
struct Small(u8);

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Big(String, String);

/// Serializes as `S`, deserializes as `D`.
#[derive(Debug)]
struct Proxy<S, D>(Option<S>, std::marker::PhantomData<D>);

impl<S, D> Proxy<S, D> {
    fn new(s: S) -> Self {
        Self(Some(s), std::marker::PhantomData)
    }
}

impl<S: Serialize, D> Serialize for Proxy<S, D> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        self.0.as_ref().unwrap().serialize(s)
    }
}

impl<'de, S, D: Deserialize<'de>> Deserialize<'de> for Proxy<S, D> {
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        D::deserialize(d).map(|_| Self(None, std::marker::PhantomData))
    }
}

#[test]
fn errors_are_send_sync_static_and_chain() {
    fn assert_bounds<E: std::error::Error + Send + Sync + 'static>() {}
    assert_bounds::<MemIsolateError>();
    let err = execute_in_isolated_process(|| -> u8 { std::process::exit(9) }).unwrap_err();
    let lines = chain(&err);
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("may or may not"), "{lines:?}");
    assert!(lines[1].contains('9'), "{lines:?}");
    assert!(!err.is_safe_to_retry());
}

/// Code written for mem-isolate 0.1.6 matches the three levels without a
/// wildcard arm; this must keep compiling.
#[test]
fn three_level_match_without_wildcard() {
    let describe = |r: Result<u8, MemIsolateError>| match r {
        Ok(_) => "ok",
        Err(MemIsolateError::CallableDidNotExecute(_)) => "did not run",
        Err(MemIsolateError::CallableExecuted(_)) => "ran",
        Err(MemIsolateError::CallableStatusUnknown(_)) => "unknown",
    };
    assert_eq!(describe(execute_in_isolated_process(|| 1)), "ok");
    assert_eq!(
        describe(execute_in_isolated_process(|| -> u8 { panic!() })),
        "ran"
    );
    assert_eq!(
        describe(execute_in_isolated_process(|| -> u8 {
            std::process::abort()
        })),
        "unknown"
    );
}
