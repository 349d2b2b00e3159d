//! The application's own writes through a sqlx `PgPool`, measured beside the
//! probe while the primary is killed.
//!
//! ```text
//! cargo run --release --example sqlx_orders -- [--runs 1] [--max-rto 30s] [--warmup 3s]
//! ```
//!
//! Boots a local cluster with HAProxy in front of it, creates an `orders`
//! table, and runs a [`Workload`] called `orders` — one `INSERT … RETURNING
//! id` per operation, on a sqlx pool — beside the write probe. The SLO is
//! asserted on the orders (`slo_on("orders")`): their RTO, and that every
//! order whose id the pool returned is still there
//! (`SELECT id FROM orders WHERE id = ANY($1)`) after the failover. Prints
//! each run's report, then the probe's RTO and the pool's side by side.
//!
//! sqlx has no multi-host DSNs: it reaches the primary through one address
//! that always leads there, here HAProxy ([`LocalCluster::proxy_dsn`]; in
//! production a proxy, a virtual IP or a Kubernetes service such as
//! CloudNativePG's `-rw`). Exits 0 when every run met the SLO, 1 when one did
//! not, 2 on set-up errors (no HAProxy: `ci/install-deps.sh` installs it).

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use chaos_core::prelude::*;
use chaos_core::slo::parse_duration;
use clap::Parser;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// Kill the primary under a sqlx pool's writes; compare its RTO with the probe's.
#[derive(Parser, Debug)]
#[command(name = "sqlx_orders")]
struct Args {
    /// Failovers to run on the cluster, one after the other.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Longest acceptable RTO of the orders.
    #[arg(long, default_value = "30s", value_parser = duration)]
    max_rto: Duration,
    /// How long the probe and the orders run before the fault.
    #[arg(long, default_value = "3s", value_parser = duration)]
    warmup: Duration,
}

fn duration(text: &str) -> std::result::Result<Duration, String> {
    parse_duration("duration", text)
        .map_err(|_| "expected a duration such as \"10s\", \"1500ms\" or \"2m\"".to_string())
}

/// The pool, with the settings that decide how it lives through a failover.
fn pool(dsn: &str) -> Result<PgPool> {
    // sqlx ignores (and logs) `connect_timeout` in the DSN: `acquire_timeout`
    // below bounds connecting as well.
    let options: PgConnectOptions = dsn.parse().map_err(|e| Error::Config {
        field: "dsn",
        expected: "a postgresql:// URL sqlx understands",
        found: format!("{e}"),
    })?;
    Ok(PgPoolOptions::new()
        // A few connections for two workers: a failover closes them all at
        // once, and each is re-opened on first use.
        .max_connections(4)
        // Ping an idle connection before handing it out (sqlx's default, made
        // explicit): a connection that died with the old primary is dropped
        // and replaced here, instead of failing the operation that got it.
        .test_before_acquire(true)
        // How long an operation may wait for a connection, connecting
        // included. During the outage every connect fails; this makes the
        // operation fail in 2 s (a definite `PoolTimedOut`) rather than run
        // into the operation's own deadline (an indeterminate outcome).
        .acquire_timeout(Duration::from_secs(2))
        // Retire connections after a minute: a connection that outlived a
        // switchover without being closed (a proxy that keeps sessions, a
        // demoted primary that stays up) would otherwise keep reaching a
        // read-only server for as long as it lives.
        .max_lifetime(Duration::from_secs(60))
        // Close idle connections after 10 s, for the same reason, sooner.
        .idle_timeout(Duration::from_secs(10))
        // Connect on first use, not now: the pool is built before the run.
        .connect_lazy_with(options))
}

/// One order per operation; its id is the identity the run verifies.
fn orders(pool: PgPool) -> Workload {
    let check = pool.clone();
    Workload::new("orders", move |_op| {
        let pool = pool.clone();
        async move {
            // An error getting a connection is a failure whatever it is:
            // nothing of the order was sent yet.
            let mut conn = pool.acquire().await.map_err(WorkloadError::failed)?;
            // The statement's errors are classified by `From<sqlx::Error>`:
            // the server's SQLSTATE → failed; the connection lost → unknown.
            let id: i64 = sqlx::query_scalar("INSERT INTO orders (item) VALUES ($1) RETURNING id")
                .bind("book")
                .fetch_one(&mut *conn)
                .await?;
            Ok(Some(id.to_string()))
        }
    })
    .concurrency(2)
    .paced(Duration::from_millis(10))
    .op_timeout(Duration::from_secs(5))
    .verify(move |ids| {
        let pool = check.clone();
        async move {
            let ids: Vec<i64> = ids.iter().filter_map(|i| i.parse().ok()).collect();
            let found: Vec<i64> = sqlx::query_scalar("SELECT id FROM orders WHERE id = ANY($1)")
                .bind(ids)
                .fetch_all(&pool)
                .await?;
            Ok(found.iter().map(i64::to_string).collect::<HashSet<_>>())
        }
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<bool> {
    eprintln!("booting a 3-node Patroni + etcd + PostgreSQL cluster with HAProxy in front…");
    let cluster = LocalCluster::builder().proxy(true).start().await?;
    let dsn = cluster.proxy_dsn()?;
    println!("sqlx pool on: {dsn}");
    chaos_core::pg::connect(&cluster.rw_dsn(), Duration::from_secs(5))
        .await?
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, item text NOT NULL, \
             created_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let pool = pool(&dsn)?;
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        if run > 1 {
            // Back to full health (the killed node rejoined) before the next.
            Target::repair(&cluster, Duration::from_secs(90)).await?;
        }
        let report = Scenario::new(format!("sqlx_orders_{run}"))
            .slo(Slo::max_rto(args.max_rto).max_lost_writes(0))
            .warmup(args.warmup)
            .configure(|e| {
                e.workload(orders(pool.clone()))
                    .slo_on("orders")
                    .print_summary(false)
            })
            .run(&cluster, DeletePrimary::kill())
            .await?;
        println!("{report}");
        runs.push(report);
    }
    print_comparison("sqlx pool through HAProxy", &runs);
    cluster.stop();
    Ok(runs.iter().all(Report::passed))
}

/// The probe's RTO and the pool's, run by run, and their medians.
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
