use chaos_core::prelude::*;

#[failover_test(repeat = 0)]
async fn no_runs(_ctx: &mut FailoverCtx) {}

#[failover_test(repeat = "20")]
async fn quoted(_ctx: &mut FailoverCtx) {}

#[failover_test(max_rto = "5s", max_rto_p95 = "10s")]
async fn percentile_above_the_cap(_ctx: &mut FailoverCtx) {}

fn main() {}
