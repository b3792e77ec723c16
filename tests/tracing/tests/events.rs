//! With the `tracing` feature, each call is a `mem_isolate.parent` span with
//! the pids, each step a debug event, and a failure an error event.

use mem_isolate_tracing_test::Recorder;

#[test]
fn a_successful_call_emits_a_span_and_step_events() {
    let recorder = Recorder::default();
    let value = tracing::subscriber::with_default(recorder.clone(), || {
        mem_isolate::execute_in_isolated_process(|| 6 * 7).unwrap()
    });
    assert_eq!(value, 42);
    let lines = recorder.lines();
    let text = lines.join("\n");
    assert!(
        lines[0].starts_with("SPAN mem_isolate.parent:")
            && lines[0].contains(&format!("pid={}", std::process::id())),
        "{text}"
    );
    assert!(
        text.contains("DEBUG mem_isolate::isolate: message=forked the child child_pid="),
        "{text}"
    );
    assert!(text.contains("message=result frame received"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
}

#[test]
fn a_failed_call_emits_an_error_event_with_every_level() {
    let recorder = Recorder::default();
    let result = tracing::subscriber::with_default(recorder.clone(), || {
        mem_isolate::execute_in_isolated_process(|| -> u8 { std::process::abort() })
    });
    assert!(result.is_err());
    let text = recorder.lines().join("\n");
    let error = text
        .lines()
        .find(|l| l.starts_with("ERROR"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(error.contains("isolated call failed"), "{error}");
    assert!(error.contains("may or may not have executed"), "{error}");
    assert!(error.contains("SIGABRT"), "{error}");
}
