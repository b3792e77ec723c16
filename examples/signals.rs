//! Blocking signals around a call, as mem-isolate 0.1.6 users do: the mask
//! is inherited by the child, so a SIGINT during the call reaches neither.
//!
//! `cargo run --example signals`

use std::time::Duration;

fn set_sigint_blocked(blocked: bool) {
    // SAFETY: `set` is a valid signal set; changing the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGINT);
        let how = if blocked {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &raw const set, std::ptr::null_mut());
    }
}

fn main() {
    set_sigint_blocked(true);
    let result = mem_isolate::execute_in_isolated_process(|| {
        // SAFETY: sending SIGINT to this (child) process; it is blocked.
        unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(50));
        "survived a blocked SIGINT".to_owned()
    });
    set_sigint_blocked(false);
    println!("{result:?}");
}
