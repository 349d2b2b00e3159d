//! The main job: boot a real 3-node Patroni + etcd + PostgreSQL cluster, write to
//! it continuously, delete the primary, and measure RTO and RPO.
//!
//! ```text
//! cargo run --release --example local_failover -- [--max-rto 10s] [--rpo 0]
//!     [--warmup 3s] [--graceful] [--nodes 3] [--writers 2] [--interval 10ms]
//! ```
//!
//! Exits 0 when the SLO holds, 1 when it is violated, 2 on bad flags or set-up
//! errors. The JSON report goes to `$CHAOS_REPORT_DIR` (default
//! `target/chaos-reports/`).

use std::process::ExitCode;
use std::time::Duration;

use chaos_core::prelude::*;
use chaos_core::slo::parse_duration;

struct Args {
    max_rto: Duration,
    rpo: u64,
    warmup: Duration,
    graceful: bool,
    nodes: usize,
    writers: u32,
    interval: Duration,
}

const USAGE: &str = "usage: local_failover [--max-rto 10s] [--rpo 0] [--warmup 3s] [--graceful] \
                     [--nodes 3] [--writers 2] [--interval 10ms]";

fn parse_args() -> std::result::Result<Args, String> {
    let mut args = Args {
        max_rto: Duration::from_secs(10),
        rpo: 0,
        warmup: Duration::from_secs(3),
        graceful: false,
        nodes: 3,
        writers: 2,
        interval: Duration::from_millis(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let number = |name: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{name} expects a whole number, found {v:?}\n{USAGE}"))
        };
        match flag.as_str() {
            "--max-rto" => {
                args.max_rto =
                    parse_duration("--max-rto", &value("--max-rto")?).map_err(|e| e.to_string())?
            }
            "--warmup" => {
                args.warmup =
                    parse_duration("--warmup", &value("--warmup")?).map_err(|e| e.to_string())?
            }
            "--interval" => {
                args.interval = parse_duration("--interval", &value("--interval")?)
                    .map_err(|e| e.to_string())?
            }
            "--rpo" => args.rpo = number("--rpo", value("--rpo")?)?,
            "--nodes" => args.nodes = number("--nodes", value("--nodes")?)? as usize,
            "--writers" => args.writers = number("--writers", value("--writers")?)? as u32,
            "--graceful" => args.graceful = true,
            "--kill" => args.graceful = false,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown flag {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
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
        "leader: {}  timeline: {}  patroni ttl: {}s",
        topology.primary_name().unwrap_or("?"),
        topology.timeline().unwrap_or(0),
        cluster.timings().ttl
    );
    let fault = if args.graceful {
        DeletePrimary::graceful()
    } else {
        DeletePrimary::kill()
    };
    let report = Scenario::new(if args.graceful {
        "local_failover_graceful"
    } else {
        "local_failover"
    })
    .slo(Slo::max_rto(args.max_rto).max_lost_writes(args.rpo))
    .warmup(args.warmup)
    .probe(
        ProbeConfig::default()
            .writers(args.writers)
            .interval(args.interval),
    )
    .configure(|e| e.print_summary(false))
    .run(&cluster, fault)
    .await?;
    println!("{report}");
    let dir = chaos_core::report::default_report_dir();
    println!(
        "reports: {}",
        dir.join(chaos_core::report::file_stem(&report.scenario))
            .with_extension("{json,xml}")
            .display()
    );
    cluster.stop();
    Ok(report.passed())
}
