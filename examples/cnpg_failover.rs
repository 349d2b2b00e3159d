//! A measured failover of a CloudNativePG cluster, through the Kubernetes API:
//! the same pipeline as `local_failover`, with the RTO split into detection,
//! election, promotion, routing and first write from the cluster's own record,
//! and the settings that cost it ranked by the measured advisor.
//!
//! ```text
//! export CHAOS_KUBE_CONTEXT=kind-chaos CHAOS_CNPG_NAMESPACE=pg-chaos \
//!        CHAOS_CNPG_CLUSTER=cluster-example CHAOS_ALLOW=kind-chaos/pg-chaos
//! cargo run --release --example cnpg_failover -- [--max-rto 30s] [--graceful] [--dry-run]
//! ```
//!
//! Nothing is deleted unless the context and namespace are allowed
//! (`CHAOS_ALLOW`, or the label `chaos.dev/allow=true` on the namespace);
//! `--dry-run` (or `CHAOS_DRY_RUN=1`) only prints what would be deleted.
//! Exits 0 when the SLO holds, 1 when it is violated, 2 on set-up errors.

use std::process::ExitCode;
use std::time::Duration;

use chaos_core::cluster::cnpg::{CnpgCluster, advisor};
use chaos_core::fault::{Fault, FaultGuard};
use chaos_core::prelude::*;
use chaos_examples::{duration, exit_code, init_tracing};
use clap::Parser;

/// Delete a CloudNativePG cluster's primary pod, measure RTO, RPO and where
/// the time went.
#[derive(Parser, Debug)]
#[command(name = "cnpg_failover")]
struct Args {
    /// Longest acceptable RTO.
    #[arg(long, default_value = "30s", value_parser = duration)]
    max_rto: Duration,
    /// Delete the pod gracefully instead of with grace period 0.
    #[arg(long)]
    graceful: bool,
    /// Print what would be deleted; delete and measure nothing.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing("warn");
    let args = Args::parse();
    exit_code(run(args).await)
}

async fn run(args: Args) -> Result<bool> {
    let mut builder =
        CnpgCluster::builder_from_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))?;
    if args.dry_run {
        builder = builder.dry_run(true);
    }
    let cluster = builder.build().await?;
    let topology = cluster.wait_healthy(Duration::from_secs(120)).await?;
    println!(
        "{}/{} (context {}): primary {}",
        cluster.namespace(),
        cluster.cluster_name(),
        cluster.context(),
        topology.primary_name().unwrap_or("?")
    );
    let slo = Slo::max_rto(args.max_rto);
    for advice in advisor::advise(&cluster.cluster().await?.spec, &slo) {
        println!("advice: {advice}");
    }
    let fault = if args.graceful {
        DeletePrimary::graceful()
    } else {
        DeletePrimary::kill()
    };
    if args.dry_run {
        let guard = fault.inject(&cluster).await?;
        guard.heal().await?;
        for planned in cluster.dry_run_plan() {
            println!("would: {planned}");
        }
        return Ok(true);
    }
    let report = Scenario::new("cnpg_failover")
        .slo(slo)
        .run(&cluster, fault)
        .await?;
    println!("{report}");
    for phase in &report.phases {
        println!("{:>12} {:>9.1} ms", phase.name, phase.ms);
    }
    // What the Cluster's settings cost this run, the costliest first, and
    // the experiment that tries each fix.
    for finding in report.findings.iter().filter(|f| f.is_measured()) {
        println!("cost: {}", finding.headline());
        if let Some(cmd) = finding.experiment() {
            println!("      {cmd}");
        }
    }
    Ok(report.passed())
}
