use chaos_core::prelude::*;

#[failover_test(max_rto)]
async fn no_value(_ctx: &mut FailoverCtx) {}

fn main() {}
