//! Lints the expansion could add, each denied here. This file is checked by
//! `cargo clippy --workspace --all-targets --all-features -- -D warnings`
//! (pedantic is on for the workspace): it must compile without a warning,
//! under rustc and under clippy.

#![deny(
    warnings,
    clippy::pedantic,
    unused_qualifications,
    clippy::allow_attributes,
    clippy::allow_attributes_without_reason
)]
// The fallback stand-in must not need an `allow` that these would refuse.
#![forbid(unused_variables, unused_mut)]

use mem_isolate::{isolated, Isolate, MemIsolateError};

/// `Result` is already `#[must_use]`: `clippy::double_must_use` must not
/// blame this attribute.
#[must_use]
#[isolated]
pub fn must_use_fn() -> u8 {
    1
}

// Undocumented and public: the expansion must not bring
// `clippy::missing_errors_doc` (the function had no `Result` before).
#[isolated]
pub fn undocumented_pub(n: u8) -> u8 {
    n + 1
}

#[isolated]
#[doc(alias = "aliased_name")]
pub fn only_an_alias() -> u8 {
    3
}

/// Documented: gets the generated `# Errors` section.
#[isolated]
pub fn documented() -> u8 {
    4
}

/// `crate = "mem_isolate"` is the relative path a renamed dependency's
/// users write; with `Isolate` and `MemIsolateError` in scope, the
/// generated paths must not look like needless qualifications.
#[isolated(crate = "mem_isolate", timeout = "10s")]
pub fn relative_crate_path(n: u32) -> u32 {
    n * 2
}

/// The same through zygote mode.
#[isolated(crate = "mem_isolate", zygote)]
pub fn relative_crate_path_zygote(text: &str) -> usize {
    text.len()
}

/// An option read from an argument the body does not use.
#[isolated(zygote, timeout = limit)]
pub fn option_only_argument(limit: std::time::Duration) -> u8 {
    5
}

/// Arguments used only by the body, `mut` included.
#[isolated]
pub fn mut_argument(mut n: u8) -> u8 {
    n += 1;
    n
}

#[test]
fn every_shape_runs() {
    let isolate: Isolate = Isolate::new();
    let _: Result<u8, MemIsolateError> = isolate.execute(|| 0);
    assert_eq!(must_use_fn().unwrap(), 1);
    assert_eq!(undocumented_pub(1).unwrap(), 2);
    assert_eq!(only_an_alias().unwrap(), 3);
    assert_eq!(documented().unwrap(), 4);
    assert_eq!(relative_crate_path(2).unwrap(), 4);
    assert_eq!(relative_crate_path_zygote("abc").unwrap(), 3);
    assert_eq!(
        option_only_argument(std::time::Duration::from_secs(10)).unwrap(),
        5
    );
    assert_eq!(mut_argument(1).unwrap(), 2);
}
