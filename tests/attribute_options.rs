//! `#[isolated]` options: every literal form of the one duration and size
//! grammar, and options computed at each call from the function's arguments
//! or `self`.

#![deny(warnings, clippy::pedantic)]

use std::time::{Duration, Instant};

use mem_isolate::errors::CallableStatusUnknownError as Unknown;
use mem_isolate::{isolated, Isolate, MemIsolateError};

fn timed_out_after(result: Result<u8, MemIsolateError>) -> Duration {
    match result {
        Err(MemIsolateError::CallableStatusUnknown(Unknown::TimedOut(limit))) => limit,
        other => panic!("expected a timeout, got {other:?}"),
    }
}

fn aborted(result: &Result<usize, MemIsolateError>) -> bool {
    matches!(
        result,
        Err(MemIsolateError::CallableStatusUnknown(Unknown::ChildProcessKilledBySignal(s))) if *s == libc::SIGABRT
    )
}

fn sleep_long() -> u8 {
    std::thread::sleep(Duration::from_secs(60));
    1
}

#[isolated(timeout = "0.3 s")]
fn decimal_seconds_with_a_space() -> u8 {
    sleep_long()
}

#[isolated(timeout = "300000us")]
fn microseconds() -> u8 {
    sleep_long()
}

#[isolated(timeout = "300000 µs")]
fn micro_sign() -> u8 {
    sleep_long()
}

#[isolated(timeout = "0.005m")]
fn decimal_minutes() -> u8 {
    sleep_long()
}

#[test]
fn duration_literals() {
    for (call, name) in [
        (
            decimal_seconds_with_a_space as fn() -> Result<u8, MemIsolateError>,
            "\"0.3 s\"",
        ),
        (microseconds, "\"300000us\""),
        (micro_sign, "\"300000 µs\""),
        (decimal_minutes, "\"0.005m\""),
    ] {
        assert_eq!(
            timed_out_after(call()),
            Duration::from_millis(300),
            "{name}"
        );
    }
}

#[isolated(memory_limit = "0.0625 GiB")]
fn decimal_gibibytes(bytes: usize) -> usize {
    vec![1u8; bytes].len()
}

#[isolated(memory_limit = "64MiB")]
fn no_space(bytes: usize) -> usize {
    vec![1u8; bytes].len()
}

#[isolated(memory_limit = "67108864")]
fn quoted_bytes(bytes: usize) -> usize {
    vec![1u8; bytes].len()
}

#[isolated(memory_limit = 67_108_864u64)]
fn suffixed_integer(bytes: usize) -> usize {
    vec![1u8; bytes].len()
}

#[isolated(memory_limit = "67.108864 MB")]
fn decimal_megabytes(bytes: usize) -> usize {
    vec![1u8; bytes].len()
}

#[test]
fn size_literals() {
    for (call, name) in [
        (
            decimal_gibibytes as fn(usize) -> Result<usize, MemIsolateError>,
            "\"0.0625 GiB\"",
        ),
        (no_space, "\"64MiB\""),
        (quoted_bytes, "\"67108864\""),
        (suffixed_integer, "67_108_864u64"),
        (decimal_megabytes, "\"67.108864 MB\""),
    ] {
        assert_eq!(call(8 << 20).unwrap(), 8 << 20, "{name}");
        assert!(aborted(&call(512 << 20)), "{name}");
    }
}

/// `timeout = limit`: read from the argument at each call.
#[isolated(timeout = limit)]
fn sleeps_for(limit: Duration, sleep: Duration) -> u8 {
    std::thread::sleep(sleep);
    2
}

#[test]
fn a_timeout_from_an_argument_is_read_at_each_call() {
    let start = Instant::now();
    assert_eq!(
        timed_out_after(sleeps_for(
            Duration::from_millis(200),
            Duration::from_secs(60)
        )),
        Duration::from_millis(200)
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(
        sleeps_for(Duration::from_secs(30), Duration::ZERO).unwrap(),
        2
    );
}

struct Job {
    bytes_allowed: u64,
    data: Vec<u8>,
}

/// The option reads a field of `job`; the body then takes `job` itself. The
/// option is evaluated in the caller before the argument moves.
#[isolated(memory_limit = job.bytes_allowed)]
#[allow(clippy::needless_pass_by_value)]
fn run_job(job: Job, extra: usize) -> usize {
    job.data.len() + vec![1u8; extra].len()
}

#[test]
fn a_memory_limit_from_an_argument_is_evaluated_before_it_moves() {
    let job = || Job {
        bytes_allowed: 64 << 20,
        data: vec![0; 10],
    };
    assert_eq!(run_job(job(), 8 << 20).unwrap(), 10 + (8 << 20));
    assert!(aborted(&run_job(job(), 512 << 20)));
    let roomy = Job {
        bytes_allowed: 2 << 30,
        data: vec![0; 10],
    };
    assert_eq!(run_job(roomy, 512 << 20).unwrap(), 10 + (512 << 20));
}

struct Service {
    memory_budget: u64,
    isolate: Isolate,
    calls: u32,
}

impl Service {
    #[isolated(memory_limit = self.memory_budget)]
    fn allocate(&self, bytes: usize) -> usize {
        vec![1u8; bytes].len()
    }

    /// A whole `Isolate`, borrowed from `self`.
    #[isolated(isolate = &self.isolate)]
    fn wait(&self, sleep: Duration) -> u8 {
        std::thread::sleep(sleep);
        3
    }

    /// An `Isolate` by value works too, and `timeout` applies on top of it.
    #[isolated(isolate = self.isolate, timeout = "250ms")]
    fn wait_less(&self, sleep: Duration) -> u8 {
        std::thread::sleep(sleep);
        4
    }

    /// `&mut self`: the options are evaluated (and their borrows end)
    /// before the body takes `self`.
    #[isolated(isolate = &self.isolate, memory_limit = self.memory_budget)]
    fn count_in_child(&mut self) -> u32 {
        self.calls += 1;
        self.calls
    }
}

#[test]
fn options_from_self() {
    let mut service = Service {
        memory_budget: 64 << 20,
        isolate: Isolate::new().timeout(Duration::from_millis(400)),
        calls: 0,
    };
    assert_eq!(service.allocate(8 << 20).unwrap(), 8 << 20);
    assert!(aborted(&service.allocate(512 << 20)));
    service.memory_budget = 2 << 30;
    assert_eq!(service.allocate(512 << 20).unwrap(), 512 << 20);

    assert_eq!(service.wait(Duration::ZERO).unwrap(), 3);
    assert_eq!(
        timed_out_after(service.wait(Duration::from_secs(60))),
        Duration::from_millis(400)
    );
    assert_eq!(
        timed_out_after(service.wait_less(Duration::from_secs(60))),
        Duration::from_millis(250)
    );
    assert_eq!(service.count_in_child().unwrap(), 1);
    assert_eq!(service.calls, 0, "the mutation happened in the child only");
}

static SHARED: Isolate = Isolate::new().timeout(Duration::from_millis(350));

fn configured() -> Isolate {
    Isolate::new().timeout(Duration::from_millis(450))
}

#[isolated(isolate = SHARED)]
fn from_a_static() -> u8 {
    sleep_long()
}

#[isolated(isolate = configured())]
fn from_a_function() -> u8 {
    sleep_long()
}

#[test]
fn an_isolate_from_a_static_or_a_function() {
    assert_eq!(timed_out_after(from_a_static()), Duration::from_millis(350));
    assert_eq!(
        timed_out_after(from_a_function()),
        Duration::from_millis(450)
    );
}
