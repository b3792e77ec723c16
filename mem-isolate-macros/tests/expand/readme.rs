/// Parses a document from untrusted bytes.
#[isolated(timeout = "250ms", memory_limit = "64 MiB")]
pub fn parse_untrusted(input: Vec<u8>) -> Result<Document, ParseError> {
    let doc = Document::parse(&input)?;
    Ok(doc)
}
