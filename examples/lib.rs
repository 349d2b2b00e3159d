//! Holder crate for the runnable examples of `chaos-core`; see `examples/*.rs`.
