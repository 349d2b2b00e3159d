use chaos_core::prelude::*;

#[failover_test]
async fn returns_a_number(_ctx: &mut FailoverCtx) -> u32 {
    7
}

fn main() {}
