// `#[doc(alias)]` is not documentation: the expansion must not add text
// that would silence the user's `missing_docs`.
#![deny(missing_docs)]
//! Crate docs.

/// Documented.
#[mem_isolate::isolated]
pub fn documented() -> u8 {
    1
}

#[mem_isolate::isolated]
#[doc(alias = "undocumented_alias")]
pub fn undocumented() -> u8 {
    2
}

fn main() {}
