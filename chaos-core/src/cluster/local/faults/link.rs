//! Degraded links on the local cluster: packet loss, a bandwidth limit or
//! added latency on a node's links, in the kernel.
//!
//! The packets are chosen as for [`PartitionNetwork`](super::PartitionNetwork)
//! (a node, by default the primary; its links to the other nodes, the DCS
//! and/or clients; one way or both), by an iptables chain `chaos-<run id>-<n>`
//! (see [`crate::cluster::local`]). Needs root. Other targets:
//! `Fault<dyn Target>` says which can.

use std::time::{Duration, Instant};

use super::partition::Direction;
use super::{Fault, FaultGuard, FaultInfo, FaultKind, Healed};
use crate::cluster::local::LocalCluster;
use crate::cluster::local::netfilter::{
    CLIENTS, DCS, Degradation, MAX_DELAY, MAX_RATE, MIN_RATE, Net,
};
use crate::error::LocalError;
use crate::timeline::Timestamp;
use crate::{Error, Result};

/// Which of a node's links a network fault acts on: the node (by default the
/// primary, resolved at injection), which peers, and which way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Links {
    node: Option<String>,
    nodes: bool,
    dcs: bool,
    clients: bool,
    direction: Direction,
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

    /// The node (resolving the primary now), its group, and the (from, to)
    /// group pairs whose packets the fault acts on.
    ///
    /// # Errors
    /// [`Error::Config`] (as `field`) when no peer is chosen; when the primary
    /// or the node cannot be found.
    pub(crate) async fn resolve(
        &self,
        cluster: &LocalCluster,
        net: &Net,
        field: &'static str,
    ) -> Result<(String, usize, Vec<(usize, usize)>)> {
        let victim = match &self.node {
            Some(n) => n.clone(),
            None => cluster.primary().await?,
        };
        let me = net
            .group(&victim)
            .ok_or_else(|| LocalError::NoSuchNode {
                name: victim.clone(),
            })?
            .index;
        let mut peers = Vec::new();
        if self.nodes {
            peers.extend(
                cluster
                    .nodes()
                    .iter()
                    .filter(|n| n.name != victim)
                    .filter_map(|n| net.group(&n.name).map(|g| g.index)),
            );
        }
        if self.dcs {
            peers.push(DCS);
        }
        if self.clients {
            peers.push(CLIENTS);
        }
        if peers.is_empty() {
            return Err(Error::Config {
                field,
                expected: "at least one of the nodes, the DCS or clients",
                found: "none".into(),
            });
        }
        let mut pairs = Vec::new();
        for &p in &peers {
            if self.direction != Direction::Inbound {
                pairs.push((me, p));
            }
            if self.direction != Direction::Outbound {
                pairs.push((p, me));
            }
        }
        Ok((victim, me, pairs))
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
    percent: f64,
    links: Links,
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
    bytes_per_sec: u64,
    links: Links,
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
/// [`Error::KernelFeature`]. Where it exists, the fault puts an `htb` qdisc
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
    delay: Duration,
    links: Links,
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

/// The cluster's network machinery, or [`Error::Privilege`].
fn net_for(cluster: &LocalCluster, kind: FaultKind) -> Result<&Net> {
    cluster.net().map_err(|why| Error::Privilege {
        fault: kind.name().into(),
        needs: "root: CAP_NET_ADMIN for iptables and write access to the cgroup2 hierarchy",
        found: why.to_string(),
        how: "run as root (e.g. `sudo -E cargo test`); the cluster puts each node in a cgroup at boot",
    })
}

/// Installs degradation `how` on `links` and returns its guard.
async fn degrade(
    cluster: &LocalCluster,
    net: &Net,
    links: &Links,
    how: Degradation,
    kind: FaultKind,
    field: &'static str,
    action: String,
) -> Result<LinkGuard> {
    let (victim, me, pairs) = links.resolve(cluster, net, field).await?;
    let chain = net.degrade(me, &pairs, how)?;
    let info = FaultInfo {
        kind: kind.name().into(),
        mode: format!("{action} {}", links.describe()),
        victim: Some(victim.clone()),
        injected_at: Timestamp::now(),
    };
    tracing::info!(node = %victim, mode = %info.mode, chain = %chain, "links degraded");
    Ok(LinkGuard {
        info,
        cluster: cluster.clone(),
        victim,
        chain: Some(chain),
        injected_at: Instant::now(),
    })
}

impl Fault<LocalCluster> for PacketLoss {
    type Guard = LinkGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<LinkGuard> {
        if !(self.percent > 0.0 && self.percent <= 100.0) {
            return Err(Error::Config {
                field: "PacketLoss::primary",
                expected: "a percentage of packets to drop, more than 0 and at most 100",
                found: self.percent.to_string(),
            });
        }
        let net = net_for(cluster, self.kind())?;
        let how = Degradation::Loss(self.percent / 100.0);
        let action = format!("drop {}%", self.percent);
        degrade(
            cluster,
            net,
            &self.links,
            how,
            self.kind(),
            "PacketLoss",
            action,
        )
        .await
    }
}

impl Fault<LocalCluster> for Bandwidth {
    type Guard = LinkGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<LinkGuard> {
        if !(MIN_RATE..=MAX_RATE).contains(&self.bytes_per_sec) {
            return Err(Error::Config {
                field: "Bandwidth::primary",
                expected: "a rate in bytes per second from 1024 (1 KiB/s) to 1073741824 (1 GiB/s)",
                found: self.bytes_per_sec.to_string(),
            });
        }
        let net = net_for(cluster, self.kind())?;
        let how = Degradation::Rate(self.bytes_per_sec);
        let action = format!("limit {} B/s per direction", self.bytes_per_sec);
        degrade(
            cluster,
            net,
            &self.links,
            how,
            self.kind(),
            "Bandwidth",
            action,
        )
        .await
    }
}

impl Fault<LocalCluster> for Latency {
    type Guard = LinkGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<LinkGuard> {
        if self.delay.is_zero() || self.delay > MAX_DELAY {
            return Err(Error::Config {
                field: "Latency::primary",
                expected: "a delay of more than 0 and at most 60 s",
                found: format!("{:?}", self.delay),
            });
        }
        let net = net_for(cluster, self.kind())?;
        if let Some(found) = net.netem_missing() {
            return Err(Error::KernelFeature {
                fault: self.kind().name().into(),
                feature: "netem (sch_netem)",
                found,
                how: "use a kernel built with CONFIG_NET_SCH_NETEM or load its module \
                      (`modprobe sch_netem`); without it, add latency in user space with a \
                      TCP proxy between the client and the node, or use PacketLoss or \
                      Bandwidth, which need no qdisc",
            });
        }
        let how = Degradation::Delay(self.delay);
        let action = format!("delay {:?}", self.delay);
        degrade(
            cluster,
            net,
            &self.links,
            how,
            self.kind(),
            "Latency",
            action,
        )
        .await
    }
}

/// Guard of [`PacketLoss`], [`Bandwidth`] and [`Latency`]: removes the
/// iptables chain (and, for latency, the qdisc class) that degrades the links.
#[derive(Debug)]
pub struct LinkGuard {
    info: FaultInfo,
    cluster: LocalCluster,
    victim: String,
    chain: Option<String>,
    injected_at: Instant,
}

impl LinkGuard {
    /// The iptables chain holding the rules (`chaos-<run id>-<n>`), until
    /// healed.
    pub fn chain(&self) -> Option<&str> {
        self.chain.as_deref()
    }

    fn lift(&mut self) -> Result<()> {
        match (self.chain.take(), self.cluster.net()) {
            (Some(chain), Ok(net)) => net.lift(&chain),
            _ => Ok(()),
        }
    }
}

impl FaultGuard for LinkGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    /// Removes the rules, then waits (up to 60 s) until the node serves again
    /// as Patroni reports it, with a primary in place.
    async fn heal(mut self) -> Result<Healed> {
        self.lift()?;
        self.cluster
            .wait_serving(
                &self.victim,
                "its links were restored",
                Duration::from_secs(60),
            )
            .await?;
        Ok(Healed {
            event: "links restored".into(),
            at: Timestamp::now(),
            detail: Some(self.victim.clone()),
        })
    }
}

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if let Err(e) = self.lift() {
            tracing::error!(error = %e, "fault guard dropped: could not restore the links");
        }
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
