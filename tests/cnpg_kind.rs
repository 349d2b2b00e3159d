//! Failover tests against a real CloudNativePG cluster, through the
//! Kubernetes API: what the kind pipeline (`.github/workflows/kind.yml`,
//! `ci/kind/`) runs once the cluster of `ci/kind/manifests/` is healthy. The
//! target is chosen at run time, as a user's `#[failover_test(target =
//! "env")]` chooses it: with `CHAOS_TARGET=cnpg` and the cluster's
//! coordinates every test measures a real failover; without, each returns at
//! once, saying so (as in `cargo test --workspace` here, where no Kubernetes
//! runs).
//!
//! ```sh
//! ci/kind/run-tests.sh            # against the pipeline's kind cluster, or:
//! CHAOS_TARGET=cnpg CHAOS_KUBE_CONTEXT=kind-chaos CHAOS_CNPG_NAMESPACE=pg-chaos \
//!   CHAOS_CNPG_CLUSTER=cluster-example CHAOS_ALLOW=kind-chaos/pg-chaos \
//!   cargo test -p chaos-tests --features cnpg --test cnpg_kind -- --test-threads=1
//! ```
//!
//! The SLO is the users' (RPO = 0 under `dataDurability: required`), with an
//! RTO bound loose enough for a CI runner: the figures that matter are in the
//! reports (`$CHAOS_REPORT_DIR`), which the pipeline uploads.

use std::time::Duration;

use chaos_core::fault::{DeletePrimary, Switchover};
use chaos_core::harness::{TestSpec, run_test};

/// What `CHAOS_TARGET=cnpg` needs besides.
const REQUIRED: [&str; 3] = [
    "CHAOS_KUBE_CONTEXT",
    "CHAOS_CNPG_NAMESPACE",
    "CHAOS_CNPG_CLUSTER",
];

/// Longest RTO accepted on a CI runner (the users see about 14 s on AKS).
const MAX_RTO: Duration = Duration::from_secs(60);

/// Whether the CNPG target is selected; prints why not when it is not, and
/// fails when it is selected without the cluster's coordinates.
fn cnpg_selected(test: &str) -> bool {
    let target = std::env::var("CHAOS_TARGET").unwrap_or_default();
    if target.trim() != "cnpg" {
        // Said past cargo's capture, and counted by ci/test as skipped:
        // ci/kind/run-tests.sh runs these against a kind cluster.
        chaos_tests::skipped(
            "CHAOS_TARGET=cnpg and a kind cluster, as ci/kind/run-tests.sh sets up",
            test,
        );
        return false;
    }
    let missing: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|v| std::env::var(v).map_or(true, |s| s.trim().is_empty()))
        .collect();
    assert!(
        missing.is_empty(),
        "CHAOS_TARGET=cnpg needs {} too (ci/kind/lib.sh's export_chaos_env sets them for the \
         kind cluster)",
        missing.join(", ")
    );
    true
}

fn spec(test: &str) -> TestSpec {
    TestSpec::new(format!("cnpg_kind::{test}"))
        .target_from_env()
        .max_rto(MAX_RTO)
        .max_lost_writes(0)
        .timeout(Duration::from_secs(300))
}

#[test]
fn killed_primary_loses_no_acknowledged_write() {
    let test = "killed_primary_loses_no_acknowledged_write";
    if !cnpg_selected(test) {
        return;
    }
    run_test(spec(test), |ctx| {
        Box::pin(async move {
            ctx.inject(DeletePrimary::kill()).await?;
            Ok::<(), chaos_core::Error>(())
        })
    });
}

#[test]
fn gracefully_deleted_primary_loses_no_acknowledged_write() {
    let test = "gracefully_deleted_primary_loses_no_acknowledged_write";
    if !cnpg_selected(test) {
        return;
    }
    run_test(spec(test), |ctx| {
        Box::pin(async move {
            ctx.inject(DeletePrimary::graceful()).await?;
            Ok::<(), chaos_core::Error>(())
        })
    });
}

#[test]
fn switchover_loses_no_acknowledged_write() {
    let test = "switchover_loses_no_acknowledged_write";
    if !cnpg_selected(test) {
        return;
    }
    run_test(spec(test), |ctx| {
        Box::pin(async move {
            ctx.inject(Switchover::to_sync_standby()).await?;
            Ok::<(), chaos_core::Error>(())
        })
    });
}
