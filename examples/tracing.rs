//! The `tracing` feature: spans and events around each call.
//!
//! `cargo run --example tracing --features tracing`

use mem_isolate_tracing_test::Recorder;

fn main() {
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        let _ = mem_isolate::execute_in_isolated_process(|| 6 * 7);
        let _ = mem_isolate::execute_in_isolated_process(|| -> u8 { panic!("traced") });
    });
    for line in recorder.lines() {
        println!("{line}");
    }
}
