//! Node-level faults on one real local cluster, shared by every test of this
//! file (booted once, tests serialised): pausing a whole node, losing the DCS,
//! and a planned switchover. Each test leaves the cluster healthy.
//!
//! Under `cargo nextest` every test runs in its own process and boots its own
//! cluster; under `cargo test` they share one.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chaos_core::error::FaultError;
use chaos_core::fault::{Fault, FaultGuard, PauseNode, StopDcs, Switchover};
use chaos_core::prelude::*;
use chaos_core::timeline::from_ms;
use chaos_tests::init_tracing;

/// One runtime for every test: the cluster's HTTP client keeps connections on
/// the runtime that opened them, so the shared cluster must live on one.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

static CLUSTER: tokio::sync::OnceCell<LocalCluster> = tokio::sync::OnceCell::const_new();
/// One test at a time on the shared cluster (no poisoning: a failed test
/// releases it).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `body` on the shared cluster, booted on first use, healthy on entry.
fn with_cluster<F, Fut>(body: F)
where
    F: FnOnce(LocalCluster) -> Fut,
    Fut: Future<Output = ()>,
{
    init_tracing();
    runtime().block_on(async {
        let _serial = SERIAL.lock().await;
        let cluster = CLUSTER
            .get_or_init(|| async { LocalCluster::start().await.expect("cluster boots") })
            .await
            .clone();
        // An earlier test that failed may have left etcd down.
        if cluster.etcd_pid().is_none() {
            cluster.start_dcs(Duration::from_secs(30)).await.unwrap();
        }
        cluster
            .wait_healthy(Duration::from_secs(90))
            .await
            .expect("healthy before the test");
        body(cluster).await;
    });
}

/// Writes one row through a fresh connection to `dsn` within `deadline`.
async fn write_once(dsn: &str, deadline: Duration) -> Result<()> {
    tokio::time::timeout(deadline, async {
        let c = chaos_core::pg::connect(dsn, deadline).await?;
        c.batch_execute(
            "CREATE TABLE IF NOT EXISTS node_faults_probe (id bigserial PRIMARY KEY, at timestamptz DEFAULT now()); \
             INSERT INTO node_faults_probe DEFAULT VALUES",
        )
        .await
        .map_err(|source| Error::Postgres {
            context: "write failed".into(),
            source,
        })
    })
    .await
    .map_err(|_| Error::Timeout {
        what: "a write".into(),
        waited: deadline,
        logs: String::new(),
    })?
}

/// Patroni's REST API: `method path` with a JSON body; returns status and body.
fn patroni(api: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--noproxy",
            "*",
            "-m",
            "10",
            "-X",
            method,
            "-H",
            "Content-Type: application/json",
            "-w",
            "\n%{http_code}",
            "-d",
            body,
            &format!("{api}{path}"),
        ])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Whether `pid` descends from `ancestor` (through `/proc/<pid>/stat`).
fn is_descendant(mut pid: i32, ancestor: i32) -> bool {
    while pid > 1 {
        let Some(parent) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            })
        else {
            return false;
        };
        if parent == ancestor {
            return true;
        }
        pid = parent;
    }
    false
}

fn api_of(cluster: &LocalCluster, name: &str) -> String {
    cluster.node(name).unwrap().api_url()
}

#[test]
fn pausing_a_node_stops_patroni_and_all_of_postgres_and_drop_resumes_it() {
    with_cluster(|cluster| async move {
        let leader = cluster.primary().await.unwrap();
        let replica = cluster
            .nodes()
            .iter()
            .map(|n| n.name.clone())
            .find(|n| *n != leader)
            .unwrap();
        let patroni = cluster.patroni_pid(&replica).unwrap();
        let postmaster = cluster.postmaster_pid(&replica).unwrap();
        let guard = PauseNode::node(&replica).inject(&cluster).await.unwrap();
        let pids = guard.pids().to_vec();
        println!(
            "paused {replica}: {} processes; postmaster {postmaster} is {}a descendant of Patroni {patroni}",
            pids.len(),
            if is_descendant(postmaster, patroni) {
                ""
            } else {
                "not "
            },
        );
        assert_eq!(pids[0], patroni, "Patroni is stopped first");
        assert!(pids.contains(&postmaster));
        assert!(pids.len() > 3, "backends stopped too: {pids:?}");
        assert_eq!(guard.info().victim.as_deref(), Some(replica.as_str()));
        assert_eq!(guard.info().kind, "pause-node");
        for &p in &pids {
            let state = chaos_tests::process_state(p);
            assert!(matches!(state, Some('T' | 'Z') | None), "{p}: {state:?}");
        }
        assert_eq!(chaos_tests::process_state(patroni), Some('T'));
        assert_eq!(chaos_tests::process_state(postmaster), Some('T'));
        drop(guard);
        for &p in &pids {
            let state = chaos_tests::process_state(p);
            assert!(state != Some('T'), "{p} still stopped after drop");
        }
        cluster.wait_healthy(Duration::from_secs(60)).await.unwrap();
    });
}

// The pause past the ttl (a failover, and on Patroni 3.0.2 the old primary
// taking the leader key back) is in `patroni_versions.rs`.

#[test]
fn pausing_the_primary_below_the_ttl_keeps_it_primary() {
    with_cluster(|cluster| async move {
        let leader = cluster.primary().await.unwrap();
        let hold = Duration::from_millis(1500);
        let report = Scenario::new("node_faults_pause_short")
            .slo(Slo::max_rto(Duration::from_secs(30)))
            .warmup(Duration::from_secs(1))
            .hold(hold)
            .write_report(false)
            .run(&cluster, PauseNode::primary())
            .await
            .expect("scenario runs");
        println!("{report}");
        assert_eq!(report.writes.lost, 0, "{report}");
        let gap = report.write_gap().expect("a gap");
        let slack = from_ms(report.resolution_ms) + Duration::from_millis(1500);
        println!("pause {hold:?}: gap {gap:?}, RTO {:?}", report.rto());
        assert!(
            gap + Duration::from_millis(5) >= hold,
            "gap {gap:?} shorter than the pause {hold:?}"
        );
        assert!(gap <= hold + slack, "gap {gap:?} vs pause {hold:?}");
        let t = cluster.wait_healthy(Duration::from_secs(60)).await.unwrap();
        assert_eq!(t.primary_name(), Some(leader.as_str()), "no failover");
    });
}

/// Writes to `dsn` every 100 ms for `span`; returns (ms since `from`, ok) per
/// attempt, and prints the first error.
async fn write_loop(dsn: &str, from: Instant, span: Duration) -> Vec<(u128, bool)> {
    let mut out = Vec::new();
    let mut first_error = None;
    while from.elapsed() < span {
        let result = write_once(dsn, Duration::from_secs(1)).await;
        let ok = result.is_ok();
        if let Err(e) = result
            && first_error.is_none()
        {
            println!(
                "first failed write at {} ms: {e}",
                from.elapsed().as_millis()
            );
            first_error = Some(e);
        }
        out.push((from.elapsed().as_millis(), ok));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

#[test]
fn stopping_the_dcs_demotes_the_leader_until_it_is_back() {
    with_cluster(|cluster| async move {
        let leader = cluster.primary().await.unwrap();
        let dsn = cluster.node(&leader).unwrap().dsn();
        write_once(&dsn, Duration::from_secs(5)).await.unwrap();
        let guard = StopDcs::new().inject(&cluster).await.unwrap();
        assert!(cluster.etcd_pid().is_none(), "etcd is down");
        assert_eq!(guard.info().kind, "stop-dcs");
        let at = Instant::now();
        let timings = cluster.timings();
        // retry_timeout for the DCS calls, plus a loop, plus demotion.
        let span = Duration::from_secs(u64::from(timings.retry_timeout + timings.ttl) + 4);
        let writes = write_loop(&dsn, at, span).await;
        let first_failure = writes.iter().find(|w| !w.1).map(|w| w.0);
        let last_ok = writes.iter().filter(|w| w.1).map(|w| w.0).max();
        println!(
            "DCS down: first failed write after {first_failure:?} ms, last acknowledged at {last_ok:?} ms ({} attempts)",
            writes.len()
        );
        let first_failure = first_failure.expect("writes to the old leader fail without the DCS");
        // Once writes fail they stay failed while the DCS is down.
        let ok_after = writes.iter().filter(|w| w.1 && w.0 > first_failure).count();
        assert_eq!(
            ok_after, 0,
            "a write succeeded after the demotion: {writes:?}"
        );
        let healed_at = Instant::now();
        guard.heal().await.unwrap();
        cluster.wait_healthy(Duration::from_secs(90)).await.unwrap();
        write_once(&cluster.rw_dsn(), Duration::from_secs(10))
            .await
            .unwrap();
        println!(
            "DCS back: healthy and writable {:?} after restarting etcd",
            healed_at.elapsed()
        );
    });
}

#[test]
fn dropping_the_dcs_guard_starts_etcd_again() {
    with_cluster(|cluster| async move {
        let guard = StopDcs::new().inject(&cluster).await.unwrap();
        assert!(cluster.etcd_pid().is_none(), "etcd is down");
        let at = Instant::now();
        drop(guard);
        assert!(
            cluster.etcd_pid().is_some(),
            "etcd runs again after the drop"
        );
        println!("etcd restarted by the guard's drop in {:?}", at.elapsed());
        cluster.wait_healthy(Duration::from_secs(90)).await.unwrap();
    });
}

#[test]
fn with_failsafe_mode_the_leader_keeps_accepting_writes_through_a_dcs_outage() {
    with_cluster(|cluster| async move {
        let leader = cluster.primary().await.unwrap();
        let api = api_of(&cluster, &leader);
        let (code, body) = patroni(&api, "PATCH", "/config", r#"{"failsafe_mode": true}"#);
        assert_eq!(code, 200, "{body}");
        // Every member picks the setting up on its next loop; the leader then
        // writes the failsafe key (members that may answer /failsafe).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let dsn = cluster.node(&leader).unwrap().dsn();
        write_once(&dsn, Duration::from_secs(5)).await.unwrap();
        let guard = StopDcs::new().inject(&cluster).await.unwrap();
        let at = Instant::now();
        let span = cluster.timings().ttl() + Duration::from_secs(3);
        let writes = write_loop(&dsn, at, span).await;
        let failed = writes.iter().filter(|w| !w.1).count();
        println!(
            "failsafe, DCS down {span:?}: {failed} of {} writes to the leader failed; first failure at {:?} ms",
            writes.len(),
            writes.iter().find(|w| !w.1).map(|w| w.0)
        );
        guard.heal().await.unwrap();
        let (code, body) = patroni(&api, "PATCH", "/config", r#"{"failsafe_mode": false}"#);
        assert_eq!(code, 200, "{body}");
        let t = cluster.wait_healthy(Duration::from_secs(90)).await.unwrap();
        write_once(&cluster.rw_dsn(), Duration::from_secs(10))
            .await
            .unwrap();
        // Failsafe: the leader keeps its role while all members answer it.
        assert_eq!(failed, 0, "writes failed in failsafe mode: {writes:?}");
        assert_eq!(t.primary_name(), Some(leader.as_str()));
    });
}

#[test]
fn a_switchover_to_the_sync_standby_loses_nothing_and_the_old_primary_rejoins() {
    with_cluster(|cluster| async move {
        let before = cluster.topology().await.unwrap();
        let leader = before.primary_name().unwrap().to_string();
        let sync = before.sync_standbys().next().unwrap().name.clone();
        let report = Scenario::new("node_faults_switchover")
            .slo(Slo::max_rto(Duration::from_secs(30)))
            .warmup(Duration::from_secs(1))
            .write_report(false)
            .run(&cluster, Switchover::to_sync_standby())
            .await
            .expect("scenario runs");
        println!("{report}");
        assert_eq!(report.writes.lost, 0, "{report}");
        assert_eq!(report.faults[0].kind, "switchover");
        assert_eq!(report.faults[0].victim.as_deref(), Some(leader.as_str()));
        // The guard healed: the candidate leads, the old primary streams from it.
        let t = cluster.topology().await.unwrap();
        assert_eq!(t.primary_name(), Some(sync.as_str()), "{t:?}");
        let old = t.members.iter().find(|m| m.name == leader).unwrap();
        assert!(
            matches!(old.role, Role::Replica | Role::SyncStandby),
            "{t:?}"
        );
        println!(
            "switchover {leader} -> {sync}: RTO {:?}, gap {:?}",
            report.rto(),
            report.write_gap()
        );
        cluster.wait_healthy(Duration::from_secs(60)).await.unwrap();
    });
}

/// The members as the leader's Patroni sees them (`GET /cluster`): name → role.
fn leader_view(api: &str) -> Vec<(String, String)> {
    let (code, body) = patroni(api, "GET", "/cluster", "");
    if code != 200 {
        return Vec::new();
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_string(),
                m["role"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_switchover_to_an_asynchronous_replica_is_refused_with_patronis_reason() {
    with_cluster(|cluster| async move {
        let leader = cluster.primary().await.unwrap();
        let api = api_of(&cluster, &leader);
        // Right after a failover the synchronous standby may still be changing
        // hands: wait until the leader's view names the same replica twice,
        // a loop apart.
        let mut candidate = None;
        let mut last = Vec::new();
        for _ in 0..20 {
            let view = leader_view(&api);
            let replica = view.iter().find(|m| m.1 == "replica").map(|m| m.0.clone());
            let settled = view.iter().filter(|m| m.1 == "sync_standby").count() == 1;
            if settled && view == last && replica.is_some() {
                candidate = replica;
                break;
            }
            last = view;
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let candidate =
            candidate.unwrap_or_else(|| panic!("no settled asynchronous replica: {last:?}"));
        match Switchover::to(&candidate).inject(&cluster).await {
            Err(err) => {
                let text = err.to_string();
                println!("refused: {text}");
                assert!(
                    matches!(
                        err,
                        Error::Fault(FaultError::SwitchoverRefused { status: 412, .. })
                    ),
                    "{text}"
                );
                assert!(text.contains("412") && text.contains("sync"), "{text}");
                assert_eq!(cluster.primary().await.unwrap(), leader, "nothing happened");
            }
            Ok(guard) => {
                // Leave the cluster as the next test expects it, then fail.
                let healed = guard.heal().await;
                cluster.wait_healthy(Duration::from_secs(90)).await.unwrap();
                panic!(
                    "Patroni accepted a switchover to {candidate} (leader view {last:?}): {healed:?}"
                );
            }
        }
    });
}

/// A primary paused past the ttl, whichever node it is: the probe connects to
/// every host of the multi-host DSN at once, so its RTO ends with the
/// promotion and the routing (its `first_write` phase stays short) wherever
/// the paused node is listed. An application that tries the hosts in turn
/// (tokio-postgres, like libpq, on the same DSN) is measured beside it as a
/// workload: when the paused node is listed first, every connection of the
/// application hangs on it until the pause ends.
#[test]
fn a_paused_primary_gives_the_same_rto_whichever_node_it_is() {
    with_cluster(|cluster| async move {
        // Past the promotion (ttl 5 s, then the replicas' calls to the
        // paused leader's REST API time out: ~6.5-8 s here).
        let hold = Duration::from_secs(11);
        let hosts: Vec<String> = cluster.nodes().iter().map(|n| n.name.clone()).collect();
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let victim = cluster.primary().await.unwrap();
            let listed = hosts.iter().position(|h| *h == victim).unwrap();
            let dsn = cluster.rw_dsn();
            let app = Workload::new("in_turn", move |_op| {
                let dsn = dsn.clone();
                async move {
                    let config: tokio_postgres::Config = dsn.parse().unwrap();
                    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
                    tokio::spawn(connection);
                    let row = client
                        .query_one(
                            "INSERT INTO node_faults_in_turn DEFAULT VALUES RETURNING id",
                            &[],
                        )
                        .await?;
                    Ok(Some(row.get::<_, i64>(0).to_string()))
                }
            })
            .paced(Duration::from_millis(50))
            .op_timeout(Duration::from_secs(2));
            chaos_core::pg::connect(&cluster.rw_dsn(), Duration::from_secs(5))
                .await
                .unwrap()
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS node_faults_in_turn (id bigserial PRIMARY KEY)",
                )
                .await
                .unwrap();
            let report = Scenario::new("node_faults_pause_each_node")
                .slo(Slo::max_rto(Duration::from_secs(30)))
                .warmup(Duration::from_secs(1))
                .hold(hold)
                .write_report(false)
                .configure(|e| e.workload(app))
                .run(&cluster, PauseNode::primary())
                .await
                .expect("scenario runs");
            println!("{}", report.summary_line());
            assert_eq!(report.writes.lost, 0, "{report}");
            let rto = report.rto_ms.expect("the probe recovered");
            let first_write = report
                .phases
                .iter()
                .find(|p| p.name == "first_write")
                .map(|p| p.ms)
                .expect("phases");
            let app_rto = report.workloads[0]
                .rto_ms
                .expect("the application recovered");
            println!(
                "paused {victim} (listed {}): probe RTO {rto:.0} ms (first write {first_write:.0} ms \
                 after routing), in-turn application RTO {app_rto:.0} ms",
                listed + 1
            );
            // The probe reached the new primary; an application that waited
            // on the paused host is told why it kept failing.
            let stalled: Vec<&str> = report
                .failing_after_promotion
                .iter()
                .map(|f| f.series.as_str())
                .collect();
            println!(
                "kept failing after the promotion: {:?}",
                report.failing_after_promotion
            );
            assert!(!stalled.contains(&"probe"), "{report}");
            if app_rto > rto + 3000.0 {
                assert!(stalled.contains(&"workload in_turn"), "{report}");
                assert!(
                    report.summary().contains("workload in_turn kept failing"),
                    "{}",
                    report.summary()
                );
            }
            seen.push((listed, rto, first_write, app_rto));
            cluster.wait_healthy(Duration::from_secs(60)).await.unwrap();
            let first_listed = seen.iter().any(|s| s.0 == 0);
            if seen.len() >= 3 && first_listed && seen.iter().any(|s| s.0 > 0) {
                break;
            }
        }
        println!("pauses (listed position, probe RTO, first write, application RTO): {seen:?}");
        for &(listed, rto, first_write, app_rto) in &seen {
            // The probe: a write within a second of the routing, wherever the
            // paused node was listed (it took until the pause ended, 11 s,
            // when the attempt waited on the paused host first).
            assert!(
                first_write < 1000.0,
                "listed {listed}: the probe's first write came {first_write:.0} ms after the \
                 routing (RTO {rto:.0} ms): {seen:?}"
            );
            let hold_ms = hold.as_secs_f64() * 1000.0;
            if listed == 0 && rto < hold_ms {
                // The application tries the paused host first and waits on
                // it: it recovers only when the pause ends, after the probe.
                assert!(
                    app_rto >= hold_ms - 200.0 && app_rto > rto,
                    "an in-turn client with the paused host first recovered before the pause \
                     ended ({hold:?}): {seen:?}"
                );
            }
        }
        let spread = seen.iter().map(|s| s.2).fold(0.0, f64::max)
            - seen.iter().map(|s| s.2).fold(f64::INFINITY, f64::min);
        assert!(
            spread < 1000.0,
            "first write after routing varies by {spread:.0} ms: {seen:?}"
        );
        assert!(
            seen.iter().any(|s| s.0 == 0) && seen.iter().any(|s| s.0 > 0),
            "never paused both the first-listed node and another: {seen:?}"
        );
    });
}
