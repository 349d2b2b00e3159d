//! A real split-brain, provoked on purpose, and counted by the report.
//!
//! Patroni guards against two primaries: a leader that cannot reach the DCS
//! demotes itself after `retry_timeout`, before its leader key (`ttl`) expires
//! and a replica is promoted. A `retry_timeout` longer than the `ttl` (Patroni
//! 3.0.2 accepts it) breaks that guard: cut off from etcd and its replicas but
//! not from its clients, the old primary goes on acknowledging writes for
//! seconds after a replica was promoted. With asynchronous replication
//! nothing stops those commits, and clients that connect per write with a
//! random host order reach both primaries. The control case (strict
//! synchronous mode, default timings: no split-brain) is in `partition.rs`.
//!
//! By Patroni version: the provocation works on the default 3.1.2 (this test)
//! and on Debian 12's 3.0.2. From 3.2.0 on it is impossible: Patroni adjusts
//! the timings so that `loop_wait + 2 × retry_timeout ≤ ttl`
//! (`Config._validate_and_adjust_timeouts`, upstream commit 9283ebda), so a
//! leader cut off from etcd always demotes itself before its key expires —
//! the guard this misconfiguration breaks cannot be broken there.
//!
//! Needs root (network faults): fails under CI without it, says it was
//! skipped elsewhere.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chaos_core::cluster::local::{PatroniTimings, SynchronousMode};
use chaos_core::prelude::*;
use chaos_core::report::AttemptOutcome;
use chaos_tests::init_tracing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_primary_outliving_its_leader_key_is_counted_as_split_brain() {
    init_tracing();
    if !chaos_tests::root_or_skip(
        "an_old_primary_outliving_its_leader_key_is_counted_as_split_brain",
    ) {
        return;
    }
    let cluster = LocalCluster::builder()
        .synchronous_mode(SynchronousMode::Off)
        // The misconfiguration: the leader retries the DCS for 12 s before it
        // demotes, but its key expires after 5 s.
        .timings(PatroniTimings {
            ttl: 5,
            loop_wait: 1,
            retry_timeout: 12,
        })
        .proxy(false)
        .start()
        .await
        .expect("cluster boots");
    let old = cluster.primary().await.unwrap();
    let old_node = cluster.node(&old).unwrap();
    let old_server = format!("{}:{}", old_node.host, old_node.pg_port);

    // Held past the promotion (about ttl + loop_wait) and short of the old
    // primary's own demotion (retry_timeout): healing lets it see the new
    // leader and step down.
    let report = Scenario::new("split_brain")
        .hold(Duration::from_secs(10))
        .slo(Slo::max_rto(Duration::from_secs(30)))
        .probe(
            ProbeConfig::default()
                .reconnect_each_write(true)
                .load_balance_hosts(true),
        )
        .write_report(false)
        .run(&cluster, PartitionNetwork::isolate_primary())
        .await
        .expect("the scenario runs");
    println!("{report}");

    let old_acks: Vec<_> = report
        .history
        .iter()
        .filter(|h| h.outcome == AttemptOutcome::Acknowledged)
        .filter(|h| h.server.as_deref() == Some(old_server.as_str()))
        .collect();
    let old_timeline = old_acks.iter().filter_map(|h| h.timeline).min().unwrap();
    let new_first = report
        .history
        .iter()
        .filter(|h| h.outcome == AttemptOutcome::Acknowledged)
        .filter(|h| h.timeline.is_some_and(|t| t > old_timeline))
        .map(|h| h.finished_ms)
        .fold(f64::INFINITY, f64::min);
    let old_last = old_acks
        .iter()
        .map(|h| h.finished_ms)
        .fold(f64::NEG_INFINITY, f64::max);
    println!(
        "split-brain: {} writes on timeline {old_timeline} ({old}) after the first on a \
         newer one; both primaries acknowledged for {:.0} ms; {} acknowledged writes lost",
        report.split_brain_writes,
        old_last - new_first,
        report.writes.lost
    );
    assert!(
        new_first.is_finite(),
        "a replica was promoted and acknowledged: {report}"
    );
    assert!(
        old_last > new_first,
        "the old primary acknowledged after the new one did: {report}"
    );
    assert!(report.split_brain_writes > 0, "{report}");
    assert!(report.split_brain, "{report}");
    assert!(!report.passed(), "{report}");
    assert!(
        report.violations.iter().any(|v| v.contains("split-brain")),
        "{:?}",
        report.violations
    );
    // The old primary's late writes are rewound away when it rejoins.
    assert!(report.writes.lost > 0, "{report}");

    // `stop` returns only once every process of the cluster is gone, zombies
    // included (orphaned postmasters and loggers wait for init to reap them).
    let dir = cluster.dir().to_path_buf();
    let before = chaos_tests::every_process_of(&dir);
    assert!(
        before.len() >= 7,
        "etcd, 3 Patroni, 3 postmasters: {before:?}"
    );
    let stopping = std::time::Instant::now();
    cluster.stop();
    println!("stop took {:?}", stopping.elapsed());
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
