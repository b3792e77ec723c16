//! A signal every 100 µs on the calling thread makes every blocking call
//! return `EINTR` over and over; no call may fail because of it. (Its own
//! test binary: the handler is process-wide.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mem_isolate::Isolate;

static DELIVERED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    DELIVERED.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn calls_survive_a_signal_every_100_microseconds() {
    // SAFETY: installing a handler that only touches an atomic; no SA_RESTART,
    // so interrupted syscalls really return EINTR.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = count_signal as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = 0;
        libc::sigemptyset(&raw mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &raw const action, std::ptr::null_mut()),
            0
        );
    }
    // SAFETY: `pthread_self` has no preconditions.
    let target = unsafe { libc::pthread_self() };
    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: `target` is the test thread, alive until `stop` is set and this thread joined.
                unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    let isolate = Isolate::new().timeout(Duration::from_secs(20));
    for i in 0..200u8 {
        let len = if i % 30 == 0 { 4 << 20 } else { 16 };
        let got = isolate.execute(move || {
            // Give the signals time to land in every wait.
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            vec![i; len]
        });
        let got = got.unwrap_or_else(|e| panic!("call {i} failed under the signal storm: {e:?}"));
        assert_eq!(got, vec![i; len]);
    }
    let ((), usage) = isolate.execute_with_usage(|| ()).unwrap();
    assert!(usage.wall > Duration::ZERO);
    stop.store(true, Ordering::Relaxed);
    storm.join().unwrap();
    assert!(
        DELIVERED.load(Ordering::Relaxed) > 100,
        "the storm did not happen"
    );
}
