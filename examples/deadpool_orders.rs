//! The application's own writes through a deadpool-postgres pool, measured
//! beside the probe while the primary is killed.
//!
//! ```text
//! cargo run --release --example deadpool_orders -- [--runs 1] [--max-rto 30s] [--warmup 3s]
//! ```
//!
//! Boots a local cluster, creates an `orders` table, and runs a [`Workload`]
//! called `orders` — one `INSERT … RETURNING id` per operation, on a
//! deadpool-postgres pool — beside the write probe. The SLO is asserted on the
//! orders (`slo_on("orders")`): their RTO, and that every order whose id the
//! pool returned is still there (`SELECT id FROM orders WHERE id = ANY($1)`)
//! after the failover. Prints each run's report, then the probe's RTO and the
//! pool's side by side.
//!
//! tokio-postgres, under deadpool, takes the cluster's multi-host DSN
//! ([`LocalCluster::rw_dsn`]: every node, `target_session_attrs=read-write`)
//! and finds the primary itself on every new connection: no proxy needed.
//! Exits 0 when every run met the SLO, 1 when one did not, 2 on set-up errors.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use chaos_core::prelude::*;
use chaos_examples::{
    OrdersArgs, create_orders_table, exit_code, init_tracing, kill_primary_under_orders,
};
use clap::Parser;
use deadpool_postgres::tokio_postgres::{self, NoTls};
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

/// Kill the primary under a deadpool-postgres pool's writes; compare its RTO
/// with the probe's.
#[derive(Parser, Debug)]
#[command(name = "deadpool_orders")]
struct Args {
    #[command(flatten)]
    orders: OrdersArgs,
}

/// Connections older than this are retired when they come back to the pool.
const MAX_LIFETIME: Duration = Duration::from_secs(60);

/// The pool, with the settings that decide how it lives through a failover.
fn pool(dsn: &str) -> Result<Pool> {
    // The DSN's `connect_timeout` (2 s) bounds each host's connection attempt,
    // and `target_session_attrs=read-write` skips the standbys.
    let config: tokio_postgres::Config = dsn.parse()?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // Before handing out a pooled connection, check that it is open
            // and run a test query (`Fast` only checks that tokio-postgres has
            // not seen it close): a connection to the dead primary is dropped
            // and replaced inside `get()` instead of failing the operation.
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Pool::builder(manager)
        // A few connections for two workers.
        .max_size(4)
        // The timeouts below need a runtime to run on.
        .runtime(Runtime::Tokio1)
        // How long an operation waits for a free slot…
        .wait_timeout(Some(Duration::from_secs(2)))
        // …for a new connection (all hosts tried: during the outage none
        // accepts writes, and `get()` fails with the cause; this bounds a
        // connect that hangs instead)…
        .create_timeout(Some(Duration::from_secs(3)))
        // …and for the recycling check (a connection whose check hangs is
        // dropped and replaced).
        .recycle_timeout(Some(Duration::from_secs(1)))
        // deadpool has no max lifetime of its own: this hook retires old
        // connections, so that none outlives a switchover that did not close
        // it and keeps reaching a demoted, read-only server.
        .pre_recycle(Hook::sync_fn(|_, metrics| {
            if metrics.age() > MAX_LIFETIME {
                Err(HookError::Message("past its max lifetime".into()))
            } else {
                Ok(())
            }
        }))
        .build()
        .map_err(|e| Error::Config {
            field: "pool",
            expected: "a deadpool-postgres pool",
            found: e.to_string(),
        })
}

/// One order per operation; its id is the identity the run verifies.
fn orders(pool: Pool) -> Workload {
    let check = pool.clone();
    Workload::new("orders", move |_op| {
        let pool = pool.clone();
        async move {
            // Pool errors are failures (`From<deadpool_postgres::PoolError>`):
            // nothing of the order was sent.
            let client = pool.get().await?;
            // The statement's errors are classified by
            // `From<tokio_postgres::Error>`: the server's SQLSTATE → failed;
            // the connection lost → unknown.
            let row = client
                .query_one(
                    "INSERT INTO orders (item) VALUES ($1) RETURNING id",
                    &[&"book"],
                )
                .await?;
            Ok(Some(row.get::<_, i64>(0).to_string()))
        }
    })
    .concurrency(2)
    .paced(Duration::from_millis(10))
    .op_timeout(Duration::from_secs(5))
    .verify(move |ids| {
        let pool = check.clone();
        async move {
            let ids: Vec<i64> = ids.iter().filter_map(|i| i.parse().ok()).collect();
            let client = pool.get().await?;
            let rows = client
                .query("SELECT id FROM orders WHERE id = ANY($1)", &[&ids])
                .await?;
            Ok(rows
                .iter()
                .map(|r| r.get::<_, i64>(0).to_string())
                .collect::<HashSet<_>>())
        }
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing("error");
    exit_code(run(Args::parse()).await)
}

async fn run(args: Args) -> Result<bool> {
    eprintln!("booting a 3-node Patroni + etcd + PostgreSQL cluster…");
    let cluster = LocalCluster::builder().start().await?;
    let dsn = cluster.rw_dsn();
    println!("deadpool-postgres pool on: {dsn}");
    create_orders_table(&cluster.rw_dsn()).await?;
    let pool = pool(&dsn)?;
    let passed = kill_primary_under_orders(
        &cluster,
        "deadpool_orders",
        "deadpool pool on the multi-host DSN",
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
