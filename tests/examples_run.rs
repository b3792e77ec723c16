//! Every example builds with the test suite and is run here, so none can rot.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/NAME`, next to this test's own binary.
fn example(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap();
    let profile_dir = me.parent().unwrap().parent().unwrap();
    profile_dir.join("examples").join(name)
}

fn run(name: &str) -> String {
    let out = Command::new(example(name))
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(out.status.success(), "{name}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn leaky() {
    let out = run("leaky");
    assert!(out.contains("isolated the parent stayed"), "{out}");
}

#[test]
fn attribute() {
    let out = run("attribute");
    assert!(out.contains("most_common: Some((\"the\", 3))"), "{out}");
    assert!(out.contains("timed out"), "{out}");
}

#[test]
fn error_handling() {
    let out = run("error_handling");
    for expected in [
        "ok: 42",
        "panicked (\"bad input\")",
        "SIGABRT",
        "status 3",
        "timed out after 200ms",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
}

#[test]
fn timeout() {
    let out = run("timeout");
    assert!(out.contains("TimedOut(500ms)"), "{out}");
    assert!(out.contains("quick call: Ok(4)"), "{out}");
}

#[test]
fn crash() {
    let out = run("crash");
    assert!(out.contains("SIGSEGV"), "{out}");
    assert!(out.contains("the parent is still here"), "{out}");
}

#[test]
fn memory_limit() {
    let out = run("memory_limit");
    assert!(out.contains("16 MiB in the child: Ok(16777216)"), "{out}");
    assert!(out.contains("256 MiB in the child: Err("), "{out}");
    assert!(out.contains("try_reserve(256 MiB): Ok(Err("), "{out}");
}

#[test]
fn usage() {
    let out = run("usage");
    assert!(out.contains("sum = 31999996000000"), "{out}");
    assert!(out.contains("peak RSS"), "{out}");
}

#[test]
fn signals() {
    let out = run("signals");
    assert!(out.contains("Ok(\"survived a blocked SIGINT\")"), "{out}");
}

#[test]
fn zygote() {
    let out = run("zygote");
    assert!(out.contains("caller holds 1024 MiB"), "{out}");
    assert!(out.contains("through the zygote:"), "{out}");
    assert!(out.contains("zygote running: true"), "{out}");
}

#[test]
fn service() {
    let out = run("service");
    for expected in [
        "job  0: ok 0 (library printed \"render: started, done\\n\"",
        "job  3: failed: the callable may or may not have executed: the child process was killed by signal SIGABRT",
        "job  6: failed: the callable may or may not have executed: the child process was killed by signal SIGSEGV",
        "job  8: failed: the callable may or may not have executed: the callable timed out after 500ms",
        "job  9: failed: the callable executed, but its result could not be returned: the callable panicked: job 9 has no input at examples/service.rs:",
        "library said \"render: warning: deprecated font\\n\", retry: no)",
        "the service's RSS grew by",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    // The library's output was captured, not printed.
    assert!(!out.contains("\nrender: started"), "{out}");
}

/// Every file in `examples/` has a test above (a new example cannot be
/// forgotten here).
#[test]
fn every_example_is_run() {
    let source = include_str!("examples_run.rs");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".rs") else {
            continue;
        };
        // `tracing` needs a feature, and is built and run by `.ci/run`'s
        // feature build instead.
        if stem == "tracing" {
            continue;
        }
        assert!(
            source.contains(&format!("run(\"{stem}\")")),
            "examples/{name} is not run by tests/examples_run.rs"
        );
    }
}

#[test]
fn async_example() {
    let out = run("async");
    for expected in [
        "in flight: 5 children",
        "cancelled: true",
        "page 1 rendered",
        "page 4 rendered",
        "children left: 0",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
}
