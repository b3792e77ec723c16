//! Forking a multi-threaded program: a lock another thread holds at the
//! moment of `fork` stays held forever in the child. A callable that takes it
//! blocks; the timeout is the guard, and nothing hangs.

use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use mem_isolate::errors::CallableStatusUnknownError as Unknown;
use mem_isolate::{Isolate, MemIsolateError};
use mem_isolate_suite::{child_pids, eventually};

static SHARED: Mutex<u32> = Mutex::new(0);

#[test]
fn a_mutex_held_at_fork_times_out_instead_of_hanging() {
    let held = Barrier::new(2);
    let done = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            let guard = SHARED.lock().unwrap();
            held.wait();
            done.wait();
            drop(guard);
        });
        held.wait();
        let start = Instant::now();
        let limit = Duration::from_millis(300);
        let result = Isolate::new()
            .timeout(limit)
            .execute(|| *SHARED.lock().unwrap() + 1);
        let took = start.elapsed();
        done.wait();
        assert!(
            matches!(result, Err(MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(l))) if l == limit),
            "{result:?}"
        );
        assert!(took < limit + Duration::from_secs(1), "{took:?}");
    });
    // Once the other thread let go, the same call works.
    assert_eq!(
        Isolate::new()
            .execute(|| *SHARED.lock().unwrap() + 1)
            .unwrap(),
        1
    );
    assert!(eventually(Duration::from_secs(5), || child_pids().is_empty()));
}
