//! Quorum commit (`SynchronousMode::Quorum`, Patroni's `synchronous_mode:
//! quorum`, CloudNativePG's `method: any`): a commit waits for any one of the
//! standbys, and no acknowledged write is lost when the primary is killed or
//! cut off. Needs Patroni 4.0 or later (`ci/install-deps.sh` installs 4.1.5
//! into /opt/chaos/patroni-4.1.5), whose ttl is at least 20 s: a failover
//! takes about that long.
//!
//! The tests share one cluster (booted once, one test at a time).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chaos_core::cluster::Role;
use chaos_core::cluster::local::{LocalClusterBuilder, SynchronousMode, pinned_patroni};
use chaos_core::prelude::*;
use chaos_tests::{SharedCluster, init_tracing, root_or_skip};

const QUORUM_PATRONI: &str = "4.1.5";

fn build() -> LocalClusterBuilder {
    LocalCluster::builder()
        .patroni(pinned_patroni(QUORUM_PATRONI))
        .synchronous_mode(SynchronousMode::Quorum)
        .proxy(false)
}

static CLUSTER: SharedCluster = SharedCluster::new(build);

/// The SLO both failovers must meet: nothing acknowledged lost, recovery
/// within three ttl (20 s each).
fn slo() -> Slo {
    Slo::max_rto(Duration::from_secs(60)).max_lost_writes(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_cluster_boots_with_every_standby_in_the_quorum() {
    init_tracing();
    let (_turn, c) = CLUSTER.healthy_turn().await;
    let t = c.topology().await.unwrap();
    let voters = t
        .members
        .iter()
        .filter(|m| m.role == Role::SyncStandby)
        .count();
    assert_eq!(voters, 2, "both standbys are quorum standbys: {t:?}");
    let leader = c.node(t.primary_name().unwrap()).unwrap();
    let client = chaos_core::pg::connect(&leader.dsn(), Duration::from_secs(2))
        .await
        .unwrap();
    let ssn: String = client
        .query_one("SHOW synchronous_standby_names", &[])
        .await
        .unwrap()
        .get(0);
    assert!(ssn.starts_with("ANY 1 ("), "quorum commit: {ssn}");
    let quorum: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'quorum'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(quorum, 2, "PostgreSQL counts both standbys in the quorum");
    let software = c.software();
    assert_eq!(software["synchronous_mode"], "quorum");
    assert_eq!(software["patroni"], QUORUM_PATRONI);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_of_a_quorum_cluster_loses_nothing() {
    init_tracing();
    let (_turn, c) = CLUSTER.healthy_turn().await;
    let report = Scenario::new("quorum_kill")
        .slo(slo())
        .warmup(Duration::from_secs(1))
        .write_report(true)
        .run(c, DeletePrimary::kill())
        .await
        .expect("the scenario runs");
    println!("{report}");
    assert!(report.rto().is_some(), "recovered: {report}");
    assert!(report.writes.acknowledged > 0, "{report}");
    assert_eq!(report.writes.lost, 0, "{report}");
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_off_the_primary_of_a_quorum_cluster_loses_nothing() {
    init_tracing();
    if !root_or_skip("cutting_off_the_primary_of_a_quorum_cluster_loses_nothing") {
        return;
    }
    let (_turn, c) = CLUSTER.healthy_turn().await;
    let old = c.primary().await.unwrap();
    let report = Scenario::new("quorum_partition")
        .slo(slo())
        .warmup(Duration::from_secs(1))
        .write_report(true)
        .run(c, PartitionNetwork::isolate_primary())
        .await
        .expect("the scenario runs");
    println!("{report}");
    assert!(report.rto().is_some(), "recovered: {report}");
    assert_eq!(report.writes.lost, 0, "{report}");
    assert!(!report.split_brain, "{report}");
    assert!(report.passed(), "{report}");
    let t = c.wait_healthy(Duration::from_secs(90)).await.unwrap();
    assert_ne!(
        t.primary_name(),
        Some(old.as_str()),
        "the healed old primary did not take the lead back"
    );
}

#[tokio::test]
async fn quorum_commit_on_a_patroni_before_4_0_is_a_config_error() {
    init_tracing();
    let err = LocalCluster::builder()
        .synchronous_mode(SynchronousMode::Quorum)
        .start()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::Config {
                field: "synchronous_mode",
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("Patroni 4.0 or later"), "{msg}");
    assert!(msg.contains("Patroni 3.1.2"), "{msg}");
}
