//! Waiting for a booting cluster, and where its boot time went.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::cluster::LocalCluster;
use super::template::TemplateSource;
use crate::{Error, Result};

/// How long each step of a cluster's boot took, each measured from the call to
/// [`LocalClusterBuilder::start`](super::LocalClusterBuilder::start) (so they
/// overlap: the template is made while etcd and Patroni start).
#[derive(Debug, Clone, Serialize)]
pub struct BootTimings {
    /// Where the nodes' first data directory came from.
    pub template: TemplateSource,
    /// A copy of the template staged for every node (`initdb`, or a copy from
    /// the cache).
    pub data_staged: Duration,
    /// etcd serves, its cluster version decided (Patroni starts then).
    pub etcd_ready: Duration,
    /// A leader holds the lock with PostgreSQL running (bootstrapped).
    pub leader_running: Duration,
    /// Every replica's PostgreSQL runs, as Patroni reports it.
    pub replicas_running: Duration,
    /// Every replica streams from the leader (`pg_stat_replication`).
    pub replicas_streaming: Duration,
    /// Patroni has chosen a synchronous standby (its `/sync` key). With
    /// [`SynchronousMode::Off`](super::SynchronousMode::Off) there is none:
    /// the same as `first_write`.
    pub sync_standby: Duration,
    /// A synchronous commit on the leader was acknowledged: the cluster is healthy.
    pub first_write: Duration,
    /// The whole boot, including the proxy routing to the leader.
    pub total: Duration,
}

impl BootTimings {
    /// The steps in order, as `(name, time since start)`.
    pub fn steps(&self) -> [(&'static str, Duration); 8] {
        [
            ("data staged", self.data_staged),
            ("etcd ready", self.etcd_ready),
            ("leader running", self.leader_running),
            ("replicas running", self.replicas_running),
            ("replicas streaming", self.replicas_streaming),
            ("sync standby chosen", self.sync_standby),
            ("first write acknowledged", self.first_write),
            ("total", self.total),
        ]
    }
}

/// Milestones seen so far.
#[derive(Default)]
struct Seen {
    staged: Option<(TemplateSource, Duration)>,
    etcd: Option<Duration>,
    leader: Option<Duration>,
    replicas: Option<Duration>,
    streaming: Option<Duration>,
    sync: Option<Duration>,
}

/// Waits for a freshly started cluster to be healthy, and for a commit on its
/// leader (synchronous, unless the cluster replicates asynchronously); records
/// when each step was reached.
pub(crate) async fn wait_booted(
    cluster: &LocalCluster,
    started: Instant,
    etcd_ready: Duration,
    mut staging: tokio::task::JoinHandle<Result<(TemplateSource, Instant)>>,
    timeout: Duration,
) -> Result<BootTimings> {
    let want = cluster.nodes().len() - 1;
    let mut seen = Seen {
        etcd: Some(etcd_ready),
        ..Seen::default()
    };
    let mut nudged = super::cluster::Nudged::default();
    let mut last_state = String::from("no answer from Patroni yet");
    let since = || started.elapsed();
    while started.elapsed() < timeout {
        if seen.staged.is_none() && staging.is_finished() {
            let (source, at) = (&mut staging).await.map_err(|source| Error::Task {
                what: "staging the data directory",
                source,
            })??;
            seen.staged = Some((source, at.duration_since(started)));
        }
        match cluster.topology().await {
            Ok(t) => {
                let leader = t.primary().map(|m| m.name.clone());
                if leader.is_some() && seen.leader.is_none() {
                    seen.leader = Some(since());
                }
                if t.standbys().count() == want {
                    seen.replicas.get_or_insert_with(since);
                }
                if t.sync_standbys().next().is_some() {
                    seen.sync.get_or_insert_with(since);
                }
                cluster.nudge_for_sync_standby(&t, &mut nudged).await;
                if let Some(leader) = &leader
                    && seen.streaming.is_none()
                    && cluster.streaming_replicas(leader).await == Some(want)
                {
                    seen.streaming = Some(since());
                }
                let sync_ok = seen.sync.is_some() || !cluster.synchronous_mode().is_synchronous();
                if sync_ok && seen.streaming.is_some() && seen.staged.is_some() {
                    match cluster.healthy_write(&t).await {
                        Ok(()) => return Ok(finish(seen, since())),
                        Err(e) => last_state = e.to_string(),
                    }
                } else {
                    last_state = format!("{t:?}");
                }
            }
            Err(e) => last_state = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(Error::Timeout {
        what: format!("a healthy cluster (last state: {last_state})"),
        waited: timeout,
        logs: cluster.logs_tail(),
    })
}

fn finish(seen: Seen, first_write: Duration) -> BootTimings {
    let (template, data_staged) = seen
        .staged
        .unwrap_or((TemplateSource::Uncached, first_write));
    BootTimings {
        template,
        data_staged,
        etcd_ready: seen.etcd.unwrap_or(first_write),
        leader_running: seen.leader.unwrap_or(first_write),
        replicas_running: seen.replicas.unwrap_or(first_write),
        replicas_streaming: seen.streaming.unwrap_or(first_write),
        sync_standby: seen.sync.unwrap_or(first_write),
        first_write,
        total: first_write,
    }
}
