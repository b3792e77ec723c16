//! A memory limit relative to what the child inherited: the parent holds
//! 512 MiB, the child may add 64 MiB more.
//!
//! `cargo run --example memory_limit`

use mem_isolate::Isolate;

fn main() {
    let ballast = vec![1u8; 512 << 20]; // the parent's own memory
    let isolate = Isolate::new().memory_limit(64 << 20);
    let small = isolate.execute(|| vec![0u8; 16 << 20].len());
    println!("16 MiB in the child: {small:?}");
    let big = isolate.execute(|| vec![0u8; 256 << 20].len());
    println!("256 MiB in the child: {big:?}");
    // A callable that handles the failure itself gets an error, not an abort.
    let handled = isolate.execute(|| {
        Vec::<u8>::new()
            .try_reserve(256 << 20)
            .map_err(|e| e.to_string())
    });
    println!("try_reserve(256 MiB): {handled:?}");
    println!("parent still holds {} MiB", ballast.len() >> 20);
}
