//! Network and disk faults on a CNPG cluster through Chaos Mesh
//! (`NetworkChaos`, `IOChaos`, `chaos-mesh.org/v1alpha1`).
//!
//! Chaos Mesh resolves its selectors once, when the object is created, so
//! every object here selects pods **by name** (`selector.pods`), resolved
//! from `status.currentPrimary` at injection (or the instance a fault names):
//! a fault that must follow a new primary injects again and creates a new
//! object. Every object carries the labels `app.kubernetes.io/managed-by=chaos`
//! and `chaos.dev/run=<run id>`; its guard deletes it (Chaos Mesh recovers the
//! pods before its finalizer lets the object go), and a later run's sweep
//! deletes what a killed run left.
//!
//! ## What it takes for CNPG to fail over on a partition
//!
//! CNPG fails over when the primary's pod is **not Ready** to Kubernetes (or
//! gone); while the kubelet still reports it Ready, an operator that cannot
//! reach the instance only records `PrimaryStatusCheckFailed` and waits. A
//! partition between the primary and its replicas alone therefore stalls
//! synchronous commits without a failover
//! ([`PartitionNetwork::primary_from_replicas`]). So
//! [`PartitionNetwork::isolate_primary`] cuts, both ways, the primary pod from
//!
//! - the other instances (replication, and the instance manager's peer checks);
//! - the API server — its in-cluster ClusterIP and endpoint addresses, read
//!   from the `kubernetes` Service and Endpoints in `default` or given with
//!   `CHAOS_KUBE_APISERVER_IPS` — so CNPG's liveness isolation check (on by
//!   default since 1.27: a primary that reaches neither the API server nor
//!   its peers fails its liveness probe) restarts it;
//! - its node's address (`status.hostIP`), where the kubelet's probes come
//!   from, so the readiness probe fails and the pod turns not Ready.
//!
//! The operator then marks the primary failing and promotes the most advanced
//! replica. Clients through the `-rw` Service lose the old primary as soon as
//! its endpoint is removed.
//!
//! [`PartitionNetwork::node`] partitions that instance (pod) instead of the
//! primary, and [`PartitionNetwork::direction`] becomes the `NetworkChaos`'s
//! `direction`, seen from the partitioned pod: [`Direction::Outbound`] is
//! `to` (what it sends to the peers and addresses is dropped),
//! [`Direction::Inbound`] is `from` (what they send to it), and
//! [`Direction::Both`] is `both`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject};
use serde_json::{Value, json};

use super::access::{self, Permission};
use super::crd::Cluster;
use super::faults::{best_effort, primary_of};
use super::safety::{self, Mutation};
use super::target::CnpgCluster;
use crate::error::CnpgError;
use crate::fault::{
    Direction, Fault, FaultGuard, FaultInfo, FaultKind, Healed, PartitionNetwork, ThrottleDisk,
};
use crate::timeline::{Healing, Timestamp};
use crate::{Error, Result};

/// The API version of the Chaos Mesh objects created here.
pub const API_VERSION: &str = "chaos-mesh.org/v1alpha1";
/// Where CNPG mounts the data volume (`PGDATA` is `pgdata` below it).
pub const DATA_VOLUME: &str = "/var/lib/postgresql/data";
/// Where CNPG mounts the WAL volume when the Cluster has `walStorage`.
pub const WAL_VOLUME: &str = "/var/lib/postgresql/wal";

/// How long injection waits for Chaos Mesh's `AllInjected` condition.
const INJECT_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn network_chaos_resource() -> ApiResource {
    chaos_resource("NetworkChaos", "networkchaos")
}

pub(crate) fn io_chaos_resource() -> ApiResource {
    chaos_resource("IOChaos", "iochaos")
}

fn chaos_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "chaos-mesh.org".into(),
        version: "v1alpha1".into(),
        api_version: API_VERSION.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// A fresh object name for this run: `chaos-<what>-<run id>-<n>`.
fn object_name(what: &str, run_id: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "chaos-{what}-{run_id}-{}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Chaos Mesh's `direction` for a network fault acting `direction`, seen
/// from the selected (partitioned) pod: [`Direction::Outbound`] is `to`
/// (packets to the targets), [`Direction::Inbound`] is `from` (packets from
/// the targets), [`Direction::Both`] is `both`.
pub fn chaos_mesh_direction(direction: Direction) -> &'static str {
    match direction {
        Direction::Outbound => "to",
        Direction::Inbound => "from",
        Direction::Both => "both",
    }
}

/// A `NetworkChaos` that partitions pod `victim` from the pods `peers` and
/// the addresses `external`, the way `direction` says (seen from `victim`,
/// see [`chaos_mesh_direction`]), for as long as it exists (no `duration`:
/// the guard deletes it). Pods are selected by name.
///
/// ```
/// use chaos_core::fault::Direction;
///
/// let m = chaos_core::cluster::cnpg::chaos_mesh::network_partition(
///     "pg-chaos", "chaos-partition-x", "run1",
///     "cluster-example-1", &["cluster-example-2".into()], &["10.96.0.1".into()],
///     Direction::Outbound,
/// );
/// assert_eq!(m["spec"]["action"], "partition");
/// assert_eq!(m["spec"]["direction"], "to");
/// ```
pub fn network_partition(
    namespace: &str,
    name: &str,
    run_id: &str,
    victim: &str,
    peers: &[String],
    external: &[String],
    direction: Direction,
) -> Value {
    let mut spec = json!({
        "action": "partition",
        "mode": "all",
        "direction": chaos_mesh_direction(direction),
        "selector": { "pods": { namespace: [victim] } },
    });
    if !peers.is_empty() {
        spec["target"] = json!({
            "mode": "all",
            "selector": { "pods": { namespace: peers } },
        });
    }
    if !external.is_empty() {
        spec["externalTargets"] = json!(external);
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "NetworkChaos",
        "metadata": { "name": name, "namespace": namespace, "labels": safety::labels(run_id) },
        "spec": spec,
    })
}

/// An `IOChaos` that delays every file operation under `volume` (the data or
/// WAL volume) of the `postgres` container of pod `pod` by `delay`.
///
/// ```
/// let m = chaos_core::cluster::cnpg::chaos_mesh::io_latency(
///     "pg-chaos", "chaos-io-x", "run1", "cluster-example-1",
///     chaos_core::cluster::cnpg::chaos_mesh::WAL_VOLUME,
///     std::time::Duration::from_millis(20),
/// );
/// assert_eq!(m["spec"]["delay"], "20ms");
/// ```
pub fn io_latency(
    namespace: &str,
    name: &str,
    run_id: &str,
    pod: &str,
    volume: &str,
    delay: Duration,
) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "IOChaos",
        "metadata": { "name": name, "namespace": namespace, "labels": safety::labels(run_id) },
        "spec": {
            "action": "latency",
            "mode": "all",
            "selector": { "pods": { namespace: [pod] } },
            "containerNames": ["postgres"],
            "volumePath": volume,
            "path": format!("{volume}/**/*"),
            "delay": format!("{}us", delay.as_micros()).replace("000us", "ms").replace("000ms", "s"),
            "percent": 100,
        },
    })
}

/// The status of a condition of a Chaos Mesh object, looked up by type (the
/// order of `status.conditions` is not guaranteed).
pub fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a str> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str())
}

/// The first failed `Apply` recorded for any selected pod: (record id, message).
pub fn apply_failure(object: &Value) -> Option<(String, String)> {
    let records = object["status"]["experiment"]["containerRecords"].as_array()?;
    records.iter().find_map(|r| {
        r["events"].as_array()?.iter().find_map(|e| {
            (e["type"] == "Failed" && e["operation"] == "Apply").then(|| {
                (
                    r["id"].as_str().unwrap_or_default().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
    })
}

/// What to do when Chaos Mesh failed to apply `kind`, from its message.
fn advice(kind: &str, message: &str) -> String {
    if kind == "IOChaos"
        && (message.contains("Read-only file system") || message.contains("os error 30"))
    {
        "CNPG runs PostgreSQL with a read-only root filesystem, where Chaos Mesh's IOChaos \
         sidecar (toda) cannot start; set `spec.securityContext.readOnlyRootFilesystem: false` \
         on the Cluster (a rolling restart) to throttle its disks, or use another fault"
            .into()
    } else {
        "check the chaos-daemon logs on the pod's node (`kubectl -n chaos-mesh logs ds/chaos-daemon`)"
            .into()
    }
}

/// Creates a Chaos Mesh object and waits until Chaos Mesh reports it
/// injected (`AllInjected` True); a failed apply deletes it again and is an
/// [`Error::ChaosInjection`]. Returns the guard's handle on it.
async fn create_and_wait(
    target: &CnpgCluster,
    resource: ApiResource,
    body: Value,
    timeout: Duration,
) -> Result<ChaosObject> {
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = resource.kind.clone();
    let described = format!("{kind} {}/{name}", target.namespace());
    target.ensure_lease().await?;
    let kube = target.kube();
    kube.mutate(Mutation::create(resource.clone(), body))
        .await?;
    let mut object = ChaosObject {
        target: target.clone(),
        resource: resource.clone(),
        name: name.clone(),
        deleted: false,
    };
    if kube.dry_run() {
        return Ok(object);
    }
    let api: Api<DynamicObject> = kube.api(&resource);
    let start = Instant::now();
    loop {
        let now = api.get(&name).await.map_err(|e| {
            access::request_error(
                &kube.context,
                &Permission::of("get", &resource, &kube.namespace),
                &format!("reading {described}"),
                e,
            )
        })?;
        let value =
            serde_json::to_value(&now).map_err(|e| Error::json_write(described.clone(), e))?;
        if condition(&value, "AllInjected") == Some("True") {
            tracing::info!(object = %described, "Chaos Mesh injected");
            return Ok(object);
        }
        if let Some((record, message)) = apply_failure(&value) {
            let err = Error::ChaosInjection {
                object: format!("{described} (into {record})"),
                how: advice(&kind, &message),
                message,
            };
            object.delete(false).await.ok();
            return Err(err);
        }
        if start.elapsed() >= timeout {
            object.delete(false).await.ok();
            return Err(Error::Timeout {
                what: format!("Chaos Mesh to inject {described} (condition AllInjected)"),
                waited: timeout,
                logs: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A Chaos Mesh object this run created.
#[derive(Debug)]
struct ChaosObject {
    target: CnpgCluster,
    resource: ApiResource,
    name: String,
    deleted: bool,
}

impl ChaosObject {
    fn mutation(&self) -> Mutation {
        Mutation::delete(self.resource.clone(), &self.name, DeleteParams::default())
    }

    /// Deletes the object and, with `wait`, waits until Chaos Mesh has
    /// recovered the pods and let it go (404).
    async fn delete(&mut self, wait: bool) -> Result<()> {
        self.deleted = true;
        let kube = self.target.kube();
        match kube.mutate(self.mutation()).await {
            Ok(_) => {}
            Err(e) if safety::is_status(&e, 404) => return Ok(()),
            Err(e) => return Err(e),
        }
        if kube.dry_run() || !wait {
            return Ok(());
        }
        let api = kube.api(&self.resource);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            match api.get_opt(&self.name).await {
                Ok(None) => return Ok(()),
                Ok(Some(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        Err(Error::Timeout {
            what: format!(
                "Chaos Mesh to recover and release {} {}",
                self.resource.kind, self.name
            ),
            waited: Duration::from_secs(60),
            logs: String::new(),
        })
    }
}

impl Drop for ChaosObject {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let kube = self.target.kube().clone();
        let m = self.mutation();
        best_effort(
            format!("deleting {} {}", self.resource.kind, self.name),
            async move {
                match kube.mutate(m).await {
                    Err(e) if !safety::is_status(&e, 404) => Err(e),
                    _ => Ok(()),
                }
            },
        );
    }
}

/// Guard of a Chaos Mesh fault on a CNPG cluster: deletes the object it
/// created, then waits until the cluster is healthy again.
#[derive(Debug)]
pub struct ChaosMeshGuard {
    info: FaultInfo,
    object: ChaosObject,
    injected_at: Instant,
    heal_timeout: Duration,
}

impl ChaosMeshGuard {
    /// The object's kind and name, e.g. `NetworkChaos chaos-partition-…`.
    pub fn object(&self) -> String {
        format!("{} {}", self.object.resource.kind, self.object.name)
    }
}

impl FaultGuard for ChaosMeshGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    /// Deletes the object, waits until Chaos Mesh released it, then until the
    /// Cluster is healthy (the victim serves again).
    async fn heal(mut self) -> Result<Healed> {
        self.object.delete(true).await?;
        if !self.object.target.is_dry_run() {
            self.object.target.wait_healthy(self.heal_timeout).await?;
        }
        Ok(Healed {
            event: Healing::ChaosRemoved,
            at: Timestamp::now(),
            detail: Some(self.object()),
        })
    }
}

/// The in-cluster addresses of the API server: the `kubernetes` Service's
/// ClusterIP and its endpoints, unless given.
async fn apiserver_ips(target: &CnpgCluster) -> Result<Vec<String>> {
    if !target.apiserver_ips().is_empty() {
        return Ok(target.apiserver_ips().to_vec());
    }
    let client = target.kube().client.clone();
    let how = |resource: &'static str| {
        move |e: kube::Error| {
            access::request_error(
                &target.kube().context,
                &Permission::new("get", "", resource, "default").named("kubernetes"),
                "reading the API server's addresses (Service and Endpoints `kubernetes` in \
                 `default`; grant the Role in deploy/rbac/chaos-cnpg-role.yaml or set \
                 CHAOS_KUBE_APISERVER_IPS)",
                e,
            )
        }
    };
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .get("kubernetes")
        .await
        .map_err(how("services"))?;
    let mut ips: Vec<String> = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .into_iter()
        .filter(|ip| ip != "None")
        .collect();
    let ep = Api::<Endpoints>::namespaced(client, "default")
        .get("kubernetes")
        .await
        .map_err(how("endpoints"))?;
    for s in ep.subsets.unwrap_or_default() {
        ips.extend(s.addresses.unwrap_or_default().into_iter().map(|a| a.ip));
    }
    Ok(ips)
}

impl Fault<CnpgCluster> for PartitionNetwork {
    type Guard = ChaosMeshGuard;

    /// A `NetworkChaos` partition of the current primary (or of the instance
    /// named with [`node`](PartitionNetwork::node)), the way
    /// [`direction`](PartitionNetwork::direction) says; see the
    /// [module docs](self) for what `isolate_primary` cuts and why.
    async fn inject(self, target: &CnpgCluster) -> Result<ChaosMeshGuard> {
        let kind = self.kind();
        let direction = self.way();
        let cluster: Cluster = target.cluster().await?;
        let status = cluster.status.clone().unwrap_or_default();
        let primary = match self.node_name() {
            Some(name) => {
                if !status.instance_names.iter().any(|n| n == name) {
                    return Err(CnpgError::NoInstance {
                        asked_by: "PartitionNetwork::node",
                        namespace: target.namespace().to_string(),
                        cluster: target.cluster_name().to_string(),
                        name: name.to_string(),
                        instances: status.instance_names.clone(),
                    }
                    .into());
                }
                name.to_string()
            }
            None => primary_of(&cluster, target)?,
        };
        let peers: Vec<String> = status
            .instance_names
            .iter()
            .filter(|n| **n != primary)
            .cloned()
            .collect();
        let external = if kind == FaultKind::IsolatePrimary {
            let mut ips = apiserver_ips(target).await?;
            let pod = Api::<Pod>::namespaced(target.kube().client.clone(), target.namespace())
                .get(&primary)
                .await
                .map_err(|e| {
                    access::request_error(
                        &target.kube().context,
                        &Permission::new("get", "", "pods", target.namespace()).named(&primary),
                        &format!("reading pod {primary}"),
                        e,
                    )
                })?;
            ips.extend(pod.status.and_then(|s| s.host_ip));
            // Each once, in order: the pod's node may be the API server's
            // (a control-plane node, as on kind), and endpoints may repeat.
            let mut seen = std::collections::BTreeSet::new();
            ips.retain(|ip| seen.insert(ip.clone()));
            ips
        } else {
            Vec::new()
        };
        let name = object_name("partition", target.run_id());
        let body = network_partition(
            target.namespace(),
            &name,
            target.run_id(),
            &primary,
            &peers,
            &external,
            direction,
        );
        let way = match direction {
            Direction::Both => "",
            Direction::Outbound => " (outbound)",
            Direction::Inbound => " (inbound)",
        };
        let mode = if external.is_empty() {
            format!("partition {primary} from {}{way}", peers.join(", "))
        } else {
            format!(
                "partition {primary} from {} and the API server/kubelet ({}){way}",
                peers.join(", "),
                external.join(", ")
            )
        };
        let object =
            create_and_wait(target, network_chaos_resource(), body, INJECT_TIMEOUT).await?;
        Ok(ChaosMeshGuard {
            info: FaultInfo {
                kind: kind.name().into(),
                mode,
                victim: Some(primary),
                injected_at: Timestamp::now(),
            },
            object,
            injected_at: Instant::now(),
            heal_timeout: Duration::from_secs(180),
        })
    }
}

impl Fault<CnpgCluster> for ThrottleDisk {
    type Guard = ChaosMeshGuard;

    /// An `IOChaos` latency on the primary's (or the named instance's) data
    /// volume, or its WAL volume with `wal_only()`. Chaos Mesh delays
    /// operations rather than capping a rate: an IOPS limit `n` becomes a
    /// delay of `1/n` s per operation (the ceiling it puts on serial I/O such
    /// as WAL flushes); byte-rate limits are not available here.
    async fn inject(self, target: &CnpgCluster) -> Result<ChaosMeshGuard> {
        if self.has_bps_limit() {
            return Err(Error::Config {
                field: "ThrottleDisk",
                expected: "on the cnpg target an IOPS limit (write_iops/read_iops), applied as a \
                           per-operation IOChaos latency; Chaos Mesh has no byte-rate limit",
                found: "write_bps/read_bps".into(),
            });
        }
        let iops = match self.iops_limits() {
            (Some(w), Some(r)) => w.min(r),
            (Some(n), None) | (None, Some(n)) => n,
            (None, None) => {
                return Err(Error::Config {
                    field: "ThrottleDisk",
                    expected: "an IOPS limit (write_iops or read_iops) above 0",
                    found: "none".into(),
                });
            }
        };
        if iops == 0 {
            return Err(Error::Config {
                field: "ThrottleDisk",
                expected: "an IOPS limit above 0",
                found: "0".into(),
            });
        }
        let delay = Duration::from_micros(1_000_000 / iops);
        let cluster: Cluster = target.cluster().await?;
        let victim = match self.node_name() {
            Some(n) => n.to_string(),
            None => primary_of(&cluster, target)?,
        };
        let volume = if self.is_wal_only() {
            if cluster.spec.wal_storage.is_none() {
                return Err(Error::Config {
                    field: "ThrottleDisk::wal_only",
                    expected: "a Cluster with `spec.walStorage` (the WAL on a volume of its own)",
                    found: "a Cluster whose WAL lives on the data volume".into(),
                });
            }
            WAL_VOLUME
        } else {
            DATA_VOLUME
        };
        if cluster.spec.read_only_root_filesystem() {
            tracing::warn!(
                cluster = %target.cluster_name(),
                "the Cluster runs with a read-only root filesystem: IOChaos is likely to fail \
                 (set spec.securityContext.readOnlyRootFilesystem: false)"
            );
        }
        let name = object_name("io-latency", target.run_id());
        let body = io_latency(
            target.namespace(),
            &name,
            target.run_id(),
            &victim,
            volume,
            delay,
        );
        let object = create_and_wait(target, io_chaos_resource(), body, INJECT_TIMEOUT).await?;
        Ok(ChaosMeshGuard {
            info: FaultInfo {
                kind: self.kind().name().into(),
                mode: format!(
                    "{} latency {:?} on {volume} (~{iops} IOPS)",
                    "IOChaos", delay
                ),
                victim: Some(victim),
                injected_at: Timestamp::now(),
            },
            object,
            injected_at: Instant::now(),
            heal_timeout: Duration::from_secs(120),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_written_as_chaos_mesh_durations() {
        let d = |us| {
            io_latency("n", "x", "r", "p", DATA_VOLUME, Duration::from_micros(us))["spec"]["delay"]
                .clone()
        };
        assert_eq!(d(20_000), "20ms");
        assert_eq!(d(1_000_000), "1s");
        assert_eq!(d(3_333), "3333us");
    }

    #[test]
    fn directions_map_to_chaos_mesh() {
        let peers = ["b".to_string()];
        let dir =
            |d| network_partition("n", "x", "r", "a", &peers, &[], d)["spec"]["direction"].clone();
        assert_eq!(dir(Direction::Both), "both");
        assert_eq!(dir(Direction::Outbound), "to");
        assert_eq!(dir(Direction::Inbound), "from");
    }
}
