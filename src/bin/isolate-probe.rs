//! A helper program for the integration tests that need a whole process of
//! their own (its stdout, its death). `isolate-probe MODE`.

use std::io::Write as _;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        // The child prints without a newline; the parent exits right after
        // the call, skipping every cleanup. The text must still appear.
        "print-tail" => {
            let v = mem_isolate::execute_in_isolated_process(|| {
                print!("tail-without-newline");
                7
            })
            .unwrap();
            assert_eq!(v, 7);
            // SAFETY: `_exit` has no preconditions.
            unsafe { libc::_exit(0) };
        }
        // The child reports its pid, then sleeps; the test kills this process.
        "hang-in-call" => {
            let _ = mem_isolate::execute_in_isolated_process(|| {
                let line = format!("{}\n", std::process::id());
                std::io::stdout().write_all(line.as_bytes()).unwrap();
                std::io::stdout().flush().unwrap();
                std::thread::sleep(std::time::Duration::from_secs(300));
            });
        }
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    }
}
