use chaos_core::prelude::*;

#[failover_test]
fn not_async(_ctx: &mut FailoverCtx) {}

fn main() {}
