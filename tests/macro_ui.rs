//! Compile-time behaviour of `#[failover_test]`: every accepted form compiles,
//! every misuse is an error pointing at the offending token (committed `.stderr`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
