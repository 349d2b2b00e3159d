//! [`FreezePrimary`] and [`FreezeReplicas`] on the local cluster: SIGSTOP of
//! a node's postmaster and every backend, SIGCONT on heal.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::cluster::local::{LocalCluster, process};
use crate::error::FaultError;
use crate::fault::{Fault, FaultGuard, FaultInfo, FreezePrimary, FreezeReplicas, Healed};
use crate::timeline::{Healing, Timestamp};
use crate::{Error, Result};

impl Fault<LocalCluster> for FreezePrimary {
    type Guard = FreezeGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<FreezeGuard> {
        let leader = cluster.primary().await?;
        freeze(cluster, "freeze-primary", vec![leader]).await
    }
}

impl Fault<LocalCluster> for FreezeReplicas {
    type Guard = FreezeGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<FreezeGuard> {
        let leader = cluster.primary().await?;
        let replicas: Vec<String> = cluster
            .nodes()
            .iter()
            .map(|n| n.name.clone())
            .filter(|n| *n != leader)
            .collect();
        if replicas.is_empty() {
            return Err(FaultError::NoReplica { action: "freeze" }.into());
        }
        freeze(cluster, "freeze-replicas", replicas).await
    }
}

/// SIGSTOPs the PostgreSQL processes of `nodes`, postmasters first so that they
/// fork no new backend meanwhile.
async fn freeze(cluster: &LocalCluster, kind: &str, nodes: Vec<String>) -> Result<FreezeGuard> {
    let postmasters = nodes
        .iter()
        .map(|n| cluster.postmaster_pid(n))
        .collect::<Result<Vec<i32>>>()?;
    let mut guard = FreezeGuard {
        info: FaultInfo {
            kind: kind.into(),
            mode: "sigstop".into(),
            victim: Some(nodes.join(",")),
            injected_at: Timestamp::now(),
        },
        cluster: cluster.clone(),
        nodes: nodes.clone(),
        pids: Vec::new(),
        injected_at: Instant::now(),
        thawed: false,
    };
    // Twice: backends forked between the first scan and the postmaster's stop
    // are caught by the second. On error the guard's Drop thaws what was stopped.
    for _ in 0..2 {
        for &pm in &postmasters {
            for pid in std::iter::once(pm).chain(process::descendants(pm)) {
                if !guard.pids.contains(&pid) {
                    process::signal(pid, Signal::SIGSTOP)?;
                    guard.pids.push(pid);
                }
            }
        }
    }
    // The fault is in effect once every process is stopped (SIGSTOP is
    // delivered when the process is next scheduled: wait for it, briefly): a
    // write that started before this may still have slipped through, one after
    // cannot.
    process::wait_stopped(&guard.pids, Duration::from_secs(2)).await;
    guard.injected_at = Instant::now();
    guard.info.injected_at = Timestamp::now();
    tracing::info!(nodes = ?nodes, processes = guard.pids.len(), "PostgreSQL frozen");
    Ok(guard)
}

/// Guard of [`FreezePrimary`] and [`FreezeReplicas`]: SIGCONT to every frozen
/// process.
#[derive(Debug)]
pub struct FreezeGuard {
    info: FaultInfo,
    cluster: LocalCluster,
    nodes: Vec<String>,
    pids: Vec<i32>,
    injected_at: Instant,
    thawed: bool,
}

impl FreezeGuard {
    /// The frozen processes.
    pub fn pids(&self) -> &[i32] {
        &self.pids
    }

    fn thaw(&mut self) -> Result<()> {
        self.thawed = true;
        // Backends first, postmasters last.
        process::resume_all(&self.pids)
    }
}

impl FaultGuard for FreezeGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    /// Thaws every frozen process, then waits until each is running again and
    /// each node's PostgreSQL answers a query.
    async fn heal(mut self) -> Result<Healed> {
        self.thaw()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        if !process::wait_not_stopped(&self.pids, deadline).await {
            return Err(FaultError::StillStopped {
                nodes: self.nodes.join(","),
                waited: Duration::from_secs(30),
            }
            .into());
        }
        for name in &self.nodes {
            let Some(node) = self.cluster.node(name) else {
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let answered = tokio::time::timeout(left, async {
                loop {
                    if let Ok(c) = crate::pg::connect(&node.dsn(), Duration::from_secs(2)).await
                        && c.simple_query("SELECT 1").await.is_ok()
                    {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            if answered.is_err() {
                return Err(Error::Timeout {
                    what: format!("{name} to answer a query after being thawed"),
                    waited: Duration::from_secs(30),
                    logs: String::new(),
                });
            }
        }
        Ok(Healed {
            event: Healing::Thawed,
            at: Timestamp::now(),
            detail: self.info.victim.clone(),
        })
    }
}

impl Drop for FreezeGuard {
    fn drop(&mut self) {
        if !self.thawed
            && let Err(e) = self.thaw()
        {
            tracing::error!(error = %e, "fault guard dropped: could not thaw");
        }
    }
}
