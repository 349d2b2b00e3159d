//! The main job: boot a real 3-node Patroni + etcd + PostgreSQL cluster, write to
//! it continuously, delete the primary, and measure RTO and RPO.
//!
//! ```text
//! cargo run --release --example local_failover -- [--max-rto 10s] [--rpo 0]
//!     [--warmup 3s] [--graceful] [--nodes 3] [--writers 2] [--interval 10ms]
//! ```
//!
//! Exits 0 when the SLO holds, 1 when it is violated, 2 on bad flags or set-up
//! errors. The JSON and JUnit reports go to `$CHAOS_REPORT_DIR` (default
//! `target/chaos-reports/`). `chaos run` (the `chaos-cli` crate) does the same
//! and more from a shell; this is the Rust program behind it, in a page.

use std::process::ExitCode;
use std::time::Duration;

use chaos_core::prelude::*;
use chaos_core::probe::{DEFAULT_INTERVAL, DEFAULT_WRITERS};
use chaos_examples::{duration, exit_code, init_tracing};
use clap::Parser;

/// Boot a local HA cluster, delete its primary, measure RTO and RPO.
#[derive(Parser, Debug)]
#[command(name = "local_failover")]
struct Args {
    /// Longest acceptable RTO.
    #[arg(long, default_value = "10s", value_parser = duration)]
    max_rto: Duration,
    /// Acknowledged writes that may be lost.
    #[arg(long, default_value_t = 0)]
    rpo: u64,
    /// How long the probe writes before the fault.
    #[arg(long, default_value = "3s", value_parser = duration)]
    warmup: Duration,
    /// Stop the primary gracefully (SIGTERM) instead of killing it.
    #[arg(long)]
    graceful: bool,
    /// PostgreSQL nodes (2–9).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Probe writers.
    #[arg(long, default_value_t = DEFAULT_WRITERS)]
    writers: u32,
    /// Pacing of each writer [default: the probe's, 10ms].
    #[arg(long, value_parser = duration)]
    interval: Option<Duration>,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing("warn");
    let args = Args::parse();
    exit_code(run(args).await)
}

async fn run(args: Args) -> Result<bool> {
    eprintln!(
        "booting a {}-node Patroni + etcd + PostgreSQL cluster…",
        args.nodes
    );
    let cluster = LocalCluster::builder().nodes(args.nodes).start().await?;
    println!("rw_dsn: {}", cluster.rw_dsn());
    let topology = cluster.topology().await?;
    println!(
        "primary: {}  timeline: {}  patroni ttl: {}s",
        topology.primary_name().unwrap_or("?"),
        topology.timeline().unwrap_or(0),
        cluster.timings().ttl
    );
    let (name, fault) = if args.graceful {
        ("local_failover_graceful", DeletePrimary::graceful())
    } else {
        ("local_failover", DeletePrimary::kill())
    };
    let report = Scenario::new(name)
        .slo(Slo::max_rto(args.max_rto).max_lost_writes(args.rpo))
        .warmup(args.warmup)
        .probe(
            ProbeConfig::default()
                .writers(args.writers)
                .interval(args.interval.unwrap_or(DEFAULT_INTERVAL)),
        )
        .configure(|e| e.print_summary(false))
        .run(&cluster, fault)
        .await?;
    println!("{report}");
    let stem = chaos_core::report::default_report_dir()
        .join(chaos_core::report::file_stem(&report.scenario));
    println!("reports: {0}.json {0}.xml", stem.display());
    cluster.stop();
    Ok(report.passed())
}
