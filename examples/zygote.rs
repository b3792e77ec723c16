//! Zygote mode: a caller holding 1 GiB calls a leaky function both ways and
//! times them. Forking the caller copies its page tables on every call (and
//! leaves a copy-on-write tax behind); the zygote forked first thing in
//! `main`, when the program was small, costs the same at any caller size.
//!
//! `cargo run --release --example zygote`

use std::time::{Duration, Instant};

use mem_isolate::{zygote, Isolate};

/// Stands in for a leaky native call. Arguments and result are serialized,
/// so the function can run in a worker of the zygote.
fn leaky_checksum(data: Vec<u8>) -> u64 {
    std::mem::forget(vec![0u8; 8 << 20]); // the leak dies with the worker
    data.into_iter().map(u64::from).sum()
}

fn heap_in_small_pages(len: usize) -> Vec<u8> {
    const PAGE: usize = 4096;
    let mut heap = Vec::<u8>::with_capacity(len);
    let start = (heap.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (heap.as_ptr() as usize + len) / PAGE * PAGE;
    // SAFETY: advice on whole pages inside memory this Vec owns; it changes
    // how the memory is backed, never its contents.
    unsafe {
        libc::madvise(
            start as *mut libc::c_void,
            end - start,
            libc::MADV_NOHUGEPAGE,
        )
    };
    heap.resize(len, 0x5A);
    heap
}

fn mean(calls: u32, mut call: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        call();
    }
    start.elapsed() / calls
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First thing in `main`, before any thread starts.
    zygote::start()?;

    // Only now does the program grow: the zygote stays small. The heap is
    // kept in 4 KiB pages, as a long-running server's heap mostly is (with
    // transparent huge pages a fork costs far less: see the README's Cost).
    let heap = heap_in_small_pages(1 << 30);
    println!("caller holds {} MiB", heap.len() >> 20);

    let isolate = Isolate::new().timeout(Duration::from_secs(10));
    let input = vec![3u8; 1000];
    // Through the zygote: `call` takes a plain function and its arguments.
    assert_eq!(isolate.call(leaky_checksum, input.clone())?, 3000);
    let through_zygote = mean(20, || {
        isolate.call(leaky_checksum, input.clone()).unwrap();
    });
    // Forking the 1 GiB caller directly: `execute` takes a closure.
    let forking_caller = mean(5, || {
        isolate.execute(|| leaky_checksum(input.clone())).unwrap();
    });
    println!("through the zygote: {through_zygote:?} per call");
    println!("forking the caller: {forking_caller:?} per call");
    println!(
        "the zygote is {:.0}x faster at this size",
        forking_caller.as_secs_f64() / through_zygote.as_secs_f64()
    );
    println!("zygote running: {}", zygote::is_running());
    drop(heap);
    Ok(())
}
