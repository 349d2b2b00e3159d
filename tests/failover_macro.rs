//! `#[failover_test]` and the pipeline behind it at run time, on the local
//! cluster that the tests of this binary share: SLOs that pass, an SLO that
//! cannot, bodies that panic or outlive their timeout while a fault is
//! injected, outages the library did not cause, several faults in one body,
//! shell faults, and the reports they produce.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaos_core::harness::{TestFailure, TestSpec, run};
use chaos_core::prelude::*;
use chaos_core::report::Report;
use chaos_core::timeline::from_ms;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The example from the crate docs (`max_rto = "10s"`), with a bound that
/// holds on a loaded 2-core machine too: `ci/test` runs three test binaries,
/// three clusters, at once, and a failover there took 11.1 s once.
#[failover_test(max_rto = "30s", rpo = 0)]
async fn survives_primary_loss(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
    ctx.inject(DeletePrimary::kill()).await?;
    Ok(())
}

/// The seeds the repeated test's runs were given.
static SEEDS: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

/// `repeat`: the body runs once per run on the shared cluster, each run with
/// a seed of its own, and the set is judged on its RTO's 95th percentile.
#[failover_test(repeat = 2, max_rto_p95 = "30s")]
async fn repeated_switchovers_are_judged_as_a_set(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
    let seed = ctx.seed();
    {
        let mut seeds = SEEDS.lock().unwrap();
        assert!(
            !seeds.contains(&seed),
            "run seeds repeat: {seed} in {seeds:?}"
        );
        seeds.push(seed);
    }
    ctx.inject(Switchover::to_sync_standby()).await?;
    Ok(())
}

/// A graceful stop with a workload of the test's own beside the probe, measured
/// like it: the SLO is asserted on the workload, whose writes are verified
/// after recovery, and the body gets the workload's summary back.
#[failover_test(
    max_rto = "30s",
    rpo = 0,
    writers = 3,
    interval = "5ms",
    timeout = "90s",
    slo_on = "app_events"
)]
async fn graceful_stop_with_own_workload(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
    let before = ctx.topology().await?;
    let old_leader = before.primary_name().unwrap().to_string();
    ctx.client()
        .await?
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS app_events (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())",
        )
        .await?;
    let dsn = ctx.rw_dsn();
    let check = dsn.clone();
    let events = Workload::new("app_events", move |_op| {
        let dsn = dsn.clone();
        async move {
            let client = chaos_core::pg::connect(&dsn, Duration::from_secs(2)).await?;
            let row = client
                .query_one("INSERT INTO app_events DEFAULT VALUES RETURNING id", &[])
                .await?;
            Ok(Some(row.get::<_, i64>(0).to_string()))
        }
    })
    .paced(Duration::from_millis(20))
    .verify(move |ids| {
        let dsn = check.clone();
        async move {
            let client = chaos_core::pg::connect(&dsn, Duration::from_secs(5)).await?;
            let ids: Vec<i64> = ids.iter().filter_map(|i| i.parse().ok()).collect();
            let rows = client
                .query("SELECT id FROM app_events WHERE id = ANY($1)", &[&ids])
                .await?;
            Ok(rows
                .iter()
                .map(|r| r.get::<_, i64>(0).to_string())
                .collect())
        }
    });
    let handle = ctx.workload(events);
    tokio::time::sleep(Duration::from_millis(500)).await;
    ctx.inject(DeletePrimary::graceful()).await?;
    ctx.wait_recovered().await?;
    // Once recovered, another node leads.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctx.topology().await?.primary_name() == Some(old_leader.as_str()) {
        assert!(Instant::now() < deadline, "leadership never moved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let summary = ctx.stop_workload(handle).await?;
    assert!(
        summary.acknowledged() > 10,
        "the workload ran: {}",
        summary.acknowledged()
    );
    assert!(
        summary.attempts.iter().any(|a| a.result.is_err()),
        "the workload felt the outage"
    );
    Ok(())
}

/// `()` bodies work too; a freeze shorter than the ttl is an outage without failover.
#[failover_test(max_rto = "30s", target = "env")]
async fn short_freeze_is_tolerated(ctx: &mut FailoverCtx) {
    let handle = ctx.inject(FreezePrimary::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    ctx.heal(handle).await.unwrap();
    ctx.wait_recovered().await.unwrap();
}

/// A cut of the primary's replication links, shorter than the ttl, from a
/// macro body: commits wait for it, nobody fails over (needs root).
#[failover_test(max_rto = "30s", rpo = 0)]
async fn a_replication_partition_from_the_macro(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
    if !chaos_tests::root_or_skip("a_replication_partition_from_the_macro") {
        return Ok(());
    }
    let before = ctx.topology().await?.primary_name().map(String::from);
    let handle = ctx
        .inject(chaos_core::fault::PartitionNetwork::primary_from_replicas())
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    ctx.heal(handle).await?;
    ctx.wait_recovered().await?;
    assert_eq!(
        ctx.topology().await?.primary_name().map(String::from),
        before
    );
    Ok(())
}

/// An impossible SLO fails through the macro, and the message names the RTO.
#[failover_test(max_rto = "1ms")]
#[should_panic(expected = "exceeds max_rto 0.001s")]
async fn an_impossible_slo_fails_the_test(ctx: &mut FailoverCtx) {
    let handle = ctx.inject(FreezePrimary::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctx.heal(handle).await.unwrap();
}

/// The cluster a body ran on, kept so the test can look at that very cluster
/// afterwards (not at one that a later repair may have put in its place).
static SEEN: std::sync::Mutex<Option<LocalCluster>> = std::sync::Mutex::new(None);

fn freeze_then(
    then: fn(),
) -> impl for<'a> Fn(&'a mut FailoverCtx) -> futures::future::BoxFuture<'a, Result<()>> {
    move |ctx| {
        Box::pin(async move {
            *SEEN.lock().unwrap() = ctx.target_as::<LocalCluster>().cloned();
            ctx.inject(FreezePrimary::new()).await?;
            then();
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(())
        })
    }
}

/// Processes of the cluster that are stopped (state `T`), i.e. still frozen.
fn frozen_processes(dir: &Path) -> Vec<i32> {
    chaos_tests::processes_of(dir)
        .into_iter()
        .filter(|&p| chaos_tests::process_state(p) == Some('T'))
        .collect()
}

/// After a failed test: the cluster the body ran on still exists, nothing of
/// it is frozen, and every node's PostgreSQL runs.
fn assert_seen_cluster_healed() {
    let cluster = SEEN
        .lock()
        .unwrap()
        .take()
        .expect("the body ran on a local cluster");
    assert!(cluster.dir().is_dir(), "the cluster was torn down");
    let frozen = frozen_processes(cluster.dir());
    assert!(frozen.is_empty(), "processes still frozen: {frozen:?}");
    for node in cluster.nodes() {
        let pid = cluster.postmaster_pid(&node.name).expect("PostgreSQL runs");
        assert_ne!(
            chaos_tests::process_state(pid),
            Some('T'),
            "{} frozen",
            node.name
        );
    }
}

fn junit(name: &str) -> String {
    let dir = chaos_core::report::default_report_dir();
    std::fs::read_to_string(dir.join(format!("{name}.xml"))).unwrap()
}

#[test]
fn a_body_that_panics_with_a_fault_injected_is_healed_and_reraised() {
    let spec = TestSpec::new("failover_macro::panicking_body").max_rto(Duration::from_secs(30));
    let caught = std::panic::catch_unwind(|| {
        chaos_core::__private::run_test(
            spec,
            freeze_then(|| panic!("boom while the primary is frozen")),
        )
    });
    let payload = caught.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"boom while the primary is frozen"),
        "the original panic is re-raised"
    );
    assert_seen_cluster_healed();
    let xml = junit("failover_macro__panicking_body");
    assert!(xml.contains(r#"type="panic""#), "{xml}");
}

#[test]
fn a_body_that_outlives_its_timeout_fails_and_is_healed() {
    let start = Instant::now();
    let spec = TestSpec::new("failover_macro::timeout").timeout(Duration::from_secs(3));
    let failure = run(spec, freeze_then(|| ())).unwrap_err();
    assert!(matches!(failure, TestFailure::Timeout { .. }), "{failure}");
    assert!(
        failure.to_string().contains("timed out after 3.000s"),
        "{failure}"
    );
    // The wait was cut at the deadline, not after the body's 600 s sleep.
    assert!(start.elapsed() < Duration::from_secs(300));
    let report = failure.report().expect("verification still ran");
    assert!(
        report.violations.iter().any(|v| v.contains("timed out")),
        "{report}"
    );
    assert_eq!(report.faults.len(), 1, "{report}");
    assert!(report.faults[0].healed_at.is_some(), "healed: {report}");
    assert_seen_cluster_healed();
    let xml = junit("failover_macro__timeout");
    assert!(xml.contains(r#"type="timeout""#), "{xml}");
}

#[test]
fn an_impossible_slo_is_reported_with_the_measured_rto_in_json_and_junit() {
    let spec = TestSpec::new("failover_macro::impossible_slo").max_rto(Duration::from_millis(1));
    let failure = run(spec, |ctx| {
        Box::pin(async move {
            ctx.inject(DeletePrimary::kill()).await?;
            Ok::<(), chaos_core::Error>(())
        })
    })
    .unwrap_err();
    let TestFailure::Slo(report) = &failure else {
        panic!("expected an SLO failure, got {failure}")
    };
    let rto = report.rto().expect("measured");
    let msg = failure.to_string();
    let rto_text = chaos_core::slo::fmt_duration(rto);
    assert!(
        msg.contains(&format!("RTO {rto_text} exceeds max_rto 0.001s")),
        "{msg}"
    );
    assert_eq!(report.writes.lost, 0, "{report}");

    let dir = chaos_core::report::default_report_dir();
    let xml = junit("failover_macro__impossible_slo");
    assert!(xml.contains("<testsuites"), "{xml}");
    assert!(xml.contains(r#"<testsuite name="failover_macro""#), "{xml}");
    assert!(
        xml.contains(r#"<testcase name="impossible_slo" classname="failover_macro""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<property name="rto_ms""#)
            && xml.contains(r#"<failure message="RTO"#)
            && xml.contains(r#"type="slo""#),
        "{xml}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("failover_macro__impossible_slo.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["passed"], false);
    assert!(json["rto_ms"].as_f64().unwrap() > 1.0);
}

#[test]
fn an_unknown_target_is_a_set_up_error() {
    // `target = "env"` reads CHAOS_TARGET; this process does not set it, so the
    // local target is used (see `short_freeze_is_tolerated`). The check itself:
    use chaos_core::harness::{EnvTarget, check_target_value};
    let failure = check_target_value("kubernetes").unwrap_err();
    assert!(failure.to_string().contains("CHAOS_TARGET"), "{failure}");
    assert!(failure.to_string().contains("cnpg"), "{failure}");
    assert_eq!(
        check_target_value("external").ok(),
        Some(EnvTarget::External)
    );
    assert_eq!(check_target_value("local").ok(), Some(EnvTarget::Local));
    assert_eq!(check_target_value("cnpg").ok(), Some(EnvTarget::Cnpg));
}

/// `pid` and all its descendants, from /proc.
fn tree(pid: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let p: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        all.extend(
            parents
                .iter()
                .filter(|&&(_, pp)| pp == parent)
                .map(|&(p, _)| p),
        );
        i += 1;
    }
    all
}

/// Stops the primary's PostgreSQL by hand (not through the library) for
/// `hold`: SIGSTOP to the postmaster and every backend, SIGCONT after. With
/// `mark`, the stall is marked as a fault once it is in effect, and its end
/// once it is over.
async fn stall_primary_by_hand(
    ctx: &mut FailoverCtx,
    hold: Duration,
    mark: Option<&str>,
) -> chaos_core::Result<()> {
    let cluster = ctx.target_as::<LocalCluster>().unwrap().clone();
    let pm = cluster.postmaster_pid(&cluster.primary().await?)?;
    let mut stopped = Vec::new();
    for _ in 0..2 {
        for p in tree(pm) {
            if !stopped.contains(&p) && kill(Pid::from_raw(p), Signal::SIGSTOP).is_ok() {
                stopped.push(p);
            }
        }
    }
    let handle = mark.map(|name| ctx.mark_fault(name));
    tokio::time::sleep(hold).await;
    for &p in stopped.iter().rev() {
        let _ = kill(Pid::from_raw(p), Signal::SIGCONT);
    }
    if let Some(h) = handle {
        ctx.mark_healed(h)?;
    }
    Ok(())
}

/// A 2 s stall half-way through the body, which the library neither caused nor
/// was told about: clients saw 2 s without a commit, so the report says so and
/// holds the gap to max_rto.
#[test]
fn a_stall_made_by_hand_is_reported_as_an_outage_of_its_length() {
    let hold = Duration::from_secs(2);
    let spec = TestSpec::new("failover_macro::manual_stall").max_rto(Duration::from_secs(1));
    let failure = run(spec, move |ctx| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            stall_primary_by_hand(ctx, hold, None).await?;
            tokio::time::sleep(Duration::from_millis(700)).await;
            Ok::<(), chaos_core::Error>(())
        })
    })
    .unwrap_err();
    let TestFailure::Slo(report) = &failure else {
        panic!("expected an SLO failure, got {failure}")
    };
    let gap = report.write_gap().expect("a gap");
    let slack = from_ms(report.resolution_ms) + Duration::from_millis(300);
    assert!(
        gap + Duration::from_millis(5) >= hold,
        "gap {gap:?} < {hold:?}\n{report}"
    );
    assert!(gap <= hold + slack, "gap {gap:?} vs {hold:?}\n{report}");
    assert!(
        report.faults.is_empty() && report.rto_ms.is_none(),
        "{report}"
    );
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("write gap") && v.contains("no fault was injected or marked")),
        "{report}"
    );
    // The gap is placed where it happened: after the body's first 0.7 s.
    let at = report.write_gap_start_ms.expect("gap start");
    assert!(
        (500.0..1_500.0).contains(&at),
        "gap starts at {at} ms\n{report}"
    );
    assert_eq!(report.writes.lost, 0, "{report}");
}

/// Two faults in one body, one injected and one marked by hand: each has its
/// own record and RTO, the report's RTO is the worse one, and the report
/// round-trips through its JSON file.
#[test]
fn two_faults_in_one_body_each_have_their_own_rto() {
    let spec = TestSpec::new("failover_macro::two_faults").max_rto(Duration::from_secs(10));
    let waited = Arc::new(std::sync::Mutex::new(None));
    let seen = waited.clone();
    let report = run(spec, move |ctx| {
        Box::pin(async move {
            let freeze = ctx.inject(FreezePrimary::new()).await?;
            tokio::time::sleep(Duration::from_millis(400)).await;
            ctx.heal(freeze).await?;
            *seen.lock().unwrap() = Some(ctx.wait_recovered().await?);
            tokio::time::sleep(Duration::from_millis(500)).await;
            stall_primary_by_hand(ctx, Duration::from_millis(1500), Some("manual stall")).await?;
            Ok::<(), chaos_core::Error>(())
        })
    })
    .unwrap();
    assert_eq!(report.faults.len(), 2, "{report}");
    let (first, second) = (&report.faults[0], &report.faults[1]);
    assert_eq!(
        (first.kind.as_str(), first.marked),
        ("freeze-primary", false)
    );
    assert_eq!(
        (second.kind.as_str(), second.marked),
        ("manual stall", true)
    );
    let (r1, r2) = (first.rto_ms.unwrap(), second.rto_ms.unwrap());
    assert!(
        (400.0..1_400.0).contains(&r1),
        "first RTO {r1} ms\n{report}"
    );
    assert!(
        (1_500.0..2_500.0).contains(&r2),
        "second RTO {r2} ms\n{report}"
    );
    assert_eq!(report.rto_ms, Some(r2.max(r1)), "{report}");
    // wait_recovered returned once the recovery was confirmed, as its doc
    // says: after the freeze's RTO, by at most the one-second confirmation
    // (plus the probe's resolution and the 5 ms it polls at).
    let waited = waited.lock().unwrap().expect("the body ran").as_secs_f64() * 1000.0;
    assert!(
        waited >= r1 - report.resolution_ms
            && waited <= r1 + 1_000.0 + report.resolution_ms + 100.0,
        "wait_recovered {waited:.1} ms vs RTO {r1:.1} ms (resolution ±{:.0} ms)",
        report.resolution_ms
    );
    assert!(first.healed_at.is_some() && second.healed_at.is_some());
    assert!(report.passed(), "{report}");

    // The report file reads back equal to the report.
    let dir = chaos_core::report::default_report_dir();
    let back = Report::read_json(&dir.join("failover_macro__two_faults.json")).unwrap();
    assert_eq!(back, report);
    assert!(back.history.len() as u64 == back.writes.attempted && !back.history.is_empty());
    assert_eq!(back.schema_version, chaos_core::report::SCHEMA_VERSION);
}

/// A fault given as shell commands: injected when the command exits 0, healed
/// by its heal command, recorded with the primary it hit.
#[test]
fn a_shell_fault_stalls_and_heals_through_its_commands() {
    let spec = TestSpec::new("failover_macro::shell_fault").max_rto(Duration::from_secs(10));
    let report = run(spec, |ctx| {
        Box::pin(async move {
            let dir = ctx
                .target_as::<LocalCluster>()
                .unwrap()
                .dir()
                .display()
                .to_string();
            let pids = format!("pm=$(head -n1 '{dir}'/\"$CHAOS_PRIMARY\"/data/postmaster.pid) && ");
            let shell = Shell::new(format!("{pids}kill -STOP $pm $(pgrep -P $pm)"))
                .heal(format!("{pids}kill -CONT $(pgrep -P $pm) $pm"));
            let h = ctx.inject(shell).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            ctx.heal(h).await?;
            // A command that fails is an error carrying its stderr, and injects nothing.
            let err = ctx
                .inject(Shell::new("echo no such node >&2; exit 7"))
                .await
                .unwrap_err();
            assert!(matches!(err, chaos_core::Error::Command { .. }), "{err}");
            assert!(err.to_string().contains("no such node"), "{err}");
            Ok::<(), chaos_core::Error>(())
        })
    })
    .unwrap();
    assert_eq!(report.faults.len(), 1, "{report}");
    let f = &report.faults[0];
    assert_eq!(f.kind, "shell");
    assert!(
        f.victim.as_deref().is_some_and(|v| v.starts_with("node")),
        "{report}"
    );
    let rto = f.rto_ms.unwrap();
    assert!((950.0..2_500.0).contains(&rto), "RTO {rto} ms\n{report}");
}

/// One freeze, measured at once by the macro's pipeline (whose body runs a
/// `Scenario`) and by that `Scenario`: two front-ends, one pipeline, the same
/// outage — the same write gap within the resolution.
#[test]
fn scenario_and_macro_measure_the_same_outage_alike() {
    let inner: Arc<std::sync::Mutex<Option<Report>>> = Arc::default();
    let slot = inner.clone();
    let outer = run(
        TestSpec::new("failover_macro::alike_outer").max_rto(Duration::from_secs(10)),
        move |ctx| {
            Box::pin(async move {
                let cluster = ctx.target_as::<LocalCluster>().unwrap().clone();
                let report = Scenario::new("failover_macro::alike_inner")
                    .slo(Slo::max_rto(Duration::from_secs(10)))
                    .hold(Duration::from_secs(1))
                    .run(&cluster, FreezePrimary::new())
                    .await?;
                *slot.lock().unwrap() = Some(report);
                Ok::<(), chaos_core::Error>(())
            })
        },
    )
    .unwrap();
    let inner = inner.lock().unwrap().take().unwrap();
    let (a, b) = (outer.write_gap().unwrap(), inner.write_gap().unwrap());
    let tolerance =
        from_ms(outer.resolution_ms.max(inner.resolution_ms)) + Duration::from_millis(20);
    assert!(
        a.abs_diff(b) <= tolerance,
        "macro {a:?} vs Scenario {b:?} (tolerance {tolerance:?})\n{outer}\n{inner}"
    );
    assert!(b >= Duration::from_millis(995), "{inner}");
    assert!(
        inner.rto().unwrap() >= Duration::from_millis(995),
        "{inner}"
    );
    // The outer run knew of no fault: the gap is its outage, held to max_rto.
    assert!(outer.faults.is_empty() && outer.passed(), "{outer}");
    // Both wrote their JSON and JUnit files.
    let dir = chaos_core::report::default_report_dir();
    for stem in ["failover_macro__alike_outer", "failover_macro__alike_inner"] {
        for ext in ["json", "xml"] {
            assert!(dir.join(format!("{stem}.{ext}")).is_file(), "{stem}.{ext}");
        }
    }
}

/// A report that cannot be written fails the test and says where it tried.
#[test]
fn an_unwritable_report_dir_fails_the_test_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("chaos-not-a-dir-{}", std::process::id()));
    std::fs::write(&dir, b"a file, not a directory").unwrap();
    let spec = TestSpec::new("failover_macro::unwritable").configure(|e| {
        e.report_dir(dir.join("reports"))
            .warmup(Duration::from_millis(200))
    });
    let failure = run(spec, |_ctx| Box::pin(async {})).unwrap_err();
    std::fs::remove_file(&dir).ok();
    let TestFailure::Teardown { errors, report } = &failure else {
        panic!("expected a teardown failure, got {failure}")
    };
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, chaos_core::Error::ReportWrite { .. })),
        "{failure}"
    );
    let text = failure.to_string();
    assert!(
        text.contains("failover_macro__unwritable.json") && text.contains("CHAOS_REPORT_DIR"),
        "{text}"
    );
    assert!(report.as_ref().is_some_and(|r| !r.passed()), "{text}");
}

/// For [`the_shared_cluster_says_where_it_is_kept`]: one harness run, in a
/// process of its own with `CHAOS_KEEP=1`.
#[test]
#[ignore = "helper process for the CHAOS_KEEP test"]
fn helper_run_and_keep() {
    if std::env::var_os("CHAOS_KEEP").is_none() {
        return;
    }
    let spec = TestSpec::new("failover_macro::kept_helper").max_rto(Duration::from_secs(30));
    run(spec, |_ctx| {
        Box::pin(async { Ok::<(), chaos_core::Error>(()) })
    })
    .unwrap();
}

/// `CHAOS_KEEP=1` with the harness (the macro): its shared cluster is never
/// dropped, so it says at first use where it is and how to remove it; the
/// cluster outlives the test process, and that command removes it.
#[test]
fn the_shared_cluster_says_where_it_is_kept() {
    let work = std::env::temp_dir().join(format!("chaos-test-macro-keep-{}", std::process::id()));
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_run_and_keep",
            "--ignored",
            "--test-threads=1",
        ])
        .env("CHAOS_KEEP", "1")
        .env("CHAOS_WORK_DIR", &work)
        .output()
        .expect("helper runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (dir, command) = chaos_tests::kept_notice(
        &stderr,
        "CHAOS_KEEP=1: the local cluster at ",
        " will be kept when these tests end (processes left running); remove it with: ",
    );
    let kept = dir.exists();
    let removed = std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .status();
    let _ = std::fs::remove_dir_all(&work);
    assert!(out.status.success(), "helper failed:\n{stderr}");
    assert!(
        dir.starts_with(&work) && kept,
        "{} was not kept",
        dir.display()
    );
    assert!(removed.is_ok_and(|s| s.success()), "{command} failed");
    assert!(!dir.exists(), "{} left after {command}", dir.display());
}
