//! `#[isolated] async fn`: callers `.await` a `Result`; the body runs in the
//! child, driven to completion there, whatever executor the caller runs on.
//! (With the runtime's `tokio` feature the body runs inside a fresh tokio
//! runtime: `tests/async-tokio`. Under `cargo test --workspace` that feature
//! is on for every member; `cargo test --test async_attribute` runs the
//! minimal executor.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use mem_isolate::errors::{
    CallableExecutedError as Executed, CallableStatusUnknownError as Unknown,
};
use mem_isolate::{isolated, MemIsolateError};
use mem_isolate_suite::{child_pids, no_children_left};

/// Pending `n` times (waking itself each time) before it is ready: the
/// child's executor must honour wake-ups, not just poll once.
struct YieldTimes(u32);

impl Future for YieldTimes {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.0 == 0 {
            return Poll::Ready(7);
        }
        self.0 -= 1;
        // From another thread, as a real source would.
        let waker = cx.waker().clone();
        std::thread::spawn(move || waker.wake());
        Poll::Pending
    }
}

#[isolated]
async fn leaky_sum(values: Vec<u64>) -> u64 {
    std::mem::forget(vec![0u8; 4 << 20]);
    let seven = YieldTimes(3).await;
    values.iter().sum::<u64>() + u64::from(seven)
}

#[isolated]
async fn parse(text: String) -> Result<u32, String> {
    if text.is_empty() {
        return Err("empty".into());
    }
    let n: u32 = text.parse().map_err(|e| format!("{e}"))?;
    Ok(n + YieldTimes(1).await)
}

#[isolated(timeout = "200ms")]
async fn stall() -> u8 {
    std::thread::sleep(Duration::from_secs(60));
    0
}

#[isolated]
async fn explode() -> u8 {
    YieldTimes(1).await;
    panic!("async boom")
}

#[isolated]
async fn nothing() {}

struct Counter {
    base: u32,
}

impl Counter {
    #[isolated]
    async fn bumped(&self, by: u32) -> u32 {
        self.base + by + YieldTimes(0).await
    }

    #[isolated]
    async fn mutated(&mut self) -> u32 {
        self.base += 1; // in the child's copy
        self.base
    }
}

#[isolated(memory_limit = "64 MiB")]
async fn largest<T>(items: Vec<T>) -> Option<T>
where
    T: Ord + Send + serde::Serialize + serde::de::DeserializeOwned,
{
    items.into_iter().max()
}

async fn all_shapes() {
    assert_eq!(leaky_sum(vec![1, 2, 3]).await.unwrap(), 13);
    assert_eq!(parse("35".into()).await.unwrap(), Ok(42));
    assert_eq!(parse(String::new()).await.unwrap(), Err("empty".into()));
    assert!(parse("x".into()).await.unwrap().is_err());
    nothing().await.unwrap();
    let mut counter = Counter { base: 1 };
    assert_eq!(counter.bumped(2).await.unwrap(), 10);
    assert_eq!(counter.mutated().await.unwrap(), 2);
    assert_eq!(counter.base, 1);
    assert_eq!(largest(vec![3, 9, 2]).await.unwrap(), Some(9));
    assert!(matches!(
        explode().await,
        Err(MemIsolateError::CallableExecuted(Executed::CallablePanicked(m))) if m == "async boom"
    ));
    assert!(matches!(
        stall().await,
        Err(MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(_)))
    ));
}

#[test]
fn under_futures_block_on() {
    futures::executor::block_on(all_shapes());
    assert!(no_children_left(), "{:?}", child_pids());
}

#[test]
fn under_smol() {
    smol::block_on(all_shapes());
}

#[test]
fn under_tokio_current_thread() {
    // The child is forked on a runtime's thread and inherits its "inside a
    // runtime" marker: the body must not be driven by that runtime.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(all_shapes());
}

#[test]
fn under_tokio_multi_thread_spawned() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let calls: Vec<_> = (0..8u64)
                .map(|n| tokio::spawn(leaky_sum(vec![n])))
                .collect();
            for (n, call) in (0..8u64).zip(calls) {
                assert_eq!(call.await.unwrap().unwrap(), n + 7);
            }
            tokio::spawn(all_shapes()).await.unwrap();
        });
}
