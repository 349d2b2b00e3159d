//! Sets of real failovers on one local cluster (`chaos_core::runs::Runs`),
//! each run's RTO split into phases by the local target's own marks:
//! `detection` (Patroni's leader key expired in etcd), `election` (another
//! member took the key), `promotion` (the new primary's PostgreSQL log says it
//! accepts connections), `routing` (the probe's connection to it) and
//! `first_write`; the set's page drawn by headless Chromium; configuration
//! experiments refusing what the cluster would not take. The numbers are
//! printed (`--nocapture`). CI runs it as root.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaos_core::fault::DeletePrimary;
use chaos_core::prelude::*;
use chaos_core::report::Report;
use chaos_core::runs::{ConfigExperiment, Runs, run_seed};
use chaos_core::timeline::{EventKind, Phase, PromotionStep};
use chaos_tests::{SharedCluster, chromium, init_tracing};
use futures::StreamExt;

/// One cluster for the file; tests take turns on it.
static SHARED: SharedCluster = SharedCluster::new(LocalCluster::builder);

/// Two kills of the primary as one set: the figures, the seeds, each run's
/// phases adding up to its RTO, and the set's page as a browser draws it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_of_killed_primaries_with_their_phases() {
    init_tracing();
    let (_turn, cluster) = SHARED.healthy_turn().await;
    let dir = std::env::temp_dir().join(format!("chaos-runs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let started = Arc::new(Mutex::new(Vec::new()));
    let seen = started.clone();
    let outcome = Runs::new(
        Experiment::new("runs_kill")
            .slo(Slo::max_rto(Duration::from_secs(60)).max_rto_p95(Duration::from_secs(30)))
            .warmup(Duration::from_millis(500))
            .report_dir(&dir),
    )
    .repeat(2)
    .seed(7)
    .on_start(move |i, n| seen.lock().unwrap().push((i, n)))
    .run(Arc::new(cluster.clone()), |ctx| {
        Box::pin(async move { ctx.inject(DeletePrimary::kill()).await.map(|_| ()) })
    })
    .await
    .expect("the runs run");
    let set = &outcome.set;
    eprintln!("{}", set.summary_line());
    assert!(
        outcome.passed(),
        "{:?} {:?}",
        set.violations,
        outcome.errors
    );
    assert_eq!(*started.lock().unwrap(), [(1, 2), (2, 2)]);
    assert_eq!(set.stats.runs, 2);
    assert_eq!(set.stats.recovered, 2);
    assert_eq!(set.stats.seeds, [run_seed(7, 0), run_seed(7, 1)]);
    assert_eq!(set.stats.lost_total, 0);
    let rtos: Vec<f64> = set.runs.iter().map(|r| r.rto_ms.unwrap()).collect();
    let rto = set.stats.rto.as_ref().unwrap();
    assert_eq!(rto.max_ms, rtos.iter().copied().fold(f64::MIN, f64::max));
    assert_eq!(rto.p50_ms, (rtos[0] + rtos[1]) / 2.0);
    for report in &set.runs {
        check_phases(report, cluster);
    }
    let detection = set
        .stats
        .phases
        .iter()
        .find(|p| p.name == "detection")
        .unwrap();
    assert_eq!(detection.runs, 2, "{:?}", set.stats.phases);

    // The files: every run's report and picture, the set's JSON and page.
    for f in [
        "runs_kill-run01.json",
        "runs_kill-run02.html",
        "runs_kill.runs.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} in {outcome:?}");
    }
    let page = dir.join("runs_kill.runs.html");
    let text = chromium::dump_dom(&page).expect("chromium renders the set's page");
    for label in ["runs_kill", "p95", "detection", "run 2"] {
        assert!(text.contains(label), "{label} missing from the set's page");
    }
    let png = chromium::screenshot(&page, 1200, 1600).expect("a screenshot");
    let image = chromium::Image::read(&png).expect("a PNG");
    assert!(
        image.non_white_share() > 0.05 && image.distinct_colours() > 20,
        "blank page"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The phases of one run of a killed primary: detection, election and
/// promotion marked by the target, adding up (with routing and first_write)
/// to the RTO within the resolution, each mark naming the right node.
fn check_phases(report: &Report, cluster: &LocalCluster) {
    let rto = report.rto_ms.expect("the service recovered");
    for p in &report.phases {
        eprintln!("{} phase {:<12} {:>10.3} ms", report.scenario, p.name, p.ms);
    }
    eprintln!(
        "{} rto          {rto:>10.3} ms (±{} ms)",
        report.scenario, report.resolution_ms
    );
    let old = report.faults[0].victim.clone().expect("the killed primary");

    let names: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert!(names.len() >= 4, "{names:?}\n{report}");
    assert_eq!(
        names[..3],
        ["detection", "election", "promotion"],
        "{report}"
    );
    assert_eq!(names.last(), Some(&"first_write"), "{report}");
    assert!(report.phases.iter().all(|p| p.ms >= 0.0), "{report}");
    let sum: f64 = report.phases.iter().map(|p| p.ms).sum();
    assert!(
        (sum - rto).abs() <= report.resolution_ms.max(1.0),
        "phases add up to {sum} ms, RTO {rto} ms\n{report}"
    );
    // A kill is noticed when the leader's lease runs out: a good part of the
    // ttl (the lease is refreshed every loop_wait, so at most that early).
    let ttl_ms = cluster.timings().ttl().as_secs_f64() * 1000.0;
    assert!(
        report.phases[0].ms >= ttl_ms / 3.0,
        "detection {} ms, ttl {ttl_ms} ms\n{report}",
        report.phases[0].ms
    );

    let mark = |phase: Phase| {
        report
            .events
            .iter()
            .find(|e| e.kind == EventKind::PhaseEnded(phase) && e.at >= report.origin)
            .unwrap_or_else(|| panic!("no {:?} in {:#?}", phase.end_event(), report.events))
    };
    assert_eq!(
        mark(Phase::Detection).detail.as_deref(),
        Some(old.as_str()),
        "detection names the lost leader"
    );
    let new = mark(Phase::Election)
        .detail
        .clone()
        .expect("the new leader");
    assert_ne!(new, old);
    assert_eq!(mark(Phase::Promotion).detail.as_deref(), Some(new.as_str()));
    // The promotion's steps, from the new primary's log.
    assert!(
        report.events.iter().any(|e| e.kind
            == EventKind::PromotionStep(PromotionStep::TimelineSelected)
            && e.detail.as_deref().is_some_and(|d| d.starts_with(&new))),
        "{:#?}",
        report.events
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_lets_go_of_etcd_when_dropped() {
    init_tracing();
    let (_turn, cluster) = SHARED.healthy_turn().await;
    let port: u16 = cluster
        .etcd_endpoint()
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    let before = etcd_sockets(port);
    let mut stream = Arc::new(cluster.clone()).events();
    // Polled for a moment: the leader watch opens.
    let _ = tokio::time::timeout(Duration::from_millis(800), stream.next()).await;
    let opened: HashSet<u64> = etcd_sockets(port).difference(&before).copied().collect();
    assert!(!opened.is_empty(), "the stream watches etcd");
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<u64> = etcd_sockets(port).intersection(&opened).copied().collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connections to etcd left open after the stream was dropped: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The inodes of this process's TCP sockets connected to `port` on loopback.
fn etcd_sockets(port: u16) -> HashSet<u64> {
    let ours: HashSet<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            let link = link.to_str()?;
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    let table = std::fs::read_to_string("/proc/self/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let remote_port = u16::from_str_radix(f.get(2)?.rsplit_once(':')?.1, 16).ok()?;
            let inode: u64 = f.get(9)?.parse().ok()?;
            (remote_port == port && ours.contains(&inode)).then_some(inode)
        })
        .collect()
}

/// Settings the cluster would not take are refused before any run, the body
/// never runs and the configuration is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_refuses_what_the_cluster_would_not_take() {
    init_tracing();
    let (_turn, cluster) = SHARED.healthy_turn().await;
    let ran = Arc::new(Mutex::new(0));
    for (name, value, expected) in [
        (
            "no_such_parameter",
            "1",
            "a PostgreSQL parameter this server knows",
        ),
        ("ttl", "3", "loop_wait + 2 × retry_timeout ≤ ttl"),
        ("loop_wait", "0", "whole number of seconds ≥ 1"),
    ] {
        let counter = ran.clone();
        let err = ConfigExperiment::new(Experiment::new("refused").write_reports(false))
            .set(name, value)
            .repeat(1)
            .run(Arc::new(cluster.clone()), move |_ctx| {
                *counter.lock().unwrap() += 1;
                Box::pin(async { Ok::<(), chaos_core::Error>(()) })
            })
            .await
            .expect_err(name)
            .to_string();
        assert!(err.contains(expected) && err.contains(name), "{err}");
    }
    assert_eq!(*ran.lock().unwrap(), 0, "no run was made");
}
