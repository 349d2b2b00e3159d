//! The typed views against sample objects and the CRD schemas CNPG installs.

use super::*;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use serde::Serialize;

#[test]
fn unknown_fields_and_values_are_tolerated() {
    let spec: ClusterSpec = serde_json::from_value(serde_json::json!({
        "instances": 3,
        "aFieldFromTheFuture": {"x": 1},
        "primaryUpdateMethod": "teleport",
        "postgresql": {
            "synchronous": {"method": "quorum-v2", "number": 1, "dataDurability": "maybe"},
            "parameters": {"checkpoint_timeout": "1min"}
        },
        "probes": {"startup": {"type": "streaming", "maximumLag": "1Gi", "periodSeconds": 5}},
        "securityContext": {"readOnlyRootFilesystem": false}
    }))
    .expect("tolerant ClusterSpec");
    assert_eq!(
        spec.primary_update_method,
        Some(PrimaryUpdateMethod::Unknown)
    );
    let sync = spec.synchronous().expect("synchronous");
    assert_eq!(sync.method, SynchronousMethod::Unknown);
    assert_eq!(sync.data_durability, Some(DataDurability::Unknown));
    assert_eq!(spec.parameter("checkpoint_timeout"), Some("1min"));
    assert!(!spec.read_only_root_filesystem());
    let startup = spec.probes.as_ref().and_then(|p| p.startup.as_ref());
    assert_eq!(startup.and_then(|s| s.timings.period_seconds), Some(5));
    assert_eq!(
        startup.and_then(|s| s.maximum_lag.clone()),
        Some(IntOrString::String("1Gi".into()))
    );
}

#[test]
fn defaults_follow_the_crd() {
    let spec: ClusterSpec = serde_json::from_value(serde_json::json!({})).expect("empty spec");
    assert_eq!(spec.instances, 1);
    assert_eq!(spec.failover_delay_or_default(), 0);
    assert_eq!(spec.switchover_delay_or_default(), 3600);
    assert_eq!(spec.smart_shutdown_timeout_or_default(), 180);
    assert_eq!(spec.stop_delay_or_default(), 1800);
    assert_eq!(
        spec.primary_update_method_or_default(),
        PrimaryUpdateMethod::Restart
    );
    assert!(spec.read_only_root_filesystem(), "CNPG's default");
    assert!(spec.synchronous().is_none());
}

#[test]
fn resources_know_their_api() {
    assert_eq!(Cluster::api_version(&()), "postgresql.cnpg.io/v1");
    assert_eq!(
        Cluster::url_path(&(), Some("db")),
        "/apis/postgresql.cnpg.io/v1/namespaces/db/clusters"
    );
    assert_eq!(
        Pooler::url_path(&(), Some("db")),
        "/apis/postgresql.cnpg.io/v1/namespaces/db/poolers"
    );
    assert_eq!(
        FailoverQuorum::url_path(&(), Some("db")),
        "/apis/postgresql.cnpg.io/v1/namespaces/db/failoverquorums"
    );
    assert_eq!(FailoverQuorum::kind(&()), "FailoverQuorum");
}

#[test]
fn pooler_parses() {
    let pooler: Pooler = serde_json::from_value(serde_json::json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Pooler",
        "metadata": {"name": "pooler-rw", "namespace": "pg-chaos"},
        "spec": {
            "cluster": {"name": "cluster-example"},
            "instances": 2,
            "type": "rw",
            "pgbouncer": {"poolMode": "transaction", "parameters": {"max_client_conn": "1000"}},
            "template": {"spec": {"containers": []}}
        },
        "status": {"instances": 2, "secrets": {"clientCA": {"name": "x", "version": "1"}}}
    }))
    .expect("Pooler");
    assert_eq!(pooler.spec.cluster.name, "cluster-example");
    assert_eq!(pooler.spec.type_or_default(), PoolerType::Rw);
    assert_eq!(
        pooler.spec.pgbouncer.pool_mode.as_deref(),
        Some("transaction")
    );
    assert_eq!(pooler.status.and_then(|s| s.instances), Some(2));
    // type and pgbouncer settings are optional.
    let bare: PoolerSpec =
        serde_json::from_value(serde_json::json!({"cluster": {"name": "c"}, "pgbouncer": {}}))
            .expect("bare PoolerSpec");
    assert_eq!(bare.type_or_default(), PoolerType::Rw);
}

#[test]
fn status_helpers() {
    let status: ClusterStatus = serde_json::from_value(serde_json::json!({
        "currentPrimary": "c-1",
        "targetPrimary": "c-2",
        "instancesStatus": {"healthy": ["c-1", "c-2"], "failed": ["c-3"]},
        "conditions": [{
            "type": "Ready", "status": "False", "reason": "ClusterIsNotReady",
            "message": "Cluster Is Not Ready", "lastTransitionTime": "2026-08-21T10:00:00Z"
        }]
    }))
    .expect("ClusterStatus");
    assert!(status.is_changing_primary());
    assert!(!status.is_electing());
    assert!(!status.is_ready());
    assert_eq!(
        status.condition("Ready").map(|c| c.reason.as_str()),
        Some("ClusterIsNotReady")
    );
    assert_eq!(status.instances_in("failed"), ["c-3".to_string()]);
    assert!(status.instances_in("replicating").is_empty());
}

/// Every key of `value` (recursively) is a property of `schema`, the
/// CRD's OpenAPI v3 schema; returns the paths that are not.
fn unknown_paths(value: &serde_json::Value, schema: &serde_json::Value, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let sub = schema
                    .get("properties")
                    .and_then(|p| p.get(k))
                    .or_else(|| schema.get("additionalProperties"));
                match sub {
                    Some(sub) => out.extend(unknown_paths(v, sub, &format!("{path}.{k}"))),
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        serde_json::Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for v in items {
                    out.extend(unknown_paths(v, sub, &format!("{path}[]")));
                }
            }
        }
        _ => {}
    }
    out
}

fn crd_schema(file: &str) -> serde_json::Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/cnpg")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "CNPG CRD schema not found at {} ({e}): these tests need \
             ../shared/reference/cnpg next to the workspace",
            path.display()
        )
    });
    let crd: serde_json::Value = serde_norway::from_str(&text).expect("CRD YAML");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Reads `maximal` as `T` and writes it back: the result holds exactly
/// the fields `T` knows. Asserts nothing of `maximal` was dropped (so the
/// test covers every field written there) and that every field exists
/// in the CRD schema.
fn check_against_crd<T: serde::de::DeserializeOwned + Serialize>(
    maximal: serde_json::Value,
    schema: &serde_json::Value,
) {
    let typed: T = serde_json::from_value(maximal.clone()).expect("maximal object parses");
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(
        back, maximal,
        "the maximal object must use only (and all) typed fields"
    );
    let mut checked = back.clone();
    // `metadata` is ObjectMeta, left out of CRD schemas.
    checked.as_object_mut().map(|o| o.remove("metadata"));
    let unknown = unknown_paths(&checked, schema, "");
    assert!(
        unknown.is_empty(),
        "fields not in the CRD schema: {unknown:?}"
    );
}

#[test]
fn every_typed_cluster_field_is_in_the_crd() {
    let probe = serde_json::json!({
        "initialDelaySeconds": 0, "periodSeconds": 5, "timeoutSeconds": 5,
        "failureThreshold": 20, "successThreshold": 1, "terminationGracePeriodSeconds": 30
    });
    let mut startup = probe.clone();
    startup["type"] = "streaming".into();
    startup["maximumLag"] = "1Gi".into();
    let mut liveness = probe.clone();
    liveness["isolationCheck"] =
        serde_json::json!({"enabled": true, "requestTimeout": 1000, "connectionTimeout": 1000});
    let storage = serde_json::json!({
        "size": "1Gi", "storageClass": "standard", "resizeInUseVolumes": true,
        "pvcTemplate": {"accessModes": ["ReadWriteOnce"]}
    });
    let cluster = serde_json::json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "c", "namespace": "db"},
        "spec": {
            "instances": 3, "description": "d", "imageName": "img",
            "postgresql": {
                "parameters": {"checkpoint_timeout": "1min"},
                "synchronous": {
                    "method": "any", "number": 1, "dataDurability": "required",
                    "failoverQuorum": true, "maxStandbyNamesFromCluster": 2,
                    "standbyNamesPre": ["a"], "standbyNamesPost": ["b"]
                },
                "promotionTimeout": 40, "enableAlterSystem": false,
                "shared_preload_libraries": ["pg_stat_statements"]
            },
            "minSyncReplicas": 1, "maxSyncReplicas": 1, "failoverDelay": 0,
            "switchoverDelay": 15, "smartShutdownTimeout": 5, "stopDelay": 30,
            "startDelay": 60, "livenessProbeTimeout": 5,
            "primaryUpdateMethod": "switchover", "primaryUpdateStrategy": "unsupervised",
            "storage": storage, "walStorage": storage,
            "probes": {"startup": startup, "liveness": liveness, "readiness": startup},
            "securityContext": {"readOnlyRootFilesystem": false},
            "podSecurityContext": {"runAsNonRoot": true},
            "primaryLease": {
                "leaseDurationSeconds": 15, "releasedLeaseDurationSeconds": 1,
                "renewDeadlineSeconds": 10, "retryPeriodSeconds": 2
            },
            "enablePDB": true, "enableSuperuserAccess": false
        },
        "status": {
            "instances": 3, "readyInstances": 3,
            "instancesStatus": {"healthy": ["c-1"]},
            "instancesReportedState": {"c-1": {"isPrimary": true, "timeLineID": 1, "ip": "10.0.0.1"}},
            "instanceNames": ["c-1"], "timelineID": 1,
            "currentPrimary": "c-1", "currentPrimaryTimestamp": "2026-08-21T09:00:12.345678Z",
            "targetPrimary": "c-1", "targetPrimaryTimestamp": "2026-08-21T08:59:58.123456Z",
            "currentPrimaryFailingSinceTimestamp": "2026-08-21T10:00:00.401223Z",
            "phase": "Cluster in healthy state", "phaseReason": "r",
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "ClusterIsReady",
                "message": "Cluster is Ready", "lastTransitionTime": "2026-08-21T09:01:40Z",
                "observedGeneration": 1
            }],
            "writeService": "c-rw", "readService": "c-r",
            "danglingPVC": ["c-2"], "healthyPVC": ["c-1"], "unusablePVC": ["c-3"],
            "systemID": "7541234567890123456", "image": "img", "latestGeneratedNode": 3,
            "topology": {"instances": {"c-1": {"zone": "a"}}, "nodesUsed": 3, "successfullyExtracted": true}
        }
    });
    check_against_crd::<Cluster>(cluster, &crd_schema("postgresql.cnpg.io_clusters.yaml"));
}

#[test]
fn every_typed_pooler_and_quorum_field_is_in_the_crd() {
    let pooler = serde_json::json!({
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Pooler",
        "metadata": {"name": "p", "namespace": "db"},
        "spec": {
            "cluster": {"name": "c"}, "instances": 1, "type": "rw",
            "pgbouncer": {
                "poolMode": "session", "parameters": {"max_client_conn": "100"},
                "paused": false, "authQuery": "SELECT 1", "pg_hba": ["host all all 0.0.0.0/0 md5"]
            }
        },
        "status": {"instances": 1, "phase": "active", "phaseReason": "r", "error": "e", "image": "i"}
    });
    check_against_crd::<Pooler>(pooler, &crd_schema("postgresql.cnpg.io_poolers.yaml"));
    let quorum = serde_json::json!({
        "metadata": {"name": "c", "namespace": "db"},
        "status": {"method": "any", "primary": "c-1", "standbyNames": ["c-2"], "standbyNumber": 1}
    });
    check_against_crd::<FailoverQuorum>(
        quorum,
        &crd_schema("postgresql.cnpg.io_failoverquorums.yaml"),
    );
}
