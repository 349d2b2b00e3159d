//! The application's own writes, through the pools applications use, measured
//! and verified beside the probe on the shared local cluster: a sqlx `PgPool`
//! through the single-host address in front of the cluster (HAProxy), a
//! deadpool-postgres pool on the multi-host read-write DSN, and the
//! bookkeeping that catches a lost order and a panicking operation.
//!
//! The sqlx test is the macro form an application team writes; the deadpool
//! one runs the same spec through [`chaos_core::harness::run`], which returns
//! the report, to check what the report says about the pool.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos_core::harness::{TestFailure, TestSpec, run};
use chaos_core::prelude::*;
use chaos_core::report::{AttemptOutcome, Report, WorkloadRecord};
use deadpool_postgres::tokio_postgres::NoTls;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

const ORDERS: &str = "CREATE TABLE IF NOT EXISTS orders (
    id bigserial PRIMARY KEY,
    item text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())";
const INSERT: &str = "INSERT INTO orders (item) VALUES ($1) RETURNING id";
const CHECK: &str = "SELECT id FROM orders WHERE id = ANY($1)";

/// The spec every test here uses: what
/// `#[failover_test(max_rto = "30s", rpo = 0, slo_on = "orders")]` builds.
fn spec(name: &str) -> TestSpec {
    TestSpec::new(format!("app_workloads::{name}"))
        .max_rto(Duration::from_secs(30))
        .max_lost_writes(0)
        .slo_on("orders")
}

async fn create_orders(ctx: &FailoverCtx) -> chaos_core::Result<()> {
    ctx.client().await?.batch_execute(ORDERS).await?;
    Ok(())
}

fn ids(identities: &[String]) -> Vec<i64> {
    identities.iter().filter_map(|i| i.parse().ok()).collect()
}

/// A sqlx pool with the settings that matter in a failover (see
/// `examples/sqlx_orders.rs` for why each).
fn sqlx_pool(dsn: &str) -> PgPool {
    let options: PgConnectOptions = dsn.parse().unwrap();
    PgPoolOptions::new()
        .max_connections(4)
        .test_before_acquire(true)
        .acquire_timeout(Duration::from_secs(2))
        .max_lifetime(Duration::from_secs(60))
        .idle_timeout(Duration::from_secs(10))
        .connect_lazy_with(options)
}

/// The orders workload on a sqlx pool: one order per operation, its id as the
/// identity, checked with `SELECT id FROM orders WHERE id = ANY($1)`.
fn sqlx_orders(pool: PgPool) -> Workload {
    let check = pool.clone();
    Workload::new("orders", move |_op| {
        let pool = pool.clone();
        async move {
            // Nothing of the order was sent if no connection came: failed.
            let mut conn = pool.acquire().await.map_err(WorkloadError::failed)?;
            let id: i64 = sqlx::query_scalar(INSERT)
                .bind("book")
                .fetch_one(&mut *conn)
                .await?;
            Ok(Some(id.to_string()))
        }
    })
    .concurrency(2)
    .verify(move |identities| {
        let pool = check.clone();
        async move {
            let found: Vec<i64> = sqlx::query_scalar(CHECK)
                .bind(ids(&identities))
                .fetch_all(&pool)
                .await?;
            Ok(found.iter().map(i64::to_string).collect::<HashSet<_>>())
        }
    })
}

/// A deadpool-postgres pool on a (multi-host) DSN, with the settings that
/// matter in a failover (see `examples/deadpool_orders.rs`).
fn deadpool_pool(dsn: &str) -> Pool {
    let config: deadpool_postgres::tokio_postgres::Config = dsn.parse().unwrap();
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        },
    );
    Pool::builder(manager)
        .max_size(4)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(2)))
        .create_timeout(Some(Duration::from_secs(3)))
        .recycle_timeout(Some(Duration::from_secs(1)))
        .build()
        .unwrap()
}

/// The orders workload on a deadpool-postgres pool; `check` can hide rows
/// from the verification (to prove that a loss is caught).
fn deadpool_orders(
    pool: Pool,
    check: impl Fn(HashSet<String>) -> HashSet<String> + Send + Sync + 'static,
) -> Workload {
    let verify_pool = pool.clone();
    let check = Arc::new(check);
    Workload::new("orders", move |_op| {
        let pool = pool.clone();
        async move {
            let client = pool.get().await?;
            let row = client.query_one(INSERT, &[&"book"]).await?;
            Ok(Some(row.get::<_, i64>(0).to_string()))
        }
    })
    .concurrency(2)
    .verify(move |identities| {
        let (pool, check) = (verify_pool.clone(), check.clone());
        async move {
            let client = pool.get().await?;
            let rows = client.query(CHECK, &[&ids(&identities)]).await?;
            Ok(check(
                rows.iter()
                    .map(|r| r.get::<_, i64>(0).to_string())
                    .collect(),
            ))
        }
    })
}

const KEYED: &str = "CREATE TABLE IF NOT EXISTS keyed_orders (
    key text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now())";

/// Orders with a key the client chooses before it writes ([`Op::id`]), so
/// that even an order whose outcome the pool could not tell can be looked
/// for: `Workload::ids_from_op`.
fn keyed_orders(pool: Pool) -> Workload {
    let verify_pool = pool.clone();
    Workload::new("keyed", move |op| {
        let pool = pool.clone();
        async move {
            let client = pool.get().await?;
            client
                .execute("INSERT INTO keyed_orders (key) VALUES ($1)", &[&op.id()])
                .await?;
            Ok(None)
        }
    })
    .ids_from_op()
    .verify(move |keys| {
        let pool = verify_pool.clone();
        async move {
            let client = pool.get().await?;
            let rows = client
                .query("SELECT key FROM keyed_orders WHERE key = ANY($1)", &[&keys])
                .await?;
            Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        }
    })
}

/// Waits until the workload has `n` acknowledged operations (its first
/// connections can take a moment right after the previous test's failover).
async fn acknowledged(ctx: &FailoverCtx, handle: WorkloadHandle, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ctx.workload_counters(handle).unwrap().snapshot().1 < n {
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than {n} orders acknowledged in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What every passing run must show about the pool's workload.
fn assert_orders_survived(report: &Report) -> &WorkloadRecord {
    let orders = report
        .workloads
        .first()
        .unwrap_or_else(|| panic!("no workload in the report: {report}"));
    assert_eq!(orders.name, "orders", "{report}");
    assert!(orders.slo, "the SLO is asserted on the orders: {report}");
    assert!(orders.verified, "the orders were verified: {report}");
    assert!(orders.lost.is_empty(), "orders lost: {report}");
    assert!(orders.rto_ms.is_some(), "the pool's RTO: {report}");
    assert!(report.rto_ms.is_some(), "the probe's RTO: {report}");
    assert!(orders.writes.acknowledged > 0, "{report}");
    eprintln!(
        "{}: probe RTO {:.0} ms, orders RTO {:.0} ms, {} orders acknowledged, {} failed, {} indeterminate, 0 lost",
        report.scenario,
        report.rto_ms.unwrap(),
        orders.rto_ms.unwrap(),
        orders.writes.acknowledged,
        orders.writes.failed,
        orders.writes.indeterminate,
    );
    orders
}

/// What an application team writes: the SLO asserted on its own sqlx pool's
/// orders, the pool reaching the primary through the one address in front of
/// the cluster (HAProxy), the primary killed. The run fails if the pool does
/// not recover within 30 s or if one order whose id it returned is missing;
/// its report has the pool's RTO beside the probe's.
#[failover_test(max_rto = "30s", rpo = 0, slo_on = "orders")]
async fn sqlx_pool_through_the_router_keeps_every_order(
    ctx: &mut FailoverCtx,
) -> chaos_core::Result<()> {
    let dsn = ctx.target().router_dsn().expect(
        "the local cluster has a single-host address in front of it (HAProxy: run ci/install-deps.sh)",
    );
    create_orders(ctx).await?;
    ctx.workload(sqlx_orders(sqlx_pool(&dsn)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    ctx.inject(DeletePrimary::kill()).await?;
    Ok(())
}

/// The same with deadpool-postgres on the multi-host read-write DSN, which
/// tokio-postgres follows to the new primary (`target_session_attrs=read-write`),
/// run through [`chaos_core::harness::run`] to check what the report says:
/// the pool's RTO beside the probe's, its orders verified, none lost.
#[test]
fn deadpool_pool_on_the_multi_host_dsn_keeps_every_order() {
    let report = run(spec("deadpool_pool_on_the_multi_host_dsn"), |ctx| {
        Box::pin(async move {
            create_orders(ctx).await?;
            ctx.client().await?.batch_execute(KEYED).await?;
            ctx.workload(deadpool_orders(deadpool_pool(&ctx.rw_dsn()), |found| found));
            ctx.workload(keyed_orders(deadpool_pool(&ctx.rw_dsn())));
            tokio::time::sleep(Duration::from_millis(500)).await;
            ctx.inject(DeletePrimary::kill()).await?;
            Ok::<(), chaos_core::Error>(())
        })
    })
    .unwrap_or_else(|f| panic!("{f}"));
    assert_orders_survived(&report);

    // The keyed orders: every attempt has its key, so each one whose outcome
    // the pool could not tell was looked for — and the report's counts
    // match the table, read here independently.
    let keyed = report.workloads.iter().find(|w| w.name == "keyed").unwrap();
    let w = &keyed.writes;
    assert_eq!(w.indeterminate_unknown, 0, "{report}");
    assert_eq!(
        w.indeterminate_found + w.indeterminate_missing,
        w.indeterminate,
        "{report}"
    );
    assert_eq!(w.lost, 0, "{report}");
    let keys: Vec<String> = keyed
        .history
        .iter()
        .filter_map(|h| h.identity.clone())
        .collect();
    assert_eq!(keys.len() as u64, w.attempted, "every attempt has its key");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let present: HashSet<String> = rt.block_on(async {
        let c = chaos_core::pg::connect(&report.target.rw_dsn, Duration::from_secs(10))
            .await
            .unwrap();
        let rows = c
            .query("SELECT key FROM keyed_orders WHERE key = ANY($1)", &[&keys])
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    });
    let count = |outcome: AttemptOutcome, there: bool| {
        keyed
            .history
            .iter()
            .filter(|h| h.outcome == outcome)
            .filter(|h| present.contains(h.identity.as_ref().unwrap()) == there)
            .count() as u64
    };
    assert_eq!(
        count(AttemptOutcome::Indeterminate, true),
        w.indeterminate_found,
        "{report}"
    );
    assert_eq!(
        count(AttemptOutcome::Indeterminate, false),
        w.indeterminate_missing,
        "{report}"
    );
    assert_eq!(
        count(AttemptOutcome::Failed, true),
        w.failed_but_present,
        "{report}"
    );
    assert_eq!(count(AttemptOutcome::Acknowledged, false), 0, "{report}");
    eprintln!(
        "keyed orders: {} acknowledged, {} failed ({} present anyway), {} indeterminate: {} \
         committed, {} not (the table agrees)",
        w.acknowledged,
        w.failed,
        w.failed_but_present,
        w.indeterminate,
        w.indeterminate_found,
        w.indeterminate_missing
    );
}

/// A verification that does not find one acknowledged order fails the run,
/// and the report names that order. (No fault: the bookkeeping is the point.)
#[test]
fn a_missing_acknowledged_order_fails_the_run_and_is_named() {
    let hidden: Arc<Mutex<Option<String>>> = Arc::default();
    let slot = hidden.clone();
    let failure = run(spec("missing_order"), move |ctx| {
        Box::pin(async move {
            create_orders(ctx).await?;
            // Pretend the smallest acknowledged id did not survive.
            let orders = deadpool_orders(deadpool_pool(&ctx.rw_dsn()), move |mut found| {
                let victim = found
                    .iter()
                    .min_by_key(|id| id.parse::<i64>().ok())
                    .cloned();
                if let Some(id) = &victim {
                    found.remove(id);
                }
                *slot.lock().unwrap() = victim;
                found
            });
            let handle = ctx.workload(orders);
            acknowledged(ctx, handle, 5).await;
            Ok::<(), chaos_core::Error>(())
        })
    })
    .unwrap_err();
    let TestFailure::Slo(report) = &failure else {
        panic!("expected an SLO failure, got {failure}")
    };
    let id = hidden
        .lock()
        .unwrap()
        .clone()
        .expect("an order was acknowledged");
    let orders = &report.workloads[0];
    assert_eq!(orders.lost, vec![id.clone()], "{report}");
    assert_eq!(orders.writes.lost, 1, "{report}");
    assert_eq!(report.writes.lost, 0, "the probe lost nothing: {report}");
    assert!(
        report.violations.iter().any(|v| v
            .starts_with("workload orders: 1 acknowledged writes lost")
            && v.ends_with(&format!("; lost identities: {id}"))),
        "a violation names order {id}: {:?}",
        report.violations
    );
}

/// An operation that panics once: the workload goes on, and the run fails
/// with the panic among the violations. The macro form, as a team writes it.
#[failover_test(max_rto = "30s", rpo = 0, slo_on = "orders")]
#[should_panic(expected = "workload orders panicked: worker 1 seq 3: the order service fell over")]
async fn an_operation_that_panics_fails_the_run(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
    create_orders(ctx).await?;
    let pool = deadpool_pool(&ctx.rw_dsn());
    let orders = Workload::new("orders", move |op| {
        let pool = pool.clone();
        async move {
            if (op.worker, op.seq) == (1, 3) {
                panic!("the order service fell over");
            }
            let client = pool.get().await?;
            let row = client.query_one(INSERT, &[&"book"]).await?;
            Ok(Some(row.get::<_, i64>(0).to_string()))
        }
    })
    .verify(|identities| async move { Ok(identities.into_iter().collect()) });
    let handle = ctx.workload(orders);
    // Until the workload has gone well past the panic.
    acknowledged(ctx, handle, 10).await;
    let summary = ctx.stop_workload(handle).await?;
    assert_eq!(summary.panics.len(), 1, "{:?}", summary.panics);
    assert!(summary.acknowledged() >= 10, "{summary:?}");
    Ok(())
}
