use chaos_core::prelude::*;

#[failover_test(max_rtoo = "10s")]
async fn typo(_ctx: &mut FailoverCtx) {}

#[failover_test(flavor = "multi_thread")]
async fn foreign(_ctx: &mut FailoverCtx) {}

fn main() {}
