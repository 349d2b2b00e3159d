//! The `chaos` binary as a user runs it against the CloudNativePG target, on a
//! fake Kubernetes API server: what is refused before anything is written,
//! and how a dry run reads.

use std::path::Path;

mod fake_kube;
mod support;

use fake_kube::{Answers, Dialled, FakeKube};
use support::{TestDir, chaos, report_dir, run};

#[test]
fn a_cnpg_context_missing_from_the_kubeconfig_is_a_setup_error() {
    let dir =
        TestDir(std::env::temp_dir().join(format!("chaos-cli-kubeconfig-{}", std::process::id())));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: https://127.0.0.1:1\n\
         contexts:\n- name: a\n  context:\n    cluster: a\n    user: a\nusers:\n- name: a\n  user:\n    token: secret-token-123\n\
         current-context: a\n",
    )
    .unwrap();
    let mut cmd = chaos(&[
        "run",
        "--target",
        "cnpg",
        "--context",
        "kind-missing",
        "--namespace",
        "pg-chaos",
        "--cluster",
        "cluster-example",
    ]);
    cmd.env("KUBECONFIG", &kubeconfig);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("kind-missing"), "{err}");
    assert!(!err.contains("secret-token-123") && !out.contains("secret-token-123"));
}

/// `chaos run --target cnpg` on the fake API server (context `fake`), with
/// the database DSN pointing at a listener that counts connections.
fn cnpg_run(api: &FakeKube, db: &Dialled, dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let dsn = db.dsn();
    let dir = dir.display().to_string();
    let mut args = vec![
        "run",
        "--target",
        "cnpg",
        "--context",
        "fake",
        "--namespace",
        fake_kube::NS,
        "--cluster",
        "cluster-example",
        "--rw-dsn",
        &dsn,
        "--warmup",
        "100ms",
        "--report-dir",
        &dir,
    ];
    args.extend_from_slice(extra);
    let mut cmd = chaos(&args);
    cmd.env("KUBECONFIG", api.kubeconfig());
    run(cmd)
}

/// A namespace not allowed for chaos is refused when the target is built:
/// exit 2, a message in the command line's terms, no report file, the
/// database never dialled (no probe table, no warm-up rows), and nothing but
/// reads sent to the API server.
#[test]
fn a_cnpg_namespace_not_allowed_is_refused_before_anything_is_written() {
    let api = FakeKube::start("refused", Answers::default());
    let db = Dialled::start();
    let dir = report_dir("cnpg_refused");
    let (code, out, err) = cnpg_run(&api, &db, &dir, &[]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("CHAOS_ALLOW=fake/pg-chaos"), "{err}");
    assert!(
        err.contains("kubectl --context fake label namespace pg-chaos chaos.dev/allow=true"),
        "{err}"
    );
    assert!(
        !err.contains("CnpgCluster::builder"),
        "a command-line user is told the command line's means: {err}"
    );
    assert!(!err.contains("pw-dialled-123") && !out.contains("pw-dialled-123"));
    assert_nothing_touched(&api, &dir, &db);
    assert_says_who_asks(&api);
}

/// Every request the fake API server saw said `User-Agent: chaos/<version>`,
/// so that audit logs tell the tool's requests apart.
fn assert_says_who_asks(api: &FakeKube) {
    let seen = api.seen();
    let expected = concat!("chaos/", env!("CARGO_PKG_VERSION"));
    assert!(!seen.is_empty());
    for s in &seen {
        assert_eq!(s.user_agent.as_deref(), Some(expected), "{s:?}");
    }
}

/// An identity that may not do what the fault needs (kill-primary: delete
/// pods) is told so when the target is built: exit 2, the verb, resource,
/// namespace and the Role to bind, nothing written or dialled.
#[test]
fn a_cnpg_fault_without_its_permission_is_refused_before_anything_is_written() {
    let api = FakeKube::start(
        "forbidden",
        Answers {
            namespace_allows: true,
            deny: Some(("delete", "pods")),
        },
    );
    let db = Dialled::start();
    let dir = report_dir("cnpg_forbidden");
    let (code, out, err) = cnpg_run(&api, &db, &dir, &["--fault", "kill-primary"]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    for part in [
        "`jane`",
        "delete pods",
        "namespace `pg-chaos`",
        "deploy/rbac/chaos-cnpg-role.yaml",
        "--role=chaos-cnpg --user=jane",
    ] {
        assert!(err.contains(part), "{part} missing: {err}");
    }
    assert_nothing_touched(&api, &dir, &db);
}

/// A wrong --cluster: which Cluster is missing where, and how to look —
/// never Rust's debug output of the API's answer.
#[test]
fn a_wrong_cnpg_cluster_says_where_to_look() {
    let api = FakeKube::start(
        "wrong-cluster",
        Answers {
            namespace_allows: true,
            ..Answers::default()
        },
    );
    let mut cmd = chaos(&[
        "run",
        "--target",
        "cnpg",
        "--context",
        "fake",
        "--namespace",
        fake_kube::NS,
        "--cluster",
        "nope",
    ]);
    cmd.env("KUBECONFIG", api.kubeconfig());
    let (code, out, err) = run(cmd);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains(
            "no Cluster named nope in namespace pg-chaos \
             (kubectl get clusters.postgresql.cnpg.io -n pg-chaos)"
        ),
        "{err}"
    );
    for debug in ["Status {", "Some(Failure)", "ApiError"] {
        assert!(!err.contains(debug), "{debug} in: {err}");
    }
}

/// `--dry-run` prints each planned change once, changes nothing, writes no
/// report and never dials the database.
#[test]
fn a_cnpg_dry_run_prints_each_change_once() {
    let api = FakeKube::start("dry-run", Answers::default());
    let db = Dialled::start();
    let dir = report_dir("cnpg_dry_run");
    let (code, out, err) = cnpg_run(&api, &db, &dir, &["--dry-run"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let planned = "would delete pods/cluster-example-1 (grace 0s, propagation Background)";
    assert_eq!(err.matches(planned).count(), 1, "{err}");
    assert!(err.contains("1 change(s) planned"), "{err}");
    assert_says_who_asks(&api);
    // The namespace is not allowed: said once, not refused.
    assert_eq!(
        err.matches("the real run would be refused").count(),
        1,
        "{err}"
    );
    assert_nothing_touched(&api, &dir, &db);
}

/// A refused or dry run: no report file written, the database never dialled,
/// and nothing but reads and reviews of its own rights sent to the API.
fn assert_nothing_touched(api: &FakeKube, dir: &Path, db: &Dialled) {
    assert!(fake_kube::is_empty(dir), "report files were written");
    assert_eq!(db.count(), 0, "the database was dialled");
    let seen = api.seen();
    assert!(!seen.is_empty(), "the API server was never asked");
    assert!(
        seen.iter().all(|s| s.method == "GET" || s.is_review()),
        "{seen:#?}"
    );
}
