//! The local cluster's topology, as Patroni reports it, and its health: who
//! leads, who streams, whether a synchronous commit is acknowledged.

use std::time::{Duration, Instant};

use super::super::config::SynchronousMode;
use super::super::patroni::{ClusterInfo, ConfigPatch, MemberRole};
use super::{LocalCluster, NodeInfo, tail};
use crate::cluster::{Member, Role, Topology};
use crate::error::LocalError;
use crate::{Error, Result};

/// What [`LocalCluster::nudge_for_sync_standby`] did last.
#[derive(Debug, Default)]
pub(crate) struct Nudged {
    /// Running standbys at the last nudge.
    running: usize,
    /// When it was.
    at: Option<Instant>,
}

impl LocalCluster {
    /// Reads the topology from the first Patroni REST API that answers.
    ///
    /// # Errors
    /// [`Error::Patroni`] when no node answers.
    pub async fn topology(&self) -> Result<Topology> {
        // Every node is asked at once: a node cut off from the DCS still
        // answers, with the view it had before the cut. Of the answers, the
        // one whose leader is on the newest timeline is the current one.
        let answers =
            futures::future::join_all(self.inner.nodes.iter().map(|node| async move {
                self.inner.patroni.node(node.api_url()).cluster().await
            }))
            .await;
        let mut best: Option<ClusterInfo> = None;
        let mut last = None;
        for answer in answers {
            match answer {
                Ok(c)
                    if best
                        .as_ref()
                        .is_none_or(|b| c.leader_timeline() > b.leader_timeline()) =>
                {
                    best = Some(c);
                }
                Ok(_) => {}
                Err(e) => last = Some(e),
            }
        }
        match best {
            Some(c) => Ok(topology_of(c, &self.inner.nodes)),
            None => Err(last.unwrap_or_else(|| LocalError::NoNodes.into())),
        }
    }

    /// Waits until node `name` serves again as Patroni reports it, with a
    /// primary in the cluster: how the guards of faults that leave the
    /// processes running (network, disk) know the node is back.
    pub(crate) async fn wait_serving(
        &self,
        name: &str,
        after: &str,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(t) = self.topology().await
                && t.members.iter().any(|m| m.name == name && m.is_up())
                && t.primary().is_some()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{name} to serve again after {after}"),
                    waited: timeout,
                    logs: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The name of the node that leads now.
    ///
    /// # Errors
    /// [`LocalError::NoPrimary`] when no node holds the leader lock, or the
    /// topology cannot be read.
    pub async fn primary(&self) -> Result<String> {
        self.topology()
            .await?
            .primary_name()
            .map(str::to_string)
            .ok_or_else(|| LocalError::NoPrimary.into())
    }

    /// Waits until every node runs, one leads, a synchronous standby streams
    /// (every replica streams, with [`SynchronousMode::Off`]), and the leader
    /// accepts writes; returns the topology then.
    ///
    /// # Errors
    /// [`Error::Timeout`] with the tail of the logs.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<Topology> {
        let start = Instant::now();
        let mut last_state = String::from("no answer from Patroni yet");
        let mut nudged = Nudged::default();
        while start.elapsed() < timeout {
            match self.topology().await {
                Ok(t) if self.is_healthy(&t) => match self.replication_ok(&t).await {
                    Ok(()) => return Ok(t),
                    Err(e) => last_state = e.to_string(),
                },
                Ok(t) => {
                    self.nudge_for_sync_standby(&t, &mut nudged).await;
                    last_state = format!("{t:?}");
                }
                Err(e) => last_state = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Timeout {
            what: format!("a healthy cluster (last state: {last_state})"),
            waited: timeout,
            logs: self.inner.logs_tail(),
        })
    }

    /// A leader without a synchronous standby picks one on its next HA cycle;
    /// a replica that started running since the last call is worth waking it
    /// for. With quorum commit Patroni takes two cycles (it names the standbys
    /// in `synchronous_standby_names`, then publishes the quorum in the DCS
    /// once they confirm), so while a running standby is not yet in the quorum
    /// the leader is woken again every 200 ms.
    pub(crate) async fn nudge_for_sync_standby(&self, t: &Topology, nudged: &mut Nudged) {
        let running = t.standbys().count();
        let Some(leader) = t.primary_name() else {
            return;
        };
        let mode = self.inner.synchronous_mode;
        let missing = if mode == SynchronousMode::Quorum {
            t.sync_standbys().count() < running
        } else {
            mode.is_synchronous() && t.sync_standbys().next().is_none()
        };
        let again = mode == SynchronousMode::Quorum
            && nudged
                .at
                .is_some_and(|at| at.elapsed() >= Duration::from_millis(200));
        if missing && (running > nudged.running || again) {
            self.nudge(leader).await;
            nudged.running = running;
            nudged.at = Some(Instant::now());
        }
    }

    /// Wakes node `name`'s Patroni HA loop now instead of at its next
    /// `loop_wait` tick, with a `PATCH /config` that changes nothing (Patroni
    /// wakes its loop after every config patch): it writes back the
    /// `loop_wait` that `GET /config` shows. Best effort: errors are ignored.
    async fn nudge(&self, name: &str) {
        let Some(node) = self.node(name) else { return };
        let api = self
            .inner
            .patroni
            .node(node.api_url())
            .timeout(Duration::from_secs(2));
        // The value in force now, not the boot's: an experiment may have
        // changed it (`chaos experiment --set loop_wait=3`), and patching the
        // boot's value back would undo the variant.
        let current = api.config().await.ok().and_then(|c| c.loop_wait?.as_u64());
        let Some(loop_wait) = current else {
            tracing::debug!(
                node = name,
                "no configuration to wake Patroni's HA loop with"
            );
            return;
        };
        let res = api.patch_config(&ConfigPatch::loop_wait(loop_wait)).await;
        tracing::debug!(node = name, ok = res.is_ok(), "woke Patroni's HA loop");
    }

    /// How many replicas stream from `leader`, if it answers.
    pub(crate) async fn streaming_replicas(&self, leader: &str) -> Option<usize> {
        let node = self.node(leader)?;
        let client = crate::pg::connect(&node.dsn(), Duration::from_secs(1))
            .await
            .ok()?;
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                &[],
            )
            .await
            .ok()?;
        usize::try_from(row.get::<_, i64>(0)).ok()
    }

    /// Checks the cluster is healthy and a synchronous commit on the leader is
    /// acknowledged (`txid_current()` writes a commit record and waits for the
    /// synchronous standby).
    pub(crate) async fn healthy_write(&self, t: &Topology) -> Result<()> {
        if !self.is_healthy(t) {
            return Err(LocalError::NotHealthy {
                topology: format!("{t:?}"),
            }
            .into());
        }
        self.replication_ok(t).await?;
        let leader = t
            .primary_name()
            .and_then(|n| self.node(n))
            .ok_or(LocalError::NoPrimary)?;
        let client = crate::pg::connect(&leader.dsn(), Duration::from_secs(2)).await?;
        tokio::time::timeout(
            Duration::from_secs(2),
            client.execute("SELECT txid_current()", &[]),
        )
        .await
        .map_err(|_| LocalError::NoAnswer {
            query: "the first synchronous commit (SELECT txid_current())",
            waited: Duration::from_secs(2),
        })?
        .map_err(|e| Error::pg("the first synchronous commit", e))?;
        Ok(())
    }

    /// [`Topology::is_healthy`], without the synchronous standby when the
    /// cluster replicates asynchronously.
    fn is_healthy(&self, t: &Topology) -> bool {
        let expected = self.inner.nodes.len();
        if self.inner.synchronous_mode == SynchronousMode::Quorum {
            // Every standby votes in the quorum (`ANY 1 (…)` over all of
            // them): a standby outside it is one that has not caught up.
            t.is_healthy(expected) && t.sync_standbys().count() == expected - 1
        } else if self.inner.synchronous_mode.is_synchronous() {
            t.is_healthy(expected)
        } else {
            t.members.len() == expected
                && t.members.iter().all(Member::is_up)
                && t.primary().is_some()
        }
    }

    /// Checks on the leader that all replicas stream and one is synchronous
    /// (unless the cluster replicates asynchronously).
    async fn replication_ok(&self, t: &Topology) -> Result<()> {
        let leader = t
            .primary_name()
            .and_then(|n| self.node(n))
            .ok_or(LocalError::NoPrimary)?;
        let client = crate::pg::connect(&leader.dsn(), Duration::from_secs(2)).await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'streaming'), \
                        count(*) FILTER (WHERE sync_state IN ('sync', 'quorum') AND state = 'streaming'), \
                        pg_is_in_recovery() \
                   FROM pg_stat_replication",
                &[],
            )
            .await
            .map_err(|e| Error::pg("reading pg_stat_replication", e))?;
        let streaming: i64 = row.get(0);
        let sync: i64 = row.get(1);
        let in_recovery: bool = row.get(2);
        let want = self.inner.nodes.len() as i64 - 1;
        let sync_ok = sync >= 1 || !self.inner.synchronous_mode.is_synchronous();
        if !in_recovery && streaming == want && sync_ok {
            Ok(())
        } else {
            Err(LocalError::Replication {
                leader: leader.name.clone(),
                streaming,
                want,
                sync,
                in_recovery,
            }
            .into())
        }
    }

    /// Waits until node `name` runs as a streaming replica of the current leader.
    ///
    /// # Errors
    /// [`Error::Timeout`] with the tail of the node's logs.
    pub async fn wait_replica(&self, name: &str, timeout: Duration) -> Result<Topology> {
        let start = Instant::now();
        let mut last_state = String::new();
        while start.elapsed() < timeout {
            if let Ok(t) = self.topology().await {
                let member = t.members.iter().find(|m| m.name == name);
                let leader = t.primary_name().and_then(|l| self.node(l));
                if let (Some(m), Some(leader)) = (member, leader)
                    && matches!(m.role, Role::SyncStandby | Role::Replica)
                    && self.is_streaming_to(leader, name).await
                {
                    return Ok(t);
                }
                last_state = format!("{t:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let node = &self.inner.nodes[self.index_of(name)?];
        Err(Error::Timeout {
            what: format!("{name} to rejoin as a streaming replica (last state: {last_state})"),
            waited: timeout,
            logs: tail(&node.log_path(), 25) + &tail(&node.dir.join("pglog/postgresql.log"), 15),
        })
    }

    async fn is_streaming_to(&self, leader: &NodeInfo, name: &str) -> bool {
        let Ok(client) = crate::pg::connect(&leader.dsn(), Duration::from_secs(2)).await else {
            return false;
        };
        client
            .query_opt(
                "SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'",
                &[&name],
            )
            .await
            .ok()
            .flatten()
            .is_some()
    }

    /// Waits until a connection through the proxy (if any) reaches a primary.
    pub(super) async fn wait_proxy_routes_to_primary(&self, timeout: Duration) -> Result<()> {
        let Ok(proxy) = &self.inner.proxy else {
            return Ok(());
        };
        let timeout = timeout.max(Duration::from_secs(10));
        let dsn = proxy.dsn();
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < timeout {
            if let Some(status) = self.inner.proxy_exit() {
                return Err(LocalError::ProxyExited {
                    status: status.to_string(),
                    log: tail(&proxy.log_path(), 20),
                }
                .into());
            }
            match reaches_primary(&dsn).await {
                Ok(true) => return Ok(()),
                Ok(false) => last = "it reached a standby".into(),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::Timeout {
            what: format!("the proxy at {dsn} to route to the primary (last: {last})"),
            waited: timeout,
            logs: tail(&proxy.log_path(), 20),
        })
    }
}

/// The topology in a view of Patroni's, with neutral roles; every node of
/// the cluster appears, those Patroni does not list (its member key
/// expired) as down.
fn topology_of(view: ClusterInfo, nodes: &[NodeInfo]) -> Topology {
    let mut members: Vec<Member> = view
        .members
        .into_iter()
        .map(|m| {
            let role = match m.role {
                _ if !m.is_serving() => Role::Down,
                MemberRole::Leader => Role::Primary,
                // Quorum commit (Patroni 4): every standby of the quorum
                // is as synchronous as a sync standby.
                MemberRole::SyncStandby | MemberRole::QuorumStandby => Role::SyncStandby,
                MemberRole::StandbyLeader | MemberRole::Replica | MemberRole::Other => {
                    Role::Replica
                }
            };
            Member {
                name: m.name,
                role,
                state: m.state,
                host: m.host,
                port: m.port,
                timeline: m.timeline,
                lag: m.lag,
            }
        })
        .collect();
    for n in nodes {
        if !members.iter().any(|m| m.name == n.name) {
            members.push(Member {
                name: n.name.clone(),
                role: Role::Down,
                state: "absent".into(),
                host: n.host.clone(),
                port: n.pg_port,
                timeline: None,
                lag: None,
            });
        }
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Topology { members }
}

/// Whether a new connection to `dsn` reaches a server that is not in recovery.
async fn reaches_primary(dsn: &str) -> Result<bool> {
    let client = crate::pg::connect(dsn, Duration::from_secs(2)).await?;
    let row = tokio::time::timeout(
        Duration::from_secs(2),
        client.query_one("SELECT NOT pg_is_in_recovery()", &[]),
    )
    .await
    .map_err(|_| LocalError::NoAnswer {
        query: "SELECT NOT pg_is_in_recovery()",
        waited: Duration::from_secs(2),
    })?
    .map_err(|e| Error::pg("SELECT NOT pg_is_in_recovery()", e))?;
    Ok(row.get(0))
}
