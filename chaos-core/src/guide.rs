//! Guides: longer explanations than an item's documentation, with examples
//! that compile as doctests.

/// Writing a fault of your own: the `Fault` / `FaultGuard` contract, a worked
/// example, running commands as the PostgreSQL user, reaching a node's data
/// directory, and the alternatives (`Shell`, `ctx.mark_fault`).
pub mod custom_faults {
    #![doc = include_str!("../docs/custom-faults.md")]
}
