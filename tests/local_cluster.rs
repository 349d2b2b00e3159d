//! Integration tests on real local clusters: etcd + Patroni + PostgreSQL processes
//! booted by the library. Tests that boot a cluster take a global lock so that at
//! most one runs at a time on a small CI machine.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chaos_core::fault::{DeletePrimary, Fault, FaultGuard, FreezePrimary, FreezeReplicas};
use chaos_core::prelude::*;
use chaos_core::timeline::{EventKind, from_ms};
use chaos_core::verify::{FaultSpan, Measurement, Window, read_back};

/// One cluster at a time: each is 3 PostgreSQL servers on a 2-core machine.
static CLUSTER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    CLUSTER_LOCK.lock().await
}

/// The default cluster the tests that need nothing of their own share
/// (booted once; one boot less each), healthy, with this test's turn.
async fn shared() -> (tokio::sync::MutexGuard<'static, ()>, LocalCluster) {
    static SHARED: chaos_tests::SharedCluster =
        chaos_tests::SharedCluster::new(LocalCluster::builder);
    let turn = serial().await;
    let cluster = SHARED.get().await;
    Target::repair(cluster, Duration::from_secs(90))
        .await
        .expect("the shared cluster is healthy");
    (turn, cluster.clone())
}

use chaos_tests::init_tracing;

/// A private work directory for tests that inspect what is left behind.
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chaos-test-{name}-{}", std::process::id()))
}

use chaos_tests::processes_of;

/// The start time of `pid` (clock ticks since boot): with the PID, it names a
/// process even after PID reuse.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// The processes of `dir` (see [`processes_of`]) with their start times.
fn snapshot(dir: &Path) -> Vec<(i32, u64)> {
    processes_of(dir)
        .into_iter()
        .filter_map(|p| Some((p, start_time(p)?)))
        .collect()
}

/// Those of `procs` that still run (zombies count as gone). Unlike
/// [`processes_of`], this sees a backend whose postmaster is already gone.
fn still_running(procs: &[(i32, u64)]) -> Vec<i32> {
    procs
        .iter()
        .filter(|&&(p, st)| {
            start_time(p) == Some(st)
                && !matches!(chaos_tests::process_state(p), None | Some('Z' | 'X'))
        })
        .map(|&(p, _)| p)
        .collect()
}

fn port_free(host: &str, port: u16) -> bool {
    TcpListener::bind((host, port)).is_ok()
}

/// Waits up to `timeout` for `cond`.
fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_under_load_loses_no_acknowledged_write() {
    init_tracing();
    // A cluster of its own: the failover under load is this file's main
    // measurement, kept apart from what the shared cluster's tests did to it
    // (once in CI, on the shared one, no standby was promoted for 64 s).
    let _serial = serial().await;
    let cluster = LocalCluster::start().await.expect("cluster boots");
    let before = cluster.topology().await.expect("topology");
    let old_leader = before.primary_name().expect("a leader").to_string();

    let report = Scenario::new("test_failover_under_load")
        .slo(Slo::max_rto(Duration::from_secs(60)))
        .warmup(Duration::from_secs(2))
        .write_report(false)
        .run(&cluster, DeletePrimary::kill())
        .await
        .expect("scenario runs");
    println!("{report}");

    assert_eq!(report.writes.lost, 0, "{report}");
    let rto = report.rto().expect("the service recovered");
    // A kill is only noticed when the leader key expires: the RTO cannot be
    // shorter than a fraction of the ttl, nor longer than the SLO.
    assert!(
        rto > cluster.timings().ttl() / 4 && rto < Duration::from_secs(60),
        "{report}"
    );
    assert!(
        report.writes.acknowledged > 100,
        "the probe wrote under load: {report}"
    );
    assert!(
        report.writes.failed + report.writes.indeterminate > 0,
        "the outage was felt: {report}"
    );
    assert!(report.passed(), "{report}");

    let after = cluster.topology().await.expect("topology");
    assert_ne!(
        after.primary_name(),
        Some(old_leader.as_str()),
        "a new leader took over"
    );
    assert!(after.is_healthy(3), "the killed node rejoined: {after:?}");

    // The JSON report carries the fields other tools read.
    let dir = scratch("report");
    let path = report.write_json_to(&dir).expect("report written");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for pointer in [
        "/scenario",
        "/target/kind",
        "/target/rw_dsn",
        "/fault/kind",
        "/fault/injected_at",
        "/slo/max_rto_ms",
        "/slo/max_lost_writes",
        "/rto_ms",
        "/write_gap_ms",
        "/resolution_ms",
        "/writes/attempted",
        "/writes/acknowledged",
        "/writes/failed",
        "/writes/indeterminate",
        "/writes/lost",
        "/split_brain",
        "/events/0/name",
        "/events/0/at",
        "/passed",
        "/violations",
    ] {
        assert!(
            json.pointer(pointer).is_some(),
            "{pointer} missing in {json:#}"
        );
    }
    assert_eq!(json["target"]["kind"], "local");
    assert_eq!(json["fault"]["kind"], "delete-primary");
    assert_eq!(json["writes"]["lost"], 0);
    let injected = json["fault"]["injected_at"].as_str().unwrap();
    assert!(
        humantime::parse_rfc3339(injected).is_ok() && injected.len() == 27,
        "{injected}"
    );
    let names: Vec<&str> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for expected in [
        "fault injected",
        "new primary observed",
        "first write acknowledged after the fault",
        "node rejoined",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_counts_exactly_the_deleted_acknowledged_writes() {
    init_tracing();
    let (_serial, cluster) = shared().await;
    let rw = cluster.rw_dsn();
    let probe = ProbeConfig::default()
        .start(&rw)
        .await
        .expect("probe starts");
    let probe_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let guard = DeletePrimary::kill()
        .inject(&cluster)
        .await
        .expect("fault injected");
    let fault_at = guard.injected_at();
    // Recovered: a backend of the killed postmaster can still acknowledge a
    // write for a moment, so wait for the outage to have been seen and ended.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !probe.counters().recovered_since(fault_at) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    guard.heal().await.expect("node rejoins");
    let history = probe.stop().await;

    // Delete k acknowledged rows behind the probe's back.
    const K: usize = 7;
    let victims: Vec<(u32, u64)> = history
        .attempts
        .iter()
        .filter(|a| a.is_acknowledged())
        .step_by(13)
        .take(K)
        .map(|a| (a.writer, a.seq))
        .collect();
    assert_eq!(victims.len(), K);
    let client = chaos_core::pg::connect(&rw, Duration::from_secs(5))
        .await
        .expect("connect");
    for (w, s) in &victims {
        let n = client
            .execute(
                "DELETE FROM chaos_probe WHERE run_id = $1 AND writer = $2 AND seq = $3",
                &[&history.run_id, &(*w as i32), &(*s as i64)],
            )
            .await
            .expect("delete");
        assert_eq!(n, 1);
    }

    let found = read_back(&rw, &history.run_id, Duration::from_secs(10))
        .await
        .expect("read back");
    let spans = [FaultSpan {
        injected: fault_at,
        healed: None,
        degrades: false,
    }];
    let window = Window {
        start: probe_started,
        end: Instant::now(),
    };
    let m = Measurement::compute(&history, &spans, window, &found);
    assert_eq!(m.writes.lost, K as u64);
    let mut expected = victims.clone();
    expected.sort_unstable();
    assert_eq!(m.lost, expected);

    let violations = Slo::max_rto(Duration::from_secs(60)).check(&m);
    assert!(
        violations.iter().any(|v| v
            .to_string()
            .contains("7 acknowledged writes lost (allowed: 0)")),
        "{violations:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_primary_shows_a_write_gap_of_the_freeze_length() {
    init_tracing();
    let (_serial, cluster) = shared().await;
    let ttl = cluster.timings().ttl();
    let hold = Duration::from_millis(1500);
    assert!(
        hold < ttl / 2,
        "the freeze must stay well below Patroni's ttl"
    );
    let leader = cluster
        .topology()
        .await
        .unwrap()
        .primary_name()
        .unwrap()
        .to_string();

    let report = Scenario::new("test_freeze")
        .slo(Slo::max_rto(Duration::from_secs(30)))
        .warmup(Duration::from_secs(1))
        .hold(hold)
        .write_report(false)
        .run(&cluster, FreezePrimary::new())
        .await
        .expect("scenario runs");
    println!("{report}");

    let gap = report.write_gap().expect("a gap");
    // The last acknowledgement before the freeze can be up to one pacing
    // interval early, and the first one after it needs a commit: the gap is the
    // freeze length within the resolution (plus scheduling slack on a busy box).
    let slack = from_ms(report.resolution_ms) + Duration::from_millis(150);
    assert!(
        gap + Duration::from_millis(5) >= hold,
        "gap {gap:?} shorter than the freeze {hold:?}"
    );
    assert!(
        gap <= hold + slack,
        "gap {gap:?} vs freeze {hold:?} (slack {slack:?})"
    );
    assert_eq!(report.writes.lost, 0);
    assert_eq!(
        cluster.topology().await.unwrap().primary_name(),
        Some(leader.as_str()),
        "no failover below the ttl"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_delete_hands_over_and_rejoins() {
    init_tracing();
    let _serial = serial().await;
    let cluster = LocalCluster::start().await.expect("cluster boots");
    let report = Scenario::new("test_graceful")
        .slo(Slo::max_rto(Duration::from_secs(60)))
        .warmup(Duration::from_secs(1))
        .write_report(false)
        .run(&cluster, DeletePrimary::graceful())
        .await
        .expect("scenario runs");
    println!("{report}");
    assert_eq!(report.writes.lost, 0, "{report}");
    assert_eq!(report.faults[0].mode, "graceful");
    let rto = report.rto().expect("recovered");
    // The old primary serves a moment after SIGTERM; the RTO must cover the
    // outage that follows, not just the first write after the signal.
    assert!(rto > Duration::from_millis(100), "{report}");
    assert!(
        report.writes.failed + report.writes.indeterminate > 0,
        "{report}"
    );
    assert!(report.passed(), "{report}");
    cluster
        .wait_healthy(Duration::from_secs(60))
        .await
        .expect("the stopped node rejoined and the cluster is healthy again");

    // `stop` returns only once every process of the cluster is gone, zombies
    // included (orphaned postmasters and loggers wait for init to reap them).
    let dir = cluster.dir().to_path_buf();
    let before = chaos_tests::every_process_of(&dir);
    assert!(
        before.len() >= 7,
        "etcd, 3 Patroni, 3 postmasters: {before:?}"
    );
    cluster.stop();
    let left = chaos_tests::still_present(&before);
    assert!(
        left.is_empty(),
        "present after stop: {left:?} of {before:?}"
    );
    let mentioning = chaos_tests::every_process_of(&dir);
    assert!(
        mentioning.is_empty(),
        "{mentioning:?} name {}",
        dir.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_survives_a_dropped_or_panicking_cluster() {
    init_tracing();
    let _serial = serial().await;
    for panic in [false, true] {
        let cluster = LocalCluster::builder()
            .work_dir(scratch("cleanup"))
            .start()
            .await
            .expect("cluster boots");
        let dir = cluster.dir().to_path_buf();
        let mut ports: Vec<(String, u16)> = cluster
            .nodes()
            .iter()
            .flat_map(|n| [(n.host.clone(), n.pg_port), (n.host.clone(), n.api_port)])
            .collect();
        let etcd_port = cluster
            .etcd_endpoint()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        ports.push(("127.0.0.1".into(), etcd_port));
        assert!(
            processes_of(&dir).len() >= 7,
            "etcd, 3 Patroni, 3 postmasters run"
        );
        assert!(ports.iter().all(|(h, p)| !port_free(h, *p)), "ports in use");
        // A client connection, so that a backend runs too.
        let client = chaos_core::pg::connect(&cluster.rw_dsn(), Duration::from_secs(5))
            .await
            .expect("connect");
        let procs = snapshot(&dir);

        if panic {
            let task = tokio::spawn(async move {
                let _owned = cluster;
                panic!("test body panics while owning the cluster");
            });
            assert!(task.await.unwrap_err().is_panic());
        } else {
            drop(cluster);
        }
        // Checked at once: dropping returns only when every process is gone.
        let left = still_running(&procs);
        assert!(left.is_empty(), "processes left: {left:?} of {procs:?}");
        assert!(
            processes_of(&dir).is_empty(),
            "processes left: {:?}",
            processes_of(&dir)
        );
        assert!(!dir.exists(), "{} left behind", dir.display());
        drop(client);
        assert!(
            ports.iter().all(|(h, p)| port_free(h, *p)),
            "a port is still taken"
        );
    }
    std::fs::remove_dir_all(scratch("cleanup")).ok();
}

/// PostgreSQL's pitfall: cancelling a commit's wait for the synchronous standby
/// returns *success* with a warning, although the commit may not be replicated.
/// The probe must count such a write as indeterminate, never acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_synchronous_replication_wait_is_indeterminate() {
    use chaos_core::probe::{IndeterminateReason, Outcome};
    init_tracing();
    let (_serial, cluster) = shared().await;
    let leader = cluster.primary().await.unwrap();
    let rw = cluster.rw_dsn();
    let probe = ProbeConfig::default()
        .writers(1)
        .interval(Duration::from_millis(20))
        .commit_timeout(Duration::from_secs(30))
        .start(&rw)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Replicas frozen: with strict synchronous replication every commit waits.
    let guard = FreezeReplicas::new()
        .inject(&cluster)
        .await
        .expect("replicas frozen");
    let admin = chaos_core::pg::connect(
        &cluster.node(&leader).unwrap().dsn(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let mut cancelled = 0i64;
    let deadline = Instant::now() + Duration::from_secs(4);
    while cancelled == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancelled = admin
            .query_one(
                "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity \
                 WHERE wait_event = 'SyncRep' AND query LIKE 'INSERT INTO chaos_probe%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    }
    assert!(
        cancelled > 0,
        "no commit was waiting for the synchronous standby"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    guard.heal().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let history = probe.stop().await;

    let warned: Vec<_> = history
        .attempts
        .iter()
        .filter(|a| {
            a.outcome
                == Outcome::Indeterminate {
                    reason: IndeterminateReason::ServerWarning,
                }
        })
        .collect();
    assert!(
        !warned.is_empty(),
        "the cancelled commit was not classified as indeterminate"
    );
    let found = read_back(&rw, &history.run_id, Duration::from_secs(10))
        .await
        .unwrap();
    for a in &warned {
        assert!(
            found.contains(&(a.writer, a.seq)),
            "the warned commit did commit locally"
        );
    }
    let window = Window {
        start: history.origin.0,
        end: Instant::now(),
    };
    let m = Measurement::compute(&history, &[], window, &found);
    assert!(m.writes.indeterminate_found >= warned.len() as u64);
    assert_eq!(m.writes.lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_run_side_by_side_on_distinct_ports() {
    init_tracing();
    let _serial = serial().await;
    let (a, b) = tokio::join!(LocalCluster::start(), LocalCluster::start());
    let (a, b) = (
        a.expect("first cluster boots"),
        b.expect("second cluster boots"),
    );
    assert_ne!(a.dir(), b.dir());
    let ports = |c: &LocalCluster| -> Vec<u16> {
        c.nodes()
            .iter()
            .flat_map(|n| [n.pg_port, n.api_port])
            .collect()
    };
    let (pa, pb) = (ports(&a), ports(&b));
    assert!(
        pa.iter().all(|p| !pb.contains(p)),
        "{pa:?} and {pb:?} overlap"
    );
    // Each endpoint reaches its own cluster: a table made in one is absent in the other.
    let ca = chaos_core::pg::connect(&a.rw_dsn(), Duration::from_secs(5))
        .await
        .unwrap();
    let cb = chaos_core::pg::connect(&b.rw_dsn(), Duration::from_secs(5))
        .await
        .unwrap();
    ca.batch_execute("CREATE TABLE only_in_a (x int)")
        .await
        .unwrap();
    let in_b: i64 = cb
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_b, 0);
    assert_ne!(a.scope(), b.scope());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_not_ready_in_time_is_an_error_with_logs_and_leaves_nothing() {
    init_tracing();
    let _serial = serial().await;
    let work = scratch("not-ready");
    let err = LocalCluster::builder()
        .work_dir(&work)
        .ready_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Timeout { .. }), "{msg}");
    assert!(
        msg.contains("a healthy cluster") && msg.contains("patroni.log"),
        "{msg}"
    );
    // No process of the failed start survives (any cluster directory under
    // `work` is in their command lines), and no directory is left.
    let survivors = processes_of(&work);
    assert!(survivors.is_empty(), "processes left: {survivors:?}");
    let leftovers: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    std::fs::remove_dir_all(work).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_guards_heal_their_faults() {
    init_tracing();
    let (_serial, cluster) = shared().await;

    // A frozen primary is thawed when its guard is dropped.
    let frozen = FreezePrimary::new().inject(&cluster).await.unwrap();
    let pids = frozen.pids().to_vec();
    // Every process found is stopped — or has exited since (a backend whose
    // client left between the scan and the signal); the postmaster is stopped.
    let states: Vec<(i32, Option<char>)> = pids
        .iter()
        .map(|&p| (p, chaos_tests::process_state(p)))
        .collect();
    assert!(
        states
            .iter()
            .all(|(_, s)| matches!(s, Some('T' | 'Z' | 'X') | None)),
        "{states:?}"
    );
    let postmaster = cluster
        .postmaster_pid(&cluster.primary().await.unwrap())
        .unwrap();
    assert_eq!(chaos_tests::process_state(postmaster), Some('T'));
    drop(frozen);
    assert!(
        eventually(Duration::from_secs(2), || pids
            .iter()
            .all(|&p| chaos_tests::process_state(p) != Some('T'))),
        "still frozen after the guard was dropped"
    );

    // A deleted primary is restarted when its guard is dropped, and rejoins.
    let deleted = DeletePrimary::kill().inject(&cluster).await.unwrap();
    let victim = deleted.node().to_string();
    assert!(cluster.patroni_pid(&victim).is_none());
    drop(deleted);
    assert!(
        cluster.patroni_pid(&victim).is_some(),
        "the node was restarted on drop"
    );
    let t = cluster
        .wait_healthy(Duration::from_secs(90))
        .await
        .expect("the restarted node rejoins");
    // Restarted at once, the node may take its own leader key back before it
    // expires (then no failover happened); either way it serves again.
    assert!(
        t.members.iter().any(|m| m.name == victim && m.is_up()),
        "{t:?}"
    );
}

/// Run by `a_killed_run_*` tests in a child process: boots a cluster in
/// `CHAOS_HELPER_WORK_DIR`, prints its directory and waits to be killed.
#[tokio::test]
#[ignore = "helper process for the kill tests"]
async fn helper_boot_and_wait() {
    let Some(work) = std::env::var_os("CHAOS_HELPER_WORK_DIR") else {
        return;
    };
    let cluster = LocalCluster::builder()
        .work_dir(work)
        .start()
        .await
        .expect("helper cluster boots");
    println!("CLUSTER_DIR={}", cluster.dir().display());
    tokio::time::sleep(Duration::from_secs(300)).await;
}

/// Boots a cluster in a child process, SIGKILLs it, and returns the cluster dir.
fn boot_in_child_and_kill(work: &Path) -> PathBuf {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_boot_and_wait",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CHAOS_HELPER_WORK_DIR", work)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("helper starts");
    let stdout = child.stdout.take().unwrap();
    let dir = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("CLUSTER_DIR=")
                .map(|(_, d)| PathBuf::from(d.trim()))
        })
        .expect("helper printed its cluster dir");
    child.kill().expect("SIGKILL the helper");
    child.wait().unwrap();
    dir
}

/// PIDs of processes whose environment names `dir` as `CHAOS_DIR` (the watchdog).
fn watchdogs_of(dir: &Path) -> Vec<i32> {
    let needle = format!("CHAOS_DIR={}", dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|e| e.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_is_cleaned_up_by_its_watchdog() {
    init_tracing();
    let _serial = serial().await;
    let work = scratch("watchdog");
    let dir = tokio::task::spawn_blocking({
        let work = work.clone();
        move || boot_in_child_and_kill(&work)
    })
    .await
    .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || processes_of(&dir).is_empty()
            && !dir.exists()),
        "the watchdog did not clean up {}: {:?}",
        dir.display(),
        processes_of(&dir)
    );
    std::fs::remove_dir_all(work).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_without_watchdog_is_swept_by_the_next_start() {
    init_tracing();
    let _serial = serial().await;
    let work = scratch("sweep");
    let dir = tokio::task::spawn_blocking({
        let work = work.clone();
        move || {
            let dir = boot_in_child_and_kill(&work);
            // Simulate losing the watchdog too (e.g. the whole session was killed).
            for pid in watchdogs_of(&dir) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            dir
        }
    })
    .await
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !processes_of(&dir).is_empty(),
        "orphans exist before the sweep"
    );

    let next = LocalCluster::builder()
        .work_dir(&work)
        .start()
        .await
        .expect("next cluster boots");
    assert!(
        processes_of(&dir).is_empty(),
        "orphans survived the sweep: {:?}",
        processes_of(&dir)
    );
    assert!(!dir.exists(), "{} survived the sweep", dir.display());
    drop(next);
    std::fs::remove_dir_all(work).ok();
}

/// Run by `a_kept_cluster_stays_until_removed_by_hand` in a child process with
/// `CHAOS_KEEP=1`: boots a cluster in `CHAOS_HELPER_WORK_DIR` and drops it.
#[tokio::test]
#[ignore = "helper process for the CHAOS_KEEP test"]
async fn helper_boot_and_keep() {
    let Some(work) = std::env::var_os("CHAOS_HELPER_WORK_DIR") else {
        return;
    };
    let cluster = LocalCluster::builder()
        .work_dir(work)
        .start()
        .await
        .expect("helper cluster boots");
    drop(cluster);
}

/// Runs a shell command when dropped, even by a failed assertion.
struct RunOnDrop(String);

impl Drop for RunOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("sh").arg("-c").arg(&self.0).status();
    }
}

/// The Patroni processes of `dir`.
fn patronis_of(dir: &Path) -> usize {
    processes_of(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("patroni.yml"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_cluster_stays_until_removed_by_hand() {
    init_tracing();
    let _serial = serial().await;
    let work = scratch("keep");
    // CHAOS_KEEP is read from the environment: set it in a child process only.
    // The child's output is captured by its harness; the notice must get through.
    let out = tokio::task::spawn_blocking({
        let work = work.clone();
        move || {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "helper_boot_and_keep",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env("CHAOS_HELPER_WORK_DIR", &work)
                .env("CHAOS_KEEP", "1")
                .output()
                .expect("helper runs")
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (dir, command) = chaos_tests::kept_notice(
        &stderr,
        "CHAOS_KEEP=1: kept the local cluster at ",
        " (processes still running); remove it with: ",
    );
    // Removed whatever happens next, a failed helper included.
    let remove = RunOnDrop(command);
    assert!(
        out.status.success(),
        "helper failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );

    // It outlives its owner and its watchdog, whole.
    assert!(dir.starts_with(&work) && dir.exists(), "{}", dir.display());
    assert!(watchdogs_of(&dir).is_empty(), "its watchdog still waits");
    assert_eq!(patronis_of(&dir), 3, "every Patroni still runs");
    let procs = snapshot(&dir);
    assert!(procs.len() >= 7, "etcd, Patroni and PostgreSQL: {procs:?}");

    // The next start sweeps clusters whose owner is gone, but not a kept one.
    let next = LocalCluster::builder()
        .work_dir(&work)
        .start()
        .await
        .expect("next cluster boots");
    drop(next);
    assert!(dir.exists(), "{} was swept", dir.display());
    // Its long-lived processes (etcd, Patroni, postmasters: those naming the
    // directory) all still run; backends and workers come and go by themselves.
    let needle = format!("{}/", dir.display());
    let long_lived: Vec<(i32, u64)> = procs
        .iter()
        .copied()
        .filter(|&(p, _)| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(&needle)
            })
        })
        .collect();
    assert!(
        long_lived.len() >= 7,
        "etcd, Patroni and postmasters: {long_lived:?}"
    );
    assert_eq!(
        still_running(&long_lived),
        long_lived.iter().map(|&(p, _)| p).collect::<Vec<_>>(),
        "its processes were stopped"
    );

    // The printed command stops it and removes it.
    drop(remove);
    let left = still_running(&procs);
    assert!(left.is_empty(), "processes left: {left:?}");
    assert!(
        processes_of(&dir).is_empty() && !dir.exists(),
        "{} left",
        dir.display()
    );
    std::fs::remove_dir_all(work).ok();
}

#[tokio::test]
async fn an_unusable_work_dir_is_an_error_naming_chaos_work_dir() {
    let scratch = scratch("bad-work-dir");
    std::fs::create_dir_all(&scratch).unwrap();
    let file = scratch.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    for work in [file.clone(), file.join("below")] {
        let err = LocalCluster::builder()
            .work_dir(&work)
            .start()
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, Error::WorkDir { path, .. } if *path == work),
            "{msg}"
        );
        assert!(msg.contains("set CHAOS_WORK_DIR"), "{msg}");
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries,
        std::slice::from_ref(&file),
        "something was left behind"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
    std::fs::remove_dir_all(scratch).unwrap();
}

#[tokio::test]
async fn missing_programs_are_typed_errors_naming_the_package() {
    let err = LocalCluster::builder()
        .patroni("/nonexistent/patroni")
        .start()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::BinaryNotFound {
                package: "patroni",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("pip install 'patroni[etcd3]==3.1.2'") && msg.contains("CHAOS_PATRONI"),
        "{msg}"
    );

    let err = LocalCluster::builder()
        .pg_bin("/nonexistent")
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("postgresql-15"), "{err}");

    let err = LocalCluster::builder().nodes(1).start().await.unwrap_err();
    assert!(matches!(err, Error::Config { field: "nodes", .. }), "{err}");
}

#[tokio::test]
async fn probe_rejects_bad_settings() {
    let err = ProbeConfig::default()
        .writers(0)
        .start("postgresql://x@127.0.0.1:1/db")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least 1 writer"), "{err}");
    let err = ProbeConfig::default()
        .interval(Duration::ZERO)
        .start("postgresql://x@127.0.0.1:1/db")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("above zero"), "{err}");
    let _unused: HashSet<u8> = HashSet::new();
}

/// The command name of `pid` (`/proc/<pid>/comm`).
fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_string())
}

/// `(pg_is_in_recovery(), inet_server_port())` over a new connection to `dsn`.
async fn whoami(dsn: &str) -> chaos_core::Result<(bool, i32)> {
    let client = chaos_core::pg::connect(dsn, Duration::from_secs(2)).await?;
    let row = client
        .query_one("SELECT pg_is_in_recovery(), inet_server_port()", &[])
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// HAProxy in front of the local cluster: one single-host address that reaches
/// the primary, follows a failover (closing the connections to the old
/// primary), reports its changes of route as events, and goes away with the
/// cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_reaches_the_primary_and_follows_a_failover() {
    use futures::StreamExt;
    use std::sync::{Arc, Mutex};
    init_tracing();
    let _serial = serial().await;
    let work = scratch("proxy");
    let boot = Instant::now();
    let cluster = LocalCluster::builder()
        .work_dir(&work)
        .proxy(true)
        .start()
        .await
        .expect("cluster boots with its proxy");
    println!("boot time with the proxy: {:?}", boot.elapsed());
    let dir = cluster.dir().to_path_buf();
    let proxy_dsn = cluster.proxy_dsn().expect("a proxy");
    assert!(
        proxy_dsn.starts_with("postgresql://postgres@127.0.0.10:")
            && proxy_dsn.ends_with("/postgres?connect_timeout=2"),
        "{proxy_dsn}"
    );
    assert_eq!(cluster.router_dsn().as_deref(), Some(proxy_dsn.as_str()));
    let haproxy: Vec<i32> = processes_of(&dir)
        .into_iter()
        .filter(|&p| comm(p).as_deref() == Some("haproxy"))
        .collect();
    assert_eq!(
        haproxy.len(),
        1,
        "one haproxy among the cluster's processes"
    );

    // Through the proxy, a client reaches the primary.
    let old = cluster.primary().await.unwrap();
    let old_port = i32::from(cluster.node(&old).unwrap().pg_port);
    assert_eq!(whoami(&proxy_dsn).await.unwrap(), (false, old_port));
    assert_eq!(cluster.proxy_routes().await.unwrap(), vec![old.clone()]);
    let primary_dsn = cluster.primary_dsn().await.unwrap().expect("a primary");
    assert_eq!(primary_dsn, cluster.node(&old).unwrap().dsn());
    assert_eq!(whoami(&primary_dsn).await.unwrap(), (false, old_port));
    // The same cluster seen as an external one: its primary's node DSN.
    let external = ExternalCluster::builder(cluster.rw_dsn())
        .node_dsns(cluster.nodes().iter().map(|n| n.dsn()))
        .build()
        .unwrap();
    assert_eq!(
        external.primary_dsn().await.unwrap().as_deref(),
        Some(primary_dsn.as_str())
    );
    let without_nodes = ExternalCluster::builder(cluster.rw_dsn()).build().unwrap();
    assert_eq!(without_nodes.primary_dsn().await.unwrap(), None);

    // The target's events, with their arrival times.
    let events = Arc::new(Mutex::new(Vec::new()));
    let watcher = tokio::spawn({
        let events = events.clone();
        let mut stream = Arc::new(cluster.clone()).events();
        async move {
            while let Some(e) = stream.next().await {
                events.lock().unwrap().push(e);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let pooled = chaos_core::pg::connect(&proxy_dsn, Duration::from_secs(2))
        .await
        .unwrap();
    pooled.simple_query("SELECT 1").await.unwrap();
    let fault = DeletePrimary::kill().inject(&cluster).await.unwrap();
    let killed = Instant::now();

    // Poll Patroni and the proxy side by side: when did the new leader appear,
    // when did a new connection through the proxy reach it?
    let mut leader_seen: Option<(String, Instant)> = None;
    let mut routed: Option<Instant> = None;
    while killed.elapsed() < Duration::from_secs(30) && routed.is_none() {
        if leader_seen.is_none()
            && let Ok(t) = cluster.topology().await
            && let Some(p) = t.primary_name().filter(|p| *p != old)
        {
            leader_seen = Some((p.to_string(), Instant::now()));
        }
        if let Ok((false, port)) = whoami(&proxy_dsn).await
            && port != old_port
        {
            routed = Some(Instant::now());
            if leader_seen.is_none()
                && let Ok(t) = cluster.topology().await
                && let Some(p) = t.primary_name().filter(|p| *p != old)
            {
                leader_seen = Some((p.to_string(), Instant::now()));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let routed =
        routed.expect("a new connection through the proxy reached a new primary within 30 s");
    let (new, leader_at) = leader_seen.expect("Patroni reports a new leader");
    let new_port = i32::from(cluster.node(&new).unwrap().pg_port);
    assert_eq!(whoami(&proxy_dsn).await.unwrap(), (false, new_port));
    println!(
        "proxy: new leader {new} seen by Patroni {:?} after the kill; the proxy routed to it {:?} after the kill, {} ms after the leader appeared",
        leader_at - killed,
        routed - killed,
        routed.saturating_duration_since(leader_at).as_millis()
    );
    // The connection to the old primary was closed.
    assert!(
        pooled.simple_query("SELECT 1").await.is_err(),
        "the old connection still works"
    );
    assert!(pooled.is_closed());
    assert_eq!(
        cluster.primary_dsn().await.unwrap().as_deref(),
        Some(cluster.node(&new).unwrap().dsn().as_str())
    );

    // The route change is an event of the target, after the new primary's.
    tokio::time::sleep(Duration::from_millis(300)).await;
    watcher.abort();
    let events = events.lock().unwrap().clone();
    let at = |is: &dyn Fn(&EventKind) -> bool| events.iter().find(|e| is(&e.kind)).map(|e| e.at);
    let new_primary = at(&|k| matches!(k, EventKind::NewPrimary { node, .. } if *node == new))
        .expect("new primary event");
    let route = at(&|k| matches!(k, EventKind::ProxyRoutes { servers } if servers.contains(&new)))
        .unwrap_or_else(|| panic!("no route event: {events:?}"));
    println!(
        "events: `proxy routes to ({new})` {:+.0} ms after `new primary observed`",
        route.ms_since(new_primary)
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::ProxyRoutes { servers } if servers.is_empty())),
        "the proxy had no server between the kill and the promotion: {events:?}"
    );

    // Healing restarts the old primary, which rejoins behind the proxy as a
    // standby; the proxy keeps routing to the new primary.
    fault.heal().await.unwrap();
    assert_eq!(cluster.proxy_routes().await.unwrap(), vec![new.clone()]);

    // HAProxy goes away with the cluster.
    let procs = snapshot(&dir);
    let port: u16 = proxy_dsn
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next()?.parse().ok())
        .unwrap();
    assert!(!port_free("127.0.0.10", port), "the proxy listens");
    drop(cluster);
    let left = still_running(&procs);
    assert!(left.is_empty(), "processes left: {left:?}");
    assert!(
        haproxy.iter().all(|p| comm(*p).is_none()),
        "haproxy survived"
    );
    assert!(
        port_free("127.0.0.10", port),
        "the proxy's port is still taken"
    );
    std::fs::remove_dir_all(work).ok();
}

/// Without a proxy, asking for it names HAProxy; boot time without one, to
/// compare with the test above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_proxy_the_proxy_dsn_says_how_to_get_one() {
    init_tracing();
    let err = LocalCluster::builder()
        .proxy(true)
        .haproxy("/nonexistent/haproxy")
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BinaryNotFound {
                package: "haproxy",
                ..
            }
        ),
        "{err}"
    );

    let _serial = serial().await;
    let boot = Instant::now();
    let cluster = LocalCluster::builder()
        .proxy(false)
        .start()
        .await
        .expect("cluster boots");
    println!("boot time without the proxy: {:?}", boot.elapsed());
    let err = cluster.proxy_dsn().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config { field: "proxy", .. }), "{msg}");
    assert!(
        msg.contains("haproxy") && msg.contains("proxy(true)"),
        "{msg}"
    );
    assert!(cluster.router_dsn().is_none());
    assert!(
        processes_of(cluster.dir())
            .iter()
            .all(|&p| comm(p).as_deref() != Some("haproxy"))
    );
    assert!(cluster.primary_dsn().await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_template_serves_the_next_boot_and_steps_aside_after_it() {
    use chaos_core::cluster::local::TemplateSource;
    init_tracing();
    let _serial = serial().await;
    let cache = scratch("template-cache");
    let _ = std::fs::remove_dir_all(&cache);
    // The template of another PostgreSQL (another key) is replaced, not used.
    std::fs::create_dir_all(cache.join("pgdata-postgres-postgresql-9.6-v1/data")).unwrap();
    let boot = || {
        LocalCluster::builder()
            .nodes(2)
            .proxy(false)
            .template_cache_dir(&cache)
            .start()
    };

    let first = boot().await.expect("a cold boot");
    let t = first.boot_timings().expect("boot timings").clone();
    assert_eq!(t.template, TemplateSource::Created);
    assert!(
        t.leader_running <= t.sync_standby
            && t.replicas_streaming <= t.first_write
            && t.sync_standby <= t.first_write
            && t.first_write <= t.total,
        "{t:?}"
    );
    let templates: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(templates.len(), 1, "{templates:?}");
    assert!(
        templates[0].starts_with("pgdata-") && !templates[0].contains("9.6"),
        "{templates:?}"
    );
    // The boot is over: no staged copy is left, and a replica made now comes
    // from pg_basebackup, not from the template.
    assert!(!first.dir().join("staged-data").exists());
    let replica = first
        .topology()
        .await
        .unwrap()
        .standbys()
        .next()
        .expect("a standby")
        .name
        .clone();
    first
        .stop_node(&replica, Duration::from_secs(30))
        .await
        .unwrap();
    let node = first.node(&replica).unwrap().clone();
    std::fs::remove_dir_all(node.data_dir()).unwrap();
    first.start_node(&replica).unwrap();
    first
        .wait_replica(&replica, Duration::from_secs(60))
        .await
        .expect("the wiped replica is re-created");
    let log = std::fs::read_to_string(first.dir().join(&replica).join("patroni.log")).unwrap();
    assert!(
        log.contains("replica has been created using basebackup"),
        "the re-created replica should come from pg_basebackup:\n{log}"
    );
    first.wait_healthy(Duration::from_secs(60)).await.unwrap();
    drop(first);

    let second = boot().await.expect("a warm boot");
    assert_eq!(
        second.boot_timings().unwrap().template,
        TemplateSource::Cached
    );
    drop(second);
    let _ = std::fs::remove_dir_all(&cache);
}

/// `curl` on Patroni's `/config` at `api` (`PATCH` with `body`, else `GET`);
/// the `loop_wait` of the configuration it answers with.
fn config_loop_wait(api: &str, patch: Option<&str>) -> Option<u64> {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--noproxy", "*", "-m", "10"]);
    if let Some(body) = patch {
        cmd.args(["-X", "PATCH", "-d", body]);
    }
    let out = cmd
        .arg(format!("{api}/config"))
        .output()
        .expect("curl runs");
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    config.get("loop_wait")?.as_u64()
}

/// The health wait wakes Patroni's HA loop with a `PATCH /config` of the
/// `loop_wait` in force — not the boot's, which undid an experiment's
/// `--set loop_wait=N` variant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waking_patroni_keeps_the_loop_wait_in_force() {
    init_tracing();
    let (_serial, cluster) = shared().await;
    let t = cluster.topology().await.unwrap();
    let leader = cluster.node(t.primary_name().unwrap()).unwrap().api_url();
    let sync = t.sync_standbys().next().unwrap().name.clone();
    assert_eq!(
        config_loop_wait(&leader, Some(r#"{"loop_wait": 2}"#)),
        Some(2)
    );
    // The synchronous standby gone: the health wait sees a leader without
    // one beside a running standby, and wakes the leader.
    cluster
        .stop_node(&sync, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(cluster.wait_healthy(Duration::from_secs(4)).await.is_err());
    let after = config_loop_wait(&leader, None);
    cluster.start_node(&sync).unwrap();
    assert_eq!(
        config_loop_wait(&leader, Some(r#"{"loop_wait": 1}"#)),
        Some(1)
    );
    cluster.wait_healthy(Duration::from_secs(60)).await.unwrap();
    assert_eq!(after, Some(2), "the variant's loop_wait was kept");
}
