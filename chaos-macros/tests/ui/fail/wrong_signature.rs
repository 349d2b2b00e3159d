use chaos_core::prelude::*;

#[failover_test]
async fn no_context() {}

#[failover_test]
async fn by_value(_ctx: FailoverCtx) {}

#[failover_test]
async fn shared_ref(_ctx: &FailoverCtx) {}

#[failover_test]
async fn two_parameters(_ctx: &mut FailoverCtx, _extra: u32) {}

#[failover_test]
async fn generic<T>(_ctx: &mut FailoverCtx) {}

fn main() {}
