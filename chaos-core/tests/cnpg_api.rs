//! The CNPG target's API flows against a mocked API server, the way kube-rs
//! tests itself (`tower_test::mock::pair` + `kube::Client::new`): responses
//! come from the fixtures in `../shared/reference/fixtures`, every request is
//! recorded, and the RBAC Role shipped in `deploy/rbac/` must allow each one.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use chaos_core::Error;
use chaos_core::cluster::Target;
use chaos_core::cluster::cnpg::{CnpgCluster, Fence};
use chaos_core::fault::{
    DeletePrimary, Fault, FaultGuard, PartitionNetwork, Switchover, ThrottleDisk,
};
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

const NS: &str = "pg-chaos";
const CLUSTER_PATH: &str =
    "/apis/postgresql.cnpg.io/v1/namespaces/pg-chaos/clusters/cluster-example";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../shared/reference/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

/// One request the mock server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    body: Value,
}

const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
const WHOAMI: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

impl Seen {
    /// Changes something: neither a read nor a question about the caller's
    /// own rights (which every authenticated user may ask).
    fn mutating(&self) -> bool {
        !matches!(self.method, Method::GET) && !self.is_review()
    }

    fn is_review(&self) -> bool {
        self.method == Method::POST && (self.path == ACCESS_REVIEWS || self.path == WHOAMI)
    }

    /// The permission a SelfSubjectAccessReview asked about, as
    /// [`rbac`](Self::rbac) describes a request.
    fn reviewed(&self) -> Option<(String, String, String, String, String)> {
        if self.path != ACCESS_REVIEWS {
            return None;
        }
        let a = &self.body["spec"]["resourceAttributes"];
        let field = |k: &str| a[k].as_str().unwrap_or_default().to_string();
        Some((
            field("verb"),
            field("group"),
            field("resource"),
            field("subresource"),
            field("namespace"),
        ))
    }

    /// (verb, group, resource, subresource, namespace) as RBAC sees it.
    fn rbac(&self) -> (String, String, String, String, String) {
        let parts: Vec<&str> = self.path.trim_start_matches('/').split('/').collect();
        // /api/v1/... or /apis/<group>/<version>/...
        let (group, rest) = match parts[0] {
            "api" => (String::new(), &parts[2..]),
            _ => (parts[1].to_string(), &parts[3..]),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (ns.to_string(), rest),
            other => (String::new(), other),
        };
        let resource = rest.first().copied().unwrap_or_default().to_string();
        let named = rest.len() > 1;
        let sub = rest.get(2).copied().unwrap_or_default().to_string();
        let verb = match self.method {
            Method::GET if self.query.contains("watch=true") => "watch",
            Method::GET if named => "get",
            Method::GET => "list",
            Method::POST => "create",
            Method::PATCH => "patch",
            Method::PUT => "update",
            Method::DELETE => "delete",
            _ => "other",
        };
        (verb.into(), group, resource, sub, namespace)
    }
}

/// Answers a request: a status code and a JSON body, or (a JSON string)
/// a plain-text body, as the API server sends pod logs.
type Handler = Box<dyn FnMut(&Seen) -> (u16, Value) + Send>;

fn status(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": reason, "reason": reason, "code": code}),
    )
}

/// A client whose API server is `handler`; returns the log of requests.
fn mock(mut handler: Handler) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen_log = log.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let seen = Seen {
                method: parts.method.clone(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (code, value) = handler(&seen);
            seen_log.lock().expect("log").push(seen);
            let (content_type, body) = match value {
                Value::String(text) => ("text/plain", text.into_bytes()),
                other => (
                    "application/json",
                    serde_json::to_vec(&other).expect("json"),
                ),
            };
            let resp = Response::builder()
                .status(code)
                .header("content-type", content_type)
                .body(Body::from(body))
                .expect("response");
            send.send_response(resp);
        }
    });
    (kube::Client::new(svc, "default"), log)
}

/// Answers the reads every flow makes; `None` for anything else.
fn common(s: &Seen, ns_label: bool) -> Option<(u16, Value)> {
    let pods = fixture("cnpg_pods_during_failover.json");
    match (s.method.clone(), s.path.as_str()) {
        (Method::GET, CLUSTER_PATH) => Some((200, fixture("cnpg_cluster_01_healthy.json"))),
        (Method::GET, "/api/v1/namespaces/pg-chaos") => {
            let labels = if ns_label {
                json!({"chaos.dev/allow": "true"})
            } else {
                json!({})
            };
            Some((
                200,
                json!({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": NS, "labels": labels}}),
            ))
        }
        (Method::GET, "/api/v1/namespaces/pg-chaos/secrets/cluster-example-app") => {
            Some((200, fixture("cnpg_app_secret.json")))
        }
        (Method::GET, p) if p.starts_with("/api/v1/namespaces/pg-chaos/pods/") => {
            let name = p.rsplit('/').next().unwrap_or_default();
            let mut pod = pods["items"]
                .as_array()
                .and_then(|items| items.iter().find(|i| i["metadata"]["name"] == name))
                .cloned()?;
            pod["metadata"]["uid"] = json!(format!("uid-{name}"));
            pod["status"]["hostIP"] = json!("172.18.0.3");
            Some((200, pod))
        }
        (Method::POST, ACCESS_REVIEWS) => {
            let mut review = s.body.clone();
            review["status"] = json!({"allowed": true});
            Some((201, review))
        }
        (Method::POST, "/apis/coordination.k8s.io/v1/namespaces/pg-chaos/leases") => {
            Some((201, s.body.clone()))
        }
        (Method::GET, "/api/v1/namespaces/default/services/kubernetes") => Some((
            200,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes"},
                   "spec": {"clusterIP": "10.96.0.1"}}),
        )),
        (Method::GET, "/api/v1/namespaces/default/endpoints/kubernetes") => Some((
            200,
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes"},
                   "subsets": [{"addresses": [{"ip": "172.18.0.2"}]}]}),
        )),
        _ => None,
    }
}

async fn target(client: kube::Client, allow: bool, dry_run: bool) -> CnpgCluster {
    let mut b = CnpgCluster::builder(NS, "cluster-example")
        .rw_dsn("postgresql://app:pw@127.0.0.1:1/app")
        .run_id("0123456789abcdef")
        .dry_run(dry_run);
    if allow {
        b = b.allow("kind-chaos/pg-chaos");
    }
    b.build_with_client(client, "kind-chaos")
        .await
        .expect("target")
}

fn log_of(log: &Arc<Mutex<Vec<Seen>>>) -> Vec<Seen> {
    log.lock().expect("log").clone()
}

/// Kill: one DELETE of the primary with grace 0 and background propagation.
async fn flow_delete() -> Vec<Seen> {
    let (client, log) = mock(Box::new(|s| {
        if let Some(r) = common(s, false) {
            return r;
        }
        match s.method {
            Method::DELETE => (
                200,
                fixture("cnpg_pods_during_failover.json")["items"][0].clone(),
            ),
            _ => status(404, "NotFound"),
        }
    }));
    let t = target(client, true, false).await;
    let guard = Fault::<CnpgCluster>::inject(DeletePrimary::kill(), &t)
        .await
        .expect("inject");
    assert_eq!(guard.info().victim.as_deref(), Some("cluster-example-1"));
    drop(guard);
    let seen = log_of(&log);
    let deletes: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::DELETE).collect();
    assert_eq!(deletes.len(), 1, "{seen:#?}");
    assert_eq!(
        deletes[0].path,
        "/api/v1/namespaces/pg-chaos/pods/cluster-example-1"
    );
    assert_eq!(deletes[0].body["gracePeriodSeconds"], 0);
    assert_eq!(deletes[0].body["propagationPolicy"], "Background");
    seen
}

#[tokio::test]
async fn delete_primary_kills_with_grace_zero() {
    flow_delete().await;
}

/// The delete is stamped in effect when it is sent, not when the API
/// server's (slow) answer is back, so the round-trip is not taken off
/// detection and RTO; the round-trip is recorded in the fault's mode.
#[tokio::test]
async fn delete_primary_is_stamped_before_the_api_answers() {
    use std::time::{Duration, Instant, SystemTime};
    const DELAY: Duration = Duration::from_millis(300);
    let arrived = Arc::new(Mutex::new(None::<(SystemTime, Instant)>));
    let a = arrived.clone();
    let (client, _log) = mock(Box::new(move |s| {
        if let Some(r) = common(s, false) {
            return r;
        }
        match s.method {
            Method::DELETE => {
                *a.lock().expect("arrived") = Some((SystemTime::now(), Instant::now()));
                // The API server takes its time to answer.
                std::thread::sleep(DELAY);
                (
                    200,
                    fixture("cnpg_pods_during_failover.json")["items"][0].clone(),
                )
            }
            _ => status(404, "NotFound"),
        }
    }));
    let t = target(client, true, false).await;
    let guard = Fault::<CnpgCluster>::inject(DeletePrimary::kill(), &t)
        .await
        .expect("inject");
    let (wall, monotonic) = arrived.lock().expect("arrived").expect("a DELETE");
    assert!(
        guard.info().injected_at.system_time() <= wall,
        "stamped after the request reached the server: {:?} > {wall:?}",
        guard.info().injected_at
    );
    assert!(guard.injected_at() <= monotonic, "the RTO's origin is late");
    let mode = &guard.info().mode;
    let round_trip = mode
        .strip_prefix("kill, API round-trip ")
        .and_then(|r| r.strip_suffix('s'))
        .and_then(|r| r.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no round-trip in the mode: {mode}"));
    assert!(round_trip >= DELAY.as_secs_f64(), "{mode}");
    drop(guard);
}

/// Switchover: a 409 on the first status patch, re-read, success.
async fn flow_switchover() -> Vec<Seen> {
    let patches = Arc::new(Mutex::new(0));
    let p = patches.clone();
    let (client, log) = mock(Box::new(move |s| {
        if let Some(r) = common(s, false) {
            return r;
        }
        if s.method == Method::PATCH && s.path == format!("{CLUSTER_PATH}/status") {
            let mut n = p.lock().expect("n");
            *n += 1;
            if *n == 1 {
                return status(409, "Conflict");
            }
            return (200, fixture("cnpg_cluster_07_switchover_in_progress.json"));
        }
        status(404, "NotFound")
    }));
    let t = target(client, true, false).await;
    let guard = Fault::<CnpgCluster>::inject(Switchover::to("cluster-example-3"), &t)
        .await
        .expect("switchover");
    assert_eq!(guard.info().victim.as_deref(), Some("cluster-example-1"));
    let seen = log_of(&log);
    let bodies: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::PATCH).collect();
    assert_eq!(bodies.len(), 2, "a conflict, then a retry: {seen:#?}");
    let expected = fixture("cnpg_promote_status_merge_patch.json");
    for b in &bodies {
        assert_eq!(b.body["metadata"]["resourceVersion"], "12345");
        for k in ["targetPrimary", "phase", "phaseReason"] {
            assert_eq!(b.body["status"][k], expected["status"][k], "{k}");
        }
    }
    // The retry re-read the Cluster between the two patches.
    let first = seen
        .iter()
        .position(|s| s.method == Method::PATCH)
        .expect("patch");
    assert!(
        seen[first + 1..]
            .iter()
            .any(|s| s.method == Method::GET && s.path == CLUSTER_PATH)
    );
    drop(guard);
    seen
}

#[tokio::test]
async fn switchover_retries_a_resource_version_conflict() {
    flow_switchover().await;
}

/// NetworkChaos: create, wait (`Not Injected/Wait`, then `AllInjected`
/// True, conditions shuffled), delete, gone.
async fn flow_partition() -> Vec<Seen> {
    let gets = Arc::new(Mutex::new(0));
    let created = Arc::new(Mutex::new(Value::Null));
    let (g, c) = (gets.clone(), created.clone());
    let (client, log) = mock(Box::new(move |s| {
        if let Some(r) = common(s, false) {
            return r;
        }
        let base = "/apis/chaos-mesh.org/v1alpha1/namespaces/pg-chaos/networkchaos";
        if s.method == Method::POST && s.path == base {
            *c.lock().expect("c") = s.body.clone();
            return (201, s.body.clone());
        }
        if s.path.starts_with(base) {
            let mut n = g.lock().expect("g");
            return match s.method {
                Method::GET if *n < 2 => {
                    *n += 1;
                    let mut v = if *n == 1 {
                        fixture("chaos_networkchaos_partition_wait.json")
                    } else {
                        fixture("chaos_networkchaos_partition_injected.json")
                    };
                    if let Some(conds) = v["status"]["conditions"].as_array_mut() {
                        conds.reverse();
                    }
                    (200, v)
                }
                Method::DELETE => {
                    *n = 10;
                    (
                        200,
                        fixture("chaos_networkchaos_partition_paused_recovered.json"),
                    )
                }
                _ => status(404, "NotFound"),
            };
        }
        status(404, "NotFound")
    }));
    let t = target(client, true, false).await;
    let guard = Fault::<CnpgCluster>::inject(PartitionNetwork::isolate_primary(), &t)
        .await
        .expect("partition");
    let body = created.lock().expect("c").clone();
    assert_eq!(
        body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "chaos"
    );
    assert_eq!(
        body["metadata"]["labels"]["chaos.dev/run"],
        "0123456789abcdef"
    );
    assert_eq!(body["spec"]["selector"]["pods"][NS][0], "cluster-example-1");
    let external: Vec<&str> = body["spec"]["externalTargets"]
        .as_array()
        .expect("external targets")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(external, ["10.96.0.1", "172.18.0.2", "172.18.0.3"]);
    // Heal: delete and wait until gone (the final wait for health reads the
    // healthy fixture).
    guard.heal().await.expect("heal");
    let seen = log_of(&log);
    assert!(
        seen.iter()
            .any(|s| s.method == Method::DELETE && s.path.contains("networkchaos"))
    );
    seen
}

#[tokio::test]
async fn network_chaos_life_cycle() {
    flow_partition().await;
}

/// IOChaos on a read-only root filesystem: a typed error saying what to set,
/// and the object deleted again.
async fn flow_iochaos_read_only() -> Vec<Seen> {
    let (client, log) = mock(Box::new(|s| {
        if let Some(r) = common(s, false) {
            return r;
        }
        match s.method {
            Method::POST => (201, s.body.clone()),
            Method::GET => (200, fixture("chaos_iochaos_apply_failed.json")),
            Method::DELETE => (200, fixture("chaos_iochaos_apply_failed.json")),
            _ => status(404, "NotFound"),
        }
    }));
    let t = target(client, true, false).await;
    let err = Fault::<CnpgCluster>::inject(ThrottleDisk::primary().write_iops(50), &t)
        .await
        .expect_err("read-only root");
    let text = err.to_string();
    assert!(matches!(err, Error::ChaosInjection { .. }), "{text}");
    assert!(text.contains("readOnlyRootFilesystem: false"), "{text}");
    let seen = log_of(&log);
    let post = seen
        .iter()
        .find(|s| s.method == Method::POST && s.path.ends_with("/iochaos"))
        .expect("created");
    assert_eq!(post.body["spec"]["delay"], "20ms");
    assert!(
        seen.iter()
            .any(|s| s.method == Method::DELETE && s.path.contains("/iochaos/"))
    );
    seen
}

#[tokio::test]
async fn io_chaos_on_a_read_only_root_is_a_clear_error() {
    flow_iochaos_read_only().await;
}

/// A local listener standing in for the database: it records whether
/// anything dialled it (a connection waits in its backlog until accepted).
struct Dialled(std::net::TcpListener);

impl Dialled {
    fn new() -> Self {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        l.set_nonblocking(true).expect("non-blocking");
        Dialled(l)
    }

    fn dsn(&self) -> String {
        let port = self.0.local_addr().expect("address").port();
        format!("postgresql://app:pw@127.0.0.1:{port}/app")
    }

    fn was_dialled(&self) -> bool {
        self.0.accept().is_ok()
    }
}

/// Not allowed: the target is refused when it is built — before a probe
/// could create its table or write a row — with a typed error saying how to
/// allow it; only reads reached the API server and the database was never
/// dialled.
async fn flow_refusal() -> Vec<Seen> {
    let (client, log) = mock(Box::new(|s| {
        common(s, false).unwrap_or_else(|| status(404, "NotFound"))
    }));
    let db = Dialled::new();
    let err = CnpgCluster::builder(NS, "cluster-example")
        .rw_dsn(db.dsn())
        .run_id("0123456789abcdef")
        .build_with_client(client, "kind-chaos")
        .await
        .expect_err("refused at build");
    let text = err.to_string();
    assert!(matches!(err, Error::NotAllowed { .. }), "{text}");
    assert!(text.contains("CHAOS_ALLOW=kind-chaos/pg-chaos"), "{text}");
    assert!(text.contains("chaos.dev/allow=true"), "{text}");
    assert!(
        text.contains(".allow(\"kind-chaos/pg-chaos\")"),
        "library users get the builder's way too: {text}"
    );
    let seen = log_of(&log);
    assert!(
        seen.iter().all(|s| !s.mutating()),
        "no change reached the server: {seen:#?}"
    );
    assert!(!db.was_dialled(), "the database was dialled");
    seen
}

#[tokio::test]
async fn refusal_outside_allowed_namespaces_sends_nothing() {
    flow_refusal().await;
}

/// Every permission a run with each fault the target can do needs, asked
/// when the target is built (through the port-forward: no DSN given).
async fn flow_preflight() -> Vec<Seen> {
    use chaos_core::fault::FaultKind;
    let (client, log) = mock(Box::new(|s| {
        common(s, false).unwrap_or_else(|| status(404, "NotFound"))
    }));
    CnpgCluster::builder(NS, "cluster-example")
        .allow("kind-chaos/pg-chaos")
        .faults([
            FaultKind::KillPrimary,
            FaultKind::StopPrimary,
            FaultKind::Switchover,
            FaultKind::IsolatePrimary,
            FaultKind::PartitionPrimaryFromReplicas,
            FaultKind::ThrottlePrimaryDisk,
        ])
        .build_with_client(client, "kind-chaos")
        .await
        .expect("every permission granted");
    let seen = log_of(&log);
    let asked: Vec<_> = seen.iter().filter_map(Seen::reviewed).collect();
    for needed in [
        ("delete", "", "pods", "", NS),
        ("patch", "postgresql.cnpg.io", "clusters", "status", NS),
        ("create", "chaos-mesh.org", "networkchaos", "", NS),
        ("create", "chaos-mesh.org", "iochaos", "", NS),
        ("create", "coordination.k8s.io", "leases", "", NS),
        ("create", "", "pods", "portforward", NS),
        ("list", "", "events", "", NS),
        ("get", "", "endpoints", "", NS),
        ("get", "", "services", "", "default"),
    ] {
        let needed = (
            needed.0.to_string(),
            needed.1.to_string(),
            needed.2.to_string(),
            needed.3.to_string(),
            needed.4.to_string(),
        );
        assert!(asked.contains(&needed), "{needed:?} not asked: {asked:#?}");
    }
    seen
}

#[tokio::test]
async fn building_asks_for_every_permission_the_faults_need() {
    flow_preflight().await;
}

/// A permission the run needs and does not have: the build stops with an
/// error naming the verb, the resource, the namespace, who asked, and the
/// Role that grants it — before anything was changed or dialled.
#[tokio::test]
async fn a_missing_permission_stops_the_build() {
    use chaos_core::fault::FaultKind;
    let (client, log) = mock(Box::new(|s| {
        match (s.method.clone(), s.path.as_str()) {
            (Method::POST, ACCESS_REVIEWS) => {
                let a = &s.body["spec"]["resourceAttributes"];
                let allowed = !(a["verb"] == "delete" && a["resource"] == "pods");
                let mut review = s.body.clone();
                review["status"] = json!({"allowed": allowed, "reason": "no RBAC policy matched"});
                return (201, review);
            }
            (Method::POST, WHOAMI) => {
                return (
                    201,
                    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                           "metadata": {},
                           "status": {"userInfo": {"username": "system:serviceaccount:pg-chaos:runner"}}}),
                );
            }
            _ => {}
        }
        common(s, false).unwrap_or_else(|| status(404, "NotFound"))
    }));
    let db = Dialled::new();
    let err = CnpgCluster::builder(NS, "cluster-example")
        .rw_dsn(db.dsn())
        .allow("kind-chaos/pg-chaos")
        .faults([FaultKind::KillPrimary])
        .build_with_client(client, "kind-chaos")
        .await
        .expect_err("no right to delete pods");
    let text = err.to_string();
    assert!(matches!(err, Error::KubeForbidden(_)), "{text}");
    for part in [
        "delete pods",
        "namespace `pg-chaos`",
        "system:serviceaccount:pg-chaos:runner",
        "no RBAC policy matched",
        "deploy/rbac/chaos-cnpg-role.yaml",
        "`chaos-cnpg`",
        "--serviceaccount=pg-chaos:runner",
        "auth can-i delete pods -n pg-chaos",
    ] {
        assert!(text.contains(part), "{part} missing: {text}");
    }
    let seen = log_of(&log);
    assert!(seen.iter().all(|s| !s.mutating()), "{seen:#?}");
    assert!(!db.was_dialled());
}

/// The API's answer to a failed request, with a message of its own.
fn failure(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// Kube errors are shown in words, never as Rust's debug output, and keep
/// the kube error as their source.
fn assert_in_words(err: &Error) {
    let text = err.to_string();
    for debug in ["Status {", "Some(Failure)", "ApiError"] {
        assert!(!text.contains(debug), "{debug} in: {text}");
    }
    let source = std::error::Error::source(err).expect("a source");
    assert!(
        source.downcast_ref::<kube::Error>().is_some()
            || source.downcast_ref::<Box<kube::Error>>().is_some(),
        "{source:?}"
    );
}

/// A wrong Cluster name: what is missing, where, and how to see what is
/// there.
#[tokio::test]
async fn a_wrong_cluster_name_says_where_to_look() {
    let (client, _log) = mock(Box::new(|s| {
        common(s, false).unwrap_or_else(|| {
            failure(
                404,
                "NotFound",
                "clusters.postgresql.cnpg.io \"nope\" not found",
            )
        })
    }));
    let err = CnpgCluster::builder(NS, "nope")
        .rw_dsn("postgresql://app:pw@127.0.0.1:1/app")
        .allow("kind-chaos/pg-chaos")
        .build_with_client(client, "kind-chaos")
        .await
        .expect_err("no such Cluster");
    assert!(matches!(err, Error::KubeNotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "no Cluster named nope in namespace pg-chaos \
         (kubectl get clusters.postgresql.cnpg.io -n pg-chaos)"
    );
    assert_in_words(&err);
}

/// Any other failure: what was being done and the API's answer in words.
#[tokio::test]
async fn a_failing_api_is_reported_in_words() {
    let (client, _log) = mock(Box::new(|s| {
        if s.method == Method::GET && s.path == CLUSTER_PATH {
            return failure(500, "InternalError", "etcdserver: request timed out");
        }
        common(s, false).unwrap_or_else(|| status(404, "NotFound"))
    }));
    let err = CnpgCluster::builder(NS, "cluster-example")
        .rw_dsn("postgresql://app:pw@127.0.0.1:1/app")
        .allow("kind-chaos/pg-chaos")
        .build_with_client(client, "kind-chaos")
        .await
        .expect_err("the API fails");
    assert_eq!(
        err.to_string(),
        "Kubernetes API: reading Cluster pg-chaos/cluster-example: \
         500 InternalError: etcdserver: request timed out"
    );
    assert_in_words(&err);
}

/// A request refused with 403: what was refused (verb, resource,
/// namespace), the API's words (which name the user) and the Role to bind.
#[tokio::test]
async fn a_forbidden_request_names_what_and_the_role() {
    let (client, _log) = mock(Box::new(|s| {
        if s.method == Method::DELETE {
            return failure(
                403,
                "Forbidden",
                "pods \"cluster-example-1\" is forbidden: User \"jane\" cannot delete resource \
                 \"pods\" in API group \"\" in the namespace \"pg-chaos\"",
            );
        }
        common(s, false).unwrap_or_else(|| status(404, "NotFound"))
    }));
    let t = target(client, true, false).await;
    let err = Fault::<CnpgCluster>::inject(DeletePrimary::kill(), &t)
        .await
        .expect_err("forbidden");
    assert!(matches!(err, Error::KubeForbidden(_)), "{err}");
    let text = err.to_string();
    for part in [
        "kube context `kind-chaos` to delete pods in namespace `pg-chaos`",
        "User \"jane\" cannot delete resource",
        "Role `chaos-cnpg` in deploy/rbac/chaos-cnpg-role.yaml",
        "create rolebinding chaos-cnpg --role=chaos-cnpg",
    ] {
        assert!(text.contains(part), "{part} missing: {text}");
    }
    assert_in_words(&err);
}

#[tokio::test]
async fn the_namespace_label_allows() {
    let (client, log) = mock(Box::new(|s| {
        common(s, true).unwrap_or_else(|| match s.method {
            Method::DELETE => (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
            ),
            _ => status(404, "NotFound"),
        })
    }));
    let t = target(client, false, false).await;
    let guard = Fault::<CnpgCluster>::inject(DeletePrimary::graceful(), &t)
        .await
        .expect("allowed by label");
    drop(guard);
    let seen = log_of(&log);
    let delete = seen
        .iter()
        .find(|s| s.method == Method::DELETE)
        .expect("delete");
    assert_eq!(
        delete.body.get("gracePeriodSeconds"),
        None,
        "graceful keeps the pod's grace"
    );
}

/// Dry run: nothing mutating is sent; the plan lists each object.
async fn flow_dry_run() -> Vec<Seen> {
    let (client, log) = mock(Box::new(|s| {
        common(s, false).unwrap_or_else(|| status(404, "NotFound"))
    }));
    let t = target(client, false, true).await;
    let g1 = Fault::<CnpgCluster>::inject(DeletePrimary::kill(), &t)
        .await
        .expect("dry delete");
    let g2 = Fault::<CnpgCluster>::inject(PartitionNetwork::isolate_primary(), &t)
        .await
        .expect("dry partition");
    let g3 = Fault::<CnpgCluster>::inject(Switchover::to("cluster-example-2"), &t)
        .await
        .expect("dry switchover");
    g2.heal().await.expect("dry heal");
    drop((g1, g3));
    let plan = t.dry_run_plan();
    let joined = plan.join("\n");
    assert!(
        joined.contains("would delete pods/cluster-example-1 (grace 0s, propagation Background)"),
        "{joined}"
    );
    assert!(
        joined.contains("would create networkchaos/chaos-partition-0123456789abcdef"),
        "{joined}"
    );
    assert!(
        joined.contains("\"action\":\"partition\""),
        "the object itself: {joined}"
    );
    assert!(
        joined.contains("would patch clusters/cluster-example/status"),
        "{joined}"
    );
    assert!(joined.contains("would delete networkchaos/"), "{joined}");
    let seen = log_of(&log);
    assert!(seen.iter().all(|s| !s.mutating()), "{seen:#?}");
    seen
}

#[tokio::test]
async fn dry_run_touches_nothing_and_lists_everything() {
    flow_dry_run().await;
}

/// `PartitionNetwork::node` and `direction` reach the `NetworkChaos`: the
/// named pod is selected instead of the primary, its peers are the other
/// instances, and Outbound/Inbound/Both become Chaos Mesh's `to`/`from`/`both`.
#[tokio::test]
async fn partition_honours_node_and_direction() {
    use chaos_core::fault::Direction;
    let (client, log) = mock(Box::new(|s| {
        common(s, false).unwrap_or_else(|| status(404, "NotFound"))
    }));
    let t = target(client, false, true).await;
    for (direction, expected) in [
        (Direction::Outbound, "to"),
        (Direction::Inbound, "from"),
        (Direction::Both, "both"),
    ] {
        let fault = PartitionNetwork::isolate_primary()
            .node("cluster-example-3")
            .direction(direction);
        let guard = Fault::<CnpgCluster>::inject(fault, &t)
            .await
            .expect("dry partition");
        assert_eq!(guard.info().victim.as_deref(), Some("cluster-example-3"));
        drop(guard);
        let plan = t.dry_run_plan();
        let created = plan
            .iter()
            .rev()
            .find(|l| l.contains("would create networkchaos/"))
            .expect("created");
        let object: Value =
            serde_json::from_str(&created[created.find('{').expect("object")..]).expect("json");
        assert_eq!(object["spec"]["direction"], expected, "{direction:?}");
        assert_eq!(
            object["spec"]["selector"]["pods"][NS],
            json!(["cluster-example-3"])
        );
        assert_eq!(
            object["spec"]["target"]["selector"]["pods"][NS],
            json!(["cluster-example-1", "cluster-example-2"])
        );
    }
    // The named pod's node address (kubelet) is cut, not the primary's.
    assert!(
        log_of(&log)
            .iter()
            .any(|s| s.path == "/api/v1/namespaces/pg-chaos/pods/cluster-example-3")
    );
    let err = Fault::<CnpgCluster>::inject(PartitionNetwork::isolate_primary().node("nope"), &t)
        .await
        .expect_err("no such instance");
    assert!(err.to_string().contains("no instance called nope"), "{err}");
}

/// On a node that is also the API server's (kind's control plane), the
/// isolate-primary plan cuts each address once: the kubelet's address is not
/// added again when it is one of the API server's.
#[tokio::test]
async fn isolate_primary_lists_each_address_once() {
    let (client, _log) = mock(Box::new(|s| {
        let mut r = common(s, false).unwrap_or_else(|| status(404, "NotFound"));
        if s.path == "/api/v1/namespaces/pg-chaos/pods/cluster-example-1" {
            r.1["status"]["hostIP"] = json!("172.18.0.2");
        }
        r
    }));
    let t = target(client, false, true).await;
    let guard = Fault::<CnpgCluster>::inject(PartitionNetwork::isolate_primary(), &t)
        .await
        .expect("dry partition");
    let mode = guard.info().mode.clone();
    drop(guard);
    let plan = t.dry_run_plan();
    let created = plan
        .iter()
        .find(|l| l.contains("would create networkchaos/"))
        .expect("created");
    let object: Value =
        serde_json::from_str(&created[created.find('{').expect("object")..]).expect("json");
    assert_eq!(
        object["spec"]["externalTargets"],
        json!(["10.96.0.1", "172.18.0.2"]),
        "{created}"
    );
    assert_eq!(mode.matches("172.18.0.2").count(), 1, "{mode}");
}

/// Sweep: objects of a run whose lease expired are deleted (lease last);
/// the live run's are kept; a dead run's fence is lifted.
async fn flow_sweep() -> Vec<Seen> {
    let (client, log) = mock(Box::new(|s| {
        let labels =
            |run: &str| json!({"app.kubernetes.io/managed-by": "chaos", "chaos.dev/run": run});
        if s.method == Method::GET && s.path == CLUSTER_PATH {
            let mut c = fixture("cnpg_cluster_01_healthy.json");
            c["metadata"]["annotations"] = json!({
                "cnpg.io/fencedInstances": "[\"cluster-example-2\"]",
                "chaos.dev/fenced-dead": "[\"cluster-example-2\"]",
            });
            return (200, c);
        }
        if let Some(r) = common(s, false) {
            return r;
        }
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        match (s.method.clone(), s.path.as_str()) {
            (Method::GET, "/apis/coordination.k8s.io/v1/namespaces/pg-chaos/leases") => (
                200,
                json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "LeaseList", "metadata": {},
                "items": [
                    {"metadata": {"name": "chaos-run-dead", "labels": labels("dead")},
                     "spec": {"renewTime": "2020-01-01T00:00:00.000000Z", "leaseDurationSeconds": 60}},
                    {"metadata": {"name": "chaos-run-alive", "labels": labels("alive")},
                     "spec": {"renewTime": now, "leaseDurationSeconds": 60}}
                ]}),
            ),
            (Method::GET, "/apis/chaos-mesh.org/v1alpha1/namespaces/pg-chaos/networkchaos") => (
                200,
                json!({
                "apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaosList", "metadata": {},
                "items": [
                    {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
                     "metadata": {"name": "chaos-partition-dead-0", "labels": labels("dead")}, "spec": {}},
                    {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
                     "metadata": {"name": "chaos-partition-alive-0", "labels": labels("alive")}, "spec": {}},
                    {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
                     "metadata": {"name": "chaos-partition-nolease-0", "labels": labels("nolease")}, "spec": {}}
                ]}),
            ),
            (Method::GET, "/apis/chaos-mesh.org/v1alpha1/namespaces/pg-chaos/iochaos") => {
                status(404, "NotFound")
            }
            (Method::DELETE, _) => (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
            ),
            (Method::PATCH, CLUSTER_PATH) => (200, fixture("cnpg_cluster_01_healthy.json")),
            _ => status(404, "NotFound"),
        }
    }));
    let t = target(client, true, false).await;
    let swept = t.sweep().await.expect("sweep");
    let seen = log_of(&log);
    let deleted: Vec<&str> = seen
        .iter()
        .filter(|s| s.method == Method::DELETE)
        .map(|s| s.path.rsplit('/').next().unwrap_or_default())
        .collect();
    assert_eq!(
        deleted,
        [
            "chaos-partition-dead-0",
            "chaos-partition-nolease-0",
            "chaos-run-dead"
        ],
        "{swept:?}"
    );
    let patch = seen
        .iter()
        .find(|s| s.method == Method::PATCH)
        .expect("unfence");
    assert_eq!(
        patch.body["metadata"]["annotations"]["cnpg.io/fencedInstances"],
        Value::Null
    );
    assert_eq!(
        patch.body["metadata"]["annotations"]["chaos.dev/fenced-dead"],
        Value::Null
    );
    assert_eq!(swept.len(), 4, "{swept:?}");
    seen
}

#[tokio::test]
async fn sweep_removes_what_dead_runs_left() {
    flow_sweep().await;
}

/// Fence: annotation added with the run's record; heal removes both.
async fn flow_fence() -> Vec<Seen> {
    let (client, log) = mock(Box::new(|s| {
        if let Some(r) = common(s, false) {
            return r;
        }
        match s.method {
            Method::PATCH => (200, fixture("cnpg_cluster_01_healthy.json")),
            _ => status(404, "NotFound"),
        }
    }));
    let t = target(client, true, false).await;
    let guard = Fault::<CnpgCluster>::inject(Fence::primary(), &t)
        .await
        .expect("fence");
    guard.heal().await.expect("unfence");
    let seen = log_of(&log);
    let patches: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::PATCH).collect();
    assert_eq!(patches.len(), 2);
    let a = &patches[0].body["metadata"]["annotations"];
    assert_eq!(a["cnpg.io/fencedInstances"], "[\"cluster-example-1\"]");
    assert_eq!(
        a["chaos.dev/fenced-0123456789abcdef"],
        "[\"cluster-example-1\"]"
    );
    assert_eq!(
        patches[1].body["metadata"]["annotations"]["cnpg.io/fencedInstances"],
        Value::Null
    );
    seen
}

#[tokio::test]
async fn fence_sets_and_lifts_the_annotation() {
    flow_fence().await;
}

/// The port-forward setup: credentials from the `<cluster>-app` Secret, a DSN
/// on 127.0.0.1 that never shows the password in Debug.
#[tokio::test]
async fn credentials_come_from_the_app_secret() {
    let (client, _log) = mock(Box::new(|s| {
        common(s, false).unwrap_or_else(|| status(404, "NotFound"))
    }));
    let t = CnpgCluster::builder(NS, "cluster-example")
        .allow("kind-chaos/pg-chaos")
        .build_with_client(client, "kind-chaos")
        .await
        .expect("target");
    let dsn = t.rw_dsn();
    assert!(dsn.starts_with("host=127.0.0.1 port="), "{dsn}");
    assert!(
        dsn.contains("user='app'") && dsn.contains("s3cr3tP4ss"),
        "{dsn}"
    );
    assert!(!format!("{t:?}").contains("s3cr3tP4ss"));
    assert_eq!(t.node_count(), 3);
    assert_eq!(t.write_service(), "cluster-example-rw");
    let topo = t.topology().await.expect("topology");
    assert_eq!(topo.primary_name(), Some("cluster-example-1"));
}

/// An RFC 3339 time with nanoseconds, as `timestamps=true` prefixes log lines.
fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// A log line of CNPG's instance manager for a PostgreSQL record, with the
/// API server's `timestamps=true` prefix; `log_time` in PostgreSQL's form.
fn cnpg_log_line(at: std::time::SystemTime, pod: &str, message: &str) -> String {
    let ts = rfc3339(at);
    // `2026-08-21T10:00:05.811123456Z` -> `2026-08-21 10:00:05.811 UTC`.
    let log_time = format!("{} UTC", ts[..23].replacen('T', " ", 1));
    let line = json!({
        "level": "info", "ts": ts, "logger": "postgres", "msg": "record",
        "logging_pod": pod,
        "record": {"log_time": log_time, "process_id": "27", "error_severity": "LOG",
                   "sql_state_code": "00000", "message": message,
                   "backend_type": "startup", "query_id": "0"},
    });
    format!("{ts} {line}")
}

/// The new primary's log as the API server would send it: a line from long
/// before the failover, a replica's read-only start, an instance-manager
/// line, then the promotion, 50 to 10 ms before `now`.
fn promotion_log(now: std::time::SystemTime, pod: &str) -> String {
    use std::time::Duration;
    let before = now - Duration::from_secs(3600);
    let ms = |n: u64| now - Duration::from_millis(n);
    let manager = json!({"level": "info", "ts": rfc3339(ms(60)), "logger": "instance-manager",
                         "msg": "Promoting instance", "logging_pod": pod});
    [
        cnpg_log_line(
            before,
            pod,
            "database system is ready to accept connections",
        ),
        cnpg_log_line(
            before,
            pod,
            "database system is ready to accept read-only connections",
        ),
        format!("{} {manager}", rfc3339(ms(60))),
        cnpg_log_line(ms(50), pod, "received promote request"),
        cnpg_log_line(
            ms(40),
            pod,
            "redo done at 0/5000060 system usage: CPU: user: 0.00 s, system: 0.01 s, elapsed: 1.59 s",
        ),
        cnpg_log_line(ms(30), pod, "selected new timeline ID: 2"),
        cnpg_log_line(ms(20), pod, "archive recovery complete"),
        cnpg_log_line(
            ms(10),
            pod,
            "database system is ready to accept connections",
        ),
    ]
    .join("\n")
        + "\n"
}

/// The log marks [`CnpgCluster`]'s event stream takes from the new
/// primary's log.
const LOG_MARKS: [&str; 5] = [
    "promote requested",
    "wal recovery ended",
    "timeline selected",
    "archive recovery complete",
    "ready for connections",
];

/// The event stream through a failover: the Cluster reads healthy, pending,
/// elected, promoted, then healthy after the failover (fixtures in order);
/// the `-rw` endpoints follow `currentPrimary`; the new primary's log is
/// readable (`log_readable`) or forbidden. Returns the events seen until
/// well after the change ended, and the requests.
async fn flow_events(log_readable: bool) -> (Vec<chaos_core::timeline::Event>, Vec<Seen>) {
    use futures::StreamExt;
    use std::time::{Duration, Instant, SystemTime};

    let started = SystemTime::now();
    let sequence = [
        "cnpg_cluster_01_healthy.json",
        "cnpg_cluster_01_healthy.json",
        "cnpg_cluster_01_healthy.json",
        "cnpg_cluster_02_failover_pending.json",
        "cnpg_cluster_03_failover_target_elected.json",
        "cnpg_cluster_04_failover_promoted_old_primary_rejoining.json",
        "cnpg_cluster_05_healthy_after_failover.json",
    ];
    let mut reads = 0;
    let mut current = fixture(sequence[0]);
    let (client, log) = mock(Box::new(move |s| {
        match (s.method.clone(), s.path.as_str()) {
            (Method::GET, CLUSTER_PATH) => {
                current = fixture(sequence[reads.min(sequence.len() - 1)]);
                reads += 1;
                (200, current.clone())
            }
            (Method::GET, "/api/v1/namespaces/pg-chaos/endpoints/cluster-example-rw") => {
                let pod = current["status"]["currentPrimary"].clone();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "Endpoints",
                           "metadata": {"name": "cluster-example-rw"},
                           "subsets": [{"addresses": [{"ip": "10.244.0.12",
                                        "targetRef": {"kind": "Pod", "name": pod}}],
                                        "ports": [{"name": "postgres", "port": 5432}]}]}),
                )
            }
            (Method::GET, "/api/v1/namespaces/pg-chaos/events") => {
                let mut list = fixture("cnpg_events_failover.json");
                list["metadata"] = json!({});
                (200, list)
            }
            (Method::GET, p)
                if p.starts_with("/api/v1/namespaces/pg-chaos/pods/") && p.ends_with("/log") =>
            {
                if log_readable {
                    let pod = p.split('/').nth(6).unwrap_or_default();
                    (200, Value::String(promotion_log(SystemTime::now(), pod)))
                } else {
                    status(403, "Forbidden")
                }
            }
            _ => common(s, false).unwrap_or_else(|| status(404, "NotFound")),
        }
    }));
    let t = Arc::new(target(client, true, false).await);
    let mut stream = t.clone().events();
    let mut events = Vec::new();
    // Until the change is over (routing ended) and a second more.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut quiet_from: Option<Instant> = None;
    while Instant::now() < deadline
        && quiet_from.is_none_or(|q| q.elapsed() < Duration::from_secs(1))
    {
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
            if e.name == "routing ended" {
                quiet_from = Some(Instant::now());
            }
            events.push(e);
        }
    }
    assert!(
        quiet_from.is_some(),
        "the failover's routing never ended: {events:#?}"
    );
    let seen = log_of(&log);
    // Every event after the target was built.
    assert!(
        events.iter().all(|e| e.at.system_time() >= started),
        "{events:#?}"
    );
    (events, seen)
}

/// After a failover the new primary's log splits promotion further: each
/// log mark once, after the new primary was observed, in order, none from
/// before the failover; read with the `postgres` container and timestamps.
async fn flow_events_with_log() -> Vec<Seen> {
    let (events, seen) = flow_events(true).await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    let observed = names
        .iter()
        .position(|n| *n == "new primary observed")
        .unwrap_or_else(|| panic!("no new primary observed: {names:?}"));
    let marks: Vec<&chaos_core::timeline::Event> = events
        .iter()
        .filter(|e| LOG_MARKS.contains(&e.name.as_str()))
        .collect();
    assert_eq!(
        marks.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        LOG_MARKS,
        "each log mark once, in order: {names:?}"
    );
    assert!(
        names.iter().position(|n| *n == LOG_MARKS[0]).expect("mark") > observed,
        "{names:?}"
    );
    assert!(marks.windows(2).all(|w| w[0].at <= w[1].at), "{marks:#?}");
    assert_eq!(
        marks[2].detail.as_deref(),
        Some("selected new timeline ID: 2")
    );
    let logs: Vec<&Seen> = seen.iter().filter(|s| s.path.ends_with("/log")).collect();
    assert!(!logs.is_empty());
    for l in &logs {
        assert_eq!(
            l.path,
            "/api/v1/namespaces/pg-chaos/pods/cluster-example-2/log"
        );
        assert!(l.query.contains("container=postgres"), "{}", l.query);
        assert!(l.query.contains("timestamps=true"), "{}", l.query);
        assert!(l.query.contains("sinceTime="), "{}", l.query);
    }
    // All marks were in the first read: no more reads for this promotion.
    assert_eq!(logs.len(), 1, "{logs:#?}");
    seen
}

#[tokio::test]
async fn new_primary_log_splits_promotion_in_the_event_stream() {
    flow_events_with_log().await;
}

#[tokio::test]
async fn an_unreadable_log_is_skipped() {
    let (events, seen) = flow_events(false).await;
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert!(names.contains(&"new primary observed"), "{names:?}");
    assert!(names.contains(&"routing ended"), "{names:?}");
    assert!(names.iter().all(|n| !LOG_MARKS.contains(n)), "{names:?}");
    // Tried once for the promotion, then left alone.
    assert_eq!(seen.iter().filter(|s| s.path.ends_with("/log")).count(), 1);
}

/// One RBAC rule of the shipped file.
#[derive(Debug, serde::Deserialize)]
struct Rule {
    #[serde(rename = "apiGroups", default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
struct RoleDoc {
    kind: String,
    metadata: serde_json::Map<String, Value>,
    rules: Vec<Rule>,
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_is_allowed_by_the_shipped_role() {
    let mut seen = Vec::new();
    seen.extend(flow_delete().await);
    seen.extend(flow_switchover().await);
    seen.extend(flow_partition().await);
    seen.extend(flow_iochaos_read_only().await);
    seen.extend(flow_refusal().await);
    seen.extend(flow_dry_run().await);
    seen.extend(flow_sweep().await);
    seen.extend(flow_fence().await);
    seen.extend(flow_events_with_log().await);
    seen.extend(flow_preflight().await);
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/rbac/chaos-cnpg-role.yaml"
    ))
    .expect("role file");
    let docs: Vec<RoleDoc> = text
        .split("\n---\n")
        .map(|d| serde_norway::from_str(d).expect("a Role or ClusterRole"))
        .collect();
    // Reviews of one's own rights are every authenticated user's
    // (system:basic-user); what they asked about must be granted, as every
    // request made must be.
    let used: BTreeSet<_> = seen
        .iter()
        .filter(|s| !s.is_review())
        .map(Seen::rbac)
        .chain(seen.iter().filter_map(Seen::reviewed))
        .collect();
    for (verb, group, resource, sub, namespace) in &used {
        let full = if sub.is_empty() {
            resource.clone()
        } else {
            format!("{resource}/{sub}")
        };
        let allowed = docs.iter().any(|d| {
            let scope_ok = match d.kind.as_str() {
                "Role" => {
                    d.metadata.get("namespace").and_then(Value::as_str) == Some(namespace.as_str())
                }
                _ => namespace.is_empty(),
            };
            scope_ok
                && d.rules.iter().any(|r| {
                    r.api_groups.iter().any(|g| g == group)
                        && r.resources.contains(&full)
                        && r.verbs.iter().any(|v| v == verb)
                })
        });
        assert!(
            allowed,
            "not allowed by deploy/rbac/chaos-cnpg-role.yaml: {verb} {group}/{full} in {namespace:?}"
        );
    }
    // The flows did exercise the mutating verbs the Role grants.
    for needed in ["delete", "patch", "create"] {
        assert!(
            used.iter().any(|u| u.0 == needed),
            "{needed} never used: {used:?}"
        );
    }
    // ... and read the new primary's log.
    assert!(
        used.iter()
            .any(|u| (u.0.as_str(), u.2.as_str(), u.3.as_str()) == ("get", "pods", "log")),
        "pods/log never read: {used:?}"
    );
}
