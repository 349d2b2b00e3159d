//! The CNPG target's fault flows against a mocked API server
//! ([`cnpg_mock`]): responses come from the fixtures in
//! `../shared/reference/fixtures`, every request is recorded, and the RBAC
//! Role shipped in `deploy/rbac/` must allow each one. The event stream's
//! flows (watches) are in `cnpg_events.rs`, errors in words in
//! `cnpg_errors.rs`, configuration experiments in `cnpg_reconfigure.rs`.

use std::sync::{Arc, Mutex};

use chaos_core::Error;
use chaos_core::cluster::Target;
use chaos_core::cluster::cnpg::{CnpgCluster, Fence};
use chaos_core::fault::{
    DeletePrimary, Fault, FaultGuard, PartitionNetwork, Switchover, ThrottleDisk,
};
use http::Method;
use serde_json::{Value, json};

mod cnpg_mock;

use cnpg_mock::{
    ACCESS_REVIEWS, CLUSTER_PATH, NS, Seen, WHOAMI, assert_allowed_by_role, common, fixture,
    log_of, mock, status, target,
};

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

/// The fault catalogue's `on_cnpg` column is what the CNPG target does: a
/// fault it says the target does is attempted (planned, in a dry run), every
/// other one is [`Error::Unsupported`] on `cnpg` at once, naming what does it.
#[tokio::test]
async fn the_catalogues_cnpg_column_is_what_the_target_does() {
    use chaos_core::fault::{CATALOGUE, FaultKind, FaultSpec};
    let (client, log) = mock(Box::new(|s| {
        common(s, false).unwrap_or_else(|| status(404, "NotFound"))
    }));
    let t = target(client, false, true).await;
    let t: &dyn Target = &t;
    for e in CATALOGUE {
        let spec = match e.kind {
            // Chaos Mesh throttles by operations, not bytes.
            FaultKind::ThrottlePrimaryDisk => {
                "throttle-primary-disk=100iops".parse().expect("spec")
            }
            kind => FaultSpec::from(kind),
        };
        // An unsupported fault fails before any request; a supported one
        // may take its time (or fail on the mock): either way it was tried.
        let tried = tokio::time::timeout(std::time::Duration::from_secs(5), spec.inject(t)).await;
        let unsupported = match tried {
            Ok(Err(Error::Unsupported {
                fault,
                target,
                supported_by,
            })) => {
                assert_eq!((fault.as_str(), target.as_str()), (e.name, "cnpg"));
                assert!(
                    supported_by.contains("on cnpg: kill-primary"),
                    "{supported_by}"
                );
                true
            }
            Ok(Ok(guard)) => {
                drop(guard);
                false
            }
            Ok(Err(_)) | Err(_) => false,
        };
        assert_eq!(
            unsupported, !e.on_cnpg,
            "{}: the catalogue says on_cnpg = {}",
            e.name, e.on_cnpg
        );
    }
    assert!(log_of(&log).iter().all(|s| !s.mutating()), "a dry run");
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
    seen.extend(flow_preflight().await);
    let used = assert_allowed_by_role(&seen);
    // The flows did exercise the mutating verbs the Role grants.
    for needed in ["delete", "patch", "create"] {
        assert!(
            used.iter().any(|u| u.0 == needed),
            "{needed} never used: {used:?}"
        );
    }
}
