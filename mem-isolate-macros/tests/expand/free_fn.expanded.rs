/// Doubles a number in a child process.
///
/// # Errors
///
/// Runs in a child process through `#[isolated]`: fails with `MemIsolateError` if the
/// child could not be started, panicked, crashed, timed out or sent no result.
pub fn double(
    n: u32,
) -> ::core::result::Result<u32, ::mem_isolate::__private::MemIsolateError> {
    let __isolate = ::mem_isolate::__private::Isolate::new();
    <::mem_isolate::__private::Isolate>::execute(&__isolate, move || -> u32 { n * 2 })
}
fn log_line(
    line: String,
) -> ::core::result::Result<(), ::mem_isolate::__private::MemIsolateError> {
    let __isolate = ::mem_isolate::__private::Isolate::new();
    <::mem_isolate::__private::Isolate>::execute(
        &__isolate,
        move || -> () {
            println!("{line}");
        },
    )
}
