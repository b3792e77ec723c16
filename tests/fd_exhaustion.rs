//! Running out of descriptors is a "did not execute" error, and the next call
//! works. (Its own test binary: the descriptor limit is process-wide.)

use mem_isolate::errors::CallableDidNotExecuteError as DidNotExecute;
use mem_isolate::{execute_in_isolated_process, MemIsolateError};

fn nofile_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-pointer.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) };
    assert_eq!(ret, 0);
    limit
}

fn set_nofile_limit(limit: libc::rlimit) {
    // SAFETY: `limit` is a valid rlimit.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) };
    assert_eq!(ret, 0);
}

#[test]
fn out_of_descriptors_then_recovered() {
    let original = nofile_limit();
    set_nofile_limit(libc::rlimit {
        rlim_cur: 64,
        rlim_max: original.rlim_max,
    });
    // Take every descriptor that is left.
    let mut hoard = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        hoard.push(file);
    }
    let result = execute_in_isolated_process(|| 1u8);
    drop(hoard);
    set_nofile_limit(original);
    let err = result.unwrap_err();
    assert!(err.is_safe_to_retry());
    match err {
        MemIsolateError::CallableDidNotExecute(DidNotExecute::PipeCreationFailed(e)) => {
            assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
        }
        other => panic!("expected PipeCreationFailed, got {other:?}"),
    }
    assert_eq!(execute_in_isolated_process(|| 2u8).unwrap(), 2);
}
