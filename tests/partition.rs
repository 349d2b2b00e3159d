//! Network partitions on a real local cluster: packets really dropped in the
//! kernel (iptables on per-node cgroups), their effect checked. Needs root, as
//! CI runs; without root the fault's typed error is checked instead.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos_core::fault::{Fault, PartitionNetwork};
use chaos_core::prelude::*;
use chaos_core::timeline::Timestamp;
use chaos_tests::init_tracing;
use tokio::sync::OnceCell;

/// One cluster for the file; tests take turns on it.
static CLUSTER: OnceCell<LocalCluster> = OnceCell::const_new();
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn cluster() -> &'static LocalCluster {
    CLUSTER
        .get_or_init(|| async { LocalCluster::start().await.expect("cluster boots") })
        .await
}

/// This test's turn on the shared cluster, once it is healthy.
async fn healthy_turn() -> (tokio::sync::MutexGuard<'static, ()>, &'static LocalCluster) {
    let turn = TURN.lock().await;
    let c = cluster().await;
    c.wait_healthy(Duration::from_secs(90)).await.unwrap();
    (turn, c)
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn iptables_rules() -> String {
    let out = Command::new("iptables").arg("-S").output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    if !is_root() {
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
        .find(|e| e.name == "new primary observed" && e.at > fault.injected_at)
        .and_then(|e| e.detail.clone())
        .expect("a new primary during the partition");
    assert!(
        !new.starts_with(&old),
        "{new} should not be the old primary {old}"
    );
    let first_new = report
        .events
        .iter()
        .find(|e| e.name == "first write acknowledged after the fault")
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
    c.wait_healthy(Duration::from_secs(90)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_replication_below_the_ttl_blocks_commits_without_a_failover() {
    init_tracing();
    if !is_root() {
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

#[tokio::test]
#[ignore = "helper process for the kill test"]
async fn helper_partition_and_wait() {
    let Some(work) = std::env::var_os("CHAOS_HELPER_WORK_DIR") else {
        return;
    };
    let cluster = LocalCluster::builder()
        .work_dir(work)
        .nodes(2)
        .proxy(false)
        .start()
        .await
        .expect("helper cluster boots");
    let guard = PartitionNetwork::primary_from_replicas()
        .inject(&cluster)
        .await
        .expect("partition");
    println!(
        "CLUSTER_DIR={} CHAIN={}",
        cluster.dir().display(),
        guard.chain().unwrap()
    );
    tokio::time::sleep(Duration::from_secs(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_leaves_no_rule_cgroup_or_process_behind() {
    use std::io::{BufRead, BufReader};
    init_tracing();
    if !is_root() {
        return;
    }
    let _turn = TURN.lock().await;
    let work =
        std::env::temp_dir().join(format!("chaos-test-partition-kill-{}", std::process::id()));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_partition_and_wait",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CHAOS_HELPER_WORK_DIR", &work)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("helper starts");
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("CLUSTER_DIR=")
                .map(|(_, rest)| rest.to_string())
        })
        .expect("the helper partitioned its cluster");
    let (dir, chain) = line.trim().split_once(" CHAIN=").unwrap();
    let run = std::path::Path::new(dir)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(iptables_rules().contains(&format!("-N {chain}")));
    let cgroups = || {
        std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some("cgroup2"))
            .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
            .any(|root| {
                std::path::Path::new(&root)
                    .join(format!("chaos-{run}"))
                    .exists()
            })
    };
    assert!(cgroups(), "the cluster's nodes run in cgroups");
    child.kill().unwrap();
    child.wait().unwrap();
    // The watchdog notices and removes everything.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left_rules = iptables_rules().contains(&format!("chaos-{run}"));
        let left_dir = std::path::Path::new(dir).exists();
        if !left_rules && !cgroups() && !left_dir {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left after 30 s: rules {left_rules}, cgroups {}, dir {left_dir}",
            cgroups()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_dir_all(&work);
}
