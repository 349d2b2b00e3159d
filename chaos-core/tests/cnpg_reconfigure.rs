//! Configuration experiments on the CNPG `Cluster` resource (`Reconfigure`),
//! against a mocked API server ([`cnpg_mock`]) that applies the patches it is
//! sent and serves the Cluster CRD from `../shared/reference/cnpg`.
// The mock's bookkeeping unwraps what it built itself.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use chaos_core::cluster::Target;
use http::Method;
use serde_json::{Value, json};

mod cnpg_mock;

use cnpg_mock::{CLUSTER_PATH, Seen, common, fixture, log_of, mock, status, target};

const CRD_PATH: &str =
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusters.postgresql.cnpg.io";

/// The Cluster CRD as the API server serves it: the reference YAML as JSON.
fn cluster_crd() -> Value {
    let path = format!(
        "{}/../../shared/reference/cnpg/postgresql.cnpg.io_clusters.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_norway::from_str(&std::fs::read_to_string(&path).expect("CRD")).expect("CRD YAML")
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// A Cluster the mock keeps: merge patches change it (a stale
/// `resourceVersion` gets 409), every change bumps the generation, and the
/// "operator" rolls it out at once (the `Ready` condition observes it).
struct Stateful {
    cluster: Value,
    conflicts: u32,
}

impl Stateful {
    fn new(cluster: Value, conflicts: u32) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Stateful { cluster, conflicts }))
    }

    fn answer(&mut self, s: &Seen) -> Option<(u16, Value)> {
        match (s.method.clone(), s.path.as_str()) {
            (Method::GET, CLUSTER_PATH) => Some((200, self.cluster.clone())),
            (Method::PATCH, CLUSTER_PATH) => {
                let rv = self.cluster["metadata"]["resourceVersion"].clone();
                if self.conflicts > 0 || s.body["metadata"]["resourceVersion"] != rv {
                    self.conflicts = self.conflicts.saturating_sub(1);
                    // Someone else changed it meanwhile.
                    let next = rv.as_str().unwrap().parse::<u64>().unwrap() + 1;
                    self.cluster["metadata"]["resourceVersion"] = json!(next.to_string());
                    return Some(status(409, "Conflict"));
                }
                let mut body = s.body.clone();
                body["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .remove("resourceVersion");
                merge(&mut self.cluster, &body);
                let g = self.cluster["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                let next = rv.as_str().unwrap().parse::<u64>().unwrap() + 1;
                self.cluster["metadata"]["generation"] = json!(g);
                self.cluster["metadata"]["resourceVersion"] = json!(next.to_string());
                for c in self.cluster["status"]["conditions"].as_array_mut().unwrap() {
                    c["observedGeneration"] = json!(g);
                }
                Some((200, self.cluster.clone()))
            }
            (Method::GET, CRD_PATH) => Some((200, cluster_crd())),
            _ => None,
        }
    }
}

fn stateful_mock(state: Arc<Mutex<Stateful>>) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
    mock(Box::new(move |s| {
        if let Some(r) = state.lock().unwrap().answer(s) {
            return r;
        }
        common(s, false).unwrap_or_else(|| status(404, "NotFound"))
    }))
}

fn lease_setting(v: &str) -> chaos_core::cluster::Setting {
    chaos_core::cluster::Setting::new("spec.primaryLease.leaseDurationSeconds", v)
}

#[tokio::test]
async fn an_experiment_refuses_a_field_the_crd_does_not_have_before_changing_anything() {
    let state = Stateful::new(fixture("cnpg_cluster_01_healthy.json"), 0);
    let (client, log) = stateful_mock(state);
    let t = target(client, true, false).await;
    let config = t.reconfigure().expect("CNPG can be re-configured");
    let typo = [chaos_core::cluster::Setting::new(
        "spec.primaryLease.leaseDurationSecond",
        "5",
    )];
    let e = config.baseline(&typo).await.unwrap_err().to_string();
    assert!(e.contains("no field `leaseDurationSecond`"), "{e}");
    assert!(
        e.contains("leaseDurationSeconds"),
        "the close name is suggested: {e}"
    );
    let bad = config
        .baseline(&[lease_setting("soon")])
        .await
        .unwrap_err()
        .to_string();
    assert!(bad.contains("whole number"), "{bad}");
    let sync = [chaos_core::cluster::Setting::new(
        "spec.postgresql.synchronous.method",
        "all",
    )];
    let e = config.baseline(&sync).await.unwrap_err().to_string();
    assert!(e.contains("any") && e.contains("first"), "{e}");
    assert!(
        log_of(&log).iter().all(|s| !s.mutating()),
        "nothing was changed"
    );
    assert!(
        log_of(&log).iter().any(|s| s.path == CRD_PATH),
        "the installed CRD was read"
    );
}

#[tokio::test]
async fn a_variant_is_a_guarded_patch_rolled_out_and_the_baseline_restores_it() {
    // One conflict first: someone else changed the Cluster meanwhile.
    let state = Stateful::new(fixture("cnpg_cluster_01_healthy.json"), 1);
    let (client, log) = stateful_mock(state.clone());
    let t = target(client, true, false).await;
    let config = t.reconfigure().unwrap();
    let variant = [
        lease_setting("5"),
        chaos_core::cluster::Setting::new("spec.switchoverDelay", "10"),
    ];
    let baseline = config.baseline(&variant).await.expect("known fields");
    assert_eq!(
        baseline[0].value, None,
        "no primaryLease in the fixture: the default"
    );
    assert_eq!(baseline[1].value.as_deref(), Some("3600"));

    config.apply(&variant).await.expect("applied");
    let c = state.lock().unwrap().cluster.clone();
    assert_eq!(c["spec"]["primaryLease"]["leaseDurationSeconds"], 5);
    assert_eq!(c["spec"]["switchoverDelay"], 10);
    let record: Value = serde_json::from_str(
        c["metadata"]["annotations"]["chaos.dev/restore-0123456789abcdef"]
            .as_str()
            .expect("the original values are recorded on the Cluster"),
    )
    .unwrap();
    // primaryLease was absent: its absence is what is restored.
    assert_eq!(
        record,
        json!({"spec.primaryLease": null, "spec.switchoverDelay": 3600})
    );
    let patches: Vec<Seen> = log_of(&log)
        .into_iter()
        .filter(|s| s.method == Method::PATCH)
        .collect();
    assert_eq!(patches.len(), 2, "a conflict, then the retry");
    assert_eq!(patches[0].body["metadata"]["resourceVersion"], "12345");
    assert_eq!(patches[1].body["metadata"]["resourceVersion"], "12346");
    assert_eq!(
        patches[1].body["spec"]["primaryLease"]["leaseDurationSeconds"],
        5
    );

    config.apply(&baseline).await.expect("restored");
    let c = state.lock().unwrap().cluster.clone();
    assert!(c["spec"].get("primaryLease").is_none(), "{}", c["spec"]);
    assert_eq!(c["spec"]["switchoverDelay"], 3600);
    let annotations = c["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        !annotations
            .keys()
            .any(|k| k.starts_with("chaos.dev/restore-")),
        "the record goes with the restore: {annotations:?}"
    );
}

#[tokio::test]
async fn a_killed_experiments_change_is_restored_by_the_next_sweep() {
    let mut cluster = fixture("cnpg_cluster_01_healthy.json");
    cluster["spec"]["switchoverDelay"] = json!(10);
    cluster["metadata"]["annotations"] =
        json!({"chaos.dev/restore-dead": "{\"spec.switchoverDelay\":3600}"});
    let state = Stateful::new(cluster, 0);
    let (client, _log) = mock(Box::new({
        let state = state.clone();
        move |s| {
            if let Some(r) = state.lock().unwrap().answer(s) {
                return r;
            }
            if let Some(r) = common(s, false) {
                return r;
            }
            match s.path.as_str() {
                "/apis/coordination.k8s.io/v1/namespaces/pg-chaos/leases" => (
                    200,
                    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "LeaseList",
                       "metadata": {}, "items": []}),
                ),
                _ => status(404, "NotFound"),
            }
        }
    }));
    let t = target(client, true, false).await;
    let swept = t.sweep().await.expect("sweep");
    assert!(
        swept
            .iter()
            .any(|s| s.contains("spec.switchoverDelay=3600") && s.contains("run dead")),
        "{swept:?}"
    );
    let c = state.lock().unwrap().cluster.clone();
    assert_eq!(c["spec"]["switchoverDelay"], 3600);
    assert!(
        c["metadata"]["annotations"]
            .get("chaos.dev/restore-dead")
            .is_none()
    );
}

#[tokio::test]
async fn a_dry_run_experiment_prints_its_patches_and_sends_none() {
    let state = Stateful::new(fixture("cnpg_cluster_01_healthy.json"), 0);
    let (client, log) = stateful_mock(state);
    let t = target(client, true, true).await;
    let config = t.reconfigure().unwrap();
    let baseline = config.baseline(&[lease_setting("5")]).await.unwrap();
    config.apply(&[lease_setting("5")]).await.unwrap();
    config.apply(&baseline).await.unwrap();
    assert!(
        log_of(&log).iter().all(|s| !s.mutating()),
        "a dry run sends no change"
    );
    let plan = t.dry_run_plan();
    assert_eq!(plan.len(), 2, "{plan:?}");
    assert!(plan[0].contains("\"leaseDurationSeconds\":5"), "{plan:?}");
    assert!(plan[1].contains("\"primaryLease\":null"), "{plan:?}");
}
