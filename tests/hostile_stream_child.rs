//! What a callable can do to the result pipe *while its value streams*:
//! its `Serialize` runs in the child, between the chunks the crate sends,
//! and can shrink the pipe, set `O_NONBLOCK` on it, storm the child with
//! signals, or close it. The value still arrives exactly, or the call is an
//! error within its timeout; nothing is left behind.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use mem_isolate::Isolate;
use mem_isolate_suite::{no_children_left, result_pipe, settled_fds};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Deserializer, Serialize};

/// Finding the result pipe by "new since the call began" needs no other
/// test opening descriptors meanwhile.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251).to_le_bytes()[0].wrapping_add(seed))
        .collect()
}

/// What the hostile `Serialize` does to the pipe between its elements.
#[derive(Clone, Copy)]
enum Act {
    /// Shrinks the pipe to one page and sets `O_NONBLOCK` on it.
    ShrinkAndNonblock,
    /// A signal every 100 µs (a handler without `SA_RESTART`): every
    /// blocking call in the child sees `EINTR`.
    SignalStorm,
    /// Closes the pipe.
    Close,
}

/// Sent: a 100 KiB and an 8 MiB byte string (written, then spliced), and
/// 10,000 small strings, with `act` done to the pipe before each part.
/// Received: what the parent got.
struct Hostile {
    pipe: i32,
    act: Option<Act>,
    received: Option<(serde_bytes::ByteBuf, serde_bytes::ByteBuf, Vec<String>)>,
}

extern "C" fn ignore(_: libc::c_int) {}

fn act_on(pipe: i32, act: Act) {
    // SAFETY: fcntl/setitimer/sigaction/close on this process's own
    // descriptor and timers, with valid arguments; failures are ignored.
    unsafe {
        match act {
            Act::ShrinkAndNonblock => {
                libc::fcntl(pipe, libc::F_SETPIPE_SZ, 4096);
                let flags = libc::fcntl(pipe, libc::F_GETFL);
                libc::fcntl(pipe, libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
            Act::SignalStorm => {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
                libc::sigaction(libc::SIGALRM, &raw const action, std::ptr::null_mut());
                let every = libc::timeval {
                    tv_sec: 0,
                    tv_usec: 100,
                };
                let timer = libc::itimerval {
                    it_interval: every,
                    it_value: every,
                };
                libc::setitimer(libc::ITIMER_REAL, &raw const timer, std::ptr::null_mut());
            }
            Act::Close => {
                libc::close(pipe);
            }
        }
    }
}

impl Serialize for Hostile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let act = |_: &mut S::SerializeTuple| {
            if let Some(act) = self.act {
                act_on(self.pipe, act);
            }
        };
        let mut tuple = s.serialize_tuple(3)?;
        act(&mut tuple);
        tuple.serialize_element(serde_bytes::Bytes::new(&pattern(100 << 10, 1)))?;
        act(&mut tuple);
        tuple.serialize_element(serde_bytes::Bytes::new(&pattern(8 << 20, 2)))?;
        act(&mut tuple);
        let strings: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
        tuple.serialize_element(&strings)?;
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Hostile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self {
            pipe: -1,
            act: None,
            received: Some(Deserialize::deserialize(d)?),
        })
    }
}

fn run(act: Act) -> (Result<Hostile, mem_isolate::MemIsolateError>, Duration) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Isolate::new().execute(|| ()).unwrap(); // the reaper's pipe exists before `before`
    let before = settled_fds();
    let start = Instant::now();
    let result = Isolate::new()
        .timeout(Duration::from_secs(10))
        .execute(move || Hostile {
            pipe: result_pipe(&before),
            act: Some(act),
            received: None,
        });
    let took = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !no_children_left() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(no_children_left(), "a child was left behind");
    (result, took)
}

fn assert_exact(result: Result<Hostile, mem_isolate::MemIsolateError>) {
    let (small, big, strings) = result.unwrap().received.unwrap();
    assert!(small.as_slice() == pattern(100 << 10, 1));
    assert!(big.as_slice() == pattern(8 << 20, 2));
    assert_eq!(strings.len(), 10_000);
    assert_eq!(strings[9_999], "s9999");
}

#[test]
fn a_pipe_shrunk_and_made_non_blocking_mid_value_still_delivers_it() {
    let (result, took) = run(Act::ShrinkAndNonblock);
    assert_exact(result);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_signal_storm_in_the_child_mid_value_still_delivers_it() {
    let (result, took) = run(Act::SignalStorm);
    assert_exact(result);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_pipe_closed_mid_value_is_an_error_not_a_hang() {
    let (result, took) = run(Act::Close);
    let err = result.map(|_| ()).unwrap_err();
    eprintln!("closed mid-value: {err:#} in {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}
