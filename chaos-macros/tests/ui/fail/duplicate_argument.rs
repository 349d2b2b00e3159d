use chaos_core::prelude::*;

#[failover_test(rpo = 0, max_rto = "5s", rpo = 1)]
async fn twice(_ctx: &mut FailoverCtx) {}

fn main() {}
