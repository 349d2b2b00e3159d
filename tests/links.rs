//! Degraded links on a real local cluster: packet loss, bandwidth limits and
//! latency in the kernel (iptables on per-node cgroups), their effect
//! measured. Needs root, as CI runs; without root the faults' typed errors are
//! checked instead. The numbers are printed (`--nocapture`); the assertions
//! leave wide margins for a shared machine.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use chaos_core::fault::{Bandwidth, Fault, Latency, PacketLoss};
use chaos_core::prelude::*;
use chaos_core::timeline::Healing;
use chaos_tests::{SharedCluster, init_tracing, iptables_rules, is_root, root_or_skip};

/// One cluster for the file; tests take turns on it.
static SHARED: SharedCluster = SharedCluster::new(LocalCluster::builder);

async fn healthy_turn() -> (tokio::sync::MutexGuard<'static, ()>, &'static LocalCluster) {
    SHARED.healthy_turn().await
}

fn lo_root_qdisc() -> String {
    let out = Command::new("tc")
        .args(["qdisc", "show", "dev", "lo", "root"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A client connected straight to the primary's address (a client link).
async fn primary_client(c: &LocalCluster) -> tokio_postgres::Client {
    let primary = c.primary().await.unwrap();
    let dsn = c.node(&primary).unwrap().dsn();
    chaos_core::pg::connect(&dsn, Duration::from_secs(5))
        .await
        .unwrap()
}

/// Fetches `bytes` bytes from the server; how long it took.
async fn fetch(client: &tokio_postgres::Client, bytes: i32) -> Duration {
    let t = Instant::now();
    let row = client
        .query_one("SELECT repeat('x', $1)", &[&bytes])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0).len(), bytes as usize);
    t.elapsed()
}

/// Autocommit inserts for `span`; how many committed.
async fn commits(client: &tokio_postgres::Client, span: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + span;
    let mut n = 0;
    let _ = tokio::time::timeout_at(deadline, async {
        loop {
            client
                .execute("INSERT INTO link_probe VALUES (now())", &[])
                .await
                .unwrap();
            n += 1;
        }
    })
    .await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_limit_slows_a_bulk_transfer_to_about_the_rate() {
    init_tracing();
    if !root_or_skip("a_bandwidth_limit_slows_a_bulk_transfer_to_about_the_rate") {
        return;
    }
    let (_turn, c) = healthy_turn().await;
    let client = primary_client(c).await;
    let bytes: i32 = 3 << 20;
    let rate: u64 = 1 << 20;
    fetch(&client, 1 << 20).await; // warm up
    let free = fetch(&client, bytes).await;
    let guard = Bandwidth::primary(rate)
        .from_nodes(false)
        .from_dcs(false)
        .inject(c)
        .await
        .expect("the limit is installed");
    assert!(
        guard.info().mode.starts_with("limit 1048576 B/s"),
        "{:?}",
        guard.info()
    );
    let limited = fetch(&client, bytes).await;
    guard.heal().await.unwrap();
    let after = fetch(&client, bytes).await;
    let measured = f64::from(bytes) / limited.as_secs_f64();
    println!(
        "bandwidth: {bytes} B in {free:?} unlimited, {limited:?} at {rate} B/s \
         ({measured:.0} B/s measured, {:.2}× the limit; the bucket holds 1 s), {after:?} after heal",
        measured / rate as f64
    );
    assert!(
        limited > free * 3 && limited > Duration::from_millis(800),
        "limited {limited:?} vs unlimited {free:?}"
    );
    // The bucket starts full (one second of traffic), so the average is above
    // the rate for a short transfer; TCP's back-off may keep it well below.
    assert!(
        measured > rate as f64 / 10.0 && measured < rate as f64 * 3.0,
        "{measured:.0} B/s for a limit of {rate} B/s"
    );
    assert!(
        after < limited / 2,
        "after heal {after:?}, limited {limited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_loss_on_client_and_replica_links_slows_commits() {
    init_tracing();
    if !root_or_skip("packet_loss_on_client_and_replica_links_slows_commits") {
        return;
    }
    let (_turn, c) = healthy_turn().await;
    let client = primary_client(c).await;
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS link_probe (at timestamptz)")
        .await
        .unwrap();
    let span = Duration::from_secs(2);
    let before = commits(&client, span).await;
    let guard = PacketLoss::primary(25.0)
        .from_dcs(false)
        .inject(c)
        .await
        .expect("the loss is installed");
    assert_eq!(guard.info().mode, "drop 25% nodes+clients both ways");
    let lossy = commits(&client, span).await;
    let healed = guard.heal().await.unwrap();
    assert_eq!(healed.event, Healing::LinksRestored);
    println!(
        "packet loss: {:.0} commits/s before, {:.0} commits/s with 25 % loss on the primary's \
         client and replica links",
        before as f64 / span.as_secs_f64(),
        lossy as f64 / span.as_secs_f64()
    );
    assert!(
        before >= 20,
        "{before} commits in {span:?} before the fault"
    );
    assert!(
        lossy * 3 < before,
        "{lossy} commits with 25 % loss vs {before} without"
    );
    c.wait_healthy(Duration::from_secs(90)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_round_trips_or_says_the_kernel_lacks_netem() {
    init_tracing();
    if !root_or_skip("latency_delays_round_trips_or_says_the_kernel_lacks_netem") {
        return;
    }
    let (_turn, c) = healthy_turn().await;
    let run = c.dir().file_name().unwrap().to_string_lossy().into_owned();
    let qdisc_before = lo_root_qdisc();
    let fault = Latency::primary(Duration::from_millis(50))
        .from_nodes(false)
        .from_dcs(false);
    match fault.inject(c).await {
        Err(Error::KernelFeature { feature, found, .. }) => {
            println!("latency: not available here: {feature}: {found}");
            assert!(feature.contains("netem"), "{feature}");
            assert!(
                !iptables_rules().contains(&format!("chaos-{run}-")),
                "a chain was left"
            );
            assert_eq!(lo_root_qdisc(), qdisc_before, "lo's qdisc changed");
            assert!(
                !std::path::Path::new(&format!("/run/netns/chaos-{run}-netem")).exists(),
                "the probe's network namespace was left"
            );
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(guard) => {
            let client = primary_client(c).await;
            let mut rtts = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                client.simple_query("SELECT 1").await.unwrap();
                rtts.push(t.elapsed());
            }
            rtts.sort();
            let chain = guard.chain().unwrap().to_string();
            guard.heal().await.unwrap();
            println!(
                "latency: median round trip {:?} with 50 ms each way",
                rtts[2]
            );
            assert!(rtts[2] >= Duration::from_millis(90), "{rtts:?}");
            assert!(!iptables_rules().contains(&chain));
            assert_eq!(lo_root_qdisc(), qdisc_before, "lo's qdisc was not restored");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_guards_remove_every_rule() {
    init_tracing();
    let (_turn, c) = healthy_turn().await;
    for fault in [
        PacketLoss::primary(0.0),
        PacketLoss::primary(100.5),
        PacketLoss::primary(f64::NAN),
    ] {
        let err = fault.inject(c).await.expect_err("refused");
        assert!(matches!(err, Error::Config { .. }), "{err}");
    }
    let err = Bandwidth::primary(0).inject(c).await.expect_err("refused");
    assert!(matches!(err, Error::Config { .. }), "{err}");
    let err = Latency::primary(Duration::ZERO)
        .inject(c)
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Config { .. }), "{err}");

    let replica = c
        .topology()
        .await
        .unwrap()
        .standbys()
        .next()
        .unwrap()
        .name
        .clone();
    if !is_root() {
        let err = PacketLoss::primary(10.0)
            .node(&replica)
            .inject(c)
            .await
            .expect_err("needs root");
        assert!(matches!(err, Error::Privilege { .. }), "{err}");
        return;
    }
    let err = Bandwidth::primary(1 << 20)
        .from_nodes(false)
        .from_dcs(false)
        .from_clients(false)
        .inject(c)
        .await
        .expect_err("no peers");
    assert!(matches!(err, Error::Config { .. }), "{err}");

    let run = c.dir().file_name().unwrap().to_string_lossy().into_owned();
    let loss = PacketLoss::primary(10.0)
        .node(&replica)
        .inject(c)
        .await
        .unwrap();
    let limit = Bandwidth::primary(8 << 20)
        .node(&replica)
        .inject(c)
        .await
        .unwrap();
    assert_eq!(loss.info().victim.as_deref(), Some(replica.as_str()));
    assert_eq!(loss.info().kind, "primary-packet-loss");
    assert_eq!(limit.info().kind, "primary-bandwidth");
    let (loss_chain, limit_chain) = (
        loss.chain().unwrap().to_string(),
        limit.chain().unwrap().to_string(),
    );
    for chain in [&loss_chain, &limit_chain] {
        assert!(chain.starts_with(&format!("chaos-{run}-")), "{chain}");
        assert!(iptables_rules().contains(&format!("-N {chain}")));
    }
    // The limit's two token buckets (one per direction) exist while it lasts.
    let rules = iptables_rules();
    let mut buckets: Vec<&str> = rules
        .lines()
        .filter(|l| l.contains(&format!("--comment {limit_chain} ")))
        .filter_map(|l| {
            l.split("--hashlimit-name ")
                .nth(1)?
                .split_whitespace()
                .next()
        })
        .collect();
    buckets.sort_unstable();
    buckets.dedup();
    assert_eq!(buckets.len(), 2, "{rules}");
    let table = |name: &str| std::path::Path::new("/proc/net/ipt_hashlimit").join(name);
    assert!(buckets.iter().all(|b| table(b).exists()), "{buckets:?}");

    drop(loss);
    assert!(
        !iptables_rules().contains(&loss_chain),
        "the guard's drop left its chain"
    );
    limit.heal().await.unwrap();
    let rules = iptables_rules();
    assert!(!rules.contains(&limit_chain), "heal left the chain");
    assert!(
        buckets.iter().all(|b| !table(b).exists()),
        "heal left a hashlimit table"
    );
    c.wait_healthy(Duration::from_secs(90)).await.unwrap();
}

/// Packet loss measured by the pipeline: a degrading fault is reported as a
/// slowdown with its latency figures (before, during, after), and its RTO is
/// that of an outage it caused, if any — not the time from injection to the
/// end of the longest gap, which a `max_rto` of 2 s would have failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_loss_is_reported_as_a_slowdown_with_latency_figures() {
    init_tracing();
    if !root_or_skip("packet_loss_is_reported_as_a_slowdown_with_latency_figures") {
        return;
    }
    let (_turn, c) = healthy_turn().await;
    let report = Scenario::new("links_loss_slowdown")
        .slo(Slo::max_rto(Duration::from_secs(2)))
        .warmup(Duration::from_secs(1))
        .hold(Duration::from_secs(3))
        .write_report(false)
        .run(c, PacketLoss::primary(30.0).from_dcs(false))
        .await
        .expect("the scenario runs");
    println!("{report}");
    let fault = &report.faults[0];
    let s = fault.slowdown.expect("a degrading fault has a slowdown");
    println!("packet loss 30 %: {}", s.describe());
    assert!(s.before.count > 0 && s.during.count > 0, "{s:?}");
    assert!(s.after.is_some_and(|a| a.count > 0), "{s:?}");
    // Lost packets wait for a retransmission (≥ 200 ms on Linux).
    assert!(
        s.during.p99_ms > s.before.p99_ms + 100.0,
        "the loss did not show in the commit latency: {s:?}"
    );
    match (s.outage, fault.rto_ms) {
        (false, rto) => {
            assert_eq!(rto, None, "{report}");
            assert!(report.summary().contains("no outage"), "{report}");
            // A stall longer than max_rto without failures is said.
            assert_eq!(
                s.longest_gap_ms > 2000.0,
                report
                    .warnings
                    .iter()
                    .any(|w| w.contains("no write was acknowledged")),
                "{report}"
            );
        }
        // Writes failed for a while: the RTO is that outage's, shorter than
        // the hold.
        (true, Some(rto)) => assert!(rto < 3000.0, "{report}"),
        (true, None) => panic!("never recovered: {report}"),
    }
    assert_eq!(report.writes.lost, 0, "{report}");
    c.wait_healthy(Duration::from_secs(90)).await.unwrap();
}
