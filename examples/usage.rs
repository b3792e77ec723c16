//! Peak RSS and CPU time of an isolated call.
//!
//! `cargo run --example usage`

use mem_isolate::Isolate;

fn main() -> Result<(), mem_isolate::MemIsolateError> {
    let (sum, usage) = Isolate::new().execute_with_usage(|| {
        let data: Vec<u64> = (0..8_000_000).collect(); // 61 MiB
        data.iter().sum::<u64>()
    })?;
    println!("sum = {sum}");
    println!(
        "peak RSS   {} MiB (includes pages shared with the parent)",
        usage.peak_rss_bytes >> 20
    );
    println!("user CPU   {:?}", usage.user_cpu);
    println!("system CPU {:?}", usage.system_cpu);
    println!("wall       {:?}", usage.wall);
    Ok(())
}
