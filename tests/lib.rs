//! Holder crate for the integration tests of `chaos-core` that run real local
//! PostgreSQL HA clusters; see `tests/*.rs`.
