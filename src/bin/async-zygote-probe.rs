//! A helper program for `tests/async_api.rs`: `call_async` through a zygote,
//! which must be started first thing in `main` (a test harness thread
//! cannot). Prints one `key=value` line per fact the test checks.

#![allow(clippy::needless_pass_by_value)] // functions sent through `call` take their arguments by value

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::executor::block_on;
use mem_isolate::errors::{
    CallableExecutedError as Executed, CallableStatusUnknownError as Unknown,
};
use mem_isolate::{zygote, Isolate, MemIsolateError};

/// 1 before `zygote::start`, 2 after: a worker sees 1.
static GENERATION: AtomicU32 = AtomicU32::new(0);

fn generation(_: ()) -> u32 {
    GENERATION.load(Ordering::SeqCst)
}

fn square(n: u64) -> u64 {
    n * n
}

fn stall(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn explode(_: ()) -> u8 {
    panic!("worker boom")
}

/// Writes `lines` lines of 1 KiB to stdout (more than a pipe holds when
/// `lines` is big), then returns how many.
fn chatter(lines: u32) -> u32 {
    use std::io::Write as _;
    let line = format!("{}\n", "z".repeat(1023));
    let mut out = std::io::stdout().lock();
    for _ in 0..lines {
        out.write_all(line.as_bytes()).unwrap();
    }
    out.flush().unwrap();
    lines
}

/// The zygote's children (its workers), found through this process's children.
fn workers() -> usize {
    mem_isolate_suite::child_pids()
        .into_iter()
        .map(|zygote| {
            std::fs::read_dir(format!("/proc/{zygote}/task"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
                .map(|pids| pids.split_whitespace().count())
                .sum::<usize>()
        })
        .sum()
}

fn say(key: &str, value: impl std::fmt::Display) {
    println!("{key}={value}");
}

fn main() {
    GENERATION.store(1, Ordering::SeqCst);
    say("started", zygote::start().is_ok());
    GENERATION.store(2, Ordering::SeqCst);
    let isolate = Isolate::new().timeout(Duration::from_secs(20));
    block_on(async {
        say(
            "worker-generation",
            isolate.call_async(generation, ()).await.unwrap(),
        );
        let (value, usage) = isolate.call_with_usage_async(square, 12).await.unwrap();
        say("square", value);
        say("usage-wall-positive", usage.wall > Duration::ZERO);
        say(
            "panic",
            matches!(
                isolate.call_async(explode, ()).await,
                Err(MemIsolateError::CallableExecuted(Executed::CallablePanicked(m))) if m == "worker boom"
            ),
        );
        say(
            "timeout",
            matches!(
                Isolate::new()
                    .timeout(Duration::from_millis(100))
                    .call_async(stall, 60_000)
                    .await,
                Err(MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(_)))
            ),
        );
        // Output captured through the zygote, drained by the waiter thread:
        // 1 MiB, far beyond a pipe, kept up to 100,000 bytes.
        let report = isolate
            .clone()
            .capture_output(100_000)
            .call_report_async(chatter, 1024)
            .await;
        let output = report.output.unwrap();
        say(
            "captured",
            format!(
                "{:?} {} {}",
                report.result,
                output.stdout.len(),
                output.stdout_truncated
            ),
        );
        let calls = (0..40).map(|_| isolate.call_async(stall, 300));
        let values = futures::future::join_all(calls).await;
        say("in-flight-ok", values.into_iter().flatten().count());
    });
    // A cancelled call: its worker is killed (the zygote reaps it). First
    // the delivered workers of the calls above finish exiting.
    say(
        "workers-idle",
        mem_isolate_suite::eventually(Duration::from_secs(5), || workers() == 0),
    );
    let mut call = Box::pin(isolate.call_async(stall, 60_000));
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(std::future::Future::poll(call.as_mut(), &mut cx).is_pending());
    say("workers-while-in-flight", workers());
    drop(call);
    say(
        "workers-after-drop",
        mem_isolate_suite::eventually(Duration::from_secs(5), || workers() == 0),
    );
}
