//! A segfaulting, FFI-like call is contained: the parent gets an error that
//! names the signal and carries on.
//!
//! `cargo run --example crash`

use mem_isolate::execute_in_isolated_process;

/// Stands in for a C function that dereferences a bad pointer.
fn buggy_ffi_call(ptr: *mut u32) -> u32 {
    // SAFETY: not safe at all — that is the point; it runs in a child.
    unsafe {
        std::ptr::write_volatile(ptr, 1);
        *ptr
    }
}

fn main() {
    let bad = std::ptr::null_mut::<u32>().wrapping_add(16);
    match execute_in_isolated_process(move || buggy_ffi_call(bad)) {
        Ok(v) => println!("unexpectedly fine: {v}"),
        Err(e) => println!(
            "contained: {} ({})",
            e,
            std::error::Error::source(&e).unwrap()
        ),
    }
    println!("the parent is still here, pid {}", std::process::id());
}
