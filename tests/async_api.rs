//! The async API under four executors: the same values and errors as the
//! sync calls, no executor thread blocked while a call waits, many calls in
//! flight on one background thread, cancellation by drop, timeouts without
//! a runtime timer.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::executor::block_on;
use mem_isolate::errors::{
    CallableDidNotExecuteError as DidNotExecute, CallableExecutedError as Executed,
    CallableStatusUnknownError as Unknown,
};
use mem_isolate::{Isolate, MemIsolateError};
use mem_isolate_suite::{child_pids, no_children_left, settled_fds, thread_count};

/// These tests count this process's children, descriptors and threads: one
/// at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `make()`'s future to completion under each executor in turn.
fn under_every_executor<F, Fut>(mut make: F)
where
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { tokio::spawn(make("tokio multi-thread")).await.unwrap() });
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(make("tokio current-thread"));
    block_on(make("futures block_on"));
    smol::block_on(make("smol"));
}

fn square(n: u64) -> u64 {
    n * n
}

#[test]
fn values_under_every_executor() {
    let _serial = serial();
    under_every_executor(|executor| async move {
        let isolate = Isolate::new();
        let text = isolate
            .execute_async(move || format!("from the child, under {executor}"))
            .await
            .unwrap();
        assert_eq!(text, format!("from the child, under {executor}"));
        assert_eq!(isolate.call_async(square, 12).await.unwrap(), 144);
        let (len, usage) = isolate
            .execute_with_usage_async(|| vec![1u8; 8 << 20].len())
            .await
            .unwrap();
        assert_eq!(len, 8 << 20);
        assert!(usage.peak_rss_bytes >= 8 << 20, "{executor}: {usage:?}");
        assert!(usage.wall > Duration::ZERO);
        let (sum, _) = isolate.call_with_usage_async(square, 3).await.unwrap();
        assert_eq!(sum, 9);
        // A big result crosses many pipe-buffer fills.
        let big = isolate.execute_async(|| vec![7u8; 24 << 20]).await.unwrap();
        assert_eq!(big.len(), 24 << 20);
        assert!(big.iter().all(|b| *b == 7));
    });
    assert!(no_children_left(), "{:?}", child_pids());
}

/// The error a sync call gives, and the async one, as text (the variants
/// carry `io::Error`s, which do not compare).
fn same_error<T: std::fmt::Debug>(
    sync: Result<T, MemIsolateError>,
    asynchronous: Result<T, MemIsolateError>,
) -> MemIsolateError {
    let sync = sync.unwrap_err();
    let asynchronous = asynchronous.unwrap_err();
    assert_eq!(format!("{sync:?}"), format!("{asynchronous:?}"));
    asynchronous
}

#[test]
fn every_error_level_matches_the_sync_call() {
    let _serial = serial();
    let isolate = Isolate::new();

    let panicked = same_error(
        isolate.execute(|| -> u8 { panic!("boom") }),
        block_on(isolate.execute_async(|| -> u8 { panic!("boom") })),
    );
    assert!(matches!(
        panicked,
        MemIsolateError::CallableExecuted(Executed::CallablePanicked(m)) if m == "boom"
    ));

    let aborted = same_error(
        isolate.execute(|| -> u8 { std::process::abort() }),
        block_on(isolate.execute_async(|| -> u8 { std::process::abort() })),
    );
    assert!(matches!(
        aborted,
        MemIsolateError::CallableStatusUnknown(Unknown::ChildProcessKilledBySignal(libc::SIGABRT))
    ));

    let exited = same_error(
        isolate.execute(|| -> u8 { std::process::exit(3) }),
        block_on(isolate.execute_async(|| -> u8 { std::process::exit(3) })),
    );
    assert!(matches!(
        exited,
        MemIsolateError::CallableStatusUnknown(Unknown::UnexpectedChildExitStatus(3))
    ));

    let small = Isolate::new().max_result_size(1024);
    let too_large = same_error(
        small.execute(|| vec![0u8; 4096]),
        block_on(small.execute_async(|| vec![0u8; 4096])),
    );
    assert!(matches!(
        too_large,
        MemIsolateError::CallableExecuted(Executed::ResultTooLarge { limit: 1024 })
    ));

    let limited = Isolate::new().memory_limit(64 << 20);
    let over_limit = same_error(
        limited.execute(|| vec![1u8; 1 << 30].len()),
        block_on(limited.execute_async(|| vec![1u8; 1 << 30].len())),
    );
    assert!(matches!(
        over_limit,
        MemIsolateError::CallableStatusUnknown(
            Unknown::MemoryLimitExceeded { .. }
                | Unknown::ChildProcessKilledBySignal(libc::SIGABRT)
        )
    ));

    let required = Isolate::new().require_zygote(true);
    let unavailable = block_on(required.call_async(square, 2)).unwrap_err();
    assert!(matches!(
        unavailable,
        MemIsolateError::CallableDidNotExecute(DidNotExecute::ZygoteUnavailable(_))
    ));

    // A child that exits 0 without a result, and one killed from outside.
    let died = same_error(
        isolate.execute(|| -> u8 { std::process::exit(0) }),
        block_on(isolate.execute_async(|| -> u8 { std::process::exit(0) })),
    );
    assert!(matches!(
        died,
        MemIsolateError::CallableStatusUnknown(Unknown::CallableProcessDiedDuringExecution)
    ));
    assert!(no_children_left(), "{:?}", child_pids());
}

#[test]
fn a_timeout_fires_without_a_runtime_timer() {
    let _serial = serial();
    let limit = Duration::from_millis(200);
    let start = Instant::now();
    // `block_on` has no timer: only the crate's background thread can end this.
    let err = block_on(
        Isolate::new()
            .timeout(limit)
            .execute_async(|| std::thread::sleep(Duration::from_secs(60))),
    )
    .unwrap_err();
    assert!(
        matches!(err, MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(l)) if l == limit),
        "{err:?}"
    );
    assert!(
        start.elapsed() < limit + Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(start.elapsed() >= limit);

    // A child that closes its pipe and keeps running also times out.
    let err = block_on(Isolate::new().timeout(limit).execute_async(|| {
        for fd in 3..1024 {
            // SAFETY: closing descriptors in the child only.
            unsafe { libc::close(fd) };
        }
        std::thread::sleep(Duration::from_secs(60));
    }))
    .unwrap_err();
    assert!(
        matches!(
            err,
            MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(_))
        ),
        "{err:?}"
    );
    assert!(no_children_left(), "{:?}", child_pids());
}

#[test]
fn a_current_thread_runtime_keeps_running_other_tasks_while_a_call_waits() {
    let _serial = serial();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let seen = runtime.block_on(async {
        let counter = Arc::clone(&ticks);
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(10));
            loop {
                interval.tick().await;
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        let before = ticks.load(Ordering::Relaxed);
        let value = Isolate::new()
            .execute_async(|| {
                std::thread::sleep(Duration::from_millis(500));
                5u8
            })
            .await
            .unwrap();
        assert_eq!(value, 5);
        let seen = ticks.load(Ordering::Relaxed) - before;
        ticker.abort();
        seen
    });
    // 50 ticks if nothing else ran; a blocked executor thread would give 0 or 1.
    assert!(
        seen >= 10,
        "the ticker ticked {seen} times during a 500 ms call"
    );
}

/// The child's clock at its start and end, in microseconds since the epoch.
fn stamps(sleep: Duration) -> (u128, u128) {
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros()
    };
    let start = now();
    std::thread::sleep(sleep);
    (start, now())
}

fn assert_overlapped(spans: &[(u128, u128)]) {
    let last_start = spans.iter().map(|s| s.0).max().unwrap();
    let first_end = spans.iter().map(|s| s.1).min().unwrap();
    assert!(
        last_start < first_end,
        "every child was running at once: the last started {} µs before the first ended",
        first_end.saturating_sub(last_start)
    );
}

const IN_FLIGHT: usize = 128;

#[test]
fn many_calls_in_flight_overlap_on_one_thread() {
    let _serial = serial();
    // Starts the crate's threads (the waiter, the reaper), so they count as "before".
    block_on(Isolate::new().execute_async(|| ())).unwrap();
    assert!(no_children_left());
    let threads_before = thread_count();
    let isolate = Isolate::new().timeout(Duration::from_secs(60));
    let mut all =
        std::pin::pin!(futures::future::join_all((0..IN_FLIGHT).map(|_| {
            isolate.execute_async(|| stamps(Duration::from_millis(1500)))
        }),));
    // Polled by hand on this one thread, sampling the thread count between
    // polls while the calls are in flight (the noop waker: the loop polls
    // again every few milliseconds anyway).
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut peak = 0;
    let spans = loop {
        if let std::task::Poll::Ready(spans) = all.as_mut().poll(&mut cx) {
            break spans;
        }
        peak = peak.max(thread_count());
        std::thread::sleep(Duration::from_millis(5));
    };
    let spans: Vec<_> = spans.into_iter().map(Result::unwrap).collect();
    assert_eq!(spans.len(), IN_FLIGHT);
    assert_overlapped(&spans);
    // The margin is the test harness's own threads, not one per call.
    assert!(
        peak <= threads_before + 2,
        "threads grew from {threads_before} to {peak} with {IN_FLIGHT} calls in flight"
    );
    assert!(no_children_left(), "{:?}", child_pids());
}

#[test]
fn many_spawned_calls_overlap_under_tokio() {
    let _serial = serial();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let spans = runtime.block_on(async {
        let isolate = Isolate::new();
        let handles: Vec<_> = (0..IN_FLIGHT)
            .map(|_| tokio::spawn(isolate.execute_async(|| stamps(Duration::from_millis(1500)))))
            .collect();
        let mut spans = Vec::new();
        for handle in handles {
            spans.push(handle.await.unwrap().unwrap());
        }
        spans
    });
    assert_overlapped(&spans);
    assert!(no_children_left(), "{:?}", child_pids());
}

#[test]
fn a_dropped_future_leaves_no_child_and_no_descriptor() {
    let _serial = serial();
    block_on(Isolate::new().execute_async(|| ())).unwrap();
    let before = settled_fds();

    // Never polled: nothing was started.
    drop(Isolate::new().execute_async(|| std::thread::sleep(Duration::from_secs(60))));
    assert!(child_pids().is_empty());

    // Polled once (the child is forked and waited for), then dropped.
    let mut call =
        Box::pin(Isolate::new().execute_async(|| std::thread::sleep(Duration::from_secs(60))));
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(call.as_mut().poll(&mut cx).is_pending());
    assert_eq!(child_pids().len(), 1);
    drop(call);
    assert!(no_children_left(), "{:?}", child_pids());
    assert_eq!(settled_fds(), before);

    // Cancelled by a runtime's timeout, many at once, some with usage asked.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let isolate = Isolate::new();
            for i in 0..16 {
                let slow = || std::thread::sleep(Duration::from_secs(60));
                let cancelled = if i % 2 == 0 {
                    tokio::time::timeout(Duration::from_millis(20), isolate.execute_async(slow))
                        .await
                        .is_err()
                } else {
                    tokio::time::timeout(
                        Duration::from_millis(20),
                        isolate.execute_with_usage_async(slow),
                    )
                    .await
                    .is_err()
                };
                assert!(cancelled);
            }
        });
    assert!(no_children_left(), "{:?}", child_pids());
    assert_eq!(settled_fds(), before);
}

fn assert_send_static<F: Future + Send + 'static>(f: F) -> F {
    f
}

#[test]
fn futures_are_send_static_and_independent_of_the_isolate() {
    let _serial = serial();
    let calls: Vec<_> = {
        let isolate = Isolate::new().timeout(Duration::from_secs(30));
        (0..4u64)
            .map(|n| assert_send_static(isolate.execute_async(move || n + 1)))
            .collect()
        // `isolate` is gone; the futures copied its options.
    };
    let values = block_on(futures::future::join_all(calls));
    assert_eq!(
        values.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // A borrowing closure: the future borrows what the closure does.
    let text = String::from("borrowed");
    let len = block_on(Isolate::new().execute_async(|| text.len())).unwrap();
    assert_eq!(len, 8);
}

#[test]
fn an_isolated_child_can_make_async_calls_of_its_own() {
    let _serial = serial();
    // The parent's waiter thread exists; the child has none and starts its own.
    block_on(Isolate::new().execute_async(|| ())).unwrap();
    let nested = block_on(Isolate::new().execute_async(|| {
        // On a fresh thread: this one inherited `block_on`'s "inside an
        // executor" marker, and `futures` refuses to nest.
        std::thread::spawn(|| {
            let inner = block_on(Isolate::new().execute_async(|| 20u32));
            let squared = block_on(Isolate::new().call_async(square, 3));
            format!("{inner:?} {squared:?}")
        })
        .join()
        .unwrap()
    }))
    .unwrap();
    assert_eq!(nested, "Ok(20) Ok(9)");
    assert!(no_children_left(), "{:?}", child_pids());
}

#[test]
fn a_hostile_sibling_cannot_disturb_calls_in_flight() {
    let _serial = serial();
    let isolate = Isolate::new().timeout(Duration::from_secs(20));
    let honest = (0..8u32).map(|n| {
        isolate.execute_async(move || {
            std::thread::sleep(Duration::from_millis(300));
            n
        })
    });
    // Scribbles on every descriptor it inherited (the other calls' read
    // ends among them), flips O_NONBLOCK on them, and reads what it can.
    let hostile = isolate.execute_async(|| {
        for fd in 3..256 {
            // SAFETY: raw descriptor calls in the child only; failures are fine.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFL, flags ^ libc::O_NONBLOCK);
                    let junk = [0xFFu8; 64];
                    libc::write(fd, junk.as_ptr().cast(), junk.len());
                    // An epoll instance would accept this; the crate's is closed here.
                    let mut event = libc::epoll_event {
                        events: libc::EPOLLIN as u32,
                        u64: 0,
                    };
                    libc::epoll_ctl(fd, libc::EPOLL_CTL_ADD, 0, &raw mut event);
                }
            }
        }
        0u32
    });
    let (values, hostile) = block_on(futures::future::join(
        futures::future::join_all(honest),
        hostile,
    ));
    // Its junk went into its own result pipe too: its own call fails.
    assert!(
        matches!(
            hostile,
            Err(MemIsolateError::CallableExecuted(
                Executed::DeserializationFailed(_)
            ))
        ),
        "{hostile:?}"
    );
    // Reads bounded by what the pipe holds ignore the flags; no bytes
    // reach a read end from a child (write ends are never inherited).
    for (n, value) in values.into_iter().enumerate() {
        assert_eq!(value.unwrap() as usize, n);
    }
    assert!(no_children_left(), "{:?}", child_pids());
}

#[test]
fn call_async_goes_through_the_zygote() {
    // Zygote mode needs a process that starts it first thing in `main`.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_async-zygote-probe"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "started=true",
        // The worker sees the program as it was at `zygote::start`.
        "worker-generation=1",
        "square=144",
        "usage-wall-positive=true",
        "panic=true",
        "timeout=true",
        "captured=Ok(1024) 100000 true",
        "in-flight-ok=40",
        "workers-idle=true",
        "workers-while-in-flight=1",
        "workers-after-drop=true",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "{expected} missing from:\n{text}"
        );
    }
}

/// A panic frame and the done mark, written by the callable itself (see
/// `frame.rs`): the format does not depend on the codec.
fn forged_panic_frame(message: &str) -> Vec<u8> {
    let mut frame = vec![0xA2];
    frame.extend_from_slice(&(message.len() as u64).to_le_bytes());
    frame.extend_from_slice(message.as_bytes());
    frame.push(0xD0);
    frame
}

/// The settling the background thread does before it wakes the future:
/// a delivered child that keeps running is killed (a second later when
/// usage is asked for), a child whose grandchild holds the pipe is noticed
/// through its pidfd, and a child that hangs before its done mark is
/// killed after the grace period. Each call ends with the child reaped.
#[test]
fn children_are_settled_before_the_future_wakes() {
    let _serial = serial();
    block_on(Isolate::new().execute_async(|| ())).unwrap();
    for with_usage in [false, true] {
        let before = settled_fds();
        let inherited = before.clone();
        let start = Instant::now();
        let callable = move || -> u32 {
            mem_isolate_suite::write_raw(
                mem_isolate_suite::result_pipe(&inherited),
                &forged_panic_frame("forged"),
            );
            std::thread::sleep(Duration::from_secs(30));
            1
        };
        let isolate = Isolate::new().timeout(Duration::from_secs(20));
        let err = if with_usage {
            block_on(isolate.execute_with_usage_async(callable)).map(|(v, _)| v)
        } else {
            block_on(isolate.execute_async(callable))
        }
        .unwrap_err();
        assert!(
            matches!(&err, MemIsolateError::CallableExecuted(Executed::CallablePanicked(m)) if m == "forged"),
            "{err:?}"
        );
        // Killed after the one-second exit grace, not at the 20 s timeout.
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(no_children_left(), "{:?}", child_pids());
        assert_eq!(settled_fds(), before);
    }

    // The child exits without a result while a grandchild holds the pipe.
    let start = Instant::now();
    let err = block_on(Isolate::new().execute_async(|| -> u8 {
        // SAFETY: the grandchild only sleeps and exits; the child exits.
        unsafe {
            if libc::fork() == 0 {
                libc::sleep(5);
                libc::_exit(0);
            }
            libc::_exit(0);
        }
    }))
    .unwrap_err();
    assert!(
        matches!(
            err,
            MemIsolateError::CallableStatusUnknown(Unknown::CallableProcessDiedDuringExecution)
        ),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}
