/// Parses a document from untrusted bytes.
///
/// # Errors
///
/// Runs in a child process through `#[isolated]`: fails with `MemIsolateError` if the
/// child could not be started, panicked, crashed, timed out or sent no result.
pub fn parse_untrusted(
    input: Vec<u8>,
) -> ::core::result::Result<
    Result<Document, ParseError>,
    ::mem_isolate::__private::MemIsolateError,
> {
    let __isolate = ::mem_isolate::__private::Isolate::new()
        .timeout(::core::time::Duration::from_nanos(250000000u64))
        .memory_limit(67108864u64);
    <::mem_isolate::__private::Isolate>::execute(
        &__isolate,
        move || -> Result<Document, ParseError> {
            let doc = Document::parse(&input)?;
            Ok(doc)
        },
    )
}
