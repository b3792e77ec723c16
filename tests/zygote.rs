//! Zygote mode, end to end, in fresh processes: the zygote must be started
//! first thing in `main`, which a test harness thread cannot do, so each
//! test runs `zygote-probe SCENARIO` and checks the facts it prints.

#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use mem_isolate_suite::eventually;

/// Runs a scenario; its `key=value` lines (stdout and stderr).
fn run(scenario: &str) -> HashMap<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_zygote-probe"))
        .arg(scenario)
        // The memory-limit verdict reads `errno` at the abort, which the
        // backtrace printed on allocation failure would overwrite.
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{scenario}: {:?}\n{text}", out.status);
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn fact<'a>(facts: &'a HashMap<String, String>, key: &str) -> &'a str {
    facts
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {facts:?}"))
}

#[test]
fn calls_go_through_the_zygote_and_see_the_program_as_at_start() {
    let f = run("basics");
    assert_eq!(fact(&f, "started"), "true");
    assert_eq!(fact(&f, "running"), "true");
    assert_eq!(fact(&f, "again"), "Err(AlreadyExists)");
    assert_eq!(fact(&f, "square"), "144");
    // The proof the call went through the zygote: the static was 1 at
    // `start` and 2 afterwards; a worker sees 1, a direct child 2.
    assert_eq!(fact(&f, "worker-generation"), "1");
    assert_eq!(fact(&f, "direct-generation"), "2");
    assert_eq!(fact(&f, "worker-parent-is-zygote"), "true");
    // Arguments bigger than one datagram travel in a memfd.
    assert_eq!(fact(&f, "big-args"), (1 << 20).to_string());
    // A worker, and a child forked directly, calling `call` fall back to
    // forking themselves.
    assert_eq!(fact(&f, "nested"), "81");
    assert_eq!(fact(&f, "direct-child-falls-back"), "25");
    assert_eq!(fact(&f, "grandchild-keeps-its-pipe"), "Ok(7)");
    assert_eq!(fact(&f, "done"), "true");
}

#[test]
fn every_error_level_keeps_its_meaning() {
    let f = run("errors");
    assert_eq!(fact(&f, "panic"), "panicked:boom");
    assert_eq!(fact(&f, "segv"), "signal:SIGSEGV");
    assert_eq!(fact(&f, "term"), "signal:SIGTERM");
    assert_eq!(fact(&f, "exit3"), "exit:3");
    assert_eq!(fact(&f, "exit0"), "died");
    assert_eq!(fact(&f, "timeout"), "timeout");
    // A did-not-hang bound: limit + 1 s.
    assert!(fact(&f, "timeout-took-ms").parse::<u64>().unwrap() < 1200);
    assert_eq!(fact(&f, "under-limit"), (16 << 20).to_string());
    assert_eq!(fact(&f, "over-limit"), "memory-limit");
    assert!(fact(&f, "usage-cpu-ms").parse::<u64>().unwrap() >= 150);
    assert_eq!(fact(&f, "usage-rss-positive"), "true");
    assert_eq!(fact(&f, "usage-rss-64mib"), "true");
    assert_eq!(fact(&f, "still-running"), "true");
}

#[test]
fn locks_held_by_the_callers_threads_do_not_reach_the_worker() {
    let f = run("locks");
    // A mutex and the stdout lock held forever by another thread: the
    // worker (forked from the single-threaded zygote) takes both freely,
    // while a directly forked child deadlocks and times out.
    assert_eq!(fact(&f, "zygote-call"), "1");
    assert_eq!(fact(&f, "direct-call"), "timeout");
}

#[test]
fn start_is_refused_when_threads_exist() {
    let f = run("refused-with-threads");
    assert_eq!(fact(&f, "refused"), "InvalidInput");
    assert_eq!(fact(&f, "running"), "false");
}

#[test]
fn many_threads_call_at_once() {
    let f = run("threads");
    assert_eq!(fact(&f, "ok"), "320");
}

#[test]
fn no_descriptor_and_no_zombie_is_left_in_any_process() {
    let f = run("leftovers");
    assert_eq!(fact(&f, "settled"), "true", "{f:?}");
    assert_eq!(fact(&f, "zygote-children"), "0");
    // stdin, stdout, stderr and the channel: nothing of the caller's.
    assert_eq!(fact(&f, "zygote-fd-count"), "4");
    // The zygote is the caller's only child.
    assert_eq!(fact(&f, "caller-children"), "1");
}

#[test]
fn a_killed_zygote_fails_the_calls_in_flight_and_later_calls_fork_directly() {
    let f = run("zygote-killed");
    assert_eq!(fact(&f, "in-flight"), "zygote-died");
    assert!(fact(&f, "noticed-ms").parse::<u64>().unwrap() < 1000);
    assert_eq!(fact(&f, "running-after"), "false");
    assert_eq!(fact(&f, "fallback"), "49");
    assert_eq!(fact(&f, "required"), "zygote-unavailable");
    assert_eq!(fact(&f, "no-children"), "true");
}

#[test]
fn killing_the_caller_ends_the_zygote_and_its_workers() {
    let mut probe = Command::new(env!("CARGO_BIN_EXE_zygote-probe"))
        .arg("parent-killed")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(probe.stdout.take().unwrap()).lines();
    let mut pids = HashMap::new();
    while pids.len() < 2 {
        let line = lines.next().unwrap().unwrap();
        if let Some((k, v)) = line.split_once('=') {
            if k == "zygote" || k == "worker" {
                pids.insert(k.to_owned(), v.parse::<i32>().unwrap());
            }
        }
    }
    probe.kill().unwrap(); // SIGKILL
    probe.wait().unwrap();
    for (role, pid) in pids {
        let gone = eventually(Duration::from_secs(3), || {
            // Gone, or a zombie waiting for init to reap it.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
                stat.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        });
        assert!(gone, "the {role} ({pid}) outlived its caller");
    }
}
