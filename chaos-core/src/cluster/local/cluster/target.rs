//! [`Target`] for the local cluster.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use super::super::binaries;
use super::super::etcd;
use super::super::leader_watch;
use super::super::log_tail;
use super::super::process;
use super::super::proxy;
use super::{LocalCluster, NodeInfo};
use crate::cluster::{Target, Topology, topology};
use crate::timeline::Event;
use crate::{Error, Result};

impl Target for LocalCluster {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn advise<'a>(&'a self, _slo: &'a crate::slo::Slo) -> BoxFuture<'a, Vec<String>> {
        let version = self.inner.binaries.patroni_version;
        Box::pin(async move {
            if !binaries::has_takeover_bug(version) {
                return Vec::new();
            }
            let (a, b, c) = version;
            vec![format!(
                "Patroni {a}.{b}.{c} has the etcd3 leader-takeover bug (fixed in 3.0.3, upstream \
                 PR #2693): a primary paused or cut off past the ttl can write the leader key back \
                 over its successor's, and what the successor acknowledged is lost. Writes lost \
                 in this run may be Patroni's, not the configuration's: the default Patroni \
                 ({}) does not have the bug",
                binaries::DEFAULT_PATRONI_VERSION
            )]
        })
    }

    fn software(&self) -> std::collections::BTreeMap<String, String> {
        let (a, b, c) = self.inner.binaries.patroni_version;
        [
            ("patroni", format!("{a}.{b}.{c}")),
            (
                "synchronous_mode",
                self.inner.synchronous_mode.name().into(),
            ),
            ("ttl", format!("{}s", self.inner.timings.ttl)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn rw_dsn(&self) -> String {
        LocalCluster::rw_dsn(self)
    }

    /// Every built-in fault, through its `Fault<LocalCluster>`.
    fn inject_builtin(
        &self,
        fault: crate::fault::Builtin,
        _arg: Option<String>,
    ) -> BoxFuture<'_, Result<crate::fault::AnyGuard>> {
        Box::pin(fault.inject_into(self))
    }

    /// [`LocalCluster::stop`], on this handle: every process stopped, the
    /// directory removed (unless `CHAOS_KEEP=1`), whatever other handles
    /// there are.
    fn shutdown(&self) {
        self.inner.teardown();
    }

    /// Patroni's dynamic configuration and PostgreSQL parameters.
    fn reconfigure(&self) -> Option<&dyn crate::cluster::Reconfigure> {
        Some(self)
    }

    /// [`LocalCluster::proxy_dsn`], when the cluster has a proxy.
    fn router_dsn(&self) -> Option<String> {
        self.proxy_dsn().ok()
    }

    /// The DSN of the node that leads now ([`NodeInfo::dsn`]).
    fn primary_dsn(&self) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async move {
            let t = LocalCluster::topology(self).await?;
            Ok(t.primary_name()
                .and_then(|n| self.node(n))
                .map(NodeInfo::dsn))
        })
    }

    /// The topology's changes, polled every 50 ms; with a proxy, its changes
    /// of route (`proxy routes to` / `proxy routes nowhere`), read from
    /// HAProxy's stats socket as often; and the RTO phase marks:
    /// `detection ended` (detail: the old leader) when Patroni's leader key
    /// is deleted or expires in etcd, `election ended` (detail: the new
    /// leader) when another member writes it — both watched, stamped when
    /// etcd tells — and `promotion ended` (detail: the node) when the new
    /// primary's PostgreSQL log says it accepts connections after a
    /// promotion, timed by the log line, with the promotion's steps
    /// (`promote requested`, `wal recovery ended`, `timeline selected`,
    /// `archive recovery complete`, `ready for connections`; detail
    /// `node: message`) as plain events. Without etcd the marks are missing,
    /// nothing else.
    fn events(self: Arc<Self>) -> BoxStream<'static, Event> {
        let every = Duration::from_millis(50);
        let mut streams = vec![
            leader_watch::leader_events(
                self.inner.etcd_client.clone(),
                etcd::leader_key(&self.inner.scope),
            ),
            log_tail::promotion_events(
                self.inner
                    .nodes
                    .iter()
                    .map(|n| (n.name.clone(), n.dir.join("pglog/postgresql.log")))
                    .collect(),
                log_tail::POLL,
            ),
        ];
        if let Ok(proxy) = &self.inner.proxy
            && proxy.socket.is_some()
        {
            streams.push(proxy::route_events(proxy.clone(), every));
        }
        streams.push(topology::poll_events(self, every));
        Box::pin(futures::stream::select_all(streams))
    }

    fn node_count(&self) -> usize {
        self.inner.nodes.len()
    }

    fn topology(&self) -> BoxFuture<'_, Result<Topology>> {
        Box::pin(LocalCluster::topology(self))
    }

    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<Topology>> {
        Box::pin(LocalCluster::wait_healthy(self, timeout))
    }

    /// Waits for health. A node whose Patroni is gone (a test killed it and its
    /// guard could not restart it) is started again first; a member that stays
    /// out of replication while another node leads (a diverged timeline
    /// pg_rewind cannot mend, a PostgreSQL that failed to start) is
    /// re-initialised from the leader through Patroni's `POST /reinitialize`,
    /// as an operator would. When that is not enough, the error names each
    /// member that is not healthy, its state and timeline, and what to do.
    fn repair(&self, timeout: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.repair_inner(timeout))
    }

    /// Sweeps cluster directories (and their processes) whose owning process is
    /// gone, beside this cluster's own.
    fn sweep(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let Some(root) = self.dir().parent().map(Path::to_path_buf) else {
                return Ok(Vec::new());
            };
            let swept = tokio::task::spawn_blocking(move || process::sweep(&root))
                .await
                .map_err(|source| Error::Task {
                    what: "the sweep task",
                    source,
                })?;
            Ok(swept.iter().map(|p| p.display().to_string()).collect())
        })
    }
}
