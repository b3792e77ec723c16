#[allow(clippy::needless_pass_by_value)]
pub fn parse_untrusted(
    input: Vec<u8>,
) -> ::core::result::Result<
    Result<Document, ParseError>,
    ::my_runtime::isolation::__private::MemIsolateError,
> {
    let __isolate = ::my_runtime::isolation::__private::Isolate::new()
        .timeout(::core::time::Duration::from_nanos(250000000u64))
        .memory_limit(67108864u64);
    <::my_runtime::isolation::__private::Isolate>::execute(
        &__isolate,
        move || -> Result<Document, ParseError> {
            let doc = Document::parse(&input)?;
            Ok(doc)
        },
    )
}
