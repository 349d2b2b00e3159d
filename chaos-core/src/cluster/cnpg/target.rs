//! [`CnpgCluster`]: a CloudNativePG `Cluster` as a [`Target`].

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Secret};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, ListParams, LogParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::access::{self, Permission};
use super::crd::{self, Cluster};
use super::safety::{self, Kube, MANAGED_BY, MANAGED_BY_LABEL, Mutation, RUN_LABEL};
use crate::cluster::{Target, Topology};
use crate::dsn::redact;
use crate::error::CnpgError;
use crate::fault::FaultKind;
use crate::timeline::{Event, Timestamp};
use crate::{Error, Result};

/// The User-Agent of the target's Kubernetes requests: `chaos/<version>`.
pub const USER_AGENT: &str = concat!("chaos/", env!("CARGO_PKG_VERSION"));

/// `CHAOS_TARGET`: `cnpg` selects this target.
pub const ENV_TARGET: &str = "CHAOS_TARGET";
/// `CHAOS_KUBE_CONTEXT`: the kubeconfig context (default: the current one).
pub const ENV_KUBE_CONTEXT: &str = "CHAOS_KUBE_CONTEXT";
/// `CHAOS_CNPG_NAMESPACE`: the namespace of the `Cluster` (required).
pub const ENV_NAMESPACE: &str = "CHAOS_CNPG_NAMESPACE";
/// `CHAOS_CNPG_CLUSTER`: the name of the `Cluster` (required).
pub const ENV_CLUSTER: &str = "CHAOS_CNPG_CLUSTER";
/// `CHAOS_RW_DSN`: an explicit read-write DSN (otherwise a port-forward).
pub const ENV_RW_DSN: &str = "CHAOS_RW_DSN";
/// `CHAOS_CNPG_POOLER`: route writes through this `Pooler`'s Service.
pub const ENV_POOLER: &str = "CHAOS_CNPG_POOLER";
/// `CHAOS_ALLOW`: `context/namespace,…` where chaos may change things.
pub const ENV_ALLOW: &str = "CHAOS_ALLOW";
/// `CHAOS_DRY_RUN`: `1`/`true` prints every change instead of making it.
pub const ENV_DRY_RUN: &str = "CHAOS_DRY_RUN";
/// `CHAOS_KUBE_APISERVER_IPS`: the API server addresses pods use, for
/// [`PartitionNetwork::isolate_primary`](crate::fault::PartitionNetwork::isolate_primary)
/// (default: read from the `kubernetes` Service in `default`).
pub const ENV_APISERVER_IPS: &str = "CHAOS_KUBE_APISERVER_IPS";

/// At most this much of a new primary's log is read per request.
const PROMOTION_LOG_BYTES: i64 = 8 << 20;

/// How long a run's liveness `Lease` lasts without renewal; a sweep treats
/// the objects of a run whose lease is older as left behind.
const LEASE_SECONDS: i32 = 60;

/// The `Cluster` resource, for dynamic requests.
pub(crate) fn cluster_resource() -> ApiResource {
    ApiResource::erase::<Cluster>(&())
}

/// Builder of a [`CnpgCluster`].
#[derive(Debug, Clone)]
#[must_use]
pub struct CnpgClusterBuilder {
    context: Option<String>,
    namespace: String,
    cluster: String,
    rw_dsn: Option<String>,
    pooler: Option<String>,
    dry_run: bool,
    allow: Vec<String>,
    run_id: Option<String>,
    apiserver_ips: Vec<String>,
    faults: Vec<FaultKind>,
    reconfigures: bool,
}

impl CnpgClusterBuilder {
    /// The kubeconfig context (default: the current context), as `kubectl
    /// --context`.
    pub fn context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// An explicit read-write DSN (an in-cluster runner, or a port-forward of
    /// your own) instead of the library's port-forward.
    pub fn rw_dsn(mut self, dsn: impl Into<String>) -> Self {
        self.rw_dsn = Some(dsn.into());
        self
    }

    /// Writes go through this CNPG `Pooler`'s Service instead of `<cluster>-rw`.
    pub fn pooler(mut self, name: impl Into<String>) -> Self {
        self.pooler = Some(name.into());
        self
    }

    /// Print every object that would be created, patched or deleted, and
    /// touch nothing.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Allows chaos in `context/namespace` (`*` for any side), as an entry of
    /// `CHAOS_ALLOW`.
    pub fn allow(mut self, entry: impl Into<String>) -> Self {
        self.allow.push(entry.into());
        self
    }

    /// The run id that labels what this target creates (default: a new one).
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// The API server's addresses as pods reach it (ClusterIP and endpoint
    /// IPs), for [`PartitionNetwork::isolate_primary`](crate::fault::PartitionNetwork::isolate_primary).
    pub fn apiserver_ips<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ips: I) -> Self {
        self.apiserver_ips.extend(ips.into_iter().map(Into::into));
        self
    }

    /// The built-in faults the run will inject. Building then asks the API
    /// server (a `SelfSubjectAccessReview` each, as `kubectl auth can-i`)
    /// whether this identity may do everything they need — delete pods,
    /// patch the Cluster's status, create Chaos Mesh objects and the run's
    /// lease — besides what every run reads, so that a run without the
    /// rights stops before it starts. Without it only the reads are checked.
    pub fn faults<I: IntoIterator<Item = FaultKind>>(mut self, kinds: I) -> Self {
        self.faults.extend(kinds);
        self
    }

    /// Declares that a configuration experiment will change the `Cluster`'s
    /// spec (`chaos experiment --set spec.…`), so that the permission to
    /// patch it is checked when the target is built, with the others.
    pub fn reconfigures(mut self, yes: bool) -> Self {
        self.reconfigures = yes;
        self
    }

    /// Loads the kubeconfig as kubectl does (`KUBECONFIG`, else
    /// `~/.kube/config`), selects the context, and builds the target. Every
    /// request it makes says `User-Agent: chaos/<version>` ([`USER_AGENT`]),
    /// so that API audit logs tell them apart.
    ///
    /// # Errors
    /// [`Error::Config`] for an unreadable kubeconfig, an unknown context or
    /// invalid names; whatever [`build_with_client`](Self::build_with_client)
    /// returns.
    pub async fn build(self) -> Result<CnpgCluster> {
        let context = match &self.context {
            Some(c) => c.clone(),
            None => Kubeconfig::read()
                .ok()
                .and_then(|k| k.current_context)
                .ok_or_else(|| Error::Config {
                    field: "CHAOS_KUBE_CONTEXT",
                    expected: "a kubeconfig with a current context (KUBECONFIG or ~/.kube/config), \
                               or the context to use in CHAOS_KUBE_CONTEXT",
                    found: std::env::var("KUBECONFIG").unwrap_or_default(),
                })?,
        };
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| Error::Config {
                field: "CHAOS_KUBE_CONTEXT",
                expected: "a context of the kubeconfig (KUBECONFIG or ~/.kube/config) that loads",
                found: format!("{context}: {e}"),
            })?;
        let client = client_with_user_agent(config).map_err(|e| Error::Kube {
            context: format!("creating a client for context {context}"),
            source: Box::new(e),
        })?;
        self.build_with_client(client, context).await
    }

    /// Builds the target on a ready client; `context` is the name the allow
    /// list is matched against. First decides whether the context and
    /// namespace are allowed for chaos (a refused target is never built, so
    /// no probe writes to its database); then reads the `Cluster` (it must
    /// exist), checks that the identity may do what the run needs (see
    /// [`faults`](Self::faults)), and unless an explicit DSN was given reads
    /// the `<cluster>-app` Secret and starts the local port-forward. A dry
    /// run is not refused for the place or the rights: it says what the real
    /// run would meet.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid names or settings, [`Error::NotAllowed`]
    /// for a place not allowed, [`Error::KubeForbidden`] for a permission
    /// the run needs and does not have, [`Error::Kube`] when the `Cluster` or
    /// its Secret cannot be read, [`Error::Io`] when the local listener
    /// cannot be opened.
    pub async fn build_with_client(
        self,
        client: Client,
        context: impl Into<String>,
    ) -> Result<CnpgCluster> {
        check_name("CHAOS_CNPG_NAMESPACE", &self.namespace)?;
        check_name("CHAOS_CNPG_CLUSTER", &self.cluster)?;
        if let Some(p) = &self.pooler {
            check_name("CHAOS_CNPG_POOLER", p)?;
        }
        let allow = safety::parse_allow(&self.allow.join(","))?;
        let kube = Kube::new(client, context.into(), self.namespace, allow, self.dry_run);
        // Before anything else touches the cluster: is chaos allowed here?
        kube.check_place().await?;
        let run_id = self.run_id.unwrap_or_else(crate::new_run_id);
        let found = read_cluster(&kube, &self.cluster).await?;
        let instances = usize::try_from(found.spec.instances).unwrap_or(1).max(1);
        let service = match &self.pooler {
            Some(p) => p.clone(),
            None => format!("{}-rw", self.cluster),
        };
        let needed = access::needed(
            &kube.namespace,
            access::Plan {
                cluster: &self.cluster,
                service: &service,
                port_forward: self.rw_dsn.is_none(),
                apiserver_ips_given: !self.apiserver_ips.is_empty(),
                faults: &self.faults,
                reconfigures: self.reconfigures,
            },
        );
        kube.unless_dry_run(access::preflight(&kube.client, &kube.context, &needed).await)?;
        let (rw_dsn, forward) = match self.rw_dsn {
            Some(dsn) => (dsn, None),
            None => {
                let creds = app_credentials(&kube, &self.cluster).await?;
                let listener = TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .map_err(|e| Error::io("opening the local port-forward listener", e))?;
                let port = listener
                    .local_addr()
                    .map_err(|e| Error::io("reading the port-forward listener's address", e))?
                    .port();
                let task = tokio::spawn(serve_forward(listener, kube.clone(), service.clone()));
                (creds.dsn(port), Some(task))
            }
        };
        tracing::info!(
            context = %kube.context, namespace = %kube.namespace, cluster = %self.cluster,
            service = %service, rw_dsn = %redact(&rw_dsn), dry_run = kube.dry_run(), run = %run_id,
            "CNPG target ready"
        );
        Ok(CnpgCluster {
            inner: Arc::new(Inner {
                kube,
                cluster: self.cluster,
                pooler: self.pooler,
                service,
                rw_dsn,
                forward,
                instances,
                run_id,
                apiserver_ips: self.apiserver_ips,
                lease: tokio::sync::Mutex::new(None),
            }),
        })
    }
}

/// A client on `config` whose every request (port-forwards included) says
/// `User-Agent:` [`USER_AGENT`] instead of the kubeconfig's or none.
fn client_with_user_agent(mut config: kube::Config) -> kube::Result<Client> {
    config
        .headers
        .retain(|(name, _)| !name.as_str().eq_ignore_ascii_case("user-agent"));
    if let (Ok(name), Ok(value)) = ("user-agent".parse(), USER_AGENT.parse()) {
        config.headers.push((name, value));
    }
    Client::try_from(config)
}

/// The `Cluster` `name`, or an error saying what is there to look at.
async fn read_cluster(kube: &Kube, name: &str) -> Result<Cluster> {
    let clusters: Api<Cluster> = Api::namespaced(kube.client.clone(), &kube.namespace);
    clusters.get(name).await.map_err(|e| {
        access::read_error(
            &kube.context,
            &Permission::new("get", crd::GROUP, "clusters", &kube.namespace).named(name),
            "Cluster",
            format!(
                "kubectl get clusters.postgresql.cnpg.io -n {}",
                kube.namespace
            ),
            e,
        )
    })
}

/// A Kubernetes object name: lowercase letters, digits, `-` and `.`.
fn check_name(field: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            field,
            expected: "a Kubernetes object name (lowercase letters, digits, '-', '.')",
            found: name.to_string(),
        })
    }
}

/// The application user's credentials from the `<cluster>-app` Secret.
struct Credentials {
    user: String,
    password: String,
    dbname: String,
}

impl Credentials {
    /// A key=value DSN to the local forward (the password quoted, never logged).
    fn dsn(&self, port: u16) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
        format!(
            "host=127.0.0.1 port={port} user={} password={} dbname={} connect_timeout=5",
            q(&self.user),
            q(&self.password),
            q(&self.dbname)
        )
    }
}

async fn app_credentials(kube: &Kube, cluster: &str) -> Result<Credentials> {
    let name = format!("{cluster}-app");
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let secret = secrets.get(&name).await.map_err(|e| {
        access::read_error(
            &kube.context,
            &Permission::new("get", "", "secrets", &kube.namespace).named(&name),
            "Secret",
            format!(
                "CNPG creates it for the application's user; `kubectl get secrets -n {}`, or \
                 give the read-write DSN yourself with CHAOS_RW_DSN",
                kube.namespace
            ),
            e,
        )
    })?;
    let data = secret.data.unwrap_or_default();
    let field = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|s| !s.is_empty())
    };
    let missing = |key: &'static str| CnpgError::SecretField {
        secret: name.to_string(),
        key,
    };
    Ok(Credentials {
        user: field("username")
            .or_else(|| field("user"))
            .ok_or_else(|| missing("username"))?,
        password: field("password").ok_or_else(|| missing("password"))?,
        dbname: field("dbname").unwrap_or_else(|| "app".into()),
    })
}

/// The pod (and its port) a Service's `Endpoints` select now: the first ready
/// address that points at a pod.
pub(crate) async fn service_pod(kube: &Kube, service: &str) -> Result<(String, u16)> {
    let endpoints: Api<Endpoints> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let ep = endpoints.get(service).await.map_err(|e| {
        access::read_error(
            &kube.context,
            &Permission::new("get", "", "endpoints", &kube.namespace).named(service),
            "Endpoints",
            format!(
                "the Service writes go through: `kubectl get services -n {}`; a Pooler's is \
                 named after the Pooler (CHAOS_CNPG_POOLER)",
                kube.namespace
            ),
            e,
        )
    })?;
    for subset in ep.subsets.unwrap_or_default() {
        let port = subset
            .ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|p| matches!(p.name.as_deref(), Some("postgres" | "pgbouncer")))
            .or_else(|| subset.ports.as_deref().and_then(|p| p.first()))
            .map(|p| u16::try_from(p.port).unwrap_or(5432))
            .unwrap_or(5432);
        for a in subset.addresses.unwrap_or_default() {
            if let Some(r) = a.target_ref
                && r.kind.as_deref() == Some("Pod")
                && let Some(pod) = r.name
            {
                return Ok((pod, port));
            }
        }
    }
    Err(CnpgError::NoReadyPod {
        namespace: kube.namespace.clone(),
        service: service.to_string(),
    }
    .into())
}

/// Accepts local connections and forwards each to the pod the Service selects
/// at that moment (re-resolved per connection, as a client re-connecting
/// through the Service would be routed).
async fn serve_forward(listener: TcpListener, kube: Kube, service: String) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let kube = kube.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let (pod, port) = match service_pod(&kube, &service).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward: no pod behind the service");
                    return;
                }
            };
            let pods: Api<Pod> = Api::namespaced(kube.client.clone(), &kube.namespace);
            let mut forwarder = match pods.portforward(&pod, &[port]).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!(error = %e, pod = %pod, "port-forward failed");
                    return;
                }
            };
            if let Some(mut upstream) = forwarder.take_stream(port) {
                let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                drop(upstream);
            }
            let _ = forwarder.join().await;
        });
    }
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
    inner: Arc<Inner>,
}

struct Inner {
    kube: Kube,
    cluster: String,
    pooler: Option<String>,
    service: String,
    rw_dsn: String,
    forward: Option<JoinHandle<()>>,
    instances: usize,
    run_id: String,
    apiserver_ips: Vec<String>,
    lease: tokio::sync::Mutex<Option<JoinHandle<()>>>,
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
    /// A builder for the `Cluster` `cluster` in `namespace`.
    pub fn builder(namespace: impl Into<String>, cluster: impl Into<String>) -> CnpgClusterBuilder {
        CnpgClusterBuilder {
            context: None,
            namespace: namespace.into(),
            cluster: cluster.into(),
            rw_dsn: None,
            pooler: None,
            dry_run: false,
            allow: Vec::new(),
            run_id: None,
            apiserver_ips: Vec::new(),
            faults: Vec::new(),
            reconfigures: false,
        }
    }

    /// The target described by the environment: `CHAOS_CNPG_NAMESPACE` and
    /// `CHAOS_CNPG_CLUSTER` (required), `CHAOS_KUBE_CONTEXT`, `CHAOS_RW_DSN`,
    /// `CHAOS_CNPG_POOLER`, `CHAOS_ALLOW`, `CHAOS_DRY_RUN`,
    /// `CHAOS_KUBE_APISERVER_IPS` (optional); `CHAOS_TARGET`, if set, must be
    /// `cnpg`. `KUBECONFIG` is honoured as kubectl does.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable to set or fix; as
    /// [`CnpgClusterBuilder::build`].
    pub async fn from_env() -> Result<Self> {
        Self::builder_from_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))?
            .build()
            .await
    }

    /// The builder [`from_env`](Self::from_env) would use, with the variables
    /// looked up by `var`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable to set or fix.
    pub fn builder_from_vars(var: impl Fn(&str) -> Option<String>) -> Result<CnpgClusterBuilder> {
        if let Some(t) = var(ENV_TARGET)
            && t.trim() != "cnpg"
        {
            return Err(Error::Config {
                field: "CHAOS_TARGET",
                expected: "`cnpg` for the CloudNativePG target",
                found: t,
            });
        }
        let namespace = var(ENV_NAMESPACE).ok_or(Error::Config {
            field: "CHAOS_CNPG_NAMESPACE",
            expected: "the namespace of the CNPG Cluster (CHAOS_TARGET=cnpg needs it)",
            found: String::new(),
        })?;
        let cluster = var(ENV_CLUSTER).ok_or(Error::Config {
            field: "CHAOS_CNPG_CLUSTER",
            expected: "the name of the CNPG Cluster (CHAOS_TARGET=cnpg needs it)",
            found: String::new(),
        })?;
        let mut b = Self::builder(namespace.trim(), cluster.trim());
        if let Some(c) = var(ENV_KUBE_CONTEXT) {
            b = b.context(c.trim());
        }
        if let Some(d) = var(ENV_RW_DSN) {
            b = b.rw_dsn(d);
        }
        if let Some(p) = var(ENV_POOLER) {
            b = b.pooler(p.trim());
        }
        if let Some(a) = var(ENV_ALLOW) {
            safety::parse_allow(&a)?;
            b = b.allow(a);
        }
        if let Some(ips) = var(ENV_APISERVER_IPS) {
            b = b.apiserver_ips(ips.split(',').map(str::trim).filter(|s| !s.is_empty()));
        }
        if let Some(d) = var(ENV_DRY_RUN) {
            let on = match d.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" | "" => false,
                _ => {
                    return Err(Error::Config {
                        field: "CHAOS_DRY_RUN",
                        expected: "1/true/yes/on or 0/false/no/off",
                        found: d,
                    });
                }
            };
            b = b.dry_run(on);
        }
        Ok(b)
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn environment_says_what_to_set() {
        let err = CnpgCluster::builder_from_vars(vars(&[("CHAOS_TARGET", "cnpg")])).unwrap_err();
        assert!(err.to_string().contains("CHAOS_CNPG_NAMESPACE"), "{err}");
        let err =
            CnpgCluster::builder_from_vars(vars(&[("CHAOS_CNPG_NAMESPACE", "pg")])).unwrap_err();
        assert!(err.to_string().contains("CHAOS_CNPG_CLUSTER"), "{err}");
        let err = CnpgCluster::builder_from_vars(vars(&[("CHAOS_TARGET", "local")])).unwrap_err();
        assert!(err.to_string().contains("CHAOS_TARGET"), "{err}");
        let base = [("CHAOS_CNPG_NAMESPACE", "pg"), ("CHAOS_CNPG_CLUSTER", "c")];
        let err =
            CnpgCluster::builder_from_vars(vars(&[base[0], base[1], ("CHAOS_DRY_RUN", "maybe")]))
                .unwrap_err();
        assert!(err.to_string().contains("CHAOS_DRY_RUN"), "{err}");
        let err =
            CnpgCluster::builder_from_vars(vars(&[base[0], base[1], ("CHAOS_ALLOW", "nope")]))
                .unwrap_err();
        assert!(err.to_string().contains("CHAOS_ALLOW"), "{err}");
        let b = CnpgCluster::builder_from_vars(vars(&[
            base[0],
            base[1],
            ("CHAOS_KUBE_CONTEXT", "kind-chaos"),
            ("CHAOS_CNPG_POOLER", "pooler-rw"),
            ("CHAOS_DRY_RUN", "1"),
            ("CHAOS_ALLOW", "kind-chaos/pg"),
        ]))
        .expect("valid");
        assert_eq!(b.context.as_deref(), Some("kind-chaos"));
        assert_eq!(b.pooler.as_deref(), Some("pooler-rw"));
        assert!(b.dry_run);
        assert!(check_name("x", "Bad_Name").is_err());
        assert!(check_name("x", "cluster-example").is_ok());
    }

    /// The client `build` makes sends `User-Agent: chaos/<version>`: a
    /// request read off the wire by a listener standing in for the API server.
    #[tokio::test]
    async fn requests_say_who_sends_them() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("listener");
        let port = listener.local_addr().expect("address").port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("a request");
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404}"#;
            let answer = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.expect("write");
            String::from_utf8_lossy(&request).to_lowercase()
        });
        let url = format!("http://127.0.0.1:{port}").parse().expect("url");
        let client = client_with_user_agent(kube::Config::new(url)).expect("client");
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client);
        let _ = namespaces.get_opt("pg-chaos").await;
        let request = server.await.expect("server");
        assert!(
            request.contains(&format!("\r\nuser-agent: {USER_AGENT}\r\n")),
            "{request}"
        );
        assert_eq!(USER_AGENT, concat!("chaos/", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn credentials_are_quoted_and_redacted() {
        let c = Credentials {
            user: "app".into(),
            password: "s3cr'et".into(),
            dbname: "app".into(),
        };
        let dsn = c.dsn(5555);
        assert!(dsn.contains("port=5555"), "{dsn}");
        assert!(!redact(&dsn).contains("s3cr"), "{}", redact(&dsn));
    }
}
