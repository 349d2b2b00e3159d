//! Freezing PostgreSQL: SIGSTOP of a node's postmaster and every backend, like a
//! VM stall or a long GC pause. Nothing crashes; the node stops answering.
//! Its Patroni keeps running (and keeps any leader lock while the freeze is
//! shorter than `ttl`).

use super::FaultKind;

/// Freezes the current primary. Below Patroni's `ttl` no failover happens,
/// which makes this a controlled outage of known length. Healing thaws it.
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct FreezePrimary;

impl FreezePrimary {
    /// A freeze of the current primary.
    pub fn new() -> Self {
        FreezePrimary
    }

    /// The built-in fault this is.
    pub fn kind(&self) -> FaultKind {
        FaultKind::FreezePrimary
    }
}

/// Freezes every replica. With strict synchronous replication the primary can
/// then commit nothing: commits wait for a standby that does not answer.
/// Healing thaws them.
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct FreezeReplicas;

impl FreezeReplicas {
    /// A freeze of all current replicas.
    pub fn new() -> Self {
        FreezeReplicas
    }

    /// The built-in fault this is.
    pub fn kind(&self) -> FaultKind {
        FaultKind::FreezeReplicas
    }
}
