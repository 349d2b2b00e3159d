//! The built-in faults on a CNPG cluster, through the Kubernetes API:
//! [`DeletePrimary`] (a pod delete), [`Switchover`] (what `kubectl cnpg
//! promote` does) and [`Fence`] (CNPG's fencing annotation). Network and disk
//! faults go through Chaos Mesh ([`super::chaos_mesh`]). [`inject_builtin`]
//! is the target's dispatch: what the fault catalogue's `on_cnpg` column
//! says it does (`chaos-core`'s `cnpg_api` tests check they agree).

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DeleteParams};
use serde_json::{Value, json};

use super::crd::{Cluster, FENCED_INSTANCES_ANNOTATION, phase};
use super::safety::{self, Mutation};
use super::target::{CnpgCluster, cluster_resource};
use crate::error::{CnpgError, FaultError};
use crate::fault::{
    AnyGuard, Builtin, DeleteMode, DeletePrimary, Fault, FaultGuard, FaultInfo, Healed, Switchover,
};
use crate::slo::fmt_duration;
use crate::timeline::{Healing, Timestamp};
use crate::{Error, Result};

/// Injects a built-in fault the CNPG way: a pod delete, a promotion, or a
/// Chaos Mesh object; [`Error::Unsupported`] for the others.
pub(crate) async fn inject_builtin(target: &CnpgCluster, fault: Builtin) -> Result<AnyGuard> {
    match fault {
        Builtin::DeletePrimary(f) => Fault::<CnpgCluster>::inject(f, target)
            .await
            .map(AnyGuard::new),
        Builtin::Switchover(f) => Fault::<CnpgCluster>::inject(f, target)
            .await
            .map(AnyGuard::new),
        Builtin::PartitionNetwork(f) => Fault::<CnpgCluster>::inject(f, target)
            .await
            .map(AnyGuard::new),
        Builtin::ThrottleDisk(f) => Fault::<CnpgCluster>::inject(f, target)
            .await
            .map(AnyGuard::new),
        other => Err(other.kind().unsupported("cnpg")),
    }
}

/// How many times a write guarded by `resourceVersion` is retried after a
/// conflict (409), re-reading the `Cluster` each time.
const CONFLICT_RETRIES: usize = 5;

/// The annotation prefix (on the `Cluster`) recording which instances a run
/// fenced: `chaos.dev/fenced-<run id>: ["pod", …]`, so that a sweep can unfence
/// what a killed run left fenced.
const FENCE_RECORD_PREFIX: &str = "chaos.dev/fenced-";

/// Runs cleanup from a `Drop`: on a multi-thread runtime it blocks until
/// done; on a current-thread runtime it is spawned (and may not finish if the
/// runtime stops first); without a runtime it is only logged.
pub(crate) fn best_effort<F>(what: String, fut: F)
where
    F: Future<Output = Result<()>> + Send + 'static,
{
    let report = move |r: Result<()>, what: &str| match r {
        Ok(()) => tracing::info!(%what, "fault guard dropped: cleaned up"),
        Err(e) => tracing::error!(%what, error = %e, "fault guard dropped: cleanup failed"),
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            let r = tokio::task::block_in_place(|| h.block_on(fut));
            report(r, &what);
        }
        Ok(h) => {
            h.spawn(async move { report(fut.await, &what) });
        }
        Err(_) => {
            tracing::error!(%what, "fault guard dropped outside a Tokio runtime: not cleaned up; a later sweep removes it")
        }
    }
}

/// The current primary from a `Cluster`'s status.
pub(crate) fn primary_of(cluster: &Cluster, target: &CnpgCluster) -> Result<String> {
    let status = cluster.status.clone().unwrap_or_default();
    match status.current_primary {
        Some(p) if !p.is_empty() && !status.is_electing() => Ok(p),
        _ => Err(CnpgError::NoPrimary {
            namespace: target.namespace().to_string(),
            cluster: target.cluster_name().to_string(),
            phase: status.phase,
            target_primary: status.target_primary,
        }
        .into()),
    }
}

fn resource_version(cluster: &Cluster) -> Result<String> {
    cluster.metadata.resource_version.clone().ok_or_else(|| {
        CnpgError::NoResourceVersion {
            cluster: cluster.metadata.name.clone().unwrap_or_default(),
        }
        .into()
    })
}

/// Waits until pod `name` exists again (a new pod object, not the deleted
/// one with `old_uid`), then until the Cluster is healthy.
async fn wait_back(
    target: &CnpgCluster,
    name: &str,
    old_uid: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    if target.is_dry_run() {
        return Ok(());
    }
    let start = Instant::now();
    let pods: Api<Pod> = Api::namespaced(target.kube().client.clone(), target.namespace());
    loop {
        if let Ok(Some(p)) = pods.get_opt(name).await
            && p.metadata.uid.as_deref() != old_uid
        {
            break;
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: format!("pod {name} to be recreated"),
                waited: timeout,
                logs: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    target
        .wait_healthy(timeout.saturating_sub(start.elapsed()))
        .await
        .map(|_| ())
}

impl Fault<CnpgCluster> for DeletePrimary {
    type Guard = CnpgDeleteGuard;

    /// Deletes the pod `status.currentPrimary` names: with grace period 0 and
    /// background propagation for `kill()` (what `kubectl delete pod
    /// --grace-period=0 --force` sends), with the pod's own grace period for
    /// `graceful()` (CNPG's smart shutdown, `stopDelay`). Stamped in effect
    /// when the delete request is sent, not when the API server's answer
    /// arrives: the pod may be going before the answer is back, and the
    /// round-trip belongs to the outage, not before it. The round-trip is
    /// in the fault's mode (`kill, API round-trip 0.153s`).
    async fn inject(self, target: &CnpgCluster) -> Result<CnpgDeleteGuard> {
        let cluster = target.cluster().await?;
        let primary = primary_of(&cluster, target)?;
        let pods: Api<Pod> = Api::namespaced(target.kube().client.clone(), target.namespace());
        let uid = pods
            .get_opt(&primary)
            .await
            .ok()
            .flatten()
            .and_then(|p| p.metadata.uid);
        let resource = ApiResource::erase::<Pod>(&());
        let m = match self.mode() {
            DeleteMode::Kill => Mutation::force_delete(resource, &primary),
            DeleteMode::Graceful => Mutation::delete(resource, &primary, DeleteParams::default()),
        };
        let (injected_at, wall) = (Instant::now(), Timestamp::now());
        target.kube().mutate(m).await?;
        let round_trip = injected_at.elapsed();
        tracing::info!(pod = %primary, mode = ?self.mode(), ?round_trip, "CNPG primary pod deleted");
        let mut mode = match self.mode() {
            DeleteMode::Kill => "kill".to_string(),
            DeleteMode::Graceful => "graceful".to_string(),
        };
        if !target.is_dry_run() {
            mode.push_str(&format!(", API round-trip {}", fmt_duration(round_trip)));
        }
        Ok(CnpgDeleteGuard {
            info: FaultInfo {
                kind: "delete-primary".into(),
                mode,
                victim: Some(primary.clone()),
                injected_at: wall,
            },
            target: target.clone(),
            pod: primary,
            uid,
            injected_at,
            timeout: self.rejoin_wait().max(Duration::from_secs(180)),
        })
    }
}

/// Guard of [`DeletePrimary`] on CNPG: nothing to undo (the operator
/// recreates the pod); healing waits until it is back and the Cluster healthy.
#[derive(Debug)]
pub struct CnpgDeleteGuard {
    info: FaultInfo,
    target: CnpgCluster,
    pod: String,
    uid: Option<String>,
    injected_at: Instant,
    timeout: Duration,
}

impl FaultGuard for CnpgDeleteGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    async fn heal(self) -> Result<Healed> {
        wait_back(&self.target, &self.pod, self.uid.as_deref(), self.timeout).await?;
        Ok(Healed {
            event: Healing::NodeRejoined,
            at: Timestamp::now(),
            detail: Some(self.pod.clone()),
        })
    }
}

/// The body `kubectl cnpg promote` sends (merge patch of the status
/// subresource), guarded by `resourceVersion`.
pub(crate) fn promote_patch(resource_version: &str, candidate: &str, at: Timestamp) -> Value {
    json!({
        "metadata": { "resourceVersion": resource_version },
        "status": {
            "targetPrimary": candidate,
            "targetPrimaryTimestamp": at.to_string(),
            "phase": phase::SWITCHOVER,
            "phaseReason": format!("Switching over to {candidate}"),
        }
    })
}

/// The standby to promote when none was named: the healthy one whose WAL is
/// furthest (through `pg_stat_replication` on the primary, where the
/// read-write DSN answers), else the first healthy standby by name.
async fn most_advanced_replica(
    target: &CnpgCluster,
    cluster: &Cluster,
    primary: &str,
) -> Result<String> {
    let status = cluster.status.clone().unwrap_or_default();
    let healthy: BTreeSet<&String> = status
        .instances_in("healthy")
        .iter()
        .filter(|n| *n != primary)
        .collect();
    if !target.is_dry_run()
        && let Ok(client) = crate::pg::connect(
            &crate::cluster::Target::rw_dsn(target),
            Duration::from_secs(5),
        )
        .await
        && let Ok(rows) = client
            .query(
                "SELECT application_name FROM pg_stat_replication \
                 ORDER BY (sync_state IN ('sync', 'quorum')) DESC, flush_lsn DESC NULLS LAST",
                &[],
            )
            .await
    {
        for row in rows {
            let name: String = row.get(0);
            if healthy.contains(&name) {
                return Ok(name);
            }
        }
    }
    healthy.into_iter().next().cloned().ok_or_else(|| {
        CnpgError::NoHealthyStandby {
            cluster: target.cluster_name().to_string(),
        }
        .into()
    })
}

impl Fault<CnpgCluster> for Switchover {
    type Guard = CnpgSwitchoverGuard;

    /// Promotes the named standby, or the most advanced one, as `kubectl cnpg
    /// promote` does: a merge patch of the Cluster's status with
    /// `targetPrimary`, `targetPrimaryTimestamp`, the phase "Switchover in
    /// progress" and its reason, guarded by `metadata.resourceVersion`. A
    /// conflict (409) re-reads the Cluster and retries.
    async fn inject(self, target: &CnpgCluster) -> Result<CnpgSwitchoverGuard> {
        let mut attempt = 0;
        let (primary, candidate) = loop {
            attempt += 1;
            let cluster = target.cluster().await?;
            let primary = primary_of(&cluster, target)?;
            let status = cluster.status.clone().unwrap_or_default();
            let candidate = match self.candidate_name() {
                Some(n) => n.to_string(),
                None => most_advanced_replica(target, &cluster, &primary).await?,
            };
            if candidate == primary {
                return Err(FaultError::AlreadyPrimary { node: candidate }.into());
            }
            if !status.instance_names.is_empty() && !status.instance_names.contains(&candidate) {
                return Err(CnpgError::NoInstance {
                    asked_by: "Switchover::to",
                    namespace: target.namespace().to_string(),
                    cluster: target.cluster_name().to_string(),
                    name: candidate,
                    instances: status.instance_names,
                }
                .into());
            }
            let body = promote_patch(&resource_version(&cluster)?, &candidate, Timestamp::now());
            match target
                .kube()
                .mutate(Mutation::patch_status(
                    cluster_resource(),
                    target.cluster_name(),
                    body,
                ))
                .await
            {
                Ok(_) => break (primary, candidate),
                Err(e) if safety::is_status(&e, 409) && attempt <= CONFLICT_RETRIES => {
                    tracing::info!(attempt, "Cluster changed under the switchover: re-reading");
                }
                Err(e) => return Err(e),
            }
        };
        let injected_at = Instant::now();
        tracing::info!(from = %primary, to = %candidate, "CNPG switchover requested");
        Ok(CnpgSwitchoverGuard {
            info: FaultInfo {
                kind: "switchover".into(),
                mode: format!("to {candidate}"),
                victim: Some(primary.clone()),
                injected_at: Timestamp::now(),
            },
            target: target.clone(),
            old_primary: primary,
            candidate,
            injected_at,
            timeout: self.rejoin_wait().max(Duration::from_secs(180)),
        })
    }
}

/// Guard of [`Switchover`] on CNPG: nothing to undo; healing waits until the
/// candidate is `currentPrimary` and the Cluster is healthy.
#[derive(Debug)]
pub struct CnpgSwitchoverGuard {
    info: FaultInfo,
    target: CnpgCluster,
    old_primary: String,
    candidate: String,
    injected_at: Instant,
    timeout: Duration,
}

impl FaultGuard for CnpgSwitchoverGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    async fn heal(self) -> Result<Healed> {
        if !self.target.is_dry_run() {
            let start = Instant::now();
            loop {
                if let Ok(c) = self.target.cluster().await
                    && c.status.and_then(|s| s.current_primary).as_deref()
                        == Some(self.candidate.as_str())
                {
                    break;
                }
                if start.elapsed() >= self.timeout {
                    return Err(Error::Timeout {
                        what: format!("{} to become currentPrimary", self.candidate),
                        waited: self.timeout,
                        logs: String::new(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            self.target
                .wait_healthy(self.timeout.saturating_sub(start.elapsed()))
                .await?;
        }
        Ok(Healed {
            event: Healing::SwitchedOver,
            at: Timestamp::now(),
            detail: Some(format!("{} -> {}", self.old_primary, self.candidate)),
        })
    }
}

/// Fences a CNPG instance (by default the current primary) with CNPG's
/// `cnpg.io/fencedInstances` annotation on the `Cluster`: PostgreSQL stops on
/// it and the pod stays, not Ready — and CNPG does **not** fail over a fenced
/// primary. The write outage lasts until the guard unfences it. The change is
/// a read-modify-write of the annotation guarded by `resourceVersion`
/// (conflicts are retried); the run records what it fenced in a
/// `chaos.dev/fenced-<run>` annotation so that a sweep can unfence what a
/// killed run left fenced.
///
/// ```no_run
/// # async fn demo(cluster: &chaos_core::cluster::cnpg::CnpgCluster) -> chaos_core::Result<()> {
/// use chaos_core::cluster::cnpg::Fence;
/// use chaos_core::fault::{Fault, FaultGuard};
///
/// let guard = Fence::primary().inject(cluster).await?;
/// tokio::time::sleep(std::time::Duration::from_secs(10)).await;
/// guard.heal().await?; // unfenced; waits until the Cluster is healthy
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Fence {
    instance: Option<String>,
    heal_timeout: Duration,
}

impl Fence {
    /// Fences the instance that is primary at injection.
    pub fn primary() -> Self {
        Fence {
            instance: None,
            heal_timeout: Duration::from_secs(180),
        }
    }

    /// Fences instance (pod) `name`.
    pub fn instance(name: impl Into<String>) -> Self {
        Fence {
            instance: Some(name.into()),
            ..Self::primary()
        }
    }

    /// How long healing waits for the Cluster to be healthy (default 180 s).
    pub fn heal_timeout(mut self, timeout: Duration) -> Self {
        self.heal_timeout = timeout;
        self
    }
}

/// The instances listed in a `cnpg.io/fencedInstances` value (a JSON array).
pub(crate) fn fenced_list(cluster: &Cluster) -> Vec<String> {
    annotation_list(cluster, FENCED_INSTANCES_ANNOTATION)
}

fn annotation_list(cluster: &Cluster, key: &str) -> Vec<String> {
    cluster
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| serde_json::from_str::<Vec<String>>(v).ok())
        .unwrap_or_default()
}

/// The merge patch that sets the fenced list (removing the annotation when
/// empty) and this run's record, guarded by `resourceVersion`.
fn fence_patch(rv: &str, fenced: &[String], record_key: &str, record: &[String]) -> Value {
    let list = |l: &[String]| {
        if l.is_empty() {
            Value::Null
        } else {
            Value::String(serde_json::to_string(l).unwrap_or_default())
        }
    };
    json!({
        "metadata": {
            "resourceVersion": rv,
            "annotations": {
                FENCED_INSTANCES_ANNOTATION: list(fenced),
                record_key: list(record),
            }
        }
    })
}

/// Adds (`fence`) or removes `pod` from the fenced list and `run`'s record, a
/// read-modify-write of the Cluster retried on conflicts.
async fn set_fenced(target: &CnpgCluster, run: &str, pods: &[String], fence: bool) -> Result<()> {
    let record_key = format!("{FENCE_RECORD_PREFIX}{run}");
    for attempt in 1.. {
        let cluster = target.cluster().await?;
        let mut fenced = fenced_list(&cluster);
        let mut record = annotation_list(&cluster, &record_key);
        for pod in pods {
            if fence {
                if !fenced.contains(pod) {
                    fenced.push(pod.clone());
                }
                if !record.contains(pod) {
                    record.push(pod.clone());
                }
            } else {
                fenced.retain(|p| p != pod);
                record.retain(|p| p != pod);
            }
        }
        let body = fence_patch(&resource_version(&cluster)?, &fenced, &record_key, &record);
        match target
            .kube()
            .mutate(Mutation::patch(
                cluster_resource(),
                target.cluster_name(),
                body,
            ))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if safety::is_status(&e, 409) && attempt <= CONFLICT_RETRIES => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Unfences what runs that are gone (not in `live`) left fenced. Returns what
/// was done.
pub(crate) async fn sweep_fences(
    target: &CnpgCluster,
    live: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let cluster = target.cluster().await?;
    let stale: Vec<(String, Vec<String>)> = cluster
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_keys()
        .filter_map(|k| {
            let run = k.strip_prefix(FENCE_RECORD_PREFIX)?.to_string();
            (!live.contains(&run)).then(|| {
                let pods = annotation_list(&cluster, &k);
                (run, pods)
            })
        })
        .collect();
    let mut done = Vec::new();
    for (run, pods) in stale {
        set_fenced(target, &run, &pods, false).await?;
        done.push(format!(
            "unfence {} on clusters/{} (run {run})",
            pods.join(", "),
            target.cluster_name()
        ));
    }
    Ok(done)
}

impl Fault<CnpgCluster> for Fence {
    type Guard = FenceGuard;

    async fn inject(self, target: &CnpgCluster) -> Result<FenceGuard> {
        let pod = match self.instance {
            Some(p) => p,
            None => primary_of(&target.cluster().await?, target)?,
        };
        set_fenced(target, target.run_id(), std::slice::from_ref(&pod), true).await?;
        let injected_at = Instant::now();
        tracing::info!(pod = %pod, "CNPG instance fenced");
        Ok(FenceGuard {
            info: FaultInfo {
                kind: "fence".into(),
                mode: format!("{FENCED_INSTANCES_ANNOTATION} += {pod}"),
                victim: Some(pod.clone()),
                injected_at: Timestamp::now(),
            },
            target: target.clone(),
            pod,
            injected_at,
            timeout: self.heal_timeout,
            healed: false,
        })
    }
}

impl Fault<dyn crate::cluster::Target> for Fence {
    type Guard = AnyGuard;

    async fn inject(self, target: &dyn crate::cluster::Target) -> Result<AnyGuard> {
        match target.downcast_ref::<CnpgCluster>() {
            Some(c) => Fault::<CnpgCluster>::inject(self, c)
                .await
                .map(AnyGuard::new),
            None => Err(Error::Unsupported {
                fault: "fence".into(),
                target: target.kind().into(),
                supported_by: "cnpg (CloudNativePG's fencing annotation)".into(),
            }),
        }
    }
}

/// Guard of [`Fence`]: removes the instance from `cnpg.io/fencedInstances`.
#[derive(Debug)]
pub struct FenceGuard {
    info: FaultInfo,
    target: CnpgCluster,
    pod: String,
    injected_at: Instant,
    timeout: Duration,
    healed: bool,
}

impl FaultGuard for FenceGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    /// Unfences the instance and waits until the Cluster is healthy.
    async fn heal(mut self) -> Result<Healed> {
        self.healed = true;
        set_fenced(
            &self.target,
            self.target.run_id(),
            std::slice::from_ref(&self.pod),
            false,
        )
        .await?;
        if !self.target.is_dry_run() {
            self.target.wait_healthy(self.timeout).await?;
        }
        Ok(Healed {
            event: Healing::Unfenced,
            at: Timestamp::now(),
            detail: Some(self.pod.clone()),
        })
    }
}

impl Drop for FenceGuard {
    fn drop(&mut self) {
        if self.healed {
            return;
        }
        let target = self.target.clone();
        let pod = self.pod.clone();
        best_effort(format!("unfencing {pod}"), async move {
            set_fenced(&target, target.run_id(), &[pod], false).await
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_promote_patch_is_the_fixtures_plus_the_lock() {
        let at: Timestamp =
            serde_json::from_value(json!("2026-08-21T11:00:00.000123Z")).expect("time");
        let body = promote_patch("12345", "cluster-example-3", at);
        let fixture: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/reference/fixtures/cnpg_promote_status_merge_patch.json"
            ))
            .expect("fixture"),
        )
        .expect("json");
        assert_eq!(body["status"], fixture["status"]);
        assert_eq!(body["metadata"]["resourceVersion"], "12345");
    }

    #[test]
    fn fence_patches_remove_the_annotation_when_empty() {
        let p = fence_patch("7", &[], "chaos.dev/fenced-r", &[]);
        assert_eq!(
            p["metadata"]["annotations"][FENCED_INSTANCES_ANNOTATION],
            Value::Null
        );
        let p = fence_patch("7", &["a".into()], "chaos.dev/fenced-r", &["a".into()]);
        assert_eq!(
            p["metadata"]["annotations"][FENCED_INSTANCES_ANNOTATION],
            "[\"a\"]"
        );
    }
}
