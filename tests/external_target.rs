//! The external target against real servers: a plain PostgreSQL primary and
//! streaming standby ([`chaos_tests::pair::Pair`]), failed over by shell
//! commands, measured through `ExternalCluster`. Tests run one at a time (a
//! pair is two servers on a small machine).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chaos_core::Error;
use chaos_core::cluster::external::{ExternalCluster, ExternalClusterBuilder};
use chaos_core::cluster::{Role, Topology};
use chaos_core::fault::{DeletePrimary, FaultKind, Shell};
use chaos_core::probe::PROBE_TABLE;
use chaos_core::report::{AttemptOutcome, FailureKind, Report, file_stem};
use chaos_core::scenario::Scenario;
use chaos_core::slo::Slo;
use chaos_tests::pair::Pair;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MAX_RTO: Duration = Duration::from_secs(30);

use chaos_tests::init_tracing;

async fn boot(sync: bool) -> Pair {
    tokio::task::spawn_blocking(move || Pair::start(sync))
        .await
        .expect("the boot task ends")
        .expect("the pair boots")
}

/// An empty report directory of this test's own.
fn report_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("chaos-external-target-{}", std::process::id()))
        .join(test);
    remove_report_dir(&dir);
    dir
}

/// Removes a passing test's report directory, and the directory of this
/// process's report directories once it is empty.
fn remove_report_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
}

fn scenario(name: &str, dir: &Path) -> Scenario {
    let dir = dir.to_path_buf();
    Scenario::new(name)
        .slo(Slo::max_rto(MAX_RTO))
        .warmup(Duration::from_millis(500))
        .configure(move |e| e.report_dir(dir))
}

fn external(pair: &Pair) -> ExternalClusterBuilder {
    ExternalCluster::builder(pair.rw_dsn()).node_dsns(pair.node_dsns())
}

/// The port of a single-host DSN such as `Pair::node_dsns` gives.
fn port_of(dsn: &str) -> u16 {
    let after = dsn.rsplit_once(':').expect("host:port").1;
    after
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

/// The member on `port`.
fn member(t: &Topology, port: u16) -> &chaos_core::cluster::Member {
    t.members
        .iter()
        .find(|m| m.port == port)
        .unwrap_or_else(|| panic!("no member on port {port} in {t:?}"))
}

/// Runs `cmd` with `sh -c`; panics with its stderr if it fails.
async fn sh(cmd: &str) {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .await
        .expect("sh starts");
    assert!(
        out.status.success(),
        "`{cmd}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn connect(dsn: &str) -> tokio_postgres::Client {
    chaos_core::pg::connect(dsn, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("connecting to {dsn}: {e}"))
}

/// The probe rows of `run_id` on the server `dsn` leads to.
async fn probe_rows(dsn: &str, run_id: &str) -> BTreeSet<(u32, u64)> {
    let client = connect(dsn).await;
    client
        .query(
            &format!("SELECT writer, seq FROM {PROBE_TABLE} WHERE run_id = $1"),
            &[&run_id],
        )
        .await
        .expect("reading the probe rows")
        .iter()
        .map(|r| {
            let writer: i32 = r.get(0);
            let seq: i64 = r.get(1);
            (writer as u32, seq as u64)
        })
        .collect()
}

fn acknowledged(report: &Report) -> BTreeSet<(u32, u64)> {
    report
        .history
        .iter()
        .filter(|h| h.outcome == AttemptOutcome::Acknowledged)
        .map(|h| (h.writer, h.seq))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_pair_promoted_by_a_shell_fault_loses_nothing() {
    init_tracing();
    let _serial = SERIAL.lock().await;
    let pair = boot(true).await;
    let [a, b] = [port_of(&pair.node_dsns()[0]), port_of(&pair.node_dsns()[1])];
    let cluster = external(&pair)
        .fault_command(FaultKind::KillPrimary, pair.promote_cmd(), None)
        .build()
        .expect("valid DSNs");

    let before = cluster.topology().await.expect("topology");
    assert_eq!(member(&before, a).role, Role::Primary, "{before:?}");
    assert_eq!(member(&before, b).role, Role::SyncStandby, "{before:?}");

    let dir = report_dir("a");
    let report = scenario("external_sync_promotion", &dir)
        .run(&cluster, DeletePrimary::kill())
        .await
        .expect("the scenario runs");
    println!("{report}");

    assert_eq!(report.writes.lost, 0, "{report}");
    assert!(report.lost.is_empty(), "{report}");
    let rto = report.rto().expect("the service recovered");
    assert!(rto > Duration::ZERO && rto < MAX_RTO, "{report}");
    assert!(report.writes.acknowledged > 50, "{report}");
    assert_eq!(report.target.kind, "external");
    assert_eq!(report.target.nodes, 2);
    assert_eq!(report.faults.len(), 1, "{report}");
    assert_eq!(report.faults[0].kind, "kill-primary");
    assert_eq!(
        report.faults[0].victim.as_deref(),
        Some(&*format!("127.0.0.1:{a}"))
    );
    assert!(
        report.warnings.iter().all(|w| !w.contains("synchronous")),
        "no warning about synchronous replication expected: {:?}",
        report.warnings
    );
    assert!(report.passed(), "{report}");
    assert!(!report.split_brain, "{report}");
    // The probe really wrote through the failover: to the old primary on
    // timeline 1, then to the promoted standby on timeline 2.
    let served: BTreeSet<(String, u32)> = report
        .history
        .iter()
        .filter_map(|h| Some((h.server.clone()?, h.timeline?)))
        .collect();
    assert_eq!(
        served,
        BTreeSet::from([(format!("127.0.0.1:{a}"), 1), (format!("127.0.0.1:{b}"), 2)]),
        "{report}"
    );
    remove_report_dir(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_pair_with_the_standby_detached_loses_exactly_the_writes_it_missed() {
    init_tracing();
    let _serial = SERIAL.lock().await;
    let pair = boot(false).await;
    let nodes = pair.node_dsns();
    let (a, b) = (port_of(&nodes[0]), port_of(&nodes[1]));

    // The probe's table reaches the standby before it is detached (the probe
    // creates it only if missing), so that the promoted standby has it.
    let primary = connect(&nodes[0]).await;
    primary
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (
                run_id text NOT NULL,
                writer int NOT NULL,
                seq bigint NOT NULL,
                written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                PRIMARY KEY (run_id, writer, seq))"
        ))
        .await
        .expect("creating the probe table");
    let standby = connect(&nodes[1]).await;
    let mut replayed = false;
    for _ in 0..100 {
        if table_exists(&standby, PROBE_TABLE).await {
            replayed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(replayed, "the standby never saw the probe table");

    sh(&pair.detach_standby_cmd()).await;
    // No WAL arrives any more: a table made on the primary now never shows
    // on the standby.
    primary
        .batch_execute("CREATE TABLE after_detach (x int)")
        .await
        .expect("writing on the primary");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(table_exists(&primary, "after_detach").await);
    assert!(
        !table_exists(&standby, "after_detach").await,
        "WAL still reaches the detached standby"
    );
    drop((primary, standby));

    let cluster = external(&pair).build().expect("valid DSNs");
    let dir = report_dir("b");
    let report = scenario("external_async_detached", &dir)
        .run(&cluster, Shell::new(pair.promote_cmd()).name("promote"))
        .await
        .expect("the scenario runs");
    println!("{report}");

    assert!(!report.passed(), "{report}");
    assert_eq!(report.failure, Some(FailureKind::Slo), "{report}");
    assert!(report.writes.lost > 0, "{report}");
    assert_eq!(report.writes.lost, report.lost.len() as u64);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("synchronous_standby_names is empty")),
        "the asynchronous-replication warning is missing: {:?}",
        report.warnings
    );
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("acknowledged writes lost")),
        "{report}"
    );

    // Independently: what the old primary had and the new one lacks, among
    // the acknowledged writes, is exactly the report's lost set.
    tokio::task::block_in_place(|| pair.restart_old_primary()).expect("the old primary restarts");
    assert!(pair.primary_data_dir().join("postmaster.pid").is_file());
    let on_old = probe_rows(&nodes[0], &report.run_id).await;
    let new_primary = connect(&pair.rw_dsn()).await;
    let port: i32 = new_primary
        .query_one("SELECT inet_server_port()", &[])
        .await
        .expect("inet_server_port")
        .get(0);
    assert_eq!(
        port,
        i32::from(b),
        "rw_dsn must lead to the promoted standby"
    );
    let on_new = probe_rows(&pair.rw_dsn(), &report.run_id).await;
    let acked = acknowledged(&report);
    let missing: BTreeSet<(u32, u64)> = on_old
        .difference(&on_new)
        .filter(|w| acked.contains(w))
        .copied()
        .collect();
    let lost: BTreeSet<(u32, u64)> = report.lost_ids().into_iter().collect();
    assert_eq!(missing, lost, "{report}");
    // Every lost write was acknowledged by the old primary.
    for h in report
        .history
        .iter()
        .filter(|h| lost.contains(&(h.writer, h.seq)))
    {
        assert_eq!(
            h.server.as_deref(),
            Some(&*format!("127.0.0.1:{a}")),
            "{h:?}"
        );
    }
    remove_report_dir(&dir);
}

async fn table_exists(client: &tokio_postgres::Client, table: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .expect("to_regclass")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_external_target_reads_topology_and_health_by_sql() {
    init_tracing();
    let _serial = SERIAL.lock().await;
    let pair = boot(true).await;
    let nodes = pair.node_dsns();
    let (a, b) = (port_of(&nodes[0]), port_of(&nodes[1]));
    let cluster = external(&pair).build().expect("valid DSNs");
    let short = Duration::from_secs(3);

    let before = cluster.topology().await.expect("topology");
    assert_eq!(before.members.len(), 2, "{before:?}");
    assert_eq!(member(&before, a).role, Role::Primary, "{before:?}");
    assert_eq!(member(&before, b).role, Role::SyncStandby, "{before:?}");
    let old_timeline = before.timeline().expect("the primary's timeline");
    assert_eq!(old_timeline, 1, "{before:?}");
    let healthy = cluster
        .wait_healthy(short)
        .await
        .expect("a healthy sync pair");
    assert_eq!(healthy.primary_name(), Some(&*format!("127.0.0.1:{a}")));

    // Synchronous replication configured, but the standby detached: not healthy.
    sh(&pair.detach_standby_cmd()).await;
    let detached = cluster.topology().await.expect("topology");
    assert_eq!(member(&detached, a).role, Role::Primary, "{detached:?}");
    assert_eq!(member(&detached, b).role, Role::Replica, "{detached:?}");
    let err = cluster
        .wait_healthy(short)
        .await
        .expect_err("no synchronous standby streams");
    let text = err.to_string();
    assert!(matches!(err, Error::Timeout { .. }), "{text}");
    assert!(
        text.contains("synchronous"),
        "the error should say why: {text}"
    );

    // Promoted: the old primary is down, the standby leads on a newer timeline.
    sh(&pair.promote_cmd()).await;
    let after = cluster.topology().await.expect("topology");
    assert_eq!(member(&after, a).role, Role::Down, "{after:?}");
    assert_eq!(member(&after, b).role, Role::Primary, "{after:?}");
    assert!(
        member(&after, b).timeline.is_some_and(|t| t > old_timeline),
        "{after:?}"
    );
    // It has no synchronous standby configured: healthy again, through rw_dsn.
    let healthy = cluster
        .wait_healthy(short)
        .await
        .expect("the promoted standby serves");
    assert_eq!(healthy.primary_name(), Some(&*format!("127.0.0.1:{b}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_fault_command_is_an_error_with_its_stderr() {
    init_tracing();
    let _serial = SERIAL.lock().await;
    let pair = boot(false).await;
    let cluster = external(&pair).build().expect("valid DSNs");
    let dir = report_dir("d");

    let err = scenario("external_failing_command", &dir)
        .run(&cluster, Shell::new("echo boom >&2; exit 3"))
        .await
        .expect_err("a failing command is an error");
    let text = err.to_string();
    match &err {
        Error::Command { stderr, status, .. } => {
            assert_eq!(stderr, "boom", "{text}");
            assert!(status.contains('3'), "{text}");
        }
        other => panic!("expected Error::Command, got {other:?}"),
    }
    assert!(
        text.contains("boom") && text.contains("exit status: 3"),
        "{text}"
    );
    // A built-in fault without a command for it: unsupported, saying how.
    let err = scenario("external_no_command", &dir)
        .run(&cluster, DeletePrimary::kill())
        .await
        .expect_err("no command for kill-primary");
    let text = err.to_string();
    assert!(matches!(err, Error::Unsupported { .. }), "{text}");
    assert!(
        text.contains("kill-primary") && text.contains("CHAOS_KILL_PRIMARY_CMD"),
        "{text}"
    );
    // Neither fault touched the cluster.
    let t = cluster.topology().await.expect("topology");
    assert_eq!(t.primaries().count(), 1, "{t:?}");
    assert_eq!(t.standbys().count(), 1, "{t:?}");
    // The files CI reads must not call these runs a success either.
    for (name, says) in [
        ("external_failing_command", "boom"),
        ("external_no_command", "CHAOS_KILL_PRIMARY_CMD"),
    ] {
        let json = dir.join(format!("{}.json", file_stem(name)));
        let written = Report::read_json(&json).expect("the JSON report was written");
        assert!(
            !written.passed() && written.violations.iter().any(|v| v.contains(says)),
            "the written report of a run whose fault could not be injected says: {written}"
        );
    }
    remove_report_dir(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_the_report() {
    init_tracing();
    let _serial = SERIAL.lock().await;
    let pair = boot(true).await;
    const PW: &str = "s3cret-pw";
    let with_pw = |dsn: String| {
        let out = dsn.replacen(
            "postgresql://postgres@",
            &format!("postgresql://postgres:{PW}@"),
            1,
        );
        assert!(out.contains(PW), "{out}");
        out
    };
    let cluster = ExternalCluster::builder(with_pw(pair.rw_dsn()))
        .node_dsns(pair.node_dsns().into_iter().map(with_pw))
        .fault_command(FaultKind::KillPrimary, pair.promote_cmd(), None)
        .build()
        .expect("valid DSNs");
    let debug = format!("{cluster:?}");
    assert!(!debug.contains(PW), "{debug}");

    let dir = report_dir("e");
    let name = "external_password";
    let report = scenario(name, &dir)
        .run(&cluster, DeletePrimary::kill())
        .await
        .expect("the scenario runs");
    println!("{report}");
    // The password-carrying DSNs worked (trust authentication ignores it).
    assert!(report.rto().is_some(), "{report}");
    assert_eq!(report.writes.lost, 0, "{report}");
    assert_eq!(
        report.target.rw_dsn,
        pair.rw_dsn(),
        "the report shows the DSN without its password"
    );

    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("the report directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let stem = file_stem(name);
    assert_eq!(
        files,
        ["html", "json", "svg", "xml"].map(|ext| format!("{stem}.{ext}"))
    );
    for f in &files {
        let text = std::fs::read_to_string(dir.join(f)).expect("report file");
        // The picture alone (SVG) does not name the target; every other file does.
        assert!(
            f.ends_with(".svg") || text.contains("127.0.0.1"),
            "{f} names the target"
        );
        assert!(!text.contains(PW), "{f} contains the password:\n{text}");
    }
    for shown in [
        format!("{report}"),
        format!("{report:?}"),
        format!("{cluster:?}"),
    ] {
        assert!(!shown.contains(PW), "{shown}");
    }
    remove_report_dir(&dir);
}

/// A `chaos_probe` table of another shape in the target database is a clear
/// error before anything is measured, not a panic or a run of failed writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_probe_table_is_a_clear_error() {
    init_tracing();
    let _serial = SERIAL.lock().await;
    let pair = boot(false).await;
    let client = connect(&pair.node_dsns()[0]).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE {PROBE_TABLE} (id serial PRIMARY KEY, note text)"
        ))
        .await
        .expect("foreign table");
    let cluster = external(&pair).build().expect("valid DSNs");
    let dir = report_dir("foreign");
    let err = scenario("external_foreign_table", &dir)
        .run(&cluster, Shell::new("true"))
        .await
        .expect_err("the probe cannot use that table");
    let text = err.to_string();
    assert!(matches!(err, Error::ProbeTableShape { .. }), "{text}");
    assert!(
        text.contains("another shape")
            && text.contains("id integer")
            && text.contains("run_id text, writer integer, seq bigint"),
        "{text}"
    );
    remove_report_dir(&dir);
}
