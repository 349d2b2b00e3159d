//! [`Switchover`] on the local cluster, through Patroni's REST API; healing
//! waits for the candidate to lead and the old primary to stream from it.

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::cluster::local::LocalCluster;
use crate::cluster::local::etcd::{self, Etcd};
use crate::cluster::local::patroni::Reply;
use crate::error::{FaultError, LocalError};
use crate::fault::switchover::Candidate;
use crate::fault::{Fault, FaultGuard, FaultInfo, Healed, Switchover};
use crate::timeline::{Healing, Timestamp};
use crate::{Error, Result};

/// Patroni's answer to the switchover request, or why none came.
type Answer = Result<Reply>;

impl Fault<LocalCluster> for Switchover {
    type Guard = SwitchoverGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<SwitchoverGuard> {
        let topology = cluster.topology().await?;
        let leader = topology
            .primary_name()
            .ok_or(FaultError::NoPrimary {
                action: "switch over",
            })?
            .to_string();
        let (candidate, mode) =
            match self.candidate {
                Candidate::SyncStandby => {
                    let sync = topology.sync_standbys().next().ok_or_else(|| {
                        FaultError::NoSyncStandby {
                            topology: format!("{topology:?}"),
                        }
                    })?;
                    (sync.name.clone(), "to-sync-standby")
                }
                Candidate::Node(n) => {
                    if n == leader {
                        return Err(FaultError::AlreadyPrimary { node: n }.into());
                    }
                    if cluster.node(&n).is_none() {
                        return Err(LocalError::NoSuchNode { name: n }.into());
                    }
                    (n, "to-node")
                }
            };
        let api = cluster.patroni_api(&leader)?;
        let url = api.url("/switchover");
        let key = etcd::failover_key(cluster.scope());
        let etcd = cluster.etcd();
        // The key is how acceptance is seen: one left pending by an earlier
        // request would make this one look accepted at once.
        if key_exists(etcd, &key).await {
            return Err(FaultError::SwitchoverPending { key }.into());
        }
        // Patroni answers only once the switchover is done (or after 20 s):
        // send the request on a task, and take the fault as in effect when
        // Patroni has written the failover key, the moment it accepted it.
        let request = {
            let (leader, candidate) = (leader.clone(), candidate.clone());
            tokio::spawn(async move { api.switchover(&leader, &candidate).await })
        };
        let sent = Instant::now();
        let deadline = sent + Duration::from_secs(30);
        let mut request = Some(request);
        loop {
            if let Some(done) = request.take_if(|r| r.is_finished()) {
                let answer = done.await.unwrap_or_else(|e| Err(request_task(e)));
                check(&url, answer)?;
                // Accepted and done before the key was seen.
                break;
            }
            if key_exists(etcd, &key).await {
                break;
            }
            if Instant::now() >= deadline {
                if let Some(r) = request {
                    r.abort();
                }
                return Err(Error::Timeout {
                    what: format!("Patroni to accept the switchover from {leader} to {candidate}"),
                    waited: Duration::from_secs(30),
                    logs: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let injected_at = Instant::now();
        tracing::info!(from = %leader, to = %candidate, "switchover accepted");
        Ok(SwitchoverGuard {
            info: FaultInfo {
                kind: "switchover".into(),
                mode: format!("{mode} {candidate}"),
                victim: Some(leader.clone()),
                injected_at: Timestamp::now(),
            },
            cluster: cluster.clone(),
            url,
            request,
            old_primary: leader,
            candidate,
            injected_at,
            rejoin_timeout: self.rejoin_timeout,
        })
    }
}

/// An error unless Patroni answered 2xx.
fn check(url: &str, answer: Answer) -> Result<()> {
    match answer {
        Ok(reply) if reply.is_success() => Ok(()),
        Ok(Reply { status, body }) => Err(FaultError::SwitchoverRefused {
            url: url.to_string(),
            status,
            body: body.trim().to_string(),
        }
        .into()),
        Err(e) => Err(FaultError::SwitchoverRequest {
            url: url.to_string(),
            source: Box::new(e),
        }
        .into()),
    }
}

/// The request's task panicked or was cancelled.
fn request_task(source: tokio::task::JoinError) -> Error {
    Error::Task {
        what: "the switchover request",
        source,
    }
}

/// Whether etcd has `key` with a value: once a switchover is done Patroni
/// leaves the failover key as `{}` (or empty), not deleted.
async fn key_exists(etcd: &Etcd, key: &str) -> bool {
    etcd.range(key, Duration::from_millis(500))
        .await
        .ok()
        .and_then(|r| r.value())
        .is_some_and(|v| !v.is_empty() && v != "{}")
}

/// Guard of [`Switchover`]: waits for the switchover to complete. There is
/// nothing to undo; dropping it leaves Patroni to finish.
#[derive(Debug)]
pub struct SwitchoverGuard {
    info: FaultInfo,
    cluster: LocalCluster,
    url: String,
    request: Option<JoinHandle<Answer>>,
    old_primary: String,
    candidate: String,
    injected_at: Instant,
    rejoin_timeout: Duration,
}

impl SwitchoverGuard {
    /// The primary that was switched away from.
    pub fn old_primary(&self) -> &str {
        &self.old_primary
    }

    /// The standby asked to take over.
    pub fn candidate(&self) -> &str {
        &self.candidate
    }
}

impl FaultGuard for SwitchoverGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    /// Waits for Patroni's answer to the request, until another node is
    /// primary, then until the old primary streams from it as a replica.
    async fn heal(mut self) -> Result<Healed> {
        let start = Instant::now();
        if let Some(request) = self.request.take() {
            let answer = request.await.unwrap_or_else(|e| Err(request_task(e)));
            check(&self.url, answer)?;
        }
        let new_primary = loop {
            if let Ok(t) = self.cluster.topology().await
                && let Some(p) = t.primary()
                && p.name != self.old_primary
            {
                break p.name.clone();
            }
            if start.elapsed() >= self.rejoin_timeout {
                return Err(Error::Timeout {
                    what: format!("a primary other than {}", self.old_primary),
                    waited: self.rejoin_timeout,
                    logs: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if new_primary != self.candidate {
            tracing::warn!(candidate = %self.candidate, new_primary = %new_primary, "switched over to another node than asked");
        }
        let left = self.rejoin_timeout.saturating_sub(start.elapsed());
        self.cluster.wait_replica(&self.old_primary, left).await?;
        tracing::info!(old = %self.old_primary, new = %new_primary, "switchover complete");
        Ok(Healed {
            event: Healing::SwitchedOver,
            at: Timestamp::now(),
            detail: Some(format!("{} -> {new_primary}", self.old_primary)),
        })
    }
}

impl Drop for SwitchoverGuard {
    fn drop(&mut self) {
        if self.request.is_some() {
            tracing::info!(
                from = %self.old_primary,
                to = %self.candidate,
                "switchover guard dropped: Patroni finishes the switchover on its own"
            );
        }
    }
}
