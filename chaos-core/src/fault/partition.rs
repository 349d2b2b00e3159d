//! Network partitions: a node cut off from some of its peers.
//!
//! The local cluster drops the packets in the kernel (iptables, and the
//! per-node cgroups the cluster makes at boot; see [`crate::cluster::local`];
//! needs root). Other targets: `Fault<dyn Target>` says which can.

use super::FaultKind;
use super::link::Links;

/// Which way a network fault acts (packets dropped, lost or limited), seen
/// from the node it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Both ways (default).
    #[default]
    Both,
    /// Only what the node sends to its peers.
    Outbound,
    /// Only what its peers send to it.
    Inbound,
}

/// Cuts a node (by default the current primary) off from some of its peers:
/// the other nodes, the DCS (etcd) and clients, one way or both. Packets are
/// dropped, not refused, so timeouts behave as in a real partition. Healing
/// lifts the cut and waits until the node serves again (a partitioned primary
/// that was failed over rejoins as a replica).
///
/// ```no_run
/// # async fn demo(cluster: &chaos_core::cluster::local::LocalCluster) -> chaos_core::Result<()> {
/// use chaos_core::fault::{Fault, FaultGuard, PartitionNetwork};
///
/// // The primary loses the other nodes and etcd; clients still reach it.
/// let guard = PartitionNetwork::isolate_primary().inject(cluster).await?;
/// tokio::time::sleep(std::time::Duration::from_secs(8)).await;
/// guard.heal().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct PartitionNetwork {
    pub(crate) links: Links,
}

impl PartitionNetwork {
    /// The primary loses its links to the other nodes and to the DCS, both
    /// ways; clients still reach it (the case where an old primary could go on
    /// acknowledging).
    pub fn isolate_primary() -> Self {
        PartitionNetwork {
            links: Links::all().with_clients(false),
        }
    }

    /// Only the replication links: the primary and the other nodes lose each
    /// other, both keep the DCS and clients.
    pub fn primary_from_replicas() -> Self {
        PartitionNetwork {
            links: Self::isolate_primary().links.with_dcs(false),
        }
    }

    /// Partitions node `name` instead of the primary.
    pub fn node(mut self, name: impl Into<String>) -> Self {
        self.links = self.links.node(name);
        self
    }

    /// Whether the node loses the other nodes.
    pub fn from_nodes(mut self, cut: bool) -> Self {
        self.links = self.links.with_nodes(cut);
        self
    }

    /// Whether the node loses the DCS.
    pub fn from_dcs(mut self, cut: bool) -> Self {
        self.links = self.links.with_dcs(cut);
        self
    }

    /// Whether the node loses its clients (every process outside the cluster,
    /// HAProxy included).
    pub fn from_clients(mut self, cut: bool) -> Self {
        self.links = self.links.with_clients(cut);
        self
    }

    /// Which way packets are dropped.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.links = self.links.direction(direction);
        self
    }

    /// The built-in fault this is.
    pub fn kind(&self) -> FaultKind {
        if !self.links.dcs() && self.links.nodes() && !self.links.clients() {
            FaultKind::PartitionPrimaryFromReplicas
        } else {
            FaultKind::IsolatePrimary
        }
    }

    /// The node named with [`node`](Self::node), if any (other targets; by
    /// default the primary).
    #[cfg(feature = "cnpg")]
    pub(crate) fn node_name(&self) -> Option<&str> {
        self.links.node_name()
    }

    /// The [`direction`](Self::direction) set (default [`Direction::Both`]).
    #[cfg(feature = "cnpg")]
    pub(crate) fn way(&self) -> Direction {
        self.links.way()
    }

    pub(crate) fn describe(&self) -> String {
        format!("drop {}", self.links.describe())
    }
}
