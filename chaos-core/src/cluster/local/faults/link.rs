//! [`PacketLoss`], [`Bandwidth`] and [`Latency`] on the local cluster: an
//! iptables chain `chaos-<run id>-<n>` on the node's links (see
//! [`crate::cluster::local`]), removed on heal. Needs root.

use std::time::Instant;

use super::chain::ChainRules;
use crate::cluster::local::LocalCluster;
use crate::cluster::local::netfilter::{
    CLIENTS, DCS, Degradation, MAX_DELAY, MAX_RATE, MIN_RATE, Net,
};
use crate::error::LocalError;
use crate::fault::link::Links;
use crate::fault::{
    Bandwidth, Direction, Fault, FaultGuard, FaultInfo, FaultKind, Healed, Latency, PacketLoss,
};
use crate::timeline::{Healing, Timestamp};
use crate::{Error, Result};

impl Links {
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
        rules: ChainRules::new(cluster, victim, chain, "its links were restored"),
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
    rules: ChainRules,
    injected_at: Instant,
}

impl LinkGuard {
    /// The iptables chain holding the rules (`chaos-<run id>-<n>`), until
    /// healed.
    pub fn chain(&self) -> Option<&str> {
        self.rules.chain()
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
        self.rules.heal(Healing::LinksRestored).await
    }
}
