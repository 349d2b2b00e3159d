//! The one door through which the CNPG target changes anything in Kubernetes.
//!
//! Every create, patch and delete the target and its faults make goes through
//! [`Kube::mutate`], which enforces two rules before any request leaves:
//!
//! 1. **Allowed places only.** The kube context and namespace must be allowed
//!    for chaos, either by an entry `context/namespace` in `CHAOS_ALLOW`
//!    (comma-separated; `*` matches any context or any namespace, e.g.
//!    `kind-chaos/*`), given in code with
//!    [`CnpgClusterBuilder::allow`](super::CnpgClusterBuilder::allow), or by
//!    the opt-in label [`ALLOW_LABEL`]`=true` on the namespace
//!    (`kubectl label namespace pg-chaos chaos.dev/allow=true`). Otherwise the
//!    call fails with [`Error::NotAllowed`] saying how to allow it, and no
//!    mutating request is sent. The place is decided once, when the target is
//!    built ([`Kube::check_place`]), so that a refused run stops before its
//!    probe writes anything; `mutate` checks the remembered decision again.
//! 2. **Dry run touches nothing.** With `CHAOS_DRY_RUN=1` (or
//!    [`CnpgClusterBuilder::dry_run`](super::CnpgClusterBuilder::dry_run)) each
//!    mutation is printed (stderr and `tracing`) with the object it would
//!    create, patch or delete, and is not sent. Reads still happen.
//!
//! Reading the namespace's label needs `get` on `namespaces` (cluster-scoped:
//! the optional `ClusterRole` in `deploy/rbac/chaos-cnpg-role.yaml`); without
//! it, use `CHAOS_ALLOW`.

use std::fmt;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams,
    PropagationPolicy,
};
use serde_json::Value;

use super::access::{self, Permission};
use crate::{Error, Result};

/// The label (on a namespace) that opts it in to chaos: `chaos.dev/allow=true`.
pub const ALLOW_LABEL: &str = "chaos.dev/allow";
/// The label every object the library creates carries, with value
/// [`MANAGED_BY`].
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on the library's objects.
pub const MANAGED_BY: &str = "chaos";
/// The label carrying the run id of the run that created an object.
pub const RUN_LABEL: &str = "chaos.dev/run";

/// One `context/namespace` entry of an allow list; `*` matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowEntry {
    context: String,
    namespace: String,
}

impl AllowEntry {
    fn matches(&self, context: &str, namespace: &str) -> bool {
        (self.context == "*" || self.context == context)
            && (self.namespace == "*" || self.namespace == namespace)
    }
}

/// Parses `context/namespace[,context/namespace…]` (the `CHAOS_ALLOW` syntax).
///
/// # Errors
/// [`Error::Config`] for an entry without exactly one `/` or with an empty side.
pub(crate) fn parse_allow(list: &str) -> Result<Vec<AllowEntry>> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.split_once('/') {
            Some((c, n)) if !c.is_empty() && !n.is_empty() && !n.contains('/') => {
                out.push(AllowEntry {
                    context: c.to_string(),
                    namespace: n.to_string(),
                })
            }
            _ => {
                return Err(Error::Config {
                    field: "CHAOS_ALLOW",
                    expected: "comma-separated `context/namespace` entries (`*` for any), \
                               e.g. kind-chaos/pg-chaos",
                    found: entry.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// What a mutation does.
#[derive(Debug, Clone)]
pub(crate) enum Verb {
    /// `POST` the object in `body`.
    Create,
    /// JSON merge patch of the object with `body`.
    Patch,
    /// JSON merge patch of the object's `status` subresource with `body`.
    PatchStatus,
    /// `DELETE` with these parameters.
    Delete(DeleteParams),
}

/// One create, patch or delete, described fully before it is sent.
#[derive(Debug, Clone)]
pub(crate) struct Mutation {
    pub verb: Verb,
    pub resource: ApiResource,
    pub name: String,
    pub body: Option<Value>,
}

impl Mutation {
    /// Creates `body` (its `metadata.name` is the name).
    pub fn create(resource: ApiResource, body: Value) -> Self {
        let name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Mutation {
            verb: Verb::Create,
            resource,
            name,
            body: Some(body),
        }
    }

    /// Merge-patches object `name` with `body`.
    pub fn patch(resource: ApiResource, name: &str, body: Value) -> Self {
        Mutation {
            verb: Verb::Patch,
            resource,
            name: name.to_string(),
            body: Some(body),
        }
    }

    /// Merge-patches the status of object `name` with `body`.
    pub fn patch_status(resource: ApiResource, name: &str, body: Value) -> Self {
        Mutation {
            verb: Verb::PatchStatus,
            resource,
            name: name.to_string(),
            body: Some(body),
        }
    }

    /// Deletes object `name`.
    pub fn delete(resource: ApiResource, name: &str, params: DeleteParams) -> Self {
        Mutation {
            verb: Verb::Delete(params),
            resource,
            name: name.to_string(),
            body: None,
        }
    }

    /// A forced delete: grace period 0, dependents collected in the
    /// background (what `kubectl delete --grace-period=0 --force` sends).
    pub fn force_delete(resource: ApiResource, name: &str) -> Self {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        Self::delete(resource, name, params)
    }

    /// `delete pods/cluster-example-1 (grace 0s, propagation Background)`.
    pub fn describe(&self) -> String {
        let what = format!("{}/{}", self.resource.plural, self.name);
        match &self.verb {
            Verb::Create => format!("create {what}"),
            Verb::Patch => format!("patch {what}"),
            Verb::PatchStatus => format!("patch {what}/status"),
            Verb::Delete(dp) => {
                let mut opts = Vec::new();
                if let Some(g) = dp.grace_period_seconds {
                    opts.push(format!("grace {g}s"));
                }
                if let Some(p) = &dp.propagation_policy {
                    opts.push(format!("propagation {p:?}"));
                }
                if opts.is_empty() {
                    format!("delete {what}")
                } else {
                    format!("delete {what} ({})", opts.join(", "))
                }
            }
        }
    }
}

/// Whether the place is allowed: not yet known, or known.
#[derive(Debug, Clone)]
enum Allowance {
    Unknown,
    Allowed,
    Refused(String),
}

/// The Kubernetes client of a CNPG target with its place (context and
/// namespace) and its safety settings. Cloning shares the allowance cache and
/// the dry-run record.
#[derive(Clone)]
pub(crate) struct Kube {
    pub client: Client,
    pub context: String,
    pub namespace: String,
    allow: Arc<Vec<AllowEntry>>,
    dry_run: bool,
    allowance: Arc<Mutex<Allowance>>,
    planned: Arc<Mutex<Vec<String>>>,
}

impl fmt::Debug for Kube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kube")
            .field("context", &self.context)
            .field("namespace", &self.namespace)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl Kube {
    pub fn new(
        client: Client,
        context: String,
        namespace: String,
        allow: Vec<AllowEntry>,
        dry_run: bool,
    ) -> Self {
        Kube {
            client,
            context,
            namespace,
            allow: Arc::new(allow),
            dry_run,
            allowance: Arc::new(Mutex::new(Allowance::Unknown)),
            planned: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Whether this is a dry run.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// What a dry run would have done so far, one line per mutation.
    pub fn planned(&self) -> Vec<String> {
        self.planned.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// A dynamic API for `resource` in the target's namespace.
    pub fn api(&self, resource: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, resource)
    }

    /// Checks (once, then cached) that the context and namespace are allowed.
    ///
    /// # Errors
    /// [`Error::NotAllowed`] naming `action` and how to allow the place.
    pub async fn ensure_allowed(&self, action: &str) -> Result<()> {
        let known = self
            .allowance
            .lock()
            .map(|a| a.clone())
            .unwrap_or(Allowance::Unknown);
        let state = match known {
            Allowance::Unknown => {
                let state = self.decide().await;
                if let Ok(mut a) = self.allowance.lock() {
                    *a = state.clone();
                }
                state
            }
            known => known,
        };
        let why = match state {
            Allowance::Allowed => return Ok(()),
            Allowance::Refused(why) => why,
            Allowance::Unknown => "not decided".to_string(),
        };
        Err(Error::NotAllowed {
            action: action.to_string(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            why,
        })
    }

    /// Decides, when the target is built, whether its place is allowed,
    /// before anything touches the cluster or its database. A dry run is not
    /// refused (it changes nothing): it says what the real run would meet.
    ///
    /// # Errors
    /// [`Error::NotAllowed`] outside a dry run.
    pub async fn check_place(&self) -> Result<()> {
        self.unless_dry_run(self.ensure_allowed("inject faults").await)
    }

    /// A check made when the target is built: its refusal as is, or in a dry
    /// run (which changes nothing) printed as what the real run would meet.
    ///
    /// # Errors
    /// `checked`'s error, outside a dry run.
    pub fn unless_dry_run(&self, checked: Result<()>) -> Result<()> {
        match checked {
            Err(e) if self.dry_run => {
                // Printed once (tracing at info, as the planned changes are).
                tracing::info!(target: "chaos::dry_run", error = %e, "dry run: the real run would be refused");
                eprintln!("dry run: the real run would be refused: {e}");
                Ok(())
            }
            other => other,
        }
    }

    async fn decide(&self) -> Allowance {
        if self
            .allow
            .iter()
            .any(|e| e.matches(&self.context, &self.namespace))
        {
            return Allowance::Allowed;
        }
        let listed = if self.allow.is_empty() {
            "CHAOS_ALLOW is empty".to_string()
        } else {
            format!(
                "CHAOS_ALLOW has no entry for it ({})",
                self.allow
                    .iter()
                    .map(|e| format!("{}/{}", e.context, e.namespace))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces.get(&self.namespace).await {
            Ok(ns) => {
                let label = ns
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(ALLOW_LABEL))
                    .cloned();
                match label.as_deref() {
                    Some("true") => Allowance::Allowed,
                    Some(other) => Allowance::Refused(format!(
                        "{listed}, and the namespace's label {ALLOW_LABEL} is {other:?}, not \"true\""
                    )),
                    None => Allowance::Refused(format!(
                        "{listed}, and the namespace has no label {ALLOW_LABEL}=true"
                    )),
                }
            }
            Err(e) => Allowance::Refused(format!(
                "{listed}, and the namespace's label {ALLOW_LABEL} could not be read ({})",
                crate::error::kube_summary(&e)
            )),
        }
    }

    /// Performs `m`, the only way the target changes anything: refused unless
    /// the place is allowed, printed and skipped in a dry run. Returns the
    /// server's answer (`None` in a dry run, or for a delete answered with a
    /// `Status`).
    ///
    /// # Errors
    /// [`Error::NotAllowed`]; [`Error::KubeForbidden`] when the API refuses
    /// the request, [`Error::Kube`] when it fails otherwise.
    pub async fn mutate(&self, m: Mutation) -> Result<Option<DynamicObject>> {
        let action = m.describe();
        if self.dry_run {
            let body = m
                .body
                .as_ref()
                .map(|b| serde_json::to_string_pretty(b).unwrap_or_default())
                .unwrap_or_default();
            let line = format!(
                "dry run: would {action} in namespace {} (kube context {})",
                self.namespace, self.context
            );
            tracing::info!(target: "chaos::dry_run", %action, namespace = %self.namespace, context = %self.context, body = %body, "dry run: not sent");
            if body.is_empty() {
                eprintln!("{line}");
            } else {
                eprintln!("{line}:\n{body}");
            }
            if let Ok(mut p) = self.planned.lock() {
                p.push(if body.is_empty() {
                    line
                } else {
                    format!(
                        "{line}: {}",
                        m.body.as_ref().map(Value::to_string).unwrap_or_default()
                    )
                });
            }
            return Ok(None);
        }
        self.ensure_allowed(&action).await?;
        let api = self.api(&m.resource);
        let (verb, sub) = match &m.verb {
            Verb::Create => ("create", ""),
            Verb::Patch => ("patch", ""),
            Verb::PatchStatus => ("patch", "status"),
            Verb::Delete(_) => ("delete", ""),
        };
        let perm = Permission::of(verb, &m.resource, &self.namespace).sub(sub);
        let ctx = |e: kube::Error| {
            access::request_error(
                &self.context,
                &perm,
                &format!("{action} in namespace {}", self.namespace),
                e,
            )
        };
        let body = m.body.unwrap_or(Value::Null);
        let out = match m.verb {
            Verb::Create => {
                let obj: DynamicObject = serde_json::from_value(body)
                    .map_err(|e| Error::json_read("an object to create", e))?;
                Some(
                    api.create(&PostParams::default(), &obj)
                        .await
                        .map_err(ctx)?,
                )
            }
            Verb::Patch => Some(
                api.patch(&m.name, &PatchParams::default(), &Patch::Merge(&body))
                    .await
                    .map_err(ctx)?,
            ),
            Verb::PatchStatus => Some(
                api.patch_status(&m.name, &PatchParams::default(), &Patch::Merge(&body))
                    .await
                    .map_err(ctx)?,
            ),
            Verb::Delete(dp) => api.delete(&m.name, &dp).await.map_err(ctx)?.left(),
        };
        tracing::info!(%action, namespace = %self.namespace, "kubernetes object changed");
        Ok(out)
    }
}

/// Whether an error is the API's answer with this HTTP code.
pub(crate) fn is_status(e: &Error, code: u16) -> bool {
    let source = match e {
        Error::Kube { source, .. } | Error::KubeNotFound { source, .. } => Some(&**source),
        Error::KubeForbidden(f) => f.source.as_ref(),
        _ => None,
    };
    matches!(source, Some(kube::Error::Api(s)) if s.code == code)
}

/// `true` for a 404 from the API.
pub(crate) fn kube_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The labels every created object carries: the library's name and the run.
pub(crate) fn labels(run_id: &str) -> Value {
    serde_json::json!({ MANAGED_BY_LABEL: MANAGED_BY, RUN_LABEL: run_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_parse_and_match() {
        let list = parse_allow("kind-chaos/pg-chaos, aks/*").expect("valid");
        assert!(list[0].matches("kind-chaos", "pg-chaos"));
        assert!(!list[0].matches("kind-chaos", "prod"));
        assert!(list[1].matches("aks", "anything"));
        assert!(!list[1].matches("aks-prod", "anything"));
        for bad in ["pg-chaos", "a/b/c", "/ns", "ctx/"] {
            let err = parse_allow(bad).unwrap_err();
            assert!(err.to_string().contains("CHAOS_ALLOW"), "{err}");
        }
        assert!(parse_allow("").expect("empty is valid").is_empty());
    }

    #[test]
    fn mutations_describe_themselves() {
        let pod = ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&());
        assert_eq!(
            Mutation::force_delete(pod.clone(), "cluster-example-1").describe(),
            "delete pods/cluster-example-1 (grace 0s, propagation Background)"
        );
        assert_eq!(
            Mutation::delete(pod, "p", DeleteParams::default()).describe(),
            "delete pods/p"
        );
    }
}
