//! Every shape `#[isolated]` rejects, with the error it gives (the committed
//! `tests/ui/*.stderr`). Refresh after a deliberate change with
//! `TRYBUILD=overwrite cargo test --test compile_fail`, then review the diff.

#[test]
fn rejected_shapes() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    // Shapes the README offers must compile (one trybuild run builds both).
    cases.pass("tests/ui_pass/*.rs");
}
