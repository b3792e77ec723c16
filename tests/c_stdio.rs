//! C stdio in an isolated child: what C code `printf`s reaches the real
//! stdout even though the child leaves through `_exit`, with stdout
//! redirected to a file or a pipe (where C buffers everything), and what
//! the caller itself still buffered is not printed a second time by the
//! child. Each case runs `isolate-probe c-printf` with its stdout
//! redirected for real.

#![cfg(unix)]

use std::io::Read as _;
use std::process::{Command, Stdio};

const EXPECTED: &str = "parent-pending|c-printf-from-the-child|parent-after";

#[test]
fn c_printf_without_newline_reaches_a_file() {
    let path = std::env::temp_dir().join(format!("mem-isolate-c-stdio-{}", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_isolate-probe"))
        .arg("c-printf")
        .stdout(Stdio::from(file))
        .status()
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(text, EXPECTED);
}

#[test]
fn c_printf_without_newline_reaches_a_pipe() {
    let mut probe = Command::new(env!("CARGO_BIN_EXE_isolate-probe"))
        .arg("c-printf")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    probe
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let status = probe.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(text, EXPECTED);
}

#[test]
fn captured_output_stays_out_of_the_callers_stdout_and_stderr() {
    let out = Command::new(env!("CARGO_BIN_EXE_isolate-probe"))
        .arg("capture-quiet")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn capture_works_in_a_process_that_closed_its_standard_descriptors() {
    let status = Command::new(env!("CARGO_BIN_EXE_isolate-probe"))
        .arg("capture-closed-stdio")
        .status()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
