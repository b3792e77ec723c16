//! Empty: see `tests/renamed.rs`.
