//! [`DeletePrimary`] on the local cluster: the primary's Patroni and
//! postmaster killed or stopped, the node restarted on heal.

use std::time::{Duration, Instant};

use crate::Result;
use crate::cluster::Role;
use crate::cluster::local::LocalCluster;
use crate::fault::{DeleteMode, DeletePrimary, Fault, FaultGuard, FaultInfo, Healed};
use crate::timeline::{Healing, Timestamp};

impl Fault<LocalCluster> for DeletePrimary {
    type Guard = DeletePrimaryGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<DeletePrimaryGuard> {
        let leader = cluster.primary().await?;
        // The injection time is when the fault is in effect: after the signals.
        let (injected_at, wall) = match self.mode {
            DeleteMode::Kill => {
                let killed_at = cluster.kill_node(&leader)?;
                (killed_at, Timestamp::now())
            }
            DeleteMode::Graceful => {
                let at = (Instant::now(), Timestamp::now());
                // Patroni's own shutdown is part of what is measured; send the
                // signal now and let it run.
                let c = cluster.clone();
                let name = leader.clone();
                tokio::spawn(async move {
                    if let Err(e) = c.stop_node(&name, Duration::from_secs(60)).await {
                        tracing::error!(error = %e, node = %name, "graceful stop failed");
                    }
                });
                at
            }
        };
        tracing::info!(node = %leader, mode = ?self.mode, "primary deleted");
        Ok(DeletePrimaryGuard {
            cluster: cluster.clone(),
            info: FaultInfo {
                kind: "delete-primary".into(),
                mode: match self.mode {
                    DeleteMode::Kill => "kill".into(),
                    DeleteMode::Graceful => "graceful".into(),
                },
                victim: Some(leader.clone()),
                injected_at: wall,
            },
            node: leader,
            injected_at,
            rejoin_timeout: self.rejoin_timeout,
            healed: false,
        })
    }
}

/// Guard of [`DeletePrimary`]: restarts the node.
#[derive(Debug)]
pub struct DeletePrimaryGuard {
    cluster: LocalCluster,
    info: FaultInfo,
    node: String,
    injected_at: Instant,
    rejoin_timeout: Duration,
    healed: bool,
}

impl DeletePrimaryGuard {
    /// The deleted node.
    pub fn node(&self) -> &str {
        &self.node
    }

    async fn wait_stopped(&self) {
        // A graceful stop runs on a task; do not restart before it has finished.
        for _ in 0..600 {
            if self.cluster.patroni_pid(&self.node).is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl FaultGuard for DeletePrimaryGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    /// Restarts the node and waits until it serves again: as a streaming
    /// replica of the new primary — or as the primary, when it was restarted
    /// before its leader key expired and kept the lead (no failover happened).
    async fn heal(mut self) -> Result<Healed> {
        self.healed = true;
        self.wait_stopped().await;
        self.cluster.start_node(&self.node)?;
        let deadline = Instant::now() + self.rejoin_timeout;
        loop {
            let leads = self.cluster.topology().await.is_ok_and(|t| {
                t.members
                    .iter()
                    .any(|m| m.name == self.node && m.role == Role::Primary)
            });
            if leads {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .cluster
                .wait_replica(&self.node, left.min(Duration::from_secs(2)))
                .await
            {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
        }
        Ok(Healed {
            event: Healing::NodeRejoined,
            at: Timestamp::now(),
            detail: Some(self.node.clone()),
        })
    }
}

impl Drop for DeletePrimaryGuard {
    fn drop(&mut self) {
        if self.healed {
            return;
        }
        // Best effort without a runtime: restart the node and let it rejoin alone.
        if self.cluster.patroni_pid(&self.node).is_none() {
            match self.cluster.start_node(&self.node) {
                Ok(()) => tracing::info!(node = %self.node, "fault guard dropped: node restarted"),
                Err(e) => {
                    tracing::error!(node = %self.node, error = %e, "fault guard dropped: restart failed")
                }
            }
        }
    }
}
