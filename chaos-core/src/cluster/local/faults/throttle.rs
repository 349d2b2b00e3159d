//! [`ThrottleDisk`] on the local cluster: blkio cgroup throttles on the
//! node's loop-device filesystems, lifted on heal.
//!
//! Needs a cluster built with
//! [`LocalClusterBuilder::disk_faults`](crate::cluster::local::LocalClusterBuilder::disk_faults)
//! (each node's data directory on a filesystem of its own), hence root.

use std::time::{Duration, Instant};

use crate::cluster::local::LocalCluster;
use crate::cluster::local::disk::Dev;
use crate::error::LocalError;
use crate::fault::{Fault, FaultGuard, FaultInfo, Healed, ThrottleDisk};
use crate::timeline::{Healing, Timestamp};
use crate::{Error, Result};

impl Fault<LocalCluster> for ThrottleDisk {
    type Guard = ThrottleGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<ThrottleGuard> {
        if let Some(why) = crate::cluster::local::disk::unavailable() {
            return Err(Error::Privilege {
                fault: self.kind().name().into(),
                needs: "root, loop devices and the cgroup v1 blkio controller",
                found: why,
                how: "run as root (e.g. `sudo -E cargo test`) and build the cluster with \
                      LocalClusterBuilder::disk_faults(true)",
            });
        }
        let disks = cluster.disks().ok_or_else(|| Error::Config {
            field: "disk_faults",
            expected: "a local cluster whose nodes have filesystems of their own: build it \
                       with LocalClusterBuilder::disk_faults(true)",
            found: "a cluster built without disk faults".into(),
        })?;
        self.check(disks.separate_wal())?;
        let victim = match &self.node {
            Some(n) => n.clone(),
            None => cluster.primary().await?,
        };
        let node = disks.node(&victim).ok_or_else(|| LocalError::NoSuchNode {
            name: victim.clone(),
        })?;
        let volumes: Vec<_> = if self.wal_only {
            node.wal.iter().collect()
        } else {
            std::iter::once(&node.data)
                .chain(node.wal.as_ref())
                .collect()
        };
        let devices: Vec<Dev> = volumes.iter().map(|v| v.dev).collect();
        if let Err(e) = disks.throttle(&victim, &devices, &self.limits) {
            let _ = disks.lift(&victim, &devices);
            return Err(e);
        }
        let info = FaultInfo {
            kind: self.kind().name().into(),
            mode: self.describe(),
            victim: Some(victim.clone()),
            injected_at: Timestamp::now(),
        };
        let injected_at = Instant::now();
        tracing::info!(
            node = %victim,
            mode = %info.mode,
            devices = ?volumes.iter().map(|v| v.device.display().to_string()).collect::<Vec<_>>(),
            "disk throttled"
        );
        Ok(ThrottleGuard {
            info,
            cluster: cluster.clone(),
            victim,
            devices,
            lifted: false,
            injected_at,
        })
    }
}

/// Guard of [`ThrottleDisk`]: lifts the node's limits (writes `MAJ:MIN 0` to
/// its blkio throttle settings).
#[derive(Debug)]
pub struct ThrottleGuard {
    info: FaultInfo,
    cluster: LocalCluster,
    victim: String,
    devices: Vec<Dev>,
    lifted: bool,
    injected_at: Instant,
}

impl ThrottleGuard {
    /// The throttled devices' numbers (`MAJ:MIN`).
    pub fn devices(&self) -> Vec<String> {
        self.devices.iter().map(Dev::to_string).collect()
    }

    fn lift(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.lifted, true) {
            return Ok(());
        }
        match self.cluster.disks() {
            Some(disks) => disks.lift(&self.victim, &self.devices),
            None => Ok(()),
        }
    }
}

impl FaultGuard for ThrottleGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    /// Lifts the limits, then waits (up to 60 s) until the node serves again
    /// as Patroni reports it, and the cluster has a primary.
    async fn heal(mut self) -> Result<Healed> {
        self.lift()?;
        self.cluster
            .wait_serving(&self.victim, "the disk throttle", Duration::from_secs(60))
            .await?;
        Ok(Healed {
            event: Healing::DiskThrottleLifted,
            at: Timestamp::now(),
            detail: Some(self.victim.clone()),
        })
    }
}

impl Drop for ThrottleGuard {
    fn drop(&mut self) {
        if let Err(e) = self.lift() {
            tracing::error!(error = %e, "fault guard dropped: could not lift the disk throttle");
        }
    }
}
