//! Under `panic = "abort"` a panic cannot be caught: the child aborts, and
//! the call reports `ChildProcessKilledBySignal(SIGABRT)` (whose `Debug`
//! names the signal). Builds the probe in `tests/panic-abort/` with that
//! profile setting, in its own target
//! directory, and runs it.

use std::path::Path;
use std::process::Command;

#[test]
fn a_panic_under_panic_abort_is_a_sigabrt() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--package",
            "mem-isolate-panic-abort-probe",
        ])
        .current_dir(root)
        .env("CARGO_PROFILE_DEV_PANIC", "abort")
        .env("CARGO_TARGET_DIR", root.join("target").join("panic-abort"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let mut lines = stdout.lines();
    let panicked = lines.next().unwrap_or_default();
    assert!(
        panicked.contains(&format!(
            "ChildProcessKilledBySignal({} /* SIGABRT */)",
            libc::SIGABRT
        )),
        "{stdout}"
    );
    assert_eq!(lines.next(), Some("Ok(7)"), "{stdout}");
}
