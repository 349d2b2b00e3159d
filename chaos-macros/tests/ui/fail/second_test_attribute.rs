use chaos_core::prelude::*;

#[failover_test]
#[tokio::test]
async fn tokio_too(_ctx: &mut FailoverCtx) {}

#[failover_test]
#[test]
async fn test_too(_ctx: &mut FailoverCtx) {}

fn main() {}
