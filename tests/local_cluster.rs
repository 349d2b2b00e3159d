//! Measurements on real local clusters (etcd + Patroni + PostgreSQL processes
//! booted by the library): failovers under load, verification of lost writes,
//! freezes, graceful hand-overs, faults healed by their guards. Tests that boot
//! a cluster take this file's lock so that at most one runs at a time; most
//! share one cluster. (What a cluster leaves behind is in
//! `cluster_lifecycle.rs`; HAProxy and the boot template in
//! `proxy_and_template.rs`: separate binaries, so that CI runs them side by
//! side.)
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chaos_core::fault::{DeletePrimary, FreezePrimary, FreezeReplicas};
use chaos_core::prelude::*;
use chaos_core::timeline::from_ms;
use chaos_core::verify::{FaultSpan, Measurement, Window, read_back};
use chaos_tests::{eventually, init_tracing, scratch};

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
