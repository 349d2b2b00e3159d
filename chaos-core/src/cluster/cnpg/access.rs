//! What the CNPG target needs the Kubernetes API to let it do, asked before a
//! run touches anything: one `SelfSubjectAccessReview` per permission (what
//! `kubectl auth can-i` asks), and a refusal turned into an
//! [`Error::KubeForbidden`] that names the verb, the resource, the namespace,
//! who asked, and the Role of `deploy/rbac/chaos-cnpg-role.yaml` that grants
//! it.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, ApiResource, PostParams};

use crate::error::Forbidden;
use crate::fault::FaultKind;
use crate::{Error, Result};

/// The file of Roles that grant what the target needs.
pub(crate) const RBAC_FILE: &str = "deploy/rbac/chaos-cnpg-role.yaml";

const CNPG: &str = "postgresql.cnpg.io";
const CHAOS_MESH: &str = "chaos-mesh.org";
const COORDINATION: &str = "coordination.k8s.io";

/// One thing the target asks the API to do: a verb on a resource (or one
/// object of it) in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Permission {
    pub verb: String,
    /// The API group, empty for the core group.
    pub group: String,
    pub resource: String,
    /// Empty for the resource itself.
    pub subresource: String,
    /// Empty for a cluster-wide resource.
    pub namespace: String,
    pub name: Option<String>,
}

impl Permission {
    /// `verb` on `resource` of API group `group` (empty: the core group) in
    /// namespace `ns`.
    pub fn new(verb: &str, group: &str, resource: &str, ns: &str) -> Self {
        Permission {
            verb: verb.to_string(),
            group: group.to_string(),
            resource: resource.to_string(),
            subresource: String::new(),
            namespace: ns.to_string(),
            name: None,
        }
    }

    /// `verb` on the resource of a dynamic API in namespace `ns`.
    pub fn of(verb: &str, resource: &ApiResource, ns: &str) -> Self {
        Self::new(verb, &resource.group, &resource.plural, ns)
    }

    /// The same on a subresource (`status`, `portforward`).
    pub fn sub(mut self, subresource: &str) -> Self {
        self.subresource = subresource.to_string();
        self
    }

    /// The same on one object.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// The resource as kubectl names it: `pods`, `clusters.postgresql.cnpg.io`.
    fn resource_name(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    /// `delete pods`, `patch clusters.postgresql.cnpg.io/status`, `get
    /// services named kubernetes`.
    pub fn describe(&self) -> String {
        let mut out = format!("{} {}", self.verb, self.resource_name());
        if !self.subresource.is_empty() {
            out.push('/');
            out.push_str(&self.subresource);
        }
        if let Some(n) = &self.name {
            out.push_str(" named ");
            out.push_str(n);
        }
        out
    }

    /// The `kubectl auth can-i` command that asks the same question.
    fn can_i(&self, context: &str) -> String {
        let mut out = format!(
            "kubectl --context {context} auth can-i {} {}",
            self.verb,
            self.resource_name()
        );
        if let Some(n) = &self.name {
            out.push('/');
            out.push_str(n);
        }
        if !self.subresource.is_empty() {
            out.push_str(" --subresource=");
            out.push_str(&self.subresource);
        }
        if !self.namespace.is_empty() {
            out.push_str(" -n ");
            out.push_str(&self.namespace);
        }
        out
    }

    /// The Role (or ClusterRole) of [`RBAC_FILE`] that grants it, and whether
    /// it is a ClusterRole.
    fn role(&self) -> (&'static str, bool) {
        match (self.group.as_str(), self.resource.as_str()) {
            ("", "namespaces") => ("chaos-cnpg-namespace-reader", true),
            ("", "services" | "endpoints") if self.name.as_deref() == Some("kubernetes") => {
                ("chaos-cnpg-apiserver-addresses", false)
            }
            _ => ("chaos-cnpg", false),
        }
    }

    fn review(&self) -> SelfSubjectAccessReview {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(self.verb.clone()),
                    group: Some(self.group.clone()),
                    resource: Some(self.resource.clone()),
                    subresource: opt(&self.subresource),
                    namespace: opt(&self.namespace),
                    name: self.name.clone(),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        }
    }
}

/// What a run on the target will do, for [`needed`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan<'a> {
    /// The `Cluster`.
    pub cluster: &'a str,
    /// The Service writes go through (`<cluster>-rw` or the Pooler's).
    pub service: &'a str,
    /// Writes go through the library's port-forward (no explicit DSN).
    pub port_forward: bool,
    /// The API server's addresses were given (`CHAOS_KUBE_APISERVER_IPS`).
    pub apiserver_ips_given: bool,
    /// The built-in faults the run will inject.
    pub faults: &'a [FaultKind],
    /// A configuration experiment will patch the `Cluster`'s spec.
    pub reconfigures: bool,
}

/// Every permission a run of `plan` needs in namespace `ns` beyond reading
/// the `Cluster` (which building the target does): what the event stream
/// reads, the port-forward, and what each fault creates, patches or deletes.
/// Faults the target cannot do need nothing here (injecting them is an
/// [`Error::Unsupported`]).
pub(crate) fn needed(ns: &str, plan: Plan<'_>) -> Vec<Permission> {
    let p = |verb: &str, group: &str, resource: &str| Permission::new(verb, group, resource, ns);
    // The event stream: the write Service's endpoints, the Cluster's Events.
    let mut out = vec![
        p("get", "", "endpoints").named(plan.service),
        p("list", "", "events"),
    ];
    if plan.port_forward {
        out.push(p("create", "", "pods").sub("portforward"));
    }
    let chaos_mesh = |out: &mut Vec<Permission>, resource: &str| {
        for verb in ["create", "get", "delete"] {
            out.push(p(verb, CHAOS_MESH, resource));
        }
        // The run's liveness lease, created before the first object.
        for verb in ["create", "patch", "delete"] {
            out.push(p(verb, COORDINATION, "leases"));
        }
    };
    if plan.reconfigures {
        out.push(p("patch", CNPG, "clusters").named(plan.cluster));
    }
    for kind in plan.faults {
        match kind {
            FaultKind::KillPrimary | FaultKind::StopPrimary => {
                out.push(p("get", "", "pods"));
                out.push(p("delete", "", "pods"));
            }
            FaultKind::Switchover => {
                out.push(
                    p("patch", CNPG, "clusters")
                        .sub("status")
                        .named(plan.cluster),
                );
            }
            FaultKind::IsolatePrimary | FaultKind::PartitionPrimaryFromReplicas => {
                chaos_mesh(&mut out, "networkchaos");
                if *kind == FaultKind::IsolatePrimary {
                    out.push(p("get", "", "pods"));
                    if !plan.apiserver_ips_given {
                        for resource in ["services", "endpoints"] {
                            out.push(
                                Permission::new("get", "", resource, "default").named("kubernetes"),
                            );
                        }
                    }
                }
            }
            FaultKind::ThrottlePrimaryDisk => chaos_mesh(&mut out, "iochaos"),
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Asks the API server, one `SelfSubjectAccessReview` each, whether the
/// caller (of kube context `context`) may do all of `needed`. A review that cannot be made (an old or
/// unusual API server) is only warned about: the requests themselves will
/// tell.
///
/// # Errors
/// [`Error::KubeForbidden`] naming what was refused (those of the first
/// namespace with a refusal), who asked, and the Role that grants it.
pub(crate) async fn preflight(client: &Client, context: &str, needed: &[Permission]) -> Result<()> {
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut denied = Vec::new();
    for perm in needed {
        match reviews.create(&PostParams::default(), &perm.review()).await {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(r) => {
                let reason = r.status.and_then(|s| s.reason).unwrap_or_default();
                denied.push((perm, reason));
            }
            Err(e) => {
                tracing::warn!(
                    error = %e, permission = %perm.describe(),
                    "could not ask the API server what this identity may do; \
                     the run's own requests will tell"
                );
                return Ok(());
            }
        }
    }
    let Some((first, _)) = denied.first() else {
        return Ok(());
    };
    let namespace = first.namespace.clone();
    let role = first.role();
    let same: Vec<&(&Permission, String)> = denied
        .iter()
        .filter(|(p, _)| p.namespace == namespace && p.role() == role)
        .collect();
    let user = whoami(client).await;
    let reasons: Vec<&str> = same
        .iter()
        .map(|(_, r)| r.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    Err(Error::KubeForbidden(Box::new(Forbidden {
        who: who(context, user.as_deref()),
        what: same
            .iter()
            .map(|(p, _)| p.describe())
            .collect::<Vec<_>>()
            .join(", "),
        namespace: namespace.clone(),
        message: reasons.join("; "),
        how: how(context, first, user.as_deref()),
        source: None,
    })))
}

/// The caller's user name, as the API server knows it (`kubectl auth
/// whoami`); `None` when it cannot be asked.
async fn whoami(client: &Client) -> Option<String> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .ok()?
        .status?
        .user_info?
        .username
}

/// `jane (kube context kind-chaos)`, or the context alone.
fn who(context: &str, user: Option<&str>) -> String {
    match user {
        Some(u) => format!("`{u}` (kube context `{context}`)"),
        None => format!("kube context `{context}`"),
    }
}

/// What to do about `perm` being refused to `user`: the Role that grants it,
/// how to bind it, how to check.
fn how(context: &str, perm: &Permission, user: Option<&str>) -> String {
    let subject = match user {
        Some(u) => match u.strip_prefix("system:serviceaccount:") {
            Some(sa) => format!("--serviceaccount={sa}"),
            None => format!("--user={u}"),
        },
        None => "--user=<you>".to_string(),
    };
    let (role, cluster_wide) = perm.role();
    let bind = if cluster_wide {
        format!(
            "kubectl --context {ctx} create clusterrolebinding {role} --clusterrole={role} {subject}",
            ctx = context
        )
    } else {
        format!(
            "kubectl --context {ctx} -n {ns} create rolebinding {role} --role={role} {subject}",
            ctx = context,
            ns = perm.namespace
        )
    };
    let (kind, scope) = if cluster_wide {
        ("ClusterRole", String::new())
    } else {
        (
            "Role",
            format!(" (its namespace set to `{}`)", perm.namespace),
        )
    };
    format!(
        "grant it with the {kind} `{role}` in {RBAC_FILE}{scope}, bound to this identity: \
         kubectl --context {ctx} apply -f {RBAC_FILE}, then {bind}; check with `{check}`",
        ctx = context,
        check = perm.can_i(context),
    )
}

/// A request for `perm` that failed with `e`, as an error a user can act
/// on: refused (403) → [`Error::KubeForbidden`] naming the request, the
/// API server's words (which name the user) and the Role that grants it;
/// anything else → [`Error::Kube`] saying what was being done (`doing`).
/// `context` is the kube context's name.
/// The kube error stays the source.
pub(crate) fn request_error(
    context: &str,
    perm: &Permission,
    doing: &str,
    e: kube::Error,
) -> Error {
    match &e {
        kube::Error::Api(s) if s.code == 403 => Error::KubeForbidden(Box::new(Forbidden {
            who: who(context, None),
            what: perm.describe(),
            namespace: perm.namespace.clone(),
            message: s.message.clone(),
            how: how(context, perm, None),
            source: Some(e),
        })),
        _ => Error::Kube {
            context: doing.to_string(),
            source: Box::new(e),
        },
    }
}

/// A read of an object that must exist: 404 → [`Error::KubeNotFound`]
/// (`no Cluster named x in namespace y (hint)`), else as [`request_error`].
pub(crate) fn read_error(
    context: &str,
    perm: &Permission,
    kind: &str,
    hint: String,
    e: kube::Error,
) -> Error {
    let name = perm.name.clone().unwrap_or_default();
    match &e {
        kube::Error::Api(s) if s.code == 404 => Error::KubeNotFound {
            kind: kind.to_string(),
            name,
            namespace: perm.namespace.clone(),
            hint,
            source: Box::new(e),
        },
        _ => {
            let doing = format!("reading {kind} {}/{name}", perm.namespace);
            request_error(context, perm, &doing, e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_follow_the_plan() {
        let plan = Plan {
            cluster: "c",
            service: "c-rw",
            port_forward: false,
            apiserver_ips_given: false,
            faults: &[],
            reconfigures: false,
        };
        let reads: Vec<String> = needed("ns", plan)
            .iter()
            .map(Permission::describe)
            .collect();
        assert_eq!(reads, ["get endpoints named c-rw", "list events"]);
        let experiment: Vec<String> = needed(
            "ns",
            Plan {
                reconfigures: true,
                ..plan
            },
        )
        .iter()
        .map(Permission::describe)
        .collect();
        assert!(
            experiment.contains(&"patch clusters.postgresql.cnpg.io named c".to_string()),
            "{experiment:?}"
        );
        let all = needed(
            "ns",
            Plan {
                port_forward: true,
                faults: &[
                    FaultKind::KillPrimary,
                    FaultKind::Switchover,
                    FaultKind::IsolatePrimary,
                    FaultKind::ThrottlePrimaryDisk,
                ],
                ..plan
            },
        );
        let described: Vec<String> = all.iter().map(Permission::describe).collect();
        for p in [
            "delete pods",
            "create pods/portforward",
            "patch clusters.postgresql.cnpg.io/status named c",
            "create networkchaos.chaos-mesh.org",
            "delete iochaos.chaos-mesh.org",
            "create leases.coordination.k8s.io",
            "get services named kubernetes",
        ] {
            assert!(
                described.iter().any(|d| d == p),
                "{p} missing: {described:?}"
            );
        }
        // Each once.
        let leases = described
            .iter()
            .filter(|d| *d == "create leases.coordination.k8s.io")
            .count();
        assert_eq!(leases, 1);
        let apiserver = all.iter().find(|p| p.resource == "services").expect("svc");
        assert_eq!(apiserver.namespace, "default");
        assert_eq!(apiserver.role().0, "chaos-cnpg-apiserver-addresses");
        assert_eq!(
            all.iter()
                .find(|p| p.subresource == "status")
                .expect("status")
                .can_i("kind"),
            "kubectl --context kind auth can-i patch clusters.postgresql.cnpg.io/c \
             --subresource=status -n ns"
        );
    }
}
