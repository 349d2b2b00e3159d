//! Compile-time behaviour of `#[failover_test]`: every misuse is an error
//! pointing at the offending token (committed `.stderr`).
//!
//! Every accepted form (`tests/ui/pass/forms.rs`) is compiled as the example
//! `failover_test_forms` instead (see Cargo.toml): the workspace's build and
//! clippy compile it with the dependencies they built anyway. A pass case here
//! would make trybuild build (not just check) every dependency once more and
//! build each failing case one cargo run at a time.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
}
