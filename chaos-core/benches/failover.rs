//! Benchmarks that print figures and assert nothing (a shared, noisy machine is
//! no place for timing thresholds):
//!
//! * measurement accuracy — controlled outages (a frozen primary) of 1, 2 and
//!   3 s: median of measured write gap / true outage;
//! * cluster boot time — cold (no cached template), warm (cached template) and
//!   the hand-made floor (the same PostgreSQL without an HA agent), with the
//!   ratios to the floor and where a warm boot's time went;
//! * between two tests — a killed primary restarted until the cluster is
//!   healthy again;
//! * failover RTO — median of several kills of the primary.
//!
//! `cargo bench -p chaos-core --bench failover` (add `-- --runs N` to change the
//! number of runs, default 3).

use std::time::{Duration, Instant};

use chaos_core::cluster::local::Binaries;
use chaos_core::prelude::*;

#[path = "support/floor.rs"]
mod floor;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn runs() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
}

#[tokio::main]
async fn main() -> Result<()> {
    let runs = runs();
    println!(
        "chaos benchmarks: {runs} runs each, on {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Boot: cold (no template cache), warm (cache primed), and the hand-made
    // floor: the same PostgreSQL, no HA agent.
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut floors = Vec::new();
    let mut steps: Vec<Vec<(&'static str, f64)>> = Vec::new();
    for _ in 0..runs {
        cold.push(boot(LocalCluster::builder().template_cache(false), None).await?);
        // Primes the cache on the first round.
        boot(LocalCluster::builder(), None).await?;
        warm.push(boot(LocalCluster::builder(), Some(&mut steps)).await?);
        floors.push(floor::boot(&Binaries::discover()?.pg_bin).await?);
    }
    let floor = median(floors.clone());
    println!(
        "boot to healthy (3 nodes, sync standby streaming, a write acknowledged), medians:\n  \
         cold (initdb) {:.2} s  ({:.1}x the floor)  runs {:?}\n  \
         warm (cached template) {:.2} s  ({:.1}x)  runs {:?}\n  \
         floor (hand-made: initdb, start, 2 parallel pg_basebackup, start standbys, first sync commit) {:.2} s  runs {:?}",
        median(cold.clone()),
        median(cold.clone()) / floor,
        rounded(&cold),
        median(warm.clone()),
        median(warm.clone()) / floor,
        rounded(&warm),
        floor,
        rounded(&floors),
    );
    println!("warm boot, where the time went (median time since start of each step):");
    let step = |name: &str| -> f64 {
        median(
            steps
                .iter()
                .filter_map(|s| s.iter().find(|(n, _)| *n == name).map(|(_, d)| *d))
                .collect(),
        )
    };
    if let Some(first) = steps.first() {
        for (name, _) in first {
            println!("  {name:<26} {:>6.2} s", step(name));
        }
    }
    let binaries = Binaries::discover()?;
    let (a, b, c) = binaries.patroni_version;
    let streaming = step("replicas streaming");
    println!(
        "warm boot against the floor: a synchronous commit can be acknowledged once a standby \
         streams, at {streaming:.2} s ({:.1}x the floor, which ends at its first synchronous \
         commit); failover-ready (Patroni {a}.{b}.{c} has named the synchronous standby in the \
         DCS) at {:.2} s ({:.1}x)",
        streaming / floor,
        median(warm.clone()),
        median(warm.clone()) / floor
    );
    println!("waits left in a warm boot, and whose they are:");
    println!(
        "  ours      etcd ready {:.2} s (etcd's own start), template staged {:.2} s (cp -a of one data directory per node, beside Patroni starting)",
        step("etcd ready"),
        step("data staged")
    );
    println!(
        "  Patroni   leader running {:.2} s: Python start-up and bootstrap (no fixed wait: the pg_isready shim answers as soon as PostgreSQL accepts)",
        step("leader running")
    );
    println!(
        "  Patroni   standby named {:.2} s after the standbys stream: {}",
        step("sync standby chosen") - streaming,
        patroni_fixed_wait(&binaries.patroni)
            .unwrap_or_else(|| "(Patroni's source not found)".into())
    );
    // Quorum commit on Patroni 4.x, when installed: no fixed sleep before the
    // quorum is published (it waits for the next HA cycle, which the library
    // wakes).
    let quorum_patroni = chaos_core::cluster::local::pinned_patroni("4.1.5");
    if quorum_patroni.is_file() {
        let mut quorum = Vec::new();
        for _ in 0..runs {
            quorum.push(
                boot(
                    LocalCluster::builder()
                        .patroni(&quorum_patroni)
                        .synchronous_mode(chaos_core::cluster::local::SynchronousMode::Quorum),
                    None,
                )
                .await?,
            );
        }
        println!(
            "boot, warm, quorum commit on Patroni 4.1.5 (ttl 20 s): {:.2} s ({:.1}x the floor)  runs {:?}",
            median(quorum.clone()),
            median(quorum.clone()) / floor,
            rounded(&quorum)
        );
    }

    let cluster = LocalCluster::start().await?;

    // Between two failover tests on a shared cluster: the primary is killed,
    // the cluster fails over and takes writes again (where a test's fault
    // ends); then the node is restarted (the heal), rejoins and the cluster is
    // back to full health, ready for the next test.
    let mut between = Vec::new();
    for _ in 0..runs {
        cluster.wait_healthy(Duration::from_secs(90)).await?;
        let old = cluster.primary().await?;
        cluster.kill_node(&old)?;
        wait_writable(&cluster.rw_dsn(), Duration::from_secs(60)).await?;
        let t = Instant::now();
        cluster.start_node(&old)?;
        cluster.wait_healthy(Duration::from_secs(90)).await?;
        between.push(t.elapsed().as_secs_f64());
    }
    println!(
        "between tests (after a failover: restart the killed primary → rejoined → healthy): median {:.2} s  runs {:?}",
        median(between.clone()),
        rounded(&between)
    );

    // Accuracy on controlled outages.
    for secs in [1u64, 2, 3] {
        let hold = Duration::from_secs(secs);
        let mut ratios = Vec::new();
        let mut resolution = Duration::ZERO;
        for _ in 0..runs {
            cluster.wait_healthy(Duration::from_secs(60)).await?;
            let report = Scenario::new("bench_freeze")
                .warmup(Duration::from_secs(1))
                .hold(hold)
                .slo(Slo::max_rto(Duration::from_secs(60)))
                .write_report(false)
                .run(&cluster, FreezePrimary::new())
                .await?;
            if let Some(gap) = report.write_gap() {
                ratios.push(gap.as_secs_f64() / hold.as_secs_f64());
            }
            resolution = chaos_core::timeline::from_ms(report.resolution_ms);
        }
        println!(
            "controlled outage {secs} s: measured/true write gap median {:.4}  runs {:?}  resolution ±{} ms",
            median(ratios.clone()),
            ratios
                .iter()
                .map(|r| (r * 10_000.0).round() / 10_000.0)
                .collect::<Vec<_>>(),
            resolution.as_millis()
        );
    }

    // Failover RTO.
    let mut rtos = Vec::new();
    let mut gaps = Vec::new();
    let mut lost = 0;
    for _ in 0..runs {
        cluster.wait_healthy(Duration::from_secs(90)).await?;
        let report = Scenario::new("bench_failover")
            .warmup(Duration::from_secs(2))
            .slo(Slo::max_rto(Duration::from_secs(60)))
            .write_report(false)
            .run(&cluster, DeletePrimary::kill())
            .await?;
        if let Some(rto) = report.rto() {
            rtos.push(rto.as_secs_f64());
        }
        if let Some(gap) = report.write_gap() {
            gaps.push(gap.as_secs_f64());
        }
        lost += report.writes.lost;
    }
    println!(
        "failover (kill -9 of the primary, ttl {} s): RTO median {:.3} s  runs {:?}  write gap median {:.3} s  lost writes {lost}",
        cluster.timings().ttl,
        median(rtos.clone()),
        rounded(&rtos),
        median(gaps)
    );
    cluster.stop();
    Ok(())
}

/// Waits until a write through `dsn` commits.
async fn wait_writable(dsn: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            let (client, conn) =
                chaos_core::tokio_postgres::connect(dsn, chaos_core::tokio_postgres::NoTls).await?;
            let conn = tokio::spawn(conn);
            let res = client.execute("SELECT txid_current()", &[]).await;
            conn.abort();
            res
        })
        .await;
        if matches!(attempt, Ok(Ok(_))) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(chaos_core::Error::Timeout {
        what: "a write to commit".into(),
        waited: timeout,
        logs: String::new(),
    })
}

/// Boots a cluster and stops it; returns the seconds to healthy, and keeps the
/// steps of the boot if asked.
async fn boot(
    builder: chaos_core::cluster::local::LocalClusterBuilder,
    steps: Option<&mut Vec<Vec<(&'static str, f64)>>>,
) -> Result<f64> {
    let t = Instant::now();
    let cluster = builder.start().await?;
    let took = t.elapsed().as_secs_f64();
    if let (Some(steps), Some(b)) = (steps, cluster.boot_timings()) {
        steps.push(
            b.steps()
                .iter()
                .map(|(n, d)| (*n, d.as_secs_f64()))
                .collect(),
        );
    }
    cluster.stop();
    Ok(took)
}

/// The fixed `time.sleep(2)` of the installed Patroni's
/// `process_sync_replication` (or `_process_multisync_replication`), as
/// `patroni/ha.py:LINE`, read from its source: the interpreter on the
/// executable's `#!` line says where the package is.
fn patroni_fixed_wait(patroni: &std::path::Path) -> Option<String> {
    let script = std::fs::read_to_string(patroni).ok()?;
    let python = script
        .lines()
        .next()?
        .strip_prefix("#!")?
        .trim()
        .to_string();
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import importlib.util as u; print(u.find_spec('patroni').submodule_search_locations[0] + '/ha.py')",
        ])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let source = std::fs::read_to_string(&path).ok()?;
    let mut function = "";
    for (i, line) in source.lines().enumerate() {
        if let Some(rest) = line.trim_start().strip_prefix("def ") {
            function = rest.split('(').next().unwrap_or("");
        }
        if line.trim() == "time.sleep(2)"
            && matches!(
                function,
                "process_sync_replication" | "_process_multisync_replication"
            )
        {
            return Some(format!(
                "a fixed time.sleep(2) in {function}, {path}:{} (no setting changes it)",
                i + 1
            ));
        }
    }
    None
}

fn rounded(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 1000.0).round() / 1000.0).collect()
}
