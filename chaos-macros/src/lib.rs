//! The `#[failover_test]` attribute. Use it through `chaos_core`, which
//! re-exports it and documents it: `use chaos_core::failover_test;`.

mod args;
mod expand;

use proc_macro::TokenStream;

/// Turns `async fn name(ctx: &mut FailoverCtx)` into a test that measures a
/// failover against an SLO. See `chaos_core::failover_test` for the arguments.
#[proc_macro_attribute]
pub fn failover_test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::failover_test(args.into(), item.into()).into()
}
