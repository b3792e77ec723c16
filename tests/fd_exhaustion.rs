//! Running out of descriptors is a "did not execute" error, and the next call
//! works. (Its own test binary: the descriptor limit is process-wide.)

use mem_isolate::errors::CallableDidNotExecuteError as DidNotExecute;
use mem_isolate::{execute_in_isolated_process, MemIsolateError};

#[test]
fn out_of_descriptors_then_recovered() {
    let mut original = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `original` is a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut original) }, 0);
    let tight = libc::rlimit { rlim_cur: 64, rlim_max: original.rlim_max };
    // SAFETY: `tight` is a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const tight) }, 0);
    // Take every descriptor that is left.
    let mut hoard = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        hoard.push(file);
    }
    let result = execute_in_isolated_process(|| 1u8);
    drop(hoard);
    // SAFETY: restoring the limit read above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const original) }, 0);
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
