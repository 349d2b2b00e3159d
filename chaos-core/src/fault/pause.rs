//! Pausing a whole node: SIGSTOP of its Patroni, its PostgreSQL postmaster and
//! every backend, like a paused VM or a stalled host. Unlike
//! [`FreezePrimary`](super::FreezePrimary), which stops PostgreSQL only, the
//! node's HA agent stops too: it cannot renew the leader lock, so a pause longer
//! than Patroni's `ttl` makes the other nodes fail over.

use std::time::Duration;

use super::FaultKind;

/// Which node to pause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Victim {
    Primary,
    Node(String),
}

/// Pauses every process of a node (Patroni, the postmaster, all backends) with
/// SIGSTOP. Held below Patroni's `ttl`, the node merely stalls and keeps its
/// role; held beyond it, another node takes over the leader lock. Healing sends
/// SIGCONT to everything and waits until the processes run and the node's
/// Patroni answers again; it does not wait for the node to rejoin.
///
/// Local target only (it needs the PIDs); on an external target it runs the
/// command given for [`FaultKind::PauseNode`].
///
/// ```no_run
/// # async fn demo(cluster: &chaos_core::cluster::local::LocalCluster) -> chaos_core::Result<()> {
/// use chaos_core::fault::{Fault, FaultGuard, PauseNode};
///
/// let guard = PauseNode::primary().inject(cluster).await?;
/// tokio::time::sleep(cluster.timings().ttl() * 2).await; // another node takes over
/// guard.heal().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct PauseNode {
    pub(crate) victim: Victim,
    pub(crate) resume_timeout: Duration,
}

impl PauseNode {
    /// A pause of the node that is primary when the fault is injected.
    pub fn primary() -> Self {
        PauseNode {
            victim: Victim::Primary,
            resume_timeout: Duration::from_secs(30),
        }
    }

    /// A pause of node `name`, whatever its role.
    pub fn node(name: impl Into<String>) -> Self {
        PauseNode {
            victim: Victim::Node(name.into()),
            ..Self::primary()
        }
    }

    /// How long healing waits for the node's processes and Patroni to run
    /// again (default 30 s).
    pub fn resume_timeout(mut self, timeout: Duration) -> Self {
        self.resume_timeout = timeout;
        self
    }

    /// The built-in fault this is.
    pub fn kind(&self) -> FaultKind {
        FaultKind::PauseNode
    }
}
