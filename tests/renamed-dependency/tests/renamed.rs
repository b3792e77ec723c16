//! Generated code names everything by absolute path, so local items with the
//! same names change nothing, and a renamed dependency works with `crate = ...`.

#![deny(warnings, unused_qualifications, clippy::pedantic)]
#![allow(dead_code, non_camel_case_types)]

/// Shadows `core` for relative paths: the expansion must use `::core`.
mod core {}
/// Shadows the prelude's `Result` and the runtime's names.
struct Result;
struct Isolate;
struct MemIsolateError;
struct Serialize;
struct DeserializeOwned;
mod __private {}

#[isolation::isolated(crate = "::isolation", timeout = "30s")]
fn renamed_absolute(n: u8) -> u8 {
    n + 1
}

#[isolation::isolated(crate = "isolation")]
fn renamed_relative() -> ::core::result::Result<u8, String> {
    Ok(1)
}

mod reexported {
    pub(crate) mod runtime {
        pub(crate) use isolation::*;
    }
}

#[reexported::runtime::isolated(crate = "reexported::runtime")]
fn through_a_reexport() -> String {
    "re-exported".to_owned()
}

/// Zygote mode and a run-time option through the renamed path: the helper
/// it generates names serde's traits through the runtime too.
#[isolation::isolated(crate = "isolation", zygote, timeout = limit)]
fn renamed_zygote(text: &str, limit: std::time::Duration) -> usize {
    text.len()
}

#[test]
fn renamed_and_reexported_runtimes() {
    assert_eq!(
        renamed_zygote("four", std::time::Duration::from_secs(30)).unwrap(),
        4
    );
    assert_eq!(renamed_absolute(1).unwrap(), 2);
    assert_eq!(renamed_relative().unwrap(), Ok(1));
    assert_eq!(through_a_reexport().unwrap(), "re-exported");
}
