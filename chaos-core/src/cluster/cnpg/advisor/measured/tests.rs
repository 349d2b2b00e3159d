//! The measured advisor's rules on reports made for them and the shared
//! CNPG fixtures.

use super::*;
use crate::cluster::cnpg::advisor::tests::fixture_spec;
use crate::cluster::cnpg::status::{PRIMARY_FAILING, PROMOTE_REQUESTED, WAL_RECOVERY_ENDED};

const T0: &str = "2026-08-21T10:00:00Z";

/// A report of one `kind`/`mode` fault at [`T0`] whose RTO is split into
/// `phases` (name, ms), with `marks` (name, ms after the fault).
fn report(kind: &str, mode: &str, phases: &[(&str, f64)], marks: &[(&str, f64)]) -> Report {
    let t0: Timestamp = serde_json::from_value(serde_json::json!(T0)).expect("time");
    let at = |ms: f64| t0.plus(from_ms(ms));
    let rto: f64 = phases.iter().map(|p| p.1).sum();
    let mut start = 0.0;
    let phases: Vec<serde_json::Value> = phases
        .iter()
        .map(|(name, len)| {
            let p = serde_json::json!({"name": name, "ms": len, "at": at(start)});
            start += len;
            p
        })
        .collect();
    let events: Vec<Event> = marks
        .iter()
        .map(|(name, ms)| Event::new(EventKind::from_report(name, None).0, at(*ms), None))
        .collect();
    let fault = serde_json::json!({
        "kind": kind, "mode": mode, "victim": "cluster-example-1", "injected_at": T0,
        "healed_at": null, "marked": false,
        "rto_ms": (!phases.is_empty()).then_some(rto), "phases": phases
    });
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "run_id": "r1", "scenario": "unit::cnpg",
        "target": { "kind": "cnpg", "rw_dsn": "postgresql://x", "nodes": 3 },
        "started_at": T0, "origin": T0,
        "duration_ms": 60000.0, "window_start_ms": -1000.0, "window_end_ms": 59000.0,
        "fault": fault.clone(), "faults": [fault],
        "slo": { "max_rto_ms": 10000.0, "max_lost_writes": 0, "max_lost_window_ms": null },
        "rto_ms": (!phases.is_empty()).then_some(rto), "write_gap_ms": rto,
        "write_gap_start_ms": 0.0, "unexplained_gap_ms": null, "resolution_ms": 10.0,
        "median_latency_ms": 2.0, "lost_window_ms": 0.0,
        "writes": { "attempted": 100, "acknowledged": 90, "failed": 10, "indeterminate": 0,
                    "lost": 0, "indeterminate_found": 0, "indeterminate_missing": 0,
                    "failed_but_present": 0 },
        "lost": [], "split_brain": false, "split_brain_writes": 0, "phases": phases,
        "events": events, "warnings": [], "history": [],
        "passed": false, "failure": "slo", "violations": []
    }))
    .expect("a report")
}

/// The healthy fixture's spec with CNPG 1.30's primary lease set.
fn leased(seconds: i32) -> ClusterSpec {
    let mut spec = fixture_spec("cnpg_cluster_01_healthy.json");
    spec.primary_lease = Some(crate::cluster::cnpg::crd::PrimaryLeaseConfiguration {
        lease_duration_seconds: Some(seconds),
        ..Default::default()
    });
    spec
}

fn settings(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.setting.as_str()).collect()
}

/// A kill whose detection took 16.1 s of a 17.7 s RTO.
fn lease_bound_kill() -> Report {
    report(
        "delete-primary",
        "kill",
        &[
            ("detection", 16_100.0),
            ("election", 400.0),
            ("promotion", 800.0),
            ("routing", 200.0),
            ("first_write", 200.0),
        ],
        &[],
    )
}

#[test]
fn a_lease_bound_kill_ranks_the_lease_first() {
    let findings = advise_run(&leased(15), &Slo::default(), &lease_bound_kill());
    let top = &findings[0];
    assert_eq!(top.setting, field::LEASE_DURATION);
    assert_eq!(top.value, "15");
    assert_eq!(top.cost_ms, Some(15_000.0));
    assert_eq!(top.phases, [Phase::Detection, Phase::Election]);
    assert_eq!(
        top.headline(),
        "spec.primaryLease.leaseDurationSeconds=15: ~15.0 s of 16.5 s \
         detection+election; try 5"
    );
    assert_eq!(
        top.experiment().as_deref(),
        Some(
            "chaos experiment --set spec.primaryLease.leaseDurationSeconds=5 \
             --set spec.primaryLease.renewDeadlineSeconds=3"
        )
    );
    assert!(
        top.reason
            .contains("a killed primary keeps the primary lease"),
        "{top}"
    );
    // Then the promotion, with no log to split it: an upper bound.
    assert_eq!(findings[1].setting, field::CHECKPOINT_TIMEOUT);
    assert_eq!(findings[1].cost_ms, Some(800.0));
    // The checklist follows, not measured, and the lease is not in it twice.
    let rest = &findings[2..];
    assert!(rest.iter().all(|f| !f.is_measured()), "{rest:#?}");
    assert!(!settings(rest).contains(&field::LEASE_DURATION));
    assert!(settings(rest).contains(&field::SWITCHOVER_DELAY));
    // A 5 s lease cost at most 5 s of it, and there is nothing shorter to try.
    let findings = advise_run(&leased(5), &Slo::default(), &lease_bound_kill());
    assert_eq!(
        findings[0].headline(),
        "spec.primaryLease.leaseDurationSeconds=5: ~5.0 s of 16.5 s detection+election"
    );
    assert!(findings[0].variant.is_empty());
}

#[test]
fn a_lease_not_in_the_spec_is_the_operators_default() {
    let spec = fixture_spec("cnpg_cluster_01_healthy.json");
    let findings = advise_run(&spec, &Slo::default(), &lease_bound_kill());
    assert_eq!(findings[0].setting, field::LEASE_DURATION);
    assert_eq!(findings[0].value, "15 (default, CNPG 1.30+)");
    // Released on a graceful stop: the lease is not what it waited for.
    let graceful = report(
        "delete-primary",
        "graceful",
        &[
            ("detection", 16_100.0),
            ("election", 400.0),
            ("first_write", 300.0),
        ],
        &[],
    );
    let findings = advise_run(&spec, &Slo::default(), &graceful);
    assert!(findings.iter().all(|f| f.setting != field::LEASE_DURATION));
    // Nor its smart shutdown (180 s by default): nothing measured.
    assert!(findings.iter().all(|f| !f.is_measured()), "{findings:#?}");
}

#[test]
fn a_promotion_bound_run_ranks_checkpoints_first() {
    // The seed's breakdown: detection 0.4, election 0.3, promotion 10.2
    // (WAL recovery 5.6 s in the log), routing 0.5 s.
    let run = report(
        "delete-primary",
        "kill",
        &[
            ("detection", 400.0),
            ("election", 300.0),
            ("promotion", 10_200.0),
            ("routing", 500.0),
            ("first_write", 300.0),
        ],
        &[(PROMOTE_REQUESTED, 4_600.0), (WAL_RECOVERY_ENDED, 10_200.0)],
    );
    let findings = advise_run(&leased(15), &Slo::default(), &run);
    let top = &findings[0];
    assert_eq!(top.setting, field::CHECKPOINT_TIMEOUT);
    assert_eq!(top.value, "5min (PostgreSQL default)");
    assert_eq!(top.cost_ms, Some(5_600.0));
    assert_eq!(top.phases_ms, Some(10_200.0));
    assert_eq!(top.suggested.as_deref(), Some("1min"));
    assert!(
        top.variant[0].ends_with("checkpoint_timeout=1min"),
        "{top:?}"
    );
    assert!(top.reason.contains("from the new primary's log"), "{top}");
    // The lease was not waited for (0.7 s of detection+election).
    assert!(
        !findings
            .iter()
            .any(|f| f.setting == field::LEASE_DURATION && f.is_measured())
    );
    // Without the log the whole promotion is the (upper-bound) estimate.
    let unsplit = report(
        "delete-primary",
        "kill",
        &[
            ("detection", 400.0),
            ("promotion", 10_200.0),
            ("first_write", 300.0),
        ],
        &[],
    );
    let top = &advise_run(&leased(15), &Slo::default(), &unsplit)[0];
    assert_eq!(top.setting, field::CHECKPOINT_TIMEOUT);
    assert_eq!(top.cost_ms, Some(10_200.0));
    assert!(top.reason.contains("upper bound"), "{top}");
}

#[test]
fn without_phases_only_the_checklist_not_measured() {
    let spec = leased(15);
    let run = report("delete-primary", "kill", &[], &[]);
    let findings = advise_run(&spec, &Slo::default(), &run);
    assert!(!findings.is_empty());
    assert!(findings.iter().all(|f| !f.is_measured()), "{findings:#?}");
    assert!(
        findings
            .iter()
            .all(|f| f.to_string().starts_with("not measured: ")),
        "{findings:#?}"
    );
    let checklist: Vec<String> = advise(&spec, &Slo::default())
        .into_iter()
        .map(|a| a.field)
        .collect();
    assert_eq!(settings(&findings), checklist);
    // The set lease is on the checklist: above half the RTO.
    assert!(checklist.iter().any(|f| f == field::LEASE_DURATION));
}

#[test]
fn delays_probes_and_timeouts_by_fault() {
    let spec = |patch: serde_json::Value| -> ClusterSpec {
        let mut base = serde_json::to_value(leased(5)).expect("json");
        if let (Some(b), serde_json::Value::Object(p)) = (base.as_object_mut(), patch) {
            b.extend(p);
        }
        serde_json::from_value(base).expect("spec")
    };
    // failoverDelay, measured from the `primary failing` mark.
    let delayed = report(
        "delete-primary",
        "kill",
        &[
            ("detection", 31_000.0),
            ("election", 300.0),
            ("first_write", 500.0),
        ],
        &[(PRIMARY_FAILING, 700.0)],
    );
    let f = &advise_run(
        &spec(serde_json::json!({"failoverDelay": 30})),
        &Slo::default(),
        &delayed,
    )[0];
    assert_eq!(
        (f.setting.as_str(), f.cost_ms),
        (field::FAILOVER_DELAY, Some(30_000.0))
    );
    assert_eq!(f.variant, ["spec.failoverDelay=0"]);

    // A cut-off primary: liveness for detection, WAL receivers for election.
    let isolated = report(
        "isolate-primary",
        "",
        &[
            ("detection", 29_500.0),
            ("election", 59_000.0),
            ("first_write", 500.0),
        ],
        &[],
    );
    let findings = advise_run(&spec(serde_json::json!({})), &Slo::default(), &isolated);
    assert_eq!(
        settings(&findings)[..2],
        [field::WAL_RECEIVER_TIMEOUT, field::LIVENESS_PROBE_TIMEOUT]
    );
    assert_eq!(findings[0].cost_ms, Some(59_000.0));
    assert_eq!(findings[0].value, "60s (PostgreSQL default)");
    assert_eq!(findings[1].cost_ms, Some(29_500.0));
    // A kill exits at once: neither waits.
    let killed = report(
        "delete-primary",
        "kill",
        &[
            ("detection", 29_500.0),
            ("election", 59_000.0),
            ("first_write", 500.0),
        ],
        &[],
    );
    let findings = advise_run(&spec(serde_json::json!({})), &Slo::default(), &killed);
    assert!(!findings.iter().any(|f| {
        f.is_measured()
            && [field::WAL_RECEIVER_TIMEOUT, field::LIVENESS_PROBE_TIMEOUT]
                .contains(&f.setting.as_str())
    }));

    // A switchover: the old primary's stop, from the log.
    let switchover = report(
        "switchover",
        "to cluster-example-3",
        &[
            ("detection", 0.0),
            ("election", 0.0),
            ("promotion", 4_000.0),
            ("first_write", 300.0),
        ],
        &[(PROMOTE_REQUESTED, 3_500.0), (WAL_RECOVERY_ENDED, 3_600.0)],
    );
    let findings = advise_run(
        &spec(serde_json::json!({"switchoverDelay": 3})),
        &Slo::default(),
        &switchover,
    );
    assert_eq!(findings[0].setting, field::SWITCHOVER_DELAY);
    assert_eq!(findings[0].cost_ms, Some(3_000.0));
    assert_eq!(findings[1].setting, field::CHECKPOINT_TIMEOUT);
    assert_eq!(findings[1].cost_ms, Some(100.0));

    // A slow routing: the readiness probe's period.
    let routed = report(
        "delete-primary",
        "kill",
        &[
            ("detection", 500.0),
            ("routing", 3_000.0),
            ("first_write", 100.0),
        ],
        &[],
    );
    let f = &advise_run(&spec(serde_json::json!({})), &Slo::default(), &routed)[0];
    assert_eq!(
        (f.setting.as_str(), f.cost_ms),
        (field::READINESS_PROBE, Some(3_000.0))
    );
    assert_eq!(f.variant, ["spec.probes.readiness.periodSeconds=1"]);
}
