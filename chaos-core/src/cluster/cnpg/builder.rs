//! Building a [`CnpgCluster`]: [`CnpgClusterBuilder`], the `CHAOS_*`
//! variables it reads, and the checks it makes before anything is touched
//! (the place allowed, the `Cluster` there, the rights the run needs).

use std::sync::Arc;

use kube::Client;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::net::TcpListener;

use super::access::{self, Permission};
use super::crd::{self, Cluster};
use super::forward::{app_credentials, serve_forward};
use super::safety::{self, Kube};
use super::target::{CnpgCluster, Inner};
use crate::dsn::redact;
use crate::fault::FaultKind;
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
pub(super) async fn read_cluster(kube: &Kube, name: &str) -> Result<Cluster> {
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
}
