//! Matching every error level, with what to do about each.
//!
//! `cargo run --example error_handling`

use std::time::Duration;

use mem_isolate::errors::{
    CallableDidNotExecuteError, CallableExecutedError, CallableStatusUnknownError,
};
use mem_isolate::{Isolate, MemIsolateError};

/// Says what happened and whether a retry is safe.
fn advise(name: &str, result: Result<u32, MemIsolateError>) {
    let advice = match &result {
        Ok(v) => format!("ok: {v}"),
        // The callable never started: retrying cannot run it twice.
        Err(MemIsolateError::CallableDidNotExecute(e)) => match e {
            CallableDidNotExecuteError::ForkFailed(io)
            | CallableDidNotExecuteError::PipeCreationFailed(io) => {
                format!("did not run ({io}): safe to retry after a back-off")
            }
            other => format!("did not run ({other}): safe to retry"),
        },
        // It ran. A panic will likely happen again; retry only if idempotent.
        Err(MemIsolateError::CallableExecuted(e)) => match e {
            CallableExecutedError::CallablePanicked(message) => {
                format!("ran and panicked ({message:?}): fix the bug; retry only if idempotent")
            }
            other => format!("ran, result lost ({other}): retry only if idempotent"),
        },
        // It may have run in part: retry only if idempotent.
        Err(MemIsolateError::CallableStatusUnknown(e)) => match e {
            CallableStatusUnknownError::TimedOut(limit) => {
                format!("timed out after {limit:?}: retry with a longer limit, if idempotent")
            }
            CallableStatusUnknownError::ChildProcessKilledBySignal(_) => {
                format!("crashed ({e}): retry only if idempotent")
            }
            other => format!("unknown ({other}): retry only if idempotent"),
        },
    };
    println!("{name:>10}: {advice}");
    if let Err(e) = result {
        // Every level, each once, through `source()`.
        let mut level: Option<&dyn std::error::Error> = Some(&e);
        while let Some(inner) = level {
            println!("{:>10}  - {inner}", "");
            level = inner.source();
        }
    }
}

fn main() {
    let isolate = Isolate::new().timeout(Duration::from_millis(200));
    advise("ok", isolate.execute(|| 42));
    advise("panic", isolate.execute(|| -> u32 { panic!("bad input") }));
    advise(
        "abort",
        isolate.execute(|| -> u32 { std::process::abort() }),
    );
    advise(
        "exit(3)",
        isolate.execute(|| -> u32 { std::process::exit(3) }),
    );
    advise(
        "hang",
        isolate.execute(|| -> u32 {
            std::thread::sleep(Duration::from_secs(60));
            0
        }),
    );
}
