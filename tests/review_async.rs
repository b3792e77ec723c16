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
