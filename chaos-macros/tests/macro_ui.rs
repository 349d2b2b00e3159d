//! Compile-time behaviour of `#[failover_test]`: every accepted form compiles,
//! every misuse is an error pointing at the offending token (committed `.stderr`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
