//! A service-shaped program: worker threads call a leaky, crash-prone C
//! library through isolated calls, capture what it prints, log one-line
//! error reports with the child's usage, and retry only when that cannot
//! run the job twice.
//!
//! `cargo run --example service`
//!
//! The "C library" is a stand-in made of libc calls (so the example needs
//! no C compiler): it `printf`s (C buffers that when stdout is a pipe or a
//! file, so a crash loses it), writes warnings to stderr (unbuffered, as
//! C's `stderr`), leaks `malloc`ed memory, and for some inputs aborts,
//! segfaults or loops forever.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use mem_isolate::{CallReport, Isolate};

/// The stand-in for a C library with its bugs.
mod clib {
    /// Renders `job`; returns a checksum. Every call leaks 4 MiB.
    pub fn render(job: u32) -> i32 {
        // SAFETY: each call below is a plain libc call with valid,
        // NUL-terminated arguments; the bugs are deliberate and stay in the
        // isolated child.
        unsafe {
            let leak = libc::malloc(4 << 20).cast::<u8>();
            if !leak.is_null() {
                leak.write_bytes(1, 4 << 20);
            }
            libc::printf(c"render: started".as_ptr());
            let warning = c"render: warning: deprecated font\n";
            libc::write(2, warning.as_ptr().cast(), warning.count_bytes());
            match job % 10 {
                3 => libc::abort(),
                6 => {
                    std::ptr::null_mut::<u8>().write_volatile(1);
                }
                8 => loop {
                    std::hint::spin_loop();
                },
                _ => {}
            }
            libc::printf(c", done\n".as_ptr());
        }
        i32::try_from(job).unwrap_or(0) * 7
    }
}

/// What the service makes of one job.
fn handle(isolate: &Isolate, job: u32) -> String {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let report: CallReport<i32> = isolate.execute_report(|| {
            assert!(job != 9, "job {job} has no input");
            clib::render(job)
        });
        let (stdout, stderr) = report.output.as_ref().map_or_else(Default::default, |o| {
            (o.stdout_lossy().into_owned(), o.stderr_lossy().into_owned())
        });
        let peak = report.usage.map_or(String::from("?"), |u| {
            format!("{} MiB", u.peak_rss_bytes >> 20)
        });
        match report.result {
            Ok(checksum) => {
                return format!("ok {checksum} (library printed {stdout:?}, peak RSS {peak})")
            }
            // A failed fork or pipe: the job never ran, so it is safe to try again.
            Err(e) if e.is_safe_to_retry() && attempts < 3 => {
                std::thread::sleep(Duration::from_millis(50));
            }
            // It ran, in part or whole: never run it twice on our own.
            Err(e) => {
                let location = report
                    .panic_location
                    .map(|at| format!(" at {at}"))
                    .unwrap_or_default();
                let retry = if e.is_safe_to_retry() { "yes" } else { "no" };
                return format!(
                    "failed: {}{location} (peak RSS {peak}, library said {stderr:?}, retry: {retry})",
                    e.report(),
                );
            }
        }
    }
}

fn main() {
    // One `Isolate` for the whole service: every call gets a deadline, a
    // memory budget and its own captured output (64 KiB per stream).
    let isolate = Isolate::new()
        .timeout(Duration::from_millis(500))
        .memory_limit(256 << 20)
        .capture_output(64 * 1024);
    let results = Mutex::new(BTreeMap::new());
    let rss_before = mem_isolate_suite::current_rss_bytes();
    std::thread::scope(|scope| {
        for worker in 0..4u32 {
            let (isolate, results) = (&isolate, &results);
            scope.spawn(move || {
                for job in (worker..20).step_by(4) {
                    let line = handle(isolate, job);
                    results.lock().unwrap().insert(job, line);
                }
            });
        }
    });
    for (job, line) in results.into_inner().unwrap() {
        println!("job {job:>2}: {line}");
    }
    let grown = mem_isolate_suite::current_rss_bytes().saturating_sub(rss_before);
    println!(
        "the service's RSS grew by {} MiB over 20 jobs that each leaked 4 MiB",
        grown >> 20
    );
}
