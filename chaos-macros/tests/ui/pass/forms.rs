//! Every accepted form of #[failover_test], compiled as the example
//! `failover_test_forms` (see chaos-macros/Cargo.toml).
use chaos_core::prelude::*;

#[failover_test]
async fn no_arguments(_ctx: &mut FailoverCtx) {}

#[failover_test(max_rto = "10s", rpo = 0)]
async fn returns_crate_result(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
    ctx.inject(DeletePrimary::kill()).await?;
    Ok(())
}

#[rustfmt::skip]
#[failover_test(max_rto = "1500ms", rpo = "2s", target = "env", timeout = "2m", writers = 4, interval = "5ms", nodes = 5)]
async fn every_argument(_ctx: &mut FailoverCtx) -> Result<(), String> {
    Ok(())
}

#[failover_test(target = "local")]
#[should_panic(expected = "boom")]
#[ignore = "forms only"]
async fn other_attributes_are_kept(_ctx: &mut FailoverCtx) {
    panic!("boom");
}

// The trailing comma is the point: rustfmt would remove it.
#[rustfmt::skip]
#[failover_test(rpo = 3,)]
pub async fn trailing_comma_and_pub(ctx: &mut chaos_core::FailoverCtx) -> std::io::Result<()> {
    let _ = ctx.rw_dsn();
    Ok(())
}

#[failover_test(repeat = 20, max_rto_p95 = "10s")]
async fn repeated_with_a_percentile(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
    let _ = ctx.seed();
    Ok(())
}

fn main() {}
