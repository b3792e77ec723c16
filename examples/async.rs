//! A small tokio server loop: several isolated calls in flight at once on
//! one executor thread, one of them cancelled by dropping it.
//!
//! `cargo run --example async`

use std::time::{Duration, Instant};

use mem_isolate::{isolated, Isolate};

/// Leaks in the child only; the caller `.await`s a `Result`.
#[isolated(timeout = "5s", memory_limit = "256 MiB")]
async fn render(page: u32) -> String {
    std::mem::forget(vec![0u8; 16 << 20]);
    std::thread::sleep(Duration::from_millis(200)); // stands for real work
    format!("page {page} rendered")
}

fn children() -> usize {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .map(|pids| pids.split_whitespace().count())
        .sum()
}

fn main() {
    // One thread: waiting on the children never blocks it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let start = Instant::now();
        let pages: Vec<_> = (1..=4).map(|page| tokio::spawn(render(page))).collect();

        // A request whose client went away: dropping the future kills its child.
        let abandoned = tokio::spawn(Isolate::new().execute_async(|| {
            std::thread::sleep(Duration::from_secs(60));
            String::from("never")
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        println!("in flight: {} children", children());
        abandoned.abort();
        println!(
            "cancelled: {:?}",
            abandoned.await.unwrap_err().is_cancelled()
        );

        for page in pages {
            println!("{}", page.await.unwrap().unwrap());
        }
        // Four 200 ms calls overlapped: about 200 ms in all, not 800.
        println!("4 pages in {:?} on one thread", start.elapsed());
    });
    // The cancelled child was killed and reaped in the background.
    let deadline = Instant::now() + Duration::from_secs(5);
    while children() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("children left: {}", children());
}
