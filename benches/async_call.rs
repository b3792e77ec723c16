//! The async API's cost: one awaited call against the same sync call, in
//! the same run (target: at most 1.1x), and 1,000 calls in flight at once
//! on one executor thread (wall time, and the process's threads).
//!
//! `cargo bench --bench async_call`. Each group measures the sync call first
//! and again last (`sync_again`): forks are noisy on a shared machine, so
//! compare against the mean of the two.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::fork_floor;
use criterion::{criterion_group, criterion_main, Criterion};
use mem_isolate::Isolate;

fn sync_call() -> u64 {
    Isolate::new().execute(|| black_box(42u64)).unwrap()
}

fn async_block_on() -> u64 {
    futures::executor::block_on(Isolate::new().execute_async(|| black_box(42u64))).unwrap()
}

fn one_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("async_call/one");
    group.bench_function("floor", |b| b.iter(fork_floor));
    group.bench_function("sync", |b| b.iter(sync_call));
    group.bench_function("async_block_on", |b| b.iter(async_block_on));
    group.bench_function("async_tokio_current_thread", |b| {
        b.iter(|| {
            runtime
                .block_on(Isolate::new().execute_async(|| black_box(42u64)))
                .unwrap()
        });
    });
    group.bench_function("sync_again", |b| b.iter(sync_call));
    group.finish();
}

/// Sync and async calls alternated, each timed on its own: the machine's
/// drift (other load, frequency) hits both alike, so the ratio of their
/// medians is steadier than two criterion groups measured a minute apart.
fn paired(_: &mut Criterion) {
    const ROUNDS: usize = 3000;
    let mut sync = Vec::with_capacity(ROUNDS);
    let mut asynchronous = Vec::with_capacity(ROUNDS);
    for _ in 0..200 {
        sync_call();
        async_block_on();
    }
    for _ in 0..ROUNDS {
        let start = Instant::now();
        black_box(sync_call());
        sync.push(start.elapsed());
        let start = Instant::now();
        black_box(async_block_on());
        asynchronous.push(start.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (s, a) = (median(&mut sync), median(&mut asynchronous));
    eprintln!(
        "async_call/paired: median sync {s:?}, async (block_on) {a:?}: {:.2}x over {ROUNDS} alternated rounds",
        a.as_secs_f64() / s.as_secs_f64()
    );
}

/// Lets 1,000 calls hold their two descriptors each at once.
fn raise_descriptor_limit() {
    // SAFETY: an all-zero `rlimit` is a valid value of this plain C struct.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a valid out-pointer, then a valid in-pointer.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit);
    }
}

fn thread_count() -> usize {
    mem_isolate_suite::thread_count()
}

const IN_FLIGHT: usize = 1000;
/// Each child stays this long, so that all of them are in flight together.
const CHILD_STAYS: Duration = Duration::from_millis(200);

fn thousand_in_flight(c: &mut Criterion) {
    raise_descriptor_limit();
    let mut group = c.benchmark_group("async_call/in_flight_1000");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let mut peak_threads = 0;
    let threads_before = thread_count();
    group.bench_function("block_on_join_all", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let isolate = Isolate::new().timeout(Duration::from_secs(60));
                let calls = (0..IN_FLIGHT).map(|i| {
                    isolate.execute_async(move || {
                        std::thread::sleep(CHILD_STAYS);
                        i
                    })
                });
                let start = Instant::now();
                let sampler = async {
                    loop {
                        peak_threads = peak_threads.max(thread_count());
                        futures::pending!();
                    }
                };
                let values = futures::executor::block_on(async {
                    futures::pin_mut!(sampler);
                    match futures::future::select(
                        Box::pin(futures::future::join_all(calls)),
                        sampler,
                    )
                    .await
                    {
                        futures::future::Either::Left((values, _)) => values,
                        futures::future::Either::Right(_) => unreachable!(),
                    }
                });
                total += start.elapsed();
                assert_eq!(values.into_iter().flatten().count(), IN_FLIGHT);
            }
            total
        });
    });
    group.finish();
    eprintln!(
        "async_call/in_flight_1000: threads before {threads_before}, at most {peak_threads} while {IN_FLIGHT} calls were in flight (each child stays {CHILD_STAYS:?})"
    );
}

criterion_group!(benches, paired, one_call, thousand_in_flight);
criterion_main!(benches);
