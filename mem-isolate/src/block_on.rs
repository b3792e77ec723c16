//! In the child: driving an `#[isolated] async fn`'s body to completion.
//!
//! The child of a fork has one thread, a copy of the caller's, and that
//! thread's thread-locals: forked on an executor's thread, it still "is
//! inside" that executor (tokio's runtime context, for one), whose other
//! threads and drivers did not come along. So the body is never driven by
//! what the caller ran on. Without feature `tokio`, a minimal executor
//! polls it on the child's thread and parks between wake-ups (no runtime
//! is involved, so nothing is inherited). With feature `tokio`, a fresh
//! current-thread runtime (IO and time enabled) drives it on a fresh
//! thread, where no runtime context is set; that is why the body's maker
//! and its value must be `Send` (in both cases, so that turning the feature
//! on never breaks a build).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

/// Runs the future `make()` returns to completion and returns its output.
pub(crate) fn run_body<M, F, T>(make: M) -> T
where
    M: FnOnce() -> F + Send,
    F: Future<Output = T>,
    T: Send,
{
    #[cfg(feature = "tokio")]
    {
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("mem-isolate-body".into())
                .spawn_scoped(scope, move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap_or_else(|e| {
                            panic!("could not build a tokio runtime in the isolated child: {e}")
                        });
                    runtime.block_on(make())
                })
                .unwrap_or_else(|e| panic!("could not start a thread in the isolated child: {e}"))
                .join()
                .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
        })
    }
    #[cfg(not(feature = "tokio"))]
    {
        block_on(make())
    }
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it is ready, parking in between.
/// (Compiled with feature `tokio` too, so that its unit tests run under
/// `cargo test --workspace`, where the feature is on.)
#[cfg_attr(feature = "tokio", allow(dead_code))]
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    /// Pending until another thread has woken it `left` times.
    struct WokenFromElsewhere {
        left: u32,
        polls: Arc<AtomicU32>,
    }

    impl Future for WokenFromElsewhere {
        type Output = u32;
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.left == 0 {
                return Poll::Ready(self.polls.load(Ordering::SeqCst));
            }
            self.left -= 1;
            let waker = cx.waker().clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2));
                waker.wake();
            });
            Poll::Pending
        }
    }

    #[test]
    fn the_minimal_executor_honours_wake_ups_from_other_threads() {
        let polls = Arc::new(AtomicU32::new(0));
        let future = WokenFromElsewhere {
            left: 5,
            polls: Arc::clone(&polls),
        };
        assert_eq!(block_on(future), 6);
        assert_eq!(block_on(async { 40 + 2 }), 42);
    }

    #[test]
    fn a_body_runs_to_completion_with_whichever_driver_is_built_in() {
        let value = run_body(|| async {
            let polls = Arc::new(AtomicU32::new(0));
            WokenFromElsewhere { left: 3, polls }.await
        });
        assert_eq!(value, 4);
    }
}
