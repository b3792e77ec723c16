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
#[cfg(not(feature = "tokio"))]
use std::pin::pin;
#[cfg(not(feature = "tokio"))]
use std::sync::Arc;
#[cfg(not(feature = "tokio"))]
use std::task::{Context, Poll, Wake, Waker};
#[cfg(not(feature = "tokio"))]
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
#[cfg(not(feature = "tokio"))]
struct Unpark(Thread);

#[cfg(not(feature = "tokio"))]
impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `future` on this thread until it is ready, parking in between.
#[cfg(not(feature = "tokio"))]
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
