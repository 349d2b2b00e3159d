//! Degraded links: packet loss, a bandwidth limit or added latency on a
//! node's links.
//!
//! The packets are chosen as for [`PartitionNetwork`](super::PartitionNetwork)
//! (a node, by default the primary; its links to the other nodes, the DCS
//! and/or clients; one way or both). The local cluster degrades them in the
//! kernel, with an iptables chain (see [`crate::cluster::local`]; needs
//! root). Other targets: `Fault<dyn Target>` says which can.

use std::time::Duration;

use super::{Direction, FaultKind};

/// Which of a node's links a network fault acts on: the node (by default the
/// primary, resolved at injection), which peers, and which way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Links {
    pub(crate) node: Option<String>,
    pub(crate) nodes: bool,
    pub(crate) dcs: bool,
    pub(crate) clients: bool,
    pub(crate) direction: Direction,
}

impl Links {
    /// The primary's links to every peer, both ways.
    pub(crate) fn all() -> Self {
        Links {
            node: None,
            nodes: true,
            dcs: true,
            clients: true,
            direction: Direction::Both,
        }
    }

    pub(crate) fn node(mut self, name: impl Into<String>) -> Self {
        self.node = Some(name.into());
        self
    }

    pub(crate) fn with_nodes(mut self, on: bool) -> Self {
        self.nodes = on;
        self
    }

    pub(crate) fn with_dcs(mut self, on: bool) -> Self {
        self.dcs = on;
        self
    }

    pub(crate) fn with_clients(mut self, on: bool) -> Self {
        self.clients = on;
        self
    }

    pub(crate) fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    pub(crate) fn nodes(&self) -> bool {
        self.nodes
    }

    pub(crate) fn dcs(&self) -> bool {
        self.dcs
    }

    pub(crate) fn clients(&self) -> bool {
        self.clients
    }

    /// The node named with `node(..)`, if any (else the primary).
    #[cfg(feature = "cnpg")]
    pub(crate) fn node_name(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// Which way the fault acts, seen from the node.
    #[cfg(feature = "cnpg")]
    pub(crate) fn way(&self) -> Direction {
        self.direction
    }

    /// E.g. `nodes+dcs both ways`.
    pub(crate) fn describe(&self) -> String {
        let peers: Vec<&str> = [
            (self.nodes, "nodes"),
            (self.dcs, "dcs"),
            (self.clients, "clients"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        let way = match self.direction {
            Direction::Both => "both ways",
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        };
        format!("{} {way}", peers.join("+"))
    }
}

/// The builder methods every link fault shares.
macro_rules! link_options {
    () => {
        /// Acts on node `name`'s links instead of the primary's.
        pub fn node(mut self, name: impl Into<String>) -> Self {
            self.links = self.links.node(name);
            self
        }

        /// Whether the links to the other nodes are degraded (default: yes).
        pub fn from_nodes(mut self, on: bool) -> Self {
            self.links = self.links.with_nodes(on);
            self
        }

        /// Whether the link to the DCS (etcd) is degraded (default: yes).
        pub fn from_dcs(mut self, on: bool) -> Self {
            self.links = self.links.with_dcs(on);
            self
        }

        /// Whether the links to clients (every process outside the cluster,
        /// HAProxy included) are degraded (default: yes).
        pub fn from_clients(mut self, on: bool) -> Self {
            self.links = self.links.with_clients(on);
            self
        }

        /// Which way packets are degraded, seen from the node (default: both).
        pub fn direction(mut self, direction: Direction) -> Self {
            self.links = self.links.direction(direction);
            self
        }
    };
}

/// Drops a share of the packets on a node's links (by default the current
/// primary's, to the other nodes, the DCS and clients, both ways), each at
/// random (`iptables -m statistic`). TCP retransmits, so connections stay up
/// but slow down; with synchronous replication, loss on the replication links
/// slows commits too. Healing removes the rules and waits until the node
/// serves in Patroni's topology with a primary in place.
///
/// ```no_run
/// # async fn demo(cluster: &chaos_core::cluster::local::LocalCluster) -> chaos_core::Result<()> {
/// use chaos_core::fault::{Fault, FaultGuard, PacketLoss};
///
/// // 30 % of the primary's packets to and from the replicas and clients are lost.
/// let guard = PacketLoss::primary(30.0).from_dcs(false).inject(cluster).await?;
/// tokio::time::sleep(std::time::Duration::from_secs(5)).await;
/// guard.heal().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct PacketLoss {
    pub(crate) percent: f64,
    pub(crate) links: Links,
}

impl PacketLoss {
    /// Drops `percent` % (more than 0, at most 100) of the primary's packets
    /// on all its links, both ways; checked at injection.
    pub fn primary(percent: f64) -> Self {
        PacketLoss {
            percent,
            links: Links::all(),
        }
    }

    link_options!();

    /// The built-in fault this is.
    pub fn kind(&self) -> FaultKind {
        FaultKind::PrimaryPacketLoss
    }
}

/// Limits the bandwidth of a node's links (by default the current primary's,
/// to the other nodes, the DCS and clients, both ways) to a number of bytes
/// per second in each direction: what the node sends to the chosen peers
/// shares one budget, what they send to it another. Packets above the rate
/// are dropped (policing with `iptables -m hashlimit`, a token bucket that
/// holds one second of traffic), so TCP backs off to about the rate. Healing
/// removes the rules and waits until the node serves in Patroni's topology
/// with a primary in place.
///
/// ```no_run
/// # async fn demo(cluster: &chaos_core::cluster::local::LocalCluster) -> chaos_core::Result<()> {
/// use chaos_core::fault::{Bandwidth, Fault, FaultGuard};
///
/// // Clients reach the primary at 1 MiB/s each way.
/// let guard = Bandwidth::primary(1 << 20)
///     .from_nodes(false)
///     .from_dcs(false)
///     .inject(cluster)
///     .await?;
/// tokio::time::sleep(std::time::Duration::from_secs(5)).await;
/// guard.heal().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Bandwidth {
    pub(crate) bytes_per_sec: u64,
    pub(crate) links: Links,
}

impl Bandwidth {
    /// Limits the primary's links, both ways, to `bytes_per_sec` (1 KiB/s to
    /// 1 GiB/s) per direction; checked at injection.
    pub fn primary(bytes_per_sec: u64) -> Self {
        Bandwidth {
            bytes_per_sec,
            links: Links::all(),
        }
    }

    link_options!();

    /// The built-in fault this is.
    pub fn kind(&self) -> FaultKind {
        FaultKind::PrimaryBandwidth
    }
}

/// Delays every packet on a node's links (by default the current primary's,
/// to the other nodes, the DCS and clients, both ways) by a fixed time: a
/// round trip over a degraded link both ways takes twice the delay longer.
///
/// Needs the kernel's netem qdisc (`CONFIG_NET_SCH_NETEM`, module
/// `sch_netem`); where it is missing, injection fails with
/// [`Error::KernelFeature`](crate::Error::KernelFeature). Where it exists, the fault puts an `htb` qdisc
/// on `lo` (machine-wide while the fault lasts; handle from the run id,
/// removed with the fault and by the cluster's cleanup), a class with a
/// netem leaf, and classifies the chosen packets into it (`iptables -j
/// CLASSIFY`). That path was written on a kernel without netem: its
/// commands are unit-tested, not exercised end to end.
///
/// ```no_run
/// # async fn demo(cluster: &chaos_core::cluster::local::LocalCluster) -> chaos_core::Result<()> {
/// use chaos_core::fault::{Fault, FaultGuard, Latency};
/// use std::time::Duration;
///
/// // 50 ms more each way between the primary and its replicas.
/// let guard = Latency::primary(Duration::from_millis(50))
///     .from_dcs(false)
///     .from_clients(false)
///     .inject(cluster)
///     .await?;
/// tokio::time::sleep(Duration::from_secs(5)).await;
/// guard.heal().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Latency {
    pub(crate) delay: Duration,
    pub(crate) links: Links,
}

impl Latency {
    /// Delays the primary's packets on all its links, both ways, by `delay`
    /// (more than 0, at most 60 s); checked at injection.
    pub fn primary(delay: Duration) -> Self {
        Latency {
            delay,
            links: Links::all(),
        }
    }

    link_options!();

    /// The built-in fault this is.
    pub fn kind(&self) -> FaultKind {
        FaultKind::PrimaryLatency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_describe_peers_and_direction() {
        assert_eq!(Links::all().describe(), "nodes+dcs+clients both ways");
        assert_eq!(
            Links::all()
                .with_dcs(false)
                .direction(Direction::Outbound)
                .describe(),
            "nodes+clients outbound"
        );
    }

    #[test]
    fn faults_name_their_kind() {
        assert_eq!(
            PacketLoss::primary(30.0).kind(),
            FaultKind::PrimaryPacketLoss
        );
        assert_eq!(
            Bandwidth::primary(1 << 20).kind(),
            FaultKind::PrimaryBandwidth
        );
        assert_eq!(
            Latency::primary(Duration::from_millis(10)).kind(),
            FaultKind::PrimaryLatency
        );
        assert_eq!(
            PacketLoss::primary(30.0)
                .node("node2")
                .links
                .node
                .as_deref(),
            Some("node2")
        );
    }
}
