//! Findings of a hostile review of the async API, one test each.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use mem_isolate::Isolate;
use mem_isolate_suite::{no_children_left, settled_fds, thread_count};

/// Runs `f` on a thread of its own; `None` if it did not end within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// A waker whose `wake` panics (a buggy executor, or a caller's own waker).
struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("hostile waker");
    }
}

/// The background thread wakes futures with the executor's wakers: one that
/// panics killed `mem-isolate-waiter`, and from then on every async call of
/// the process hung forever (no timeout, its child never reaped, its
/// descriptors never closed).
#[test]
fn a_panicking_waker_does_not_stop_other_async_calls() {
    // Warm-up: starts the waiter thread and its descriptors.
    futures::executor::block_on(Isolate::new().execute_async(|| 0u8)).unwrap();
    let before = settled_fds();
    let threads = thread_count();

    let waker = Waker::from(Arc::new(PanickingWaker));
    let mut call = Box::pin(Isolate::new().execute_async(|| {
        std::thread::sleep(Duration::from_millis(20));
        1u8
    }));
    assert!(call
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    // The child ends and the thread wakes the future with the bad waker.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(thread_count(), threads, "the waiter thread died");

    // Another call, with a timeout, on another thread: it must end.
    let next = within(Duration::from_secs(20), || {
        futures::executor::block_on(
            Isolate::new()
                .timeout(Duration::from_secs(2))
                .execute_async(|| 5u8),
        )
        .map_err(|e| e.to_string())
    });
    assert_eq!(next, Some(Ok(5)), "a later async call hung or failed");

    // The woken call itself is still complete when polled again.
    let again = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
    assert!(matches!(again, std::task::Poll::Ready(Ok(1))), "{again:?}");
    drop(call);
    assert!(no_children_left());
    assert_eq!(settled_fds(), before);
}

/// With `n` free descriptor numbers left under `RLIMIT_NOFILE`, the first
/// async call of a fresh process: its first poll takes how long, and is it
/// ready?
fn first_poll_with_free_descriptors(n: usize) -> (Duration, bool) {
    // The reaper and panic hook are up; the waiter thread is not.
    Isolate::new().execute(|| 0u8).unwrap();
    assert!(no_children_left());
    let open = mem_isolate_suite::open_fds();
    let limit = (0..)
        .scan(0, |free, fd| {
            if !open.contains(&fd) {
                *free += 1;
            }
            Some((fd, *free))
        })
        .find(|&(_, free)| free == n)
        .map(|(fd, _)| fd + 1)
        .unwrap();
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain rlimit calls on valid structs.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut old), 0);
        let tight = libc::rlimit {
            rlim_cur: u64::try_from(limit).unwrap(),
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &raw const tight), 0);
    }
    let mut call = Box::pin(
        Isolate::new()
            .timeout(Duration::from_secs(10))
            .execute_async(|| {
                std::thread::sleep(Duration::from_secs(3));
                1u8
            }),
    );
    let start = std::time::Instant::now();
    let ready = call
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .is_ready();
    let took = start.elapsed();
    // SAFETY: as above.
    unsafe { assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &raw const old), 0) };
    drop(call);
    (took, ready)
}

/// "Awaiting one never blocks the executor's thread": near the descriptor
/// limit, the call's pipe took the last descriptors, the waiter thread could
/// not get its epoll instance and eventfd, and the first poll fell back to
/// the blocking wait, holding the executor's thread for the whole call
/// (forever without a timeout). Each descriptor budget runs in a fresh
/// process (the waiter, once up, stays).
#[test]
fn near_the_descriptor_limit_the_first_poll_does_not_block() {
    const VAR: &str = "REVIEW_ASYNC_FREE_FDS";
    if let Ok(n) = std::env::var(VAR) {
        let (took, ready) = first_poll_with_free_descriptors(n.parse().unwrap());
        println!("RESULT {n} {} {ready}", took.as_millis());
        return;
    }
    let me = std::env::current_exe().unwrap();
    for n in 1..=8 {
        let out = std::process::Command::new(&me)
            .args([
                "--exact",
                "near_the_descriptor_limit_the_first_poll_does_not_block",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(VAR, n.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{n} free: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.find("RESULT").map(|at| &l[at..]))
            .expect("a RESULT line");
        let ms: u64 = line.split(' ').nth(2).unwrap().parse().unwrap();
        // The child sleeps 3 s; a poll that waited for it took that long.
        assert!(
            ms < 1500,
            "{n} free descriptors: the first poll blocked for {ms} ms ({line})"
        );
    }
}
