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
use chaos_examples::{
    OrdersArgs, create_orders_table, exit_code, init_tracing, kill_primary_under_orders,
};
use clap::Parser;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// Kill the primary under a sqlx pool's writes; compare its RTO with the probe's.
#[derive(Parser, Debug)]
#[command(name = "sqlx_orders")]
struct Args {
    #[command(flatten)]
    orders: OrdersArgs,
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
    init_tracing("error");
    exit_code(run(Args::parse()).await)
}

async fn run(args: Args) -> Result<bool> {
    eprintln!("booting a 3-node Patroni + etcd + PostgreSQL cluster with HAProxy in front…");
    let cluster = LocalCluster::builder().proxy(true).start().await?;
    let dsn = cluster.proxy_dsn()?;
    println!("sqlx pool on: {dsn}");
    create_orders_table(&cluster.rw_dsn()).await?;
    let pool = pool(&dsn)?;
    let passed = kill_primary_under_orders(
        &cluster,
        "sqlx_orders",
        "sqlx pool through HAProxy",
        &args.orders,
        || {
            let pool = pool.clone();
            async move { Ok(orders(pool)) }
        },
    )
    .await?;
    cluster.stop();
    Ok(passed)
}
