#[isolated(timeout = "250ms", memory_limit = "64 MiB", crate = "::my_runtime::isolation")]
pub fn parse_untrusted(input: Vec<u8>) -> Result<Document, ParseError> {
    #![allow(clippy::needless_pass_by_value)]
    let doc = Document::parse(&input)?;
    Ok(doc)
}
