fn work(
    n: u32,
) -> ::core::result::Result<u32, ::mem_isolate::__private::MemIsolateError> {
    let __isolate = ::mem_isolate::__private::Isolate::new()
        .timeout(::core::time::Duration::from_nanos(5000000000u64));
    <::mem_isolate::__private::Isolate>::execute(&__isolate, move || -> u32 { n * 2 })
}
