//! The `chaos` binary as a user runs it: usage errors, set-up errors, real
//! runs on the embedded local cluster and on an external primary/standby pair,
//! with their exit statuses, output and report files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chaos_tests::pair::Pair;

mod fake_kube;

use fake_kube::{Answers, Dialled, FakeKube};

/// The variables that would change what `chaos` does, removed from the child.
fn is_chaos_setting(var: &str) -> bool {
    var == "CHAOS_RW_DSN"
        || var == "CHAOS_NODE_DSNS"
        || var == "CHAOS_REPORT_DIR"
        || var == "CHAOS_ALLOW"
        || var == "CHAOS_DRY_RUN"
        || var.starts_with("CHAOS_KUBE_")
        || var.starts_with("CHAOS_CNPG_")
        || (var.starts_with("CHAOS_") && var.ends_with("_CMD"))
}

/// `chaos` with `args`, in an environment without chaos settings.
fn chaos(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chaos"));
    cmd.args(args);
    for (var, _) in std::env::vars_os() {
        if var.to_str().is_some_and(is_chaos_setting) {
            cmd.env_remove(var);
        }
    }
    cmd
}

fn run(mut cmd: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the chaos binary runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// An empty directory for one test's reports.
/// A test's own directory under the temp dir, removed when it is dropped:
/// when the test ends, passed or failed (its panic unwinds through it).
struct TestDir(PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn report_dir(name: &str) -> TestDir {
    let dir = std::env::temp_dir().join(format!("chaos-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("report dir");
    TestDir(dir)
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("report {} missing: {e}", path.display()));
    serde_json::from_str(&text).expect("the JSON report parses")
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let (code, _, err) = run(chaos(&["run", "--bogus"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unexpected argument '--bogus'"), "{err}");
    assert!(err.contains("Usage: chaos run"), "{err}");
}

#[test]
fn a_bad_duration_names_the_flag_and_an_example() {
    let (code, _, err) = run(chaos(&["run", "--max-rto", "ten"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--max-rto") && err.contains("\"10s\""),
        "{err}"
    );
    let (code, _, err) = run(chaos(&["run", "--interval", "0s"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--interval") && err.contains("above zero"),
        "{err}"
    );
}

#[test]
fn an_unknown_fault_lists_the_valid_names() {
    let (code, _, err) = run(chaos(&["run", "--fault", "bogus"]));
    assert_eq!(code, 2, "{err}");
    for name in [
        "kill-primary",
        "stop-primary",
        "freeze-primary",
        "freeze-replicas",
    ] {
        assert!(err.contains(name), "{name} missing: {err}");
    }
}

#[test]
fn the_external_target_needs_a_dsn() {
    let (code, _, err) = run(chaos(&["run", "--target", "external"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--target external needs --rw-dsn or CHAOS_RW_DSN"),
        "{err}"
    );
}

#[test]
fn flags_must_fit_the_target() {
    let (code, _, err) = run(chaos(&[
        "run",
        "--target",
        "local",
        "--fault",
        "freeze-primary",
        "--target",
        "external",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'--target <TARGET>' cannot be used multiple times"),
        "{err}"
    );

    let (code, _, err) = run(chaos(&["run", "--rw-dsn", "postgresql://app@db/app"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("add --target external"), "{err}");

    let (code, _, err) = run(chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://app@db/app",
        "--nodes",
        "5",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--nodes is for --target local"), "{err}");

    let (code, _, err) = run(chaos(&["run", "--heal-cmd", "true"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--fault-cmd"), "{err}");

    let (code, _, err) = run(chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://app@db/app",
        "--sync",
        "quorum",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--sync and --patroni are for --target local"),
        "{err}"
    );
}

/// Values that can never make sense are refused at once, exit 2, before a
/// cluster boots, each saying what was expected.
#[test]
fn impossible_values_are_refused_before_anything_boots() {
    for (args, says) in [
        (&["run", "--max-rto", "0s"][..], "above zero"),
        (&["run", "--nodes", "1"][..], "--nodes"),
        (&["run", "--nodes", "10"][..], "--nodes"),
        (&["run", "--rpo", "-1"][..], "-1 is negative"),
    ] {
        let started = std::time::Instant::now();
        let (code, _, err) = run(chaos(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("booting"), "{args:?} booted: {err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
    // --repeat's help fits the command it is read in.
    let (_, run_help, _) = run(chaos(&["run", "--help"]));
    assert!(!run_help.contains("per arm"), "{run_help}");
    let (_, experiment_help, _) = run(chaos(&["experiment", "--help"]));
    assert!(
        experiment_help.contains("Runs per arm"),
        "{experiment_help}"
    );
}

#[test]
fn quorum_commit_needs_a_patroni_that_has_it_and_says_so_before_booting() {
    let started = std::time::Instant::now();
    let (code, _, err) = run(chaos(&["run", "--sync", "quorum"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Patroni 4.0 or later"), "{err}");
    assert!(err.contains("/opt/chaos/patroni-4.1.5"), "{err}");
    // Refused on the version alone: no cluster was booted (a boot takes seconds).
    assert!(!err.contains("booted"), "{err}");
    println!("refused after {:?}", started.elapsed());

    let (code, _, err) = run(chaos(&["run", "--sync", "sometimes"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("strict") && err.contains("quorum"), "{err}");
}

#[test]
fn an_external_builtin_fault_without_its_command_is_a_setup_error() {
    let (code, out, err) = run(chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://u:pw123@127.0.0.1:1/x",
        "--fault",
        "stop-primary",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("error: --target external cannot do stop-primary by itself")
            && err.contains("--fault-cmd")
            && err.contains("CHAOS_STOP_PRIMARY_CMD"),
        "{err}"
    );
    assert!(
        !out.contains("pw123") && !err.contains("pw123"),
        "{out}{err}"
    );

    // The command may come from the environment, as the library reads it.
    let mut cmd = chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://u@127.0.0.1:1/x",
        "--fault",
        "stop-primary",
        "--ready-timeout",
        "100ms",
    ]);
    cmd.env("CHAOS_STOP_PRIMARY_CMD", "true");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the external cluster is not ready"), "{err}");
}

#[test]
fn an_unreachable_cluster_is_a_setup_error_without_its_password() {
    let (code, out, err) = run(chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://u:pw123@127.0.0.1:1/x",
        "--fault-cmd",
        "true",
        "--ready-timeout",
        "1s",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error: the external cluster is not ready")
            && err.contains("postgresql://u@127.0.0.1:1/x")
            && err.contains("Check --rw-dsn"),
        "{err}"
    );
    assert!(
        !out.contains("pw123") && !err.contains("pw123"),
        "{out}{err}"
    );
}

#[test]
fn the_dsns_may_come_from_the_environment_and_are_never_shown() {
    let mut cmd = chaos(&[
        "run",
        "--target",
        "external",
        "--fault-cmd",
        "true",
        "--ready-timeout",
        "1s",
    ]);
    cmd.env("CHAOS_RW_DSN", "postgresql://u:pw123@127.0.0.1:1/x")
        .env("CHAOS_NODE_DSNS", "postgresql://u:pw456@127.0.0.1:2/x");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("postgresql://u@127.0.0.1:1/x"), "{err}");
    assert!(!format!("{out}{err}").contains("pw"), "{out}{err}");

    let mut cmd = chaos(&["run", "--help"]);
    cmd.env("CHAOS_RW_DSN", "postgresql://u:pw123@127.0.0.1:1/x");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[env: CHAOS_RW_DSN]"), "{out}");
    assert!(!out.contains("pw123"), "{out}");
}

#[test]
fn help_shows_the_defaults_and_examples() {
    let (code, out, err) = run(chaos(&["--help"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "--fault-cmd 'kubectl -n cnpg-database delete pod \"$CHAOS_PRIMARY\" \
             --grace-period=0 --force'"
        ),
        "{out}"
    );
    let (code, out, err) = run(chaos(&["run", "--help"]));
    assert_eq!(code, 0, "{err}");
    for default in [
        "[default: local]",
        "[default: 3]",
        "[default: 10s]",
        "[default: 1s]",
        "[default: 1m]",
        "[default: 10ms]",
        "[default: chaos_run; chaos_experiment for `chaos experiment`]",
    ] {
        assert!(out.contains(default), "{default} missing: {out}");
    }
    assert!(out.contains("Exit status: 0"), "{out}");
}

/// `chaos run --help` describes the CNPG target too: what --target offers,
/// that --rw-dsn is optional there, what the faults are on it.
#[test]
fn help_describes_the_cnpg_target() {
    let (code, out, err) = run(chaos(&["run", "--help"]));
    assert_eq!(code, 0, "{err}");
    // Wrapped lines joined again.
    let help = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for text in [
        "a CloudNativePG Cluster through the Kubernetes API (cnpg, with --context, --namespace and --cluster)",
        "required for --target external; optional for --target cnpg",
        "SIGKILL the primary (a lost node); on cnpg a forced delete of its pod (grace period 0)",
        "on cnpg a delete of its pod with its grace period",
        "on cnpg to the most advanced standby",
        "on cnpg a Chaos Mesh NetworkChaos",
        "CHAOS_ALLOW=kind-chaos/pg-chaos chaos run --target cnpg",
        "30s for an external or cnpg one",
    ] {
        assert!(help.contains(text), "{text:?} missing: {out}");
    }
    for stale in [
        "boot a local cluster, or measure an external one",
        "Read-write DSN of the external cluster",
    ] {
        assert!(!help.contains(stale), "{stale:?} still there: {out}");
    }
}

/// Boots the embedded cluster twice (about 10 s each): one run that passes,
/// one that violates its RTO.
#[test]
fn local_runs_exit_by_their_verdict_and_write_reports() {
    let dir = report_dir("local");
    let dir_arg = dir.display().to_string();
    let freeze = |hold: Option<&str>, max_rto: &str, name: &str| {
        let mut args = vec!["run", "--fault", "freeze-primary"];
        if let Some(hold) = hold {
            args.extend(["--hold", hold]);
        }
        args.extend([
            "--max-rto",
            max_rto,
            "--warmup",
            "1s",
            "--report-dir",
            &dir_arg,
            "--name",
            name,
        ]);
        run(chaos(&args))
    };

    let (code, out, err) = freeze(Some("1s"), "10s", "cli_pass");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("chaos report: cli_pass — PASSED"), "{out}");
    assert!(err.contains("booting a 3-node"), "{err}");
    // Not a terminal: plain progress lines, one per phase.
    assert!(
        err.lines()
            .any(|l| l.starts_with("chaos: warm-up") && l.contains("acknowledged")),
        "{err}"
    );
    assert!(err.lines().any(|l| l.starts_with("chaos: faults")), "{err}");
    let json_path = dir.join("cli_pass.json");
    assert!(out.contains(&json_path.display().to_string()), "{out}");
    let json = read_json(&json_path);
    assert_eq!(json["passed"], true, "{json}");
    assert_eq!(json["faults"][0]["kind"], "freeze-primary", "{json}");
    assert_eq!(json["target"]["kind"], "local", "{json}");
    assert!(dir.join("cli_pass.xml").is_file());

    // Without --hold a freeze lasts until the service has recovered, by a
    // failover (Patroni's leader key expires while PostgreSQL is frozen),
    // and is thawed then: the RTO is the failover's, not the freeze's.
    let (code, out, err) = freeze(None, "1ms", "cli_fail");
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("FAILED"), "{out}");
    assert!(out.contains("exceeds max_rto 0.001s"), "{out}");
    let json = read_json(&dir.join("cli_fail.json"));
    assert_eq!(json["passed"], false);
    let fault = &json["faults"][0];
    let rto = json["rto_ms"].as_f64().expect("recovered");
    let healed = fault["healed_at"].as_str().expect("thawed");
    assert!(healed >= fault["injected_at"].as_str().unwrap(), "{json}");
    let timelines: std::collections::BTreeSet<u64> = json["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["timeline"].as_u64())
        .collect();
    assert!(timelines.len() >= 2, "no failover: timelines {timelines:?}");
    assert!(rto < 30_000.0, "RTO {rto} ms: {out}");
}

/// A network partition from the command line (needs root: iptables).
#[test]
fn a_partition_runs_from_the_command_line() {
    if !chaos_tests::root_or_skip("a_partition_runs_from_the_command_line") {
        return;
    }
    let dir = report_dir("partition");
    let dir_arg = dir.display().to_string();
    let (code, out, err) = run(chaos(&[
        "run",
        "--fault",
        "partition-primary-from-replicas",
        "--hold",
        "1s",
        "--max-rto",
        "30s",
        "--warmup",
        "1s",
        "--report-dir",
        &dir_arg,
        "--name",
        "cli_partition",
    ]));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let json = read_json(&dir.join("cli_partition.json"));
    assert_eq!(
        json["faults"][0]["kind"], "partition-primary-from-replicas",
        "{json}"
    );
    assert_eq!(json["writes"]["lost"], 0, "{json}");
}

#[test]
fn a_disk_throttle_with_its_rate_runs_from_the_command_line() {
    if !chaos_tests::root_or_skip("a_disk_throttle_with_its_rate_runs_from_the_command_line") {
        return;
    }
    let dir = report_dir("throttle");
    let dir_arg = dir.display().to_string();
    let (code, out, err) = run(chaos(&[
        "run",
        "--fault",
        "throttle-primary-disk=64KiB/s",
        "--hold",
        "3s",
        "--max-rto",
        "2s",
        "--warmup",
        "1s",
        "--nodes",
        "2",
        "--report-dir",
        &dir_arg,
        "--name",
        "cli_throttle",
    ]));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let json = read_json(&dir.join("cli_throttle.json"));
    let fault = &json["faults"][0];
    assert_eq!(fault["kind"], "throttle-primary-disk", "{json}");
    assert!(
        fault["mode"].as_str().unwrap_or("").contains("64 KiB/s"),
        "{json}"
    );
    assert_eq!(json["writes"]["lost"], 0, "{json}");
    // Commits slowed down (the throttle really held the WAL writes back) but
    // went through: a slowdown with its latency figures, and no RTO held to
    // max_rto 2s for an outage that did not happen.
    let slowdown = &fault["slowdown"];
    let factor = slowdown["factor"].as_f64().expect("a slowdown");
    println!(
        "throttle: {}",
        out.lines().find(|l| l.contains("slowdown")).unwrap_or("")
    );
    assert!(factor > 3.0, "commits barely slowed: {slowdown}");
    assert!(
        slowdown["during"]["p50_ms"].as_f64() > slowdown["before"]["p50_ms"].as_f64(),
        "{slowdown}"
    );
    assert!(slowdown["after"]["count"].as_u64() > Some(0), "{slowdown}");
    if slowdown["outage"] == false {
        assert!(json["rto_ms"].is_null(), "{json}");
        assert!(out.contains("no outage"), "{out}");
    }
}

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

#[test]
fn an_external_cluster_is_measured_from_the_command_line() {
    let pair = Pair::start(true).expect("a primary and a synchronous standby");
    let dir = report_dir("external");
    let rw = pair.rw_dsn();
    let nodes = pair.node_dsns();
    let promote = pair.promote_cmd();
    let (code, out, err) = run(chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        &rw,
        "--node-dsn",
        &nodes[0],
        "--node-dsn",
        &nodes[1],
        "--fault",
        "kill-primary",
        "--fault-cmd",
        &promote,
        "--max-rto",
        "30s",
        "--warmup",
        "1s",
        "--report-dir",
        &dir.display().to_string(),
        "--name",
        "cli_external",
    ]));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("chaos report: cli_external — PASSED"), "{out}");
    let json = read_json(&dir.join("cli_external.json"));
    assert_eq!(json["target"]["kind"], "external", "{json}");
    assert_eq!(json["faults"][0]["kind"], "kill-primary", "{json}");
    assert_eq!(json["writes"]["lost"], 0, "{json}");
    // The RTO ends with the first write the promoted standby acknowledged,
    // on the newer timeline.
    let rto = json["rto_ms"].as_f64().expect("an RTO");
    let acked = |tl: u64| {
        json["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(move |h| h["outcome"] == "acknowledged" && h["timeline"].as_u64() == Some(tl))
            .map(|h| h["finished_ms"].as_f64().unwrap())
    };
    let promoted = acked(2).fold(f64::INFINITY, f64::min);
    assert!(
        acked(1).count() > 0 && promoted.is_finite(),
        "no promotion seen: {out}"
    );
    assert!(
        (promoted - rto).abs() < 0.001,
        "RTO {rto} ms, first write on timeline 2 at {promoted} ms"
    );
    // Shown with --nocapture: the figures of the run.
    println!("{out}");
}

#[test]
fn a_failing_fault_command_is_a_setup_error() {
    let pair = Pair::start(false).expect("a primary and a standby");
    let dir = report_dir("failing_cmd");
    let (code, out, err) = run(chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        &pair.rw_dsn(),
        "--fault-cmd",
        "echo no such pod >&2; exit 3",
        "--warmup",
        "100ms",
        "--report-dir",
        &dir.display().to_string(),
    ]));
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("error: the fault could not be injected")
            && err.contains("no such pod")
            && err.contains("fix the fault command"),
        "{err}"
    );
    assert!(!out.contains("chaos report"), "nothing was measured: {out}");
}

/// `--repeat`: one set of runs on one cluster, its page and summary; then the
/// files it wrote drawn again and compared, as a user would.
#[test]
fn repeated_runs_are_judged_as_a_set_and_their_files_compared() {
    let dir = report_dir("repeat");
    let dir_arg = dir.display().to_string();
    let (code, out, err) = run(chaos(&[
        "run",
        "--fault",
        "switchover",
        "--repeat",
        "2",
        "--max-rto-p95",
        "30s",
        "--warmup",
        "500ms",
        "--report-dir",
        &dir_arg,
        "--name",
        "cli_set",
    ]));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // Progress says which run is going.
    assert!(
        err.contains("chaos: run 1 of 2") && err.contains("chaos: run 2 of 2"),
        "{err}"
    );
    assert!(out.contains("chaos: cli_set ×2 PASSED — RTO p50 "), "{out}");
    // Each run's line once prefixed, and every file listed, pictures included.
    assert!(
        out.contains("run   1: cli_set-run01 PASSED — RTO "),
        "{out}"
    );
    assert!(
        !out.contains(": chaos: ") && !err.contains(": chaos: "),
        "{out}\n{err}"
    );
    for file in [
        "cli_set-run01.json",
        "cli_set-run01.svg",
        "cli_set-run01.html",
    ] {
        assert!(out.contains(file), "reports: lists {file}:\n{out}");
    }
    assert!(
        out.contains("max_rto_p95 30.000s, max_rto 60.000s"),
        "{out}"
    );
    let set = read_json(&dir.join("cli_set.runs.json"));
    assert_eq!(set["kind"], "chaos-run-set", "{set}");
    assert_eq!(set["runs"].as_array().map(Vec::len), Some(2), "{set}");
    assert_eq!(set["stats"]["recovered"], 2, "{set}");
    assert_eq!(set["slo"]["max_rto_p95_ms"], 30000.0, "{set}");
    let seeds = set["stats"]["seeds"].as_array().expect("seeds").clone();
    assert_eq!(seeds.len(), 2);
    assert_ne!(seeds[0], seeds[1]);
    assert_eq!(set["runs"][1]["seed"], seeds[1]);
    // One JUnit file for the set: a case per run and one for the set.
    let xml = std::fs::read_to_string(dir.join("cli_set.runs.xml")).expect("the set's JUnit");
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert!(
        !dir.join("cli_set-run01.xml").exists(),
        "no JUnit file per run"
    );
    let page = std::fs::read_to_string(dir.join("cli_set.runs.html")).expect("the set's page");
    assert!(page.contains("cli_set"), "set page without its name");
    for run in ["cli_set-run01", "cli_set-run02"] {
        assert!(dir.join(format!("{run}.json")).is_file(), "{run}.json");
        assert!(dir.join(format!("{run}.html")).is_file(), "{run}.html");
        assert!(dir.join(format!("{run}.svg")).is_file(), "{run}.svg");
    }

    // An old report drawn again from its file alone.
    let run1 = dir.join("cli_set-run01.json");
    std::fs::remove_file(dir.join("cli_set-run01.html")).expect("remove");
    let (code, out, err) = run(chaos(&["report", "show", &run1.display().to_string()]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("picture: ") && dir.join("cli_set-run01.html").is_file(),
        "{out}"
    );

    // Two single runs: a difference, but too few runs for a verdict.
    let run2 = dir.join("cli_set-run02.json").display().to_string();
    let (code, out, err) = run(chaos(&["compare", &run1.display().to_string(), &run2]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("too few to tell a change from noise"), "{out}");
    // A set against itself: no detectable difference.
    let set_path = dir.join("cli_set.runs.json").display().to_string();
    let json_out = dir.join("same.json").display().to_string();
    let (code, out, err) = run(chaos(&[
        "compare", &set_path, &set_path, "--json", &json_out,
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no detectable difference in RTO"), "{out}");
    assert_eq!(
        read_json(Path::new(&json_out))["rto"]["verdict"],
        "no_detectable_difference"
    );
    assert!(dir.join("cli_set.runs.comparison.html").is_file(), "{out}");

    // Something else is a usage error naming the file and what was expected.
    let (code, _, err) = run(chaos(&["compare", &set_path, "Cargo.toml"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("Cargo.toml") && err.contains("expected the JSON of a report"),
        "{err}"
    );
    let (code, _, err) = run(chaos(&["report", "show", "/nonexistent/r.json"]));
    assert_eq!(code, 2, "{err}");
}

/// The seed's question, answered: a variant known to be slower (Patroni's
/// ttl raised from 5 s to 12 s: the dead primary's leader key lives 7 s
/// longer, more than the spread of failovers on a loaded machine) is found
/// slower, with an interval that excludes zero.
#[test]
fn an_experiment_finds_a_longer_ttl_slower() {
    let dir = report_dir("experiment");
    let dir_arg = dir.display().to_string();
    let (code, out, err) = run(chaos(&[
        "experiment",
        "--set",
        "ttl=12",
        "--repeat",
        "2",
        "--max-rto",
        "60s",
        "--warmup",
        "500ms",
        "--report-dir",
        &dir_arg,
        "--name",
        "ttl",
    ]));
    eprintln!("{out}");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("run 4 of 4"), "{err}");
    assert!(out.contains("variant is slower by"), "{out}");
    let c = read_json(&dir.join("ttl.comparison.json"));
    assert_eq!(c["rto"]["verdict"], "slower", "{c}");
    assert!(
        c["rto"]["ci_low_ms"].as_f64().is_some_and(|lo| lo > 0.0),
        "{c}"
    );
    assert_eq!(c["a"]["settings"][0], "ttl=5", "{c}");
    assert_eq!(c["b"]["settings"][0], "ttl=12", "{c}");
    // Detection is where the time went.
    let detection = c["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|d| d["metric"] == "detection"))
        .unwrap_or_else(|| panic!("no detection phase compared: {c}"));
    assert!(
        detection["diff_ms"].as_f64().is_some_and(|d| d > 3000.0),
        "{detection}"
    );
    for f in [
        "ttl-baseline.runs.json",
        "ttl-variant.runs.json",
        "ttl.comparison.html",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
}

#[test]
fn an_experiment_refuses_an_unknown_setting_before_any_run() {
    let (code, _, err) = run(chaos(&["experiment", "--set", "ttl"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NAME=VALUE"), "{err}");
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
