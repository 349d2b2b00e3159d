//! Targets: the clusters that faults are injected into.

pub mod local;
mod topology;

pub use topology::{Member, Topology};
