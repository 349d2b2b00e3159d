//! Holder crate for the runnable examples of `chaos-core` (see `examples/*.rs`),
//! and the plumbing they share: flags, logging, exit codes, and the orders
//! experiment the pool examples run.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use chaos_core::prelude::*;
use chaos_core::slo::parse_duration;

/// A clap value parser for durations such as `10s`, `1500ms`, `2m`.
///
/// # Errors
/// A message saying what a duration looks like.
pub fn duration(text: &str) -> std::result::Result<Duration, String> {
    parse_duration("duration", text)
        .map_err(|_| "expected a duration such as \"10s\", \"1500ms\" or \"2m\"".to_string())
}

/// Logs to stderr, filtered by `RUST_LOG` (else `default`).
pub fn init_tracing(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The examples' exit codes: 0 when the SLO held, 1 when it did not, 2 for a
/// set-up error (printed).
pub fn exit_code(outcome: chaos_core::Result<bool>) -> ExitCode {
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// The flags of the pool examples.
#[derive(clap::Args, Debug, Clone)]
pub struct OrdersArgs {
    /// Failovers to run on the cluster, one after the other.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Longest acceptable RTO of the orders.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub max_rto: Duration,
    /// How long the probe and the orders run before the fault.
    #[arg(long, default_value = "3s", value_parser = duration)]
    pub warmup: Duration,
}

/// Creates the `orders` table the pool examples write to.
///
/// # Errors
/// When the primary cannot be reached.
pub async fn create_orders_table(rw_dsn: &str) -> chaos_core::Result<()> {
    chaos_core::pg::connect(rw_dsn, Duration::from_secs(5))
        .await?
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, item text NOT NULL, \
             created_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    Ok(())
}

/// Kills the primary `args.runs` times under the `orders` workload that
/// `orders()` makes (the cluster repaired between runs), with the SLO
/// asserted on the orders; prints every report and the probe's RTO beside
/// the orders'. Returns whether every run passed.
///
/// # Errors
/// Set-up errors of a run (the probe, the fault, the read-back).
pub async fn kill_primary_under_orders<F, Fut>(
    cluster: &LocalCluster,
    name: &str,
    what: &str,
    args: &OrdersArgs,
    orders: F,
) -> chaos_core::Result<bool>
where
    F: Fn() -> Fut,
    Fut: Future<Output = chaos_core::Result<Workload>>,
{
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        if run > 1 {
            // Back to full health (the killed node rejoined) before the next.
            Target::repair(cluster, Duration::from_secs(90)).await?;
        }
        let workload = orders().await?;
        let report = Scenario::new(format!("{name}_{run}"))
            .slo(Slo::max_rto(args.max_rto).max_lost_writes(0))
            .warmup(args.warmup)
            .configure(|e| e.workload(workload).slo_on("orders").print_summary(false))
            .run(cluster, DeletePrimary::kill())
            .await?;
        println!("{report}");
        runs.push(report);
    }
    print_comparison(what, &runs);
    Ok(runs.iter().all(Report::passed))
}

/// The probe's RTO and the orders', run by run, and their medians.
fn print_comparison(what: &str, runs: &[Report]) {
    println!("\nrun  probe RTO   {what} RTO   orders acknowledged / failed / indeterminate / lost");
    let (mut probe, mut pool) = (Vec::new(), Vec::new());
    for (i, r) in runs.iter().enumerate() {
        let Some(w) = r.workloads.iter().find(|w| w.name == "orders") else {
            continue;
        };
        let ms = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v:.0} ms"));
        println!(
            "{:>3}  {:>9}   {:>9}   {} / {} / {} / {}{}",
            i + 1,
            ms(r.rto_ms),
            ms(w.rto_ms),
            w.writes.acknowledged,
            w.writes.failed,
            w.writes.indeterminate,
            w.lost.len(),
            if r.passed { "" } else { "   FAILED" }
        );
        probe.extend(r.rto_ms);
        pool.extend(w.rto_ms);
    }
    println!(
        "median of {}: probe {}, {what} {}",
        runs.len(),
        median(&mut probe),
        median(&mut pool)
    );
}

fn median(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => "none".into(),
        n if n % 2 == 1 => format!("{:.0} ms", v[n / 2]),
        n => format!("{:.0} ms", (v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}
