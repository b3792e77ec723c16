//! The duration forms users reached for (issue 13): `"90 s"`, `"1.5s"`,
//! `"100us"` are accepted, with the same grammar as sizes, and mean what
//! they say at run time.

use std::time::Duration;

use mem_isolate::errors::CallableStatusUnknownError;
use mem_isolate::{isolated, MemIsolateError};

#[isolated(timeout = "90 s", memory_limit = "64 MiB")]
fn with_spaces() -> u8 {
    1
}

#[isolated(timeout = "1.5s")]
fn with_a_fraction() -> u8 {
    2
}

#[isolated(timeout = "100us")]
fn sleeps_past_100_microseconds() -> u8 {
    std::thread::sleep(Duration::from_secs(60));
    3
}

#[test]
fn durations_with_spaces_fractions_and_micro_units() {
    assert_eq!(with_spaces().unwrap(), 1);
    assert_eq!(with_a_fraction().unwrap(), 2);
    let err = sleeps_past_100_microseconds().unwrap_err();
    assert!(
        matches!(
            err,
            MemIsolateError::CallableStatusUnknown(CallableStatusUnknownError::TimedOut(limit))
                if limit == Duration::from_micros(100)
        ),
        "{err:?}"
    );
}
