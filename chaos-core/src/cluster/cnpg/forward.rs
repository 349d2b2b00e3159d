//! How writes reach a CNPG cluster without an explicit DSN: the
//! `<cluster>-app` Secret's credentials and a local port-forward (through
//! the API server) to the pod the `-rw` Service selects.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Secret};
use kube::api::Api;
use tokio::net::TcpListener;

use super::access::{self, Permission};
use super::safety::Kube;
use crate::Result;
use crate::error::CnpgError;

/// The application user's credentials from the `<cluster>-app` Secret.
pub(super) struct Credentials {
    user: String,
    password: String,
    dbname: String,
}

impl Credentials {
    /// A key=value DSN to the local forward (the password quoted, never logged).
    pub(super) fn dsn(&self, port: u16) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
        format!(
            "host=127.0.0.1 port={port} user={} password={} dbname={} connect_timeout=5",
            q(&self.user),
            q(&self.password),
            q(&self.dbname)
        )
    }
}

pub(super) async fn app_credentials(kube: &Kube, cluster: &str) -> Result<Credentials> {
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
pub(super) async fn serve_forward(listener: TcpListener, kube: Kube, service: String) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsn::redact;

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
