//! [`CnpgCluster`]: a CloudNativePG `Cluster` as a [`Target`].

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DeleteParams, ListParams, LogParams};
use serde_json::json;
use tokio::task::JoinHandle;

use super::access::{self, Permission};
use super::builder::read_cluster;
use super::crd::{self, Cluster};
use super::safety::{self, Kube, MANAGED_BY, MANAGED_BY_LABEL, Mutation, RUN_LABEL};
use crate::cluster::{Target, Topology};
use crate::dsn::redact;
use crate::error::CnpgError;
use crate::timeline::{Event, Timestamp};
use crate::{Error, Result};

/// At most this much of a new primary's log is read per request.
const PROMOTION_LOG_BYTES: i64 = 8 << 20;

/// How long a run's liveness `Lease` lasts without renewal; a sweep treats
/// the objects of a run whose lease is older as left behind.
const LEASE_SECONDS: i32 = 60;

/// The `Cluster` resource, for dynamic requests.
pub(crate) fn cluster_resource() -> ApiResource {
    ApiResource::erase::<Cluster>(&())
}

/// A CloudNativePG `Cluster` reached through the Kubernetes API. Cloning
/// shares it.
///
/// Topology comes from the `Cluster`'s `status` (`currentPrimary`,
/// `targetPrimary`, `instancesStatus`, timeline, phase), never from the role
/// label alone, which is absent mid-failover. Writes reach the cluster through
/// an explicit DSN or through a port-forward (via the API server) to the pod
/// the `-rw` Service (or the Pooler's Service) selects when each connection
/// opens, with the `<cluster>-app` Secret's credentials.
///
/// Nothing is created, patched or deleted outside an allowed context and
/// namespace (`CHAOS_ALLOW` or the namespace label `chaos.dev/allow=true`):
/// building the target is refused there, before any probe writes;
/// `CHAOS_DRY_RUN=1` prints every change instead of making it. Faults:
/// [`DeletePrimary`](crate::fault::DeletePrimary),
/// [`Switchover`](crate::fault::Switchover), [`Fence`](super::Fence),
/// [`PartitionNetwork`](crate::fault::PartitionNetwork) and
/// [`ThrottleDisk`](crate::fault::ThrottleDisk) (Chaos Mesh), and
/// [`Shell`](crate::fault::Shell).
///
/// ```no_run
/// # async fn demo() -> chaos_core::Result<()> {
/// use chaos_core::cluster::Target;
/// use chaos_core::cluster::cnpg::CnpgCluster;
///
/// let cluster = CnpgCluster::builder("pg-chaos", "cluster-example")
///     .context("kind-chaos")
///     .allow("kind-chaos/pg-chaos")
///     .build()
///     .await?;
/// let topology = cluster.wait_healthy(std::time::Duration::from_secs(120)).await?;
/// println!("primary: {:?}", topology.primary_name());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CnpgCluster {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) kube: Kube,
    pub(super) cluster: String,
    pub(super) pooler: Option<String>,
    pub(super) service: String,
    pub(super) rw_dsn: String,
    pub(super) forward: Option<JoinHandle<()>>,
    pub(super) instances: usize,
    pub(super) run_id: String,
    pub(super) apiserver_ips: Vec<String>,
    pub(super) lease: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(f) = &self.forward {
            f.abort();
        }
        if let Ok(mut l) = self.lease.try_lock()
            && let Some(task) = l.take()
        {
            task.abort();
            // The run is over: remove its lease, best effort.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let kube = self.kube.clone();
                let name = lease_name(&self.run_id);
                rt.spawn(async move {
                    let _ = kube
                        .mutate(Mutation::delete(
                            ApiResource::erase::<Lease>(&()),
                            &name,
                            DeleteParams::default(),
                        ))
                        .await;
                });
            }
        }
    }
}

impl fmt::Debug for CnpgCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CnpgCluster")
            .field("context", &self.inner.kube.context)
            .field("namespace", &self.inner.kube.namespace)
            .field("cluster", &self.inner.cluster)
            .field("pooler", &self.inner.pooler)
            .field("rw_dsn", &redact(&self.inner.rw_dsn))
            .field("dry_run", &self.inner.kube.dry_run())
            .field("run_id", &self.inner.run_id)
            .finish()
    }
}

fn lease_name(run_id: &str) -> String {
    format!("chaos-run-{run_id}")
}

impl CnpgCluster {
    /// The `Cluster`'s name.
    pub fn cluster_name(&self) -> &str {
        &self.inner.cluster
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.kube.namespace
    }

    /// The kube context's name.
    pub fn context(&self) -> &str {
        &self.inner.kube.context
    }

    /// The run id that labels every object this target creates.
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// Whether this is a dry run.
    pub fn is_dry_run(&self) -> bool {
        self.inner.kube.dry_run()
    }

    /// What a dry run would have created, patched or deleted so far, one
    /// line per object (also printed to stderr as it happens).
    pub fn dry_run_plan(&self) -> Vec<String> {
        self.inner.kube.planned()
    }

    /// The Service writes go through (`<cluster>-rw` or the Pooler's).
    pub fn write_service(&self) -> &str {
        &self.inner.service
    }

    /// The `Pooler` writes go through, if one was given.
    pub(crate) fn pooler(&self) -> Option<&str> {
        self.inner.pooler.as_deref()
    }

    pub(crate) fn kube(&self) -> &Kube {
        &self.inner.kube
    }

    pub(crate) fn apiserver_ips(&self) -> &[String] {
        &self.inner.apiserver_ips
    }

    /// The `Cluster` object now.
    ///
    /// # Errors
    /// [`Error::KubeNotFound`] when there is none of that name,
    /// [`Error::KubeForbidden`] when it may not be read, [`Error::Kube`] when
    /// the request fails otherwise.
    pub async fn cluster(&self) -> Result<Cluster> {
        read_cluster(&self.inner.kube, &self.inner.cluster).await
    }

    /// The current primary as `status.currentPrimary` says.
    ///
    /// # Errors
    /// [`CnpgError::NoPrimary`] while there is none (a failover is electing).
    pub async fn current_primary(&self) -> Result<String> {
        let c = self.cluster().await?;
        let status = c.status.unwrap_or_default();
        match status.current_primary {
            Some(p) if !p.is_empty() && !status.is_electing() => Ok(p),
            _ => Err(CnpgError::NoPrimary {
                namespace: self.inner.kube.namespace.clone(),
                cluster: self.inner.cluster.clone(),
                phase: status.phase,
                target_primary: status.target_primary,
            }
            .into()),
        }
    }

    /// The finer promotion marks ([`status::promotion_log_marks`](super::status::promotion_log_marks))
    /// in the `postgres` container log of pod `pod`, from `since` on; `None`
    /// when the log cannot be read (no `pods/log` permission, the pod gone,
    /// …), which is only traced at debug level.
    pub(crate) async fn promotion_log_marks(
        &self,
        pod: &str,
        since: Timestamp,
    ) -> Option<Vec<Event>> {
        let pods: Api<Pod> =
            Api::namespaced(self.inner.kube.client.clone(), &self.inner.kube.namespace);
        // `sinceTime` goes out rounded to the second: ask from a second
        // earlier and filter exactly here.
        let from = since
            .system_time()
            .checked_sub(Duration::from_secs(1))
            .and_then(|t| k8s_openapi::jiff::Timestamp::try_from(t).ok());
        let lp = LogParams {
            container: Some("postgres".into()),
            since_time: from,
            timestamps: true,
            limit_bytes: Some(PROMOTION_LOG_BYTES),
            ..LogParams::default()
        };
        match pods.logs(pod, &lp).await {
            Ok(text) => Some(super::status::promotion_log_marks(
                text.lines(),
                Some(since),
            )),
            Err(e) => {
                tracing::debug!(
                    pod = %pod, error = %e,
                    "the new primary's log is not readable: no finer promotion marks"
                );
                None
            }
        }
    }

    /// The topology from the `Cluster`'s status.
    ///
    /// # Errors
    /// [`Error::Kube`] when the `Cluster` cannot be read.
    pub async fn topology(&self) -> Result<Topology> {
        Ok(topology_of(&self.cluster().await?))
    }

    /// Waits until the phase is "Cluster in healthy state" with every
    /// instance ready.
    ///
    /// # Errors
    /// [`Error::Timeout`] with the last phase seen.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<Topology> {
        let start = Instant::now();
        let mut last;
        loop {
            match self.cluster().await {
                Ok(c) => {
                    let s = c.status.clone().unwrap_or_default();
                    let healthy = s.phase.as_deref() == Some(crd::phase::HEALTHY)
                        && s.ready_instances.is_some()
                        && s.ready_instances == Some(c.spec.instances);
                    if healthy {
                        return Ok(topology_of(&c));
                    }
                    last = format!(
                        "phase {:?}, {}/{} instances ready",
                        s.phase.unwrap_or_default(),
                        s.ready_instances.unwrap_or(0),
                        c.spec.instances
                    );
                }
                Err(e) => last = e.to_string(),
            }
            if start.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: format!(
                        "Cluster {}/{} to be healthy (last: {last})",
                        self.inner.kube.namespace, self.inner.cluster
                    ),
                    waited: timeout,
                    logs: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Makes sure the run's liveness `Lease` exists and is renewed, before
    /// the first object of the run is created: a later sweep treats objects
    /// whose run has no live lease as left behind.
    ///
    /// # Errors
    /// As [`Kube::mutate`].
    pub(crate) async fn ensure_lease(&self) -> Result<()> {
        let mut slot = self.inner.lease.lock().await;
        if slot.is_some() || self.inner.kube.dry_run() {
            return Ok(());
        }
        let name = lease_name(&self.inner.run_id);
        let body = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": { "name": name, "labels": safety::labels(&self.inner.run_id) },
            "spec": {
                "holderIdentity": format!("chaos/{}", std::process::id()),
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": micro_time(SystemTime::now()),
            }
        });
        let lease = ApiResource::erase::<Lease>(&());
        self.inner
            .kube
            .mutate(Mutation::create(lease.clone(), body))
            .await?;
        let kube = self.inner.kube.clone();
        *slot = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(LEASE_SECONDS as u64 / 3)).await;
                let patch = json!({ "spec": { "renewTime": micro_time(SystemTime::now()) } });
                if let Err(e) = kube
                    .mutate(Mutation::patch(lease.clone(), &name, patch))
                    .await
                {
                    tracing::warn!(error = %e, "renewing the run's lease failed");
                }
            }
        }));
        Ok(())
    }

    /// Removes what runs that are gone left behind: Chaos Mesh objects and
    /// leases labelled `app.kubernetes.io/managed-by=chaos` whose run's lease
    /// expired (or is missing), and fence entries they added to the Cluster.
    /// Returns what was removed (what would be, in a dry run).
    ///
    /// # Errors
    /// [`Error::NotAllowed`] when something must be removed in a place not
    /// allowed; [`Error::Kube`] when listing or deleting fails.
    pub async fn sweep(&self) -> Result<Vec<String>> {
        let kube = &self.inner.kube;
        let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
        let lp = ListParams::default().labels(&selector);
        // Live runs: leases renewed within their duration.
        let lease_res = ApiResource::erase::<Lease>(&());
        let mut live = BTreeSet::from([self.inner.run_id.clone()]);
        let mut leftovers: Vec<(ApiResource, String, String)> = Vec::new();
        let leases: Api<Lease> = Api::namespaced(kube.client.clone(), &kube.namespace);
        let now = SystemTime::now();
        for l in leases.list(&lp).await.map_err(|e| {
            access::request_error(
                &kube.context,
                &Permission::of("list", &lease_res, &kube.namespace),
                "listing the library's leases",
                e,
            )
        })? {
            let run = run_of(&l.metadata.labels);
            let spec = l.spec.unwrap_or_default();
            let expires = spec.renew_time.map(|t| {
                SystemTime::from(t.0)
                    + Duration::from_secs(
                        u64::try_from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS))
                            .unwrap_or(60),
                    )
            });
            match (run, l.metadata.name) {
                (Some(run), _) if expires.is_some_and(|e| e > now) => {
                    live.insert(run);
                }
                (Some(run), Some(name)) => leftovers.push((lease_res.clone(), name, run)),
                _ => {}
            }
        }
        for res in [
            super::chaos_mesh::network_chaos_resource(),
            super::chaos_mesh::io_chaos_resource(),
        ] {
            let list = match kube.api(&res).list(&lp).await {
                Ok(l) => l,
                // Chaos Mesh not installed: nothing of it to sweep.
                Err(e) if safety::kube_not_found(&e) => continue,
                Err(e) => {
                    return Err(access::request_error(
                        &kube.context,
                        &Permission::of("list", &res, &kube.namespace),
                        &format!("listing {}", res.plural),
                        e,
                    ));
                }
            };
            for o in list {
                if let (Some(run), Some(name)) = (run_of(&o.metadata.labels), o.metadata.name)
                    && !live.contains(&run)
                {
                    leftovers.push((res.clone(), name, run));
                }
            }
        }
        let mut swept = Vec::new();
        // Chaos objects first, leases last: an interrupted sweep leaves the
        // lease that lets the next sweep find the rest.
        leftovers.sort_by_key(|(r, _, _)| r.plural == "leases");
        for (res, name, run) in leftovers {
            let m = Mutation::delete(res, &name, DeleteParams::default());
            let what = format!("{} (run {run})", m.describe());
            match kube.mutate(m).await {
                Ok(_) => swept.push(what),
                Err(e) if safety::is_status(&e, 404) => {}
                Err(e) => return Err(e),
            }
        }
        swept.extend(super::faults::sweep_fences(self, &live).await?);
        swept.extend(self.restore_recorded(&live, false).await?);
        if !swept.is_empty() {
            tracing::info!(?swept, "swept what earlier runs left behind");
        }
        Ok(swept)
    }
}

fn run_of(labels: &Option<std::collections::BTreeMap<String, String>>) -> Option<String> {
    labels.as_ref().and_then(|l| l.get(RUN_LABEL)).cloned()
}

/// A Kubernetes `MicroTime`: RFC 3339 with microseconds.
pub(crate) fn micro_time(t: SystemTime) -> String {
    Timestamp::from(t).to_string()
}

/// The topology the `Cluster`'s status describes (see
/// [`status::topology`](super::status::topology)).
pub(crate) fn topology_of(c: &Cluster) -> Topology {
    super::status::topology(c, None)
}

impl Target for CnpgCluster {
    fn kind(&self) -> &'static str {
        "cnpg"
    }

    /// `CloudNativePG cluster <namespace>/<name> (context <context>)`.
    fn describe(&self) -> String {
        format!(
            "CloudNativePG cluster {}/{} (context {})",
            self.namespace(),
            self.cluster_name(),
            self.context()
        )
    }

    /// A pod delete, a promotion or a Chaos Mesh object (see
    /// `cluster::cnpg::faults`); the others are unsupported.
    fn inject_builtin(
        &self,
        fault: crate::fault::Builtin,
        _arg: Option<String>,
    ) -> BoxFuture<'_, Result<crate::fault::AnyGuard>> {
        Box::pin(super::faults::inject_builtin(self, fault))
    }

    /// [`CnpgCluster::dry_run_plan`] with `--dry-run` (`CHAOS_DRY_RUN=1`).
    fn dry_run_plan(&self) -> Option<Vec<String>> {
        self.is_dry_run().then(|| CnpgCluster::dry_run_plan(self))
    }

    fn advise<'a>(&'a self, slo: &'a crate::slo::Slo) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move {
            match self.cluster().await {
                Ok(c) => super::advisor::advise(&c.spec, slo)
                    .iter()
                    .map(|a| format!("CNPG {a}"))
                    .collect(),
                Err(e) => vec![format!(
                    "could not read the Cluster to check its configuration against the SLO: {e}"
                )],
            }
        })
    }

    /// The measured advisor ([`advisor::advise_run`](super::advisor::advise_run))
    /// on the Cluster's spec as it is after the run; empty (the advice read
    /// before the run stays) when the Cluster cannot be read.
    fn advise_run<'a>(
        &'a self,
        slo: &'a crate::slo::Slo,
        report: &'a crate::report::Report,
    ) -> BoxFuture<'a, Vec<crate::report::Finding>> {
        Box::pin(async move {
            match self.cluster().await {
                Ok(c) => super::advisor::advise_run(&c.spec, slo, report),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the Cluster to attribute the RTO");
                    Vec::new()
                }
            }
        })
    }

    fn rw_dsn(&self) -> String {
        self.inner.rw_dsn.clone()
    }

    fn node_count(&self) -> usize {
        self.inner.instances
    }

    fn topology(&self) -> BoxFuture<'_, Result<Topology>> {
        Box::pin(CnpgCluster::topology(self))
    }

    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<Topology>> {
        Box::pin(CnpgCluster::wait_healthy(self, timeout))
    }

    fn sweep(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(CnpgCluster::sweep(self))
    }

    /// The `Cluster` resource's spec (`spec.primaryLease.leaseDurationSeconds`, …).
    fn reconfigure(&self) -> Option<&dyn crate::cluster::Reconfigure> {
        Some(self)
    }

    /// The local forward (or the explicit DSN) always reaches the primary.
    fn router_dsn(&self) -> Option<String> {
        Some(self.inner.rw_dsn.clone())
    }

    /// Topology changes (`primary lost`, `new primary observed`, members
    /// down and back) and the RTO phase marks ([`Phase::end_event`](crate::timeline::Phase::end_event):
    /// detection, election, promotion, routing) of each change of primary,
    /// computed from the `Cluster`'s statuses and Events and the moment the
    /// `-rw` Service (with a Pooler: the pooler's backend) first points at
    /// the new primary, all watched, each stamped when it arrives (see
    /// `cluster::cnpg::watch`).
    ///
    /// Once `currentPrimary` names a new pod, its `postgres` log (read
    /// through the API, `pods/log`) adds the finer promotion marks of
    /// [`status::promotion_log_marks`](super::status::promotion_log_marks)
    /// (`promote requested`, `wal recovery ended`, `timeline selected`,
    /// `archive recovery complete`, `ready for connections`), those since the
    /// change began, each once per promotion. Where the log is not readable
    /// they are left out.
    fn events(self: Arc<Self>) -> BoxStream<'static, Event> {
        super::watch::events((*self).clone())
    }
}
