//! Findings of a hostile review of the async API, one test each.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use mem_isolate::Isolate;
use mem_isolate_suite::{no_children_left, settled_fds};

/// The tests look at the whole process (descriptors, children, threads):
/// one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `f` on a thread of its own; `None` if it did not end within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// Whether a thread named `mem-isolate-waiter` runs in this process (`comm`
/// keeps 15 bytes of a name).
fn waiter_thread_runs() -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .any(|name| name.trim() == "mem-isolate-wai")
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
    let _serial = serial();
    // Warm-up: starts the waiter thread and its descriptors.
    futures::executor::block_on(Isolate::new().execute_async(|| 0u8)).unwrap();
    let before = settled_fds();
    assert!(waiter_thread_runs());

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
    assert!(waiter_thread_runs(), "the waiter thread died");

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

/// Set in the fresh process that runs one descriptor budget.
const VAR: &str = "REVIEW_ASYNC_FREE_FDS";

/// With `n` free descriptor numbers left under `RLIMIT_NOFILE`, the first
/// async call of a fresh process: its first poll takes how long, and is it
/// ready?
fn first_poll_with_free_descriptors(n: usize) -> (Duration, bool) {
    // The reaper and panic hook are up; the waiter thread is not.
    Isolate::new().execute(|| 0u8).unwrap();
    assert!(no_children_left());
    let open = mem_isolate_suite::open_fds();
    // One past the `n`-th free descriptor number.
    let limit = (0..65_536)
        .filter(|fd| !open.contains(fd))
        .nth(n - 1)
        .map(|fd| fd + 1)
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
    let _serial = serial();
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

/// A waker whose last reference owns another call's future, and whose
/// `Drop` takes its time before dropping it.
struct OwnsAnotherCall(
    std::sync::Mutex<Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>>,
);

impl Wake for OwnsAnotherCall {
    fn wake(self: Arc<Self>) {}
}

impl Drop for OwnsAnotherCall {
    fn drop(&mut self) {
        // Meanwhile the first call's child ends and the thread settles it.
        std::thread::sleep(Duration::from_millis(500));
        drop(self.0.lock().unwrap().take());
    }
}

/// Polling a call with a new waker dropped the old one while holding the
/// call's slot lock; the old waker's `Drop` (executor code) may drop another
/// call's future, which takes the table's lock. The thread takes the
/// table's lock, then the slot's: both threads then waited for each other
/// forever, and every async call of the process with them.
#[test]
fn a_replaced_waker_that_drops_another_call_does_not_deadlock() {
    let _serial = serial();
    futures::executor::block_on(Isolate::new().execute_async(|| 0u8)).unwrap();
    let done = within(Duration::from_secs(30), || {
        let mut other = Box::pin(async {
            let _ = Isolate::new()
                .execute_async(|| std::thread::sleep(Duration::from_secs(20)))
                .await;
        });
        assert!(other
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending());
        let first = Waker::from(Arc::new(OwnsAnotherCall(std::sync::Mutex::new(Some(
            other,
        )))));
        let mut call = Box::pin(Isolate::new().execute_async(|| {
            std::thread::sleep(Duration::from_millis(100));
            1u8
        }));
        assert!(call
            .as_mut()
            .poll(&mut Context::from_waker(&first))
            .is_pending());
        drop(first);
        // Replaces (and drops the last reference to) the first waker.
        let _ = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        futures::executor::block_on(call).map_err(|e| e.to_string())
    });
    assert_eq!(done, Some(Ok(1)), "deadlocked");
    let next = within(Duration::from_secs(20), || {
        futures::executor::block_on(Isolate::new().execute_async(|| 2u8)).is_ok()
    });
    assert_eq!(next, Some(true), "later async calls hang");
    assert!(no_children_left());
}
