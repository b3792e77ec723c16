//! Bytes from an untrusted child, through the frame decoder and the guarded
//! codec: must never panic, abort or allocate by a claimed length.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mem_isolate::__private::decode_untrusted(data);
});
