//! [`PartitionNetwork`] on the local cluster: packets dropped in the kernel.
//!
//! Needs root (iptables, and the per-node cgroups the cluster makes at boot;
//! see [`crate::cluster::local`]).

use std::time::Instant;

use super::chain::ChainRules;
use crate::cluster::local::LocalCluster;
use crate::fault::{Fault, FaultGuard, FaultInfo, Healed, PartitionNetwork};
use crate::timeline::{Healing, Timestamp};
use crate::{Error, Result};

impl Fault<LocalCluster> for PartitionNetwork {
    type Guard = PartitionGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<PartitionGuard> {
        let net = cluster.net().map_err(|why| Error::Privilege {
            fault: "partition-network".into(),
            needs: "root: CAP_NET_ADMIN for iptables and write access to the cgroup2 hierarchy",
            found: why.to_string(),
            how: "run as root (e.g. `sudo -E cargo test`); the cluster puts each node in a cgroup at boot",
        })?;
        let (victim, _, pairs) = self.links.resolve(cluster, net, "PartitionNetwork").await?;
        let chain = net.cut(&pairs)?;
        let info = FaultInfo {
            kind: self.kind().name().into(),
            mode: self.describe(),
            victim: Some(victim.clone()),
            injected_at: Timestamp::now(),
        };
        tracing::info!(node = %victim, mode = %info.mode, chain = %chain, "network partitioned");
        Ok(PartitionGuard {
            info,
            rules: ChainRules::new(cluster, victim, chain, "the partition"),
            injected_at: Instant::now(),
        })
    }
}

/// Guard of [`PartitionNetwork`]: removes the iptables chain that drops the
/// packets.
#[derive(Debug)]
pub struct PartitionGuard {
    info: FaultInfo,
    rules: ChainRules,
    injected_at: Instant,
}

impl PartitionGuard {
    /// The iptables chain holding the cut (`chaos-<run id>-<n>`), until healed.
    pub fn chain(&self) -> Option<&str> {
        self.rules.chain()
    }
}

impl FaultGuard for PartitionGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    /// Lifts the cut, then waits (up to 60 s) until the node serves again as
    /// Patroni reports it.
    async fn heal(mut self) -> Result<Healed> {
        self.rules.heal(Healing::NetworkHealed).await
    }
}
