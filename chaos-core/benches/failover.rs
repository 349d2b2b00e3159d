//! Benchmarks that print figures and assert nothing (a shared, noisy machine is
//! no place for timing thresholds):
//!
//! * measurement accuracy — controlled outages (a frozen primary) of 1, 2 and
//!   3 s: median of measured write gap / true outage;
//! * cluster boot time — median of several boots of a 3-node cluster;
//! * failover RTO — median of several kills of the primary.
//!
//! `cargo bench -p chaos-core --bench failover` (add `-- --runs N` to change the
//! number of runs, default 3).

use std::time::{Duration, Instant};

use chaos_core::prelude::*;

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

    // Boot time.
    let mut boots = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let cluster = LocalCluster::start().await?;
        boots.push(t.elapsed().as_secs_f64());
        cluster.stop();
    }
    println!(
        "cluster boot (3 nodes, healthy with sync standby): median {:.2} s  runs {:?}",
        median(boots.clone()),
        rounded(&boots)
    );

    let cluster = LocalCluster::start().await?;

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

fn rounded(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 1000.0).round() / 1000.0).collect()
}
