//! `#[failover_test]` at run time, on the local cluster that the tests of this
//! binary share: SLOs that pass, an SLO that cannot, and bodies that panic or
//! outlive their timeout while a fault is injected.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chaos_core::harness::{TestFailure, TestSpec, run};
use chaos_core::prelude::*;

/// The example from the crate docs, as is.
#[failover_test(max_rto = "10s", rpo = 0)]
async fn survives_primary_loss(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
    ctx.inject(DeletePrimary::kill()).await?;
    Ok(())
}

/// A graceful stop with a workload of the test's own beside the probe.
#[failover_test(
    max_rto = "30s",
    rpo = 0,
    writers = 3,
    interval = "5ms",
    timeout = "90s"
)]
async fn graceful_stop_with_own_workload(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
    let before = ctx.topology().await?;
    let old_leader = before.primary_name().unwrap().to_string();
    let rows = Arc::new(AtomicU64::new(0));
    let client = ctx.client().await?;
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS app_events (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
        .await
        .unwrap();
    let counted = rows.clone();
    ctx.spawn_workload(async move {
        while client
            .execute("INSERT INTO app_events DEFAULT VALUES", &[])
            .await
            .is_ok()
        {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    ctx.inject(DeletePrimary::graceful()).await?;
    let rto = ctx.wait_recovered().await?;
    assert!(rto > Duration::ZERO);
    ctx.event(
        "workload rows before the switch",
        Some(rows.load(Ordering::Relaxed).to_string()),
    );
    assert!(
        rows.load(Ordering::Relaxed) > 0,
        "the test's own workload ran"
    );
    let (attempted, acknowledged, _, _) = ctx.counters().snapshot();
    assert!(attempted > 0 && acknowledged > 0);
    // Once recovered, another node leads.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctx.topology().await?.primary_name() == Some(old_leader.as_str()) {
        assert!(Instant::now() < deadline, "leadership never moved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// `()` bodies work too; a freeze shorter than the ttl is an outage without failover.
#[failover_test(max_rto = "30s", target = "env")]
async fn short_freeze_is_tolerated(ctx: &mut FailoverCtx) {
    let handle = ctx.inject(FreezePrimary::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    ctx.heal(handle).await.unwrap();
    ctx.wait_recovered().await.unwrap();
}

/// An impossible SLO fails through the macro, and the message names the RTO.
#[failover_test(max_rto = "1ms")]
#[should_panic(expected = "exceeds max_rto 0.001s")]
async fn an_impossible_slo_fails_the_test(ctx: &mut FailoverCtx) {
    let handle = ctx.inject(FreezePrimary::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctx.heal(handle).await.unwrap();
}

fn freeze_then(
    then: fn(),
) -> impl for<'a> FnOnce(&'a mut FailoverCtx) -> futures::future::BoxFuture<'a, Result<()>> {
    move |ctx| {
        Box::pin(async move {
            ctx.inject(FreezePrimary::new()).await?;
            then();
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(())
        })
    }
}

/// Processes of the cluster that are stopped (state `T`), i.e. still frozen.
fn frozen_processes(dir: &Path) -> Vec<i32> {
    chaos_tests::processes_of(dir)
        .into_iter()
        .filter(|&p| chaos_tests::process_state(p) == Some('T'))
        .collect()
}

/// After a failed test: the cluster is healthy and nothing is frozen.
fn assert_cluster_clean() {
    let report = run(
        TestSpec::new("failover_macro::after_check").max_rto(Duration::from_secs(30)),
        |ctx| {
            Box::pin(async move {
                let cluster = ctx.target_as::<LocalCluster>().unwrap();
                let frozen = frozen_processes(cluster.dir());
                assert!(frozen.is_empty(), "processes still frozen: {frozen:?}");
                let t = cluster.wait_healthy(Duration::from_secs(60)).await?;
                assert!(t.is_healthy(3), "{t:?}");
                Ok::<(), chaos_core::Error>(())
            })
        },
    )
    .unwrap();
    assert_eq!(report.writes.lost, 0);
}

#[test]
fn a_body_that_panics_with_a_fault_injected_is_healed_and_reraised() {
    let spec = TestSpec::new("failover_macro::panicking_body").max_rto(Duration::from_secs(30));
    let caught = std::panic::catch_unwind(|| {
        chaos_core::__private::run_test(
            spec,
            freeze_then(|| panic!("boom while the primary is frozen")),
        )
    });
    let payload = caught.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"boom while the primary is frozen"),
        "the original panic is re-raised"
    );
    assert_cluster_clean();
}

#[test]
fn a_body_that_outlives_its_timeout_fails_and_is_healed() {
    let start = Instant::now();
    let spec = TestSpec::new("failover_macro::timeout").timeout(Duration::from_secs(3));
    let failure = run(spec, freeze_then(|| ())).unwrap_err();
    assert!(matches!(failure, TestFailure::Timeout { .. }), "{failure}");
    assert!(
        failure.to_string().contains("timed out after 3.000s"),
        "{failure}"
    );
    // The wait was cut at the deadline, not after the body's 600 s sleep.
    assert!(start.elapsed() < Duration::from_secs(300));
    if let TestFailure::Timeout {
        report: Some(report),
        ..
    } = &failure
    {
        assert!(
            report.violations.iter().any(|v| v.contains("timed out")),
            "{report}"
        );
    }
    assert_cluster_clean();
}

#[test]
fn an_impossible_slo_is_reported_with_the_measured_rto_in_json_and_junit() {
    let spec = TestSpec::new("failover_macro::impossible_slo").max_rto(Duration::from_millis(1));
    let failure = run(spec, |ctx| {
        Box::pin(async move {
            ctx.inject(DeletePrimary::kill()).await?;
            Ok::<(), chaos_core::Error>(())
        })
    })
    .unwrap_err();
    let TestFailure::Slo(report) = &failure else {
        panic!("expected an SLO failure, got {failure}")
    };
    let rto = report.rto().expect("measured");
    let msg = failure.to_string();
    let rto_text = chaos_core::slo::fmt_duration(rto);
    assert!(
        msg.contains(&format!("RTO {rto_text} exceeds max_rto 0.001s")),
        "{msg}"
    );
    assert_eq!(report.writes.lost, 0, "{report}");

    let dir = chaos_core::report::default_report_dir();
    let xml = std::fs::read_to_string(dir.join("failover_macro__impossible_slo.xml")).unwrap();
    assert!(
        xml.contains(r#"<testcase classname="failover_macro" name="impossible_slo""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<property name="rto_ms""#) && xml.contains("<failure message=\"RTO"),
        "{xml}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("failover_macro__impossible_slo.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["passed"], false);
    assert!(json["rto_ms"].as_f64().unwrap() > 1.0);
}

#[test]
fn an_unknown_target_is_a_set_up_error() {
    // `target = "env"` reads CHAOS_TARGET; this process does not set it, so the
    // local target is used (see `short_freeze_is_tolerated`). The check itself:
    let failure = chaos_core::harness::check_target_value("cnpg").unwrap_err();
    assert!(failure.to_string().contains("CHAOS_TARGET"), "{failure}");
}
