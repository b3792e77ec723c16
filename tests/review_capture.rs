//! A hostile review of output capture, panic locations and error reports:
//! what a callable (or a sibling call's callable) can do to the parent
//! through the capture pipes and the panic report.

#![cfg(target_os = "linux")]

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mem_isolate::Isolate;
use mem_isolate_suite::{no_children_left, open_fds, settled_fds};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn pipe() -> [i32; 2] {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    fds
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor this test opened.
    unsafe { libc::close(fd) };
}

/// Read-only pipe descriptors of this process (in a child: the ones it
/// inherited), other than `except`.
fn read_only_pipes(except: &[i32]) -> Vec<i32> {
    open_fds()
        .into_iter()
        .filter(|fd| !except.contains(fd))
        .filter(|&fd| {
            // SAFETY: `st` is a valid out-pointer; F_GETFL has no preconditions.
            unsafe {
                let mut st: libc::stat = std::mem::zeroed();
                libc::fstat(fd, &raw mut st) == 0
                    && st.st_mode & libc::S_IFMT == libc::S_IFIFO
                    && libc::fcntl(fd, libc::F_GETFL) & libc::O_ACCMODE == libc::O_RDONLY
            }
        })
        .collect()
}

/// A sibling call's callable clears `O_NONBLOCK` on every read end it
/// inherited (the open file description, and so its flags, is shared with
/// the parent), then keeps reading them. The parent of the other call,
/// whose child left a grandchild holding its capture pipes, must still
/// return within its timeout: the README says a sibling that reads a
/// capture pipe "takes those bytes from it (the parent's read ends are
/// non-blocking, so it never hangs on that)", and that flags a child sets
/// on a shared pipe description change nothing for the parent.
#[test]
fn a_sibling_that_makes_the_capture_read_ends_blocking_cannot_hang_another_call() {
    let _serial = serial();
    let started_pipe = pipe(); // victim's child -> test: "my pipes exist"
    let go_pipe = pipe(); // attacker's child -> victim's child: "flags cleared"
    let sync = [started_pipe[0], started_pipe[1], go_pipe[0], go_pipe[1]];

    let victim = std::thread::spawn(move || {
        let begun = Instant::now();
        let report = Isolate::new()
            .timeout(Duration::from_secs(2))
            .capture_output(1 << 20)
            .execute_report(move || -> i32 {
                // SAFETY: one byte from/to valid buffers; fork then only
                // sleeping and `_exit` in the grandchild.
                unsafe {
                    libc::write(started_pipe[1], c"s".as_ptr().cast(), 1);
                    let mut b = 0u8;
                    libc::read(go_pipe[0], (&raw mut b).cast(), 1);
                    let grandchild = libc::fork();
                    if grandchild == 0 {
                        // Holds the capture write ends, quietly, for 20 s.
                        libc::sleep(20);
                        libc::_exit(0);
                    }
                    libc::write(1, c"victim output".as_ptr().cast(), 13);
                    grandchild
                }
            });
        (begun.elapsed(), report)
    });

    let mut b = 0u8;
    // SAFETY: one byte into a valid buffer.
    unsafe { libc::read(started_pipe[0], (&raw mut b).cast(), 1) };

    let attacker = std::thread::spawn(move || {
        Isolate::new()
            .timeout(Duration::from_secs(6))
            .execute(move || {
                let targets = read_only_pipes(&sync);
                for &fd in &targets {
                    // SAFETY: F_SETFL on an inherited descriptor.
                    unsafe { libc::fcntl(fd, libc::F_SETFL, 0) };
                }
                // SAFETY: one byte from a valid buffer.
                unsafe { libc::write(go_pipe[1], c"g".as_ptr().cast(), 1) };
                // Steal whatever arrives, for a while.
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(4) {
                    for &fd in &targets {
                        let mut buf = [0u8; 4096];
                        // SAFETY: nonblocking-or-not read into a valid buffer.
                        unsafe {
                            libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
                            libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                            libc::fcntl(fd, libc::F_SETFL, 0);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                targets.len()
            })
    });

    let (elapsed, report) = victim.join().unwrap();
    let _ = attacker.join().unwrap();
    for fd in sync {
        close(fd);
    }
    if let Ok(grandchild) = report.result {
        // SAFETY: killing the grandchild this test made (re-parented).
        unsafe { libc::kill(grandchild, libc::SIGKILL) };
    }
    assert!(
        elapsed < Duration::from_secs(3) + Duration::from_secs(1),
        "the victim call took {elapsed:?} (timeout 2 s)"
    );
}

/// A payload raised with `resume_unwind` runs no panic hook, so there is no
/// location; a message that looks like the crate's own location line must
/// come back as the message, not as a forged location.
#[test]
fn a_panic_message_that_looks_like_a_location_is_not_taken_for_one() {
    let _serial = serial();
    for forged in [
        "@src/forged.rs:7:9\nreal message",
        "@src/forged.rs:7:9",
        "@",
        "@a:1:1\n",
        "src/forged.rs:7:9\nreal",
        "\n@x:1:2\nmsg",
    ] {
        let report = Isolate::new().execute_report(move || -> u8 {
            std::panic::resume_unwind(Box::new(forged.to_owned()))
        });
        let err = report.result.as_ref().unwrap_err();
        assert_eq!(err.panic_message(), Some(forged), "{forged:?}");
        assert_eq!(report.panic_location, None, "{forged:?}");
        let report = Isolate::new()
            .execute_report(move || -> u8 { std::panic::resume_unwind(Box::new(forged)) });
        let err = report.result.as_ref().unwrap_err();
        assert_eq!(err.panic_message(), Some(forged), "&str {forged:?}");
        assert_eq!(report.panic_location, None, "&str {forged:?}");
    }
}

/// A real panic whose message looks like a location line: the location is
/// the real one and the message comes back whole.
#[test]
fn a_real_panic_with_a_location_looking_message_keeps_both() {
    let _serial = serial();
    for forged in [
        "@src/forged.rs:7:9\nreal message",
        "@src/forged.rs:7:9",
        "@",
        "line one\nline two\n\n",
        "",
        "\u{0}\u{fffd}\u{1b}[31m",
    ] {
        let report = Isolate::new().execute_report(move || -> u8 { panic!("{forged}") });
        let err = report.result.as_ref().unwrap_err();
        assert_eq!(err.panic_message(), Some(forged), "{forged:?}");
        let location = report.panic_location.expect("a real location");
        assert!(location.file.ends_with("review_capture.rs"), "{location}");
    }
}

/// A panic caught inside the callable, then a hookless panic: the first
/// panic's location must not be reported as the second's.
#[test]
fn a_caught_panic_does_not_leave_its_location_to_a_later_hookless_panic() {
    let _serial = serial();
    let report = Isolate::new().execute_report(|| -> u8 {
        let _ = std::panic::catch_unwind(|| panic!("caught"));
        std::panic::resume_unwind(Box::new("second"))
    });
    assert_eq!(
        report.result.as_ref().unwrap_err().panic_message(),
        Some("second")
    );
    assert_eq!(report.panic_location, None, "the caught panic's location");

    let report = Isolate::new().execute_report(|| -> u8 {
        let _ = std::panic::catch_unwind(|| panic!("caught"));
        3
    });
    assert_eq!(*report.result.as_ref().unwrap(), 3);
    assert_eq!(report.panic_location, None);

    // A caught panic, then a real one: the real one's location.
    let report = Isolate::new().execute_report(|| -> u8 {
        let _ = std::panic::catch_unwind(|| panic!("caught"));
        std::panic::panic_any(5u8)
    });
    let err = report.result.as_ref().unwrap_err();
    assert!(
        err.panic_message().unwrap().contains("not a string"),
        "{err:#}"
    );
    let location = report.panic_location.unwrap();
    assert!(location.file.ends_with("review_capture.rs"), "{location}");
}

/// 256 MiB printed, 16 bytes kept: bounded, truncated, no hang.
#[test]
fn a_flood_is_bounded_by_max_bytes() {
    let _serial = serial();
    let started = Instant::now();
    let report = Isolate::new()
        .timeout(Duration::from_secs(60))
        .capture_output(16)
        .execute_report(|| {
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..256 {
                mem_isolate_suite::write_raw(1, &chunk);
                mem_isolate_suite::write_raw(2, &chunk);
            }
            7u8
        });
    assert_eq!(*report.result.as_ref().unwrap(), 7);
    let out = report.output.unwrap();
    assert_eq!(out.stdout, b"xxxxxxxxxxxxxxxx");
    assert_eq!(out.stderr, b"xxxxxxxxxxxxxxxx");
    assert!(out.stdout_truncated && out.stderr_truncated);
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Many threads capturing at once: each call gets its own output, whole.
#[test]
fn concurrent_captures_never_mix() {
    let _serial = serial();
    let before = settled_fds();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..15 {
                    let token = format!("t{t}-i{i};");
                    let expected = token.repeat(500);
                    let report = Isolate::new()
                        .timeout(Duration::from_secs(30))
                        .capture_output(1 << 20)
                        .execute_report(move || {
                            for _ in 0..500 {
                                // Not through Rust's stdout, whose lock the
                                // harness's main thread may hold at fork.
                                mem_isolate_suite::write_raw(1, token.as_bytes());
                                mem_isolate_suite::write_raw(2, token.as_bytes());
                            }
                            i
                        });
                    assert_eq!(*report.result.as_ref().unwrap(), i);
                    let out = report.output.unwrap();
                    assert_eq!(out.stdout_lossy(), expected);
                    assert_eq!(out.stderr_lossy(), expected);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(settled_fds(), before);
}

/// The child points its result pipe at stdout, or stdout at its result
/// pipe, or closes 1 and 2: an error or a value, never a hang or a leak.
#[test]
fn a_child_that_rewires_its_descriptors_fails_cleanly() {
    let _serial = serial();
    let before = settled_fds();
    for mode in 0..4 {
        let fds = open_fds();
        let started = Instant::now();
        let report = Isolate::new()
            .timeout(Duration::from_secs(5))
            .capture_output(1 << 10)
            .execute_report(move || -> u32 {
                let result = mem_isolate_suite::result_pipe(&fds);
                // SAFETY: rewiring the child's own descriptors is the point.
                unsafe {
                    match mode {
                        0 => {
                            libc::dup2(result, 1);
                        }
                        1 => {
                            libc::dup2(1, result);
                        }
                        2 => {
                            libc::close(1);
                            libc::close(2);
                        }
                        _ => {
                            libc::dup2(result, 1);
                            libc::dup2(result, 2);
                        }
                    }
                }
                // Raw writes (Rust's stdout lock may be held at fork by the
                // harness's main thread); their failure is the point.
                // SAFETY: a valid buffer of its length.
                unsafe {
                    libc::write(1, c"hello\n".as_ptr().cast(), 6);
                    libc::write(2, c"hello\n".as_ptr().cast(), 6);
                }
                9
            });
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "mode {mode}: {:?}",
            started.elapsed()
        );
        eprintln!(
            "mode {mode}: {:?} / {:?}",
            report
                .result
                .as_ref()
                .map_err(mem_isolate::MemIsolateError::report),
            report.output
        );
    }
    assert!(no_children_left());
    assert_eq!(settled_fds(), before);
}

/// Error accessors and reports on the usual failures.
#[test]
fn error_reports_and_accessors() {
    let _serial = serial();
    let err = Isolate::new()
        .execute(|| -> u8 {
            // (`raise(SIGSEGV)` would not do: std's stack-overflow handler
            // returns from a SIGSEGV without a faulting address.)
            // SAFETY: not safe at all: a real invalid write, which is the point.
            unsafe { std::ptr::null_mut::<u8>().write_volatile(1) };
            0
        })
        .unwrap_err();
    assert_eq!(format!("{err:#}"), err.report().to_string());
    assert!(
        format!("{err:?}").contains("ChildProcessKilledBySignal(11 /* SIGSEGV */)"),
        "{err:?}"
    );
    assert_eq!(err.signal().unwrap().number(), libc::SIGSEGV);
    assert!(!err.is_safe_to_retry() && !err.is_timeout());
    assert_eq!(err.exit_code(), None);

    let err = Isolate::new()
        .timeout(Duration::from_millis(50))
        .execute(|| std::thread::sleep(Duration::from_secs(30)))
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(err.signal(), None);
    assert_eq!(err.exit_code(), None);
    assert_eq!(
        err.report().to_string(),
        "the callable may or may not have executed: the callable timed out after 50ms"
    );

    let err = Isolate::new()
        .execute(|| -> u8 { std::process::exit(0) })
        .unwrap_err();
    assert_eq!(err.exit_code(), Some(0));
    let err = Isolate::new()
        .execute(|| -> u8 {
            // SAFETY: the child kills itself with SIGKILL: not a timeout.
            unsafe { libc::raise(libc::SIGKILL) };
            0
        })
        .unwrap_err();
    assert!(!err.is_timeout());
    assert_eq!(err.signal().unwrap().name(), "SIGKILL");
    assert!(no_children_left());
}

/// `report()` and `{:#}` are documented as "the whole chain on one line",
/// for logs. The most common panic there is, a failed `assert_eq!`, spans
/// three lines, and a hostile callable can forge whole log lines (or
/// terminal escapes) through its panic message. The accessor keeps the
/// message as it was.
#[test]
fn the_report_of_a_multi_line_panic_is_one_line() {
    let _serial = serial();
    let err = Isolate::new()
        .execute(|| -> u8 {
            assert_eq!(1 + 1, 3, "arithmetic");
            0
        })
        .unwrap_err();
    let line = err.report().to_string();
    assert!(!line.contains('\n'), "{line}");
    assert!(
        line.contains("arithmetic\\n  left: 2\\n right: 3"),
        "{line}"
    );
    assert_eq!(format!("{err:#}"), line);
    assert!(err
        .panic_message()
        .unwrap()
        .contains("arithmetic\n  left: 2"));

    let err = Isolate::new()
        .execute(|| -> u8 { panic!("ok\r\nERROR forged log line \u{1b}[2J") })
        .unwrap_err();
    let line = err.report().to_string();
    assert!(!line.contains(['\n', '\r', '\u{1b}']), "{line:?}");
    assert!(
        line.ends_with("ok\\r\\nERROR forged log line \\u{1b}[2J"),
        "{line}"
    );
    // Printable non-ASCII text is kept as it is.
    let err = Isolate::new()
        .execute(|| -> u8 { panic!("größe ✓") })
        .unwrap_err();
    assert!(err.report().to_string().ends_with("größe ✓"));
}

/// The caller flushes C stdio (`fflush(NULL)`) before each fork. `fflush(NULL)`
/// locks every open `FILE`, and a thread blocked in `fgets` holds its
/// stream's lock while it waits for input (a REPL thread, a C library
/// reading a pipe): the call must not wait for that input. The README bounds
/// only the child's flush (by the 100 ms grace); the timeout does not start
/// before the fork, so nothing bounds this one.
#[test]
fn a_thread_blocked_reading_a_c_stream_does_not_hold_the_call() {
    let _serial = serial();
    let [read_end, write_end] = pipe();
    // SAFETY: a fresh descriptor and a valid mode string.
    let stream = unsafe { libc::fdopen(read_end, c"r".as_ptr()) } as usize;
    assert_ne!(stream, 0);
    let reader = std::thread::spawn(move || {
        let mut line = [0 as libc::c_char; 64];
        // SAFETY: `line` is valid for 64 bytes; `stream` is open until below.
        unsafe { libc::fgets(line.as_mut_ptr(), 64, stream as *mut libc::FILE) };
    });
    // Let the reader take the stream's lock and block in `read`.
    std::thread::sleep(Duration::from_millis(200));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let value = Isolate::new()
            .timeout(Duration::from_secs(2))
            .execute(|| 5u8);
        let _ = tx.send(value.ok());
    });
    let outcome = rx.recv_timeout(Duration::from_secs(5));
    // Unblock the reader whatever happened, then clean up.
    mem_isolate_suite::write_raw(write_end, b"line\n");
    reader.join().unwrap();
    // SAFETY: the stream (and with it `read_end`) is closed once.
    unsafe { libc::fclose(stream as *mut libc::FILE) };
    close(write_end);
    assert_eq!(
        outcome,
        Ok(Some(5)),
        "the call waited for another thread's fgets (a timeout of 2 s)"
    );
}
