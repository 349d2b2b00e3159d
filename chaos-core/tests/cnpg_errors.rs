//! The CNPG target's errors against a mocked API server ([`cnpg_mock`]): a
//! wrong Cluster, a failing or refusing API — each said in words (never Rust's
//! debug output), with the kube error kept as the source — and the namespace
//! label that allows chaos.

use chaos_core::Error;
use chaos_core::cluster::cnpg::CnpgCluster;
use chaos_core::fault::{DeletePrimary, Fault};
use http::Method;
use serde_json::{Value, json};

mod cnpg_mock;

use cnpg_mock::{CLUSTER_PATH, NS, common, log_of, mock, status, target};

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
