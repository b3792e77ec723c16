//! A hostile child: the callable writes its own bytes into the result pipe
//! (forged lengths, truncation, garbage, floods) before, or instead of, the
//! crate's frame. Every case is an error within the timeout; the parent never
//! panics, aborts or hangs, and never allocates by a length the child claims.

use std::time::{Duration, Instant};

use mem_isolate::errors::{
    CallableExecutedError as Executed, CallableStatusUnknownError as Unknown,
};
use mem_isolate::{Isolate, MemIsolateError};
use mem_isolate_suite::{current_rss_bytes, result_pipe, settled_fds, write_raw};

/// The wire format (see `frame.rs`): kind byte, then chunks, each a
/// length (u32 LE) and its bytes, ended by a length of 0.
const VALUE_KIND: u8 = 0xA1;
const END_OF_VALUE: [u8; 4] = [0; 4];

/// The kind byte and the first chunk's header.
fn header(len: u32) -> Vec<u8> {
    let mut h = vec![VALUE_KIND];
    h.extend_from_slice(&len.to_le_bytes());
    h
}

fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Finding the result pipe by "new since the call began" needs no other
/// test opening descriptors meanwhile.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs a hostile callable (returning `String`) with a timeout; returns the
/// error and how long the call took.
fn hostile(isolate: &Isolate, act: impl FnOnce(i32)) -> (MemIsolateError, Duration) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Isolate::new().execute(|| ()).unwrap(); // the reaper's pipe exists before `before`
    let before = settled_fds();
    let start = Instant::now();
    let result = isolate.execute(move || -> String {
        act(result_pipe(&before));
        "the crate's own frame".to_owned()
    });
    (
        result.expect_err("a hostile child must not produce a value"),
        start.elapsed(),
    )
}

fn isolate() -> Isolate {
    Isolate::new().timeout(Duration::from_secs(10))
}

#[test]
fn forged_all_ones_length() {
    let (err, took) = hostile(&isolate(), |fd| {
        write_raw(fd, &[VALUE_KIND, 0xFE, 0xFF, 0xFF, 0xFF]);
        std::thread::sleep(Duration::from_secs(30));
    });
    assert!(
        matches!(
            err,
            MemIsolateError::CallableExecuted(Executed::ResultTooLarge { .. })
        ),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Chunks that each fit the limit but together do not.
#[test]
fn chunks_adding_up_past_the_limit() {
    let limited = isolate().max_result_size(1 << 20);
    let (err, took) = hostile(&limited, |fd| {
        let mut frame = header(1);
        frame.push(250); // a string of 250 bytes: its first 0
        let chunk = vec![b'x'; 600 << 10];
        for _ in 0..2 {
            frame.extend_from_slice(&u32::try_from(chunk.len()).unwrap().to_le_bytes());
            frame.extend_from_slice(&chunk);
        }
        write_raw(fd, &frame);
        std::thread::sleep(Duration::from_secs(30));
    });
    assert!(
        matches!(err, MemIsolateError::CallableExecuted(Executed::ResultTooLarge { limit }) if limit == 1 << 20),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn claimed_length_is_never_allocated_up_front() {
    let rss = current_rss_bytes();
    // A chunk of 900 MiB claimed (under the 1 GiB default) holding a
    // string of 800 MiB; 10 bytes sent, then exit.
    let (err, _) = hostile(&isolate(), |fd| {
        write_raw(fd, &header(900 << 20));
        let mut string = vec![253]; // varint: u64 follows
        string.extend_from_slice(&(800u64 << 20).to_le_bytes());
        write_raw(fd, &string);
        write_raw(fd, b"0123456789");
        exit_now(0);
    });
    assert!(
        matches!(
            err,
            MemIsolateError::CallableStatusUnknown(Unknown::CallableProcessDiedDuringExecution)
        ),
        "{err:?}"
    );
    let grown = current_rss_bytes().saturating_sub(rss);
    assert!(
        grown < 32 << 20,
        "parent grew by {grown} bytes for a 10-byte frame"
    );
}

#[test]
fn truncated_frame_then_exit() {
    let (err, _) = hostile(&isolate(), |fd| {
        write_raw(fd, &header(100));
        write_raw(fd, &[1; 40]);
        exit_now(0);
    });
    assert!(
        matches!(
            err,
            MemIsolateError::CallableStatusUnknown(Unknown::CallableProcessDiedDuringExecution)
        ),
        "{err:?}"
    );
}

#[test]
fn half_a_frame_then_a_crash() {
    let (err, _) = hostile(&isolate(), |fd| {
        write_raw(fd, &header(64)[..3]);
        std::process::abort();
    });
    assert!(
        matches!(err, MemIsolateError::CallableStatusUnknown(Unknown::ChildProcessKilledBySignal(s)) if s == libc::SIGABRT),
        "{err:?}"
    );
}

#[test]
fn garbage_and_zero_bytes() {
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0u8; 64][..],
        &[0xD0; 3][..],
    ] {
        let (err, took) = hostile(&isolate(), move |fd| {
            write_raw(fd, junk);
            std::thread::sleep(Duration::from_secs(30));
        });
        assert!(
            matches!(
                err,
                MemIsolateError::CallableExecuted(Executed::DeserializationFailed(_))
            ),
            "{junk:?}: {err:?}"
        );
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}

#[test]
fn well_formed_frame_of_the_wrong_type() {
    // A `u8` payload where the parent expects a `String`.
    let (err, _) = hostile(&isolate(), |fd| {
        let mut frame = header(1);
        frame.push(200);
        frame.extend_from_slice(&END_OF_VALUE);
        frame.push(0xD0);
        write_raw(fd, &frame);
        exit_now(0);
    });
    assert!(
        matches!(
            err,
            MemIsolateError::CallableExecuted(Executed::DeserializationFailed(_))
        ),
        "{err:?}"
    );
    // A string whose inner length claims far more than the frame holds.
    let (err, _) = hostile(&isolate(), |fd| {
        let mut payload = vec![253]; // varint: u64 follows
        payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
        payload.extend_from_slice(b"tiny");
        let mut frame = header(u32::try_from(payload.len()).unwrap());
        frame.extend_from_slice(&payload);
        frame.extend_from_slice(&END_OF_VALUE);
        frame.push(0xD0);
        write_raw(fd, &frame);
        exit_now(0);
    });
    assert!(
        matches!(
            err,
            MemIsolateError::CallableExecuted(Executed::DeserializationFailed(_))
        ),
        "{err:?}"
    );
}

#[test]
fn a_flood_past_the_frame_or_the_limit() {
    let limited = isolate().max_result_size(1 << 20);
    // A whole frame within the limit, followed by 64 MiB more.
    let (err, took) = hostile(&limited, |fd| {
        let mut frame = header(4);
        frame.extend_from_slice(&[3, b'a', b'b', b'c']);
        frame.extend_from_slice(&END_OF_VALUE);
        write_raw(fd, &frame);
        let chunk = vec![0x55u8; 1 << 20];
        for _ in 0..64 {
            write_raw(fd, &chunk);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    assert!(
        matches!(
            err,
            MemIsolateError::CallableExecuted(Executed::DeserializationFailed(_))
        ),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A claim past the limit.
    let (err, _) = hostile(&limited, |fd| {
        write_raw(fd, &header(2 << 20));
        std::thread::sleep(Duration::from_secs(30));
    });
    assert!(
        matches!(err, MemIsolateError::CallableExecuted(Executed::ResultTooLarge { limit }) if limit == 1 << 20),
        "{err:?}"
    );
    // A real result past the limit.
    let err = limited.execute(|| vec![1u8; 2 << 20]).unwrap_err();
    assert!(
        matches!(
            err,
            MemIsolateError::CallableExecuted(Executed::ResultTooLarge { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn a_silent_half_frame_runs_into_the_timeout() {
    let short = Isolate::new().timeout(Duration::from_millis(300));
    let (err, took) = hostile(&short, |fd| {
        write_raw(fd, &header(100));
        std::thread::sleep(Duration::from_secs(30));
    });
    assert!(
        matches!(
            err,
            MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(_))
        ),
        "{err:?}"
    );
    assert!(
        took < Duration::from_millis(300) + Duration::from_secs(1),
        "{took:?}"
    );
}

#[test]
fn a_child_that_closes_its_open_fds() {
    let (err, _) = hostile(&isolate(), |fd| {
        // SAFETY: closing the child's own copy.
        unsafe { libc::close(fd) };
    });
    // The crate's own write then fails: the callable ran, the result is lost.
    assert!(
        matches!(
            err,
            MemIsolateError::CallableExecuted(Executed::ChildPipeWriteFailed(Some(_)))
        ),
        "{err:?}"
    );
}
