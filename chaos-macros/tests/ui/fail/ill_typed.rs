use chaos_core::prelude::*;

#[failover_test(max_rto = 10, timeout = "ten seconds", writers = "2", nodes = 12, target = "aks", rpo = true)]
async fn every_value_wrong(_ctx: &mut FailoverCtx) {}

fn main() {}
