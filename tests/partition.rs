//! Network partitions on a real local cluster: packets really dropped in the
//! kernel (iptables on per-node cgroups), their effect checked. Needs root, as
//! CI runs; without root the fault's typed error is checked instead. What a
//! SIGKILLed run with a partition (and a disk throttle) leaves is checked in
//! `disk.rs`.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos_core::fault::{Fault, PartitionNetwork};
use chaos_core::prelude::*;
use chaos_core::timeline::{EventKind, Timestamp};
use chaos_tests::{SharedCluster, init_tracing, iptables_rules, is_root, root_or_skip};

/// One cluster for the file; tests take turns on it.
static SHARED: SharedCluster = SharedCluster::new(LocalCluster::builder);

async fn healthy_turn() -> (tokio::sync::MutexGuard<'static, ()>, &'static LocalCluster) {
    SHARED.healthy_turn().await
}

/// Whether a TCP connection to `host:port` from this (client) process is
/// answered within `timeout`.
async fn reachable(host: &str, port: u16, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await,
        Ok(Ok(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolating_the_primary_fails_over_and_the_old_primary_acknowledges_nothing_after() {
    init_tracing();
    if !root_or_skip(
        "isolating_the_primary_fails_over_and_the_old_primary_acknowledges_nothing_after",
    ) {
        return;
    }
    let (_turn, c) = healthy_turn().await;
    let old = c.primary().await.unwrap();
    let old_dsn = c.node(&old).unwrap().dsn();

    // A client connected straight to the old primary (clients still reach it).
    let direct_acks: Arc<Mutex<Vec<Timestamp>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (acks, stop) = (direct_acks.clone(), stop.clone());
        async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(client) = chaos_core::pg::connect(&old_dsn, Duration::from_secs(1)).await
                {
                    let _ = client
                        .batch_execute("CREATE TABLE IF NOT EXISTS direct (at timestamptz)")
                        .await;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let res = tokio::time::timeout(
                            Duration::from_secs(1),
                            client.execute("INSERT INTO direct VALUES (now())", &[]),
                        )
                        .await;
                        match res {
                            Ok(Ok(_)) => acks.lock().unwrap().push(Timestamp::now()),
                            Ok(Err(_)) => break,
                            Err(_) => break,
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });

    let report = Scenario::new("isolate_primary")
        .slo(Slo::max_rto(Duration::from_secs(60)))
        .write_report(false)
        .run(c, PartitionNetwork::isolate_primary())
        .await
        .expect("the scenario runs");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.await;

    let fault = &report.faults[0];
    assert_eq!(fault.kind, "isolate-primary");
    assert_eq!(fault.victim.as_deref(), Some(old.as_str()));
    assert!(fault.healed_at.is_some(), "{fault:?}");
    let rto = report.rto().expect("the service recovered");
    assert!(
        rto >= Duration::from_secs(2) && rto <= Duration::from_secs(40),
        "a failover, not a blip: RTO {rto:?}"
    );
    assert_eq!(report.writes.lost, 0, "{}", report.summary_line());
    assert!(!report.split_brain, "{}", report.summary_line());
    let new = report
        .events
        .iter()
        .filter(|e| e.at > fault.injected_at)
        .find_map(|e| match &e.kind {
            EventKind::NewPrimary { node, .. } => Some(node.clone()),
            _ => None,
        })
        .expect("a new primary during the partition");
    assert!(
        !new.starts_with(&old),
        "{new} should not be the old primary {old}"
    );
    let first_new = report
        .events
        .iter()
        .find(|e| e.kind == EventKind::FirstWriteAfterFault)
        .expect("a first write on the new primary")
        .at;
    let late: Vec<_> = direct_acks
        .lock()
        .unwrap()
        .iter()
        .filter(|t| **t >= first_new)
        .copied()
        .collect();
    assert!(
        late.is_empty(),
        "the isolated old primary acknowledged {} writes after the new primary's first",
        late.len()
    );
    assert!(
        !direct_acks.lock().unwrap().is_empty(),
        "the direct client wrote before the partition"
    );
    let t = c.wait_healthy(Duration::from_secs(90)).await.unwrap();
    // No takeover: the healed old primary rejoins as a replica.
    assert_ne!(t.primary_name(), Some(old.as_str()), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_replication_below_the_ttl_blocks_commits_without_a_failover() {
    init_tracing();
    if !root_or_skip("cutting_replication_below_the_ttl_blocks_commits_without_a_failover") {
        return;
    }
    let (_turn, c) = healthy_turn().await;
    let before = c.primary().await.unwrap();
    let hold = Duration::from_secs(2);
    let report = Scenario::new("primary_from_replicas")
        .hold(hold)
        .slo(Slo::max_rto(Duration::from_secs(60)))
        .write_report(false)
        .run(c, PartitionNetwork::primary_from_replicas())
        .await
        .expect("the scenario runs");
    assert_eq!(c.primary().await.unwrap(), before, "no failover");
    assert_eq!(report.faults[0].kind, "partition-primary-from-replicas");
    let gap = report.write_gap().expect("commits blocked");
    // Commits wait for the synchronous standby while its link is cut; after
    // the cut is lifted TCP retransmits with back-off, so allow some seconds.
    assert!(
        gap >= hold.mul_f64(0.9) && gap <= hold + Duration::from_secs(5),
        "write gap {gap:?} for a {hold:?} cut"
    );
    assert_eq!(report.writes.lost, 0);
    c.wait_healthy(Duration::from_secs(90)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_drops_packets_and_its_guard_removes_every_rule() {
    init_tracing();
    let (_turn, c) = healthy_turn().await;
    let replica = c
        .topology()
        .await
        .unwrap()
        .standbys()
        .next()
        .unwrap()
        .name
        .clone();
    let fault = PartitionNetwork::isolate_primary()
        .node(&replica)
        .from_clients(true);
    if !is_root() {
        let err = fault.inject(c).await.expect_err("needs root");
        assert!(matches!(err, chaos_core::Error::Privilege { .. }), "{err}");
        return;
    }
    let node = c.node(&replica).unwrap().clone();
    assert!(reachable(&node.host, node.pg_port, Duration::from_secs(2)).await);
    let run = c.dir().file_name().unwrap().to_string_lossy().into_owned();
    let guard = fault.inject(c).await.expect("the cut is made");
    let chain = guard.chain().unwrap().to_string();
    assert!(chain.starts_with(&format!("chaos-{run}-")), "{chain}");
    assert!(iptables_rules().contains(&format!("-N {chain}")));
    // Dropped, not refused: the connection attempt times out.
    assert!(
        !reachable(&node.host, node.pg_port, Duration::from_secs(1)).await,
        "a client still reaches the partitioned node"
    );
    drop(guard);
    assert!(
        !iptables_rules().contains(&chain),
        "the guard's drop left its chain"
    );
    assert!(reachable(&node.host, node.pg_port, Duration::from_secs(2)).await);
    c.wait_healthy(Duration::from_secs(90)).await.unwrap();
}
