//! The report's unit tests.

use std::collections::HashSet;
use std::time::{Instant, SystemTime};

use super::*;
use crate::fault::FaultInfo;
use crate::probe::{Attempt, History, Outcome};
use crate::timeline::{EventKind, Phase};
use crate::verify::{FaultSpan, Measurement, Window};

fn ms_(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A run with one kill at 100 ms, failures until 600 ms, one lost write.
fn sample() -> Report {
    sample_with(|_| Vec::new())
}

/// [`sample`] with extra events, made from the wall time of an offset
/// from the fault's injection.
fn sample_with(extra: impl Fn(&dyn Fn(u64) -> Timestamp) -> Vec<Event>) -> Report {
    let t0 = Instant::now();
    let mut attempts = Vec::new();
    for i in 0..100u64 {
        let outcome = match i {
            10..60 => Outcome::Failed {
                sqlstate: Some("57P01".into()),
            },
            60 => Outcome::Indeterminate {
                reason: IndeterminateReason::ConnectionLost,
            },
            _ => Outcome::Acknowledged {
                server: "127.0.0.11:5432".into(),
                timeline: if i < 10 { 1 } else { 2 },
            },
        };
        attempts.push(Attempt {
            writer: 1,
            seq: i + 1,
            started: t0 + ms_(i * 10),
            finished: t0 + ms_(i * 10 + 1),
            outcome,
            connected: None,
        });
    }
    let history = History {
        run_id: "r1".into(),
        interval: ms_(10),
        origin: (t0, SystemTime::now()),
        attempts,
    };
    let mut found: HashSet<WriteId> = history
        .attempts
        .iter()
        .filter(|a| a.is_acknowledged())
        .map(|a| (a.writer, a.seq))
        .collect();
    found.remove(&(1, 5));
    let spans = [FaultSpan {
        injected: t0 + ms_(100),
        healed: Some(t0 + ms_(800)),
        degrades: false,
    }];
    let window = Window {
        start: t0,
        end: t0 + ms_(1000),
    };
    let m = Measurement::compute(&history, &spans, window, &found);
    let info = FaultInfo {
        kind: "delete-primary".into(),
        mode: "kill".into(),
        victim: Some("node1".into()),
        injected_at: Timestamp::from(history.wall(t0 + ms_(100))),
    };
    Report::from_draft(Draft {
        run_id: "r1".into(),
        scenario: "unit::sample".into(),
        seed: None,
        target: TargetInfo {
            kind: "local".into(),
            rw_dsn: "postgresql://postgres@127.0.0.11:5432/postgres".into(),
            nodes: 3,
            software: [("patroni".to_string(), "3.1.2".to_string())].into(),
        },
        started: t0,
        slo: Slo::max_rto(Duration::from_secs(1)),
        history: &history,
        window,
        faults: vec![(info, t0 + ms_(100), Some(Timestamp::now()), false)],
        measurement: &m,
        events: {
            let at = |after: u64| Timestamp::from(history.wall(t0 + ms_(100 + after)));
            let mut events = vec![Event::now(EventKind::ProbeStarted, None)];
            events.extend(extra(&at));
            events
        },
        warnings: vec!["a warning".into()],
        workloads: Vec::new(),
        slo_on: None,
    })
}

#[test]
fn phases_follow_the_marks_and_add_up_to_the_rto() {
    let mark =
        |p: Phase, at: Timestamp| Event::new(EventKind::PhaseEnded(p), at, Some("node2".into()));
    let report = sample_with(|at| {
        vec![
            mark(Phase::Detection, at(200)),
            // No election mark: election is folded into promotion.
            mark(Phase::Promotion, at(300)),
            mark(Phase::Routing, at(350)),
            // After the recovery: ignored.
            mark(Phase::Detection, at(5000)),
        ]
    });
    let rto = report.rto_ms.expect("recovered");
    let names: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["detection", "promotion", "routing", "first_write"]);
    let ms: Vec<f64> = report.phases.iter().map(|p| p.ms).collect();
    assert_eq!(&ms[..3], &[200.0, 100.0, 50.0]);
    let sum: f64 = ms.iter().sum();
    assert!((sum - rto).abs() < 1e-6, "{sum} vs {rto}");
    assert_eq!(report.phases[0].at, report.faults[0].injected_at);
    assert_eq!(report.faults[0].phases, report.phases);
    assert!(
        report.to_string().contains("phases      detection 0.200s"),
        "{report}"
    );
    let back: Report = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(back.phases, report.phases);
}

#[test]
fn without_marks_there_are_no_phases() {
    let report = sample();
    assert!(report.phases.is_empty());
    assert!(!report.to_string().contains("phases"));
    // Reports written before phases existed still read.
    let mut json = serde_json::to_value(&report).unwrap();
    json.as_object_mut().unwrap().remove("phases");
    let back: Report = serde_json::from_value(json).unwrap();
    assert!(back.phases.is_empty());
}

#[test]
fn the_report_round_trips_through_json() {
    let report = sample();
    let text = serde_json::to_string_pretty(&report).expect("serialises");
    let back: Report = serde_json::from_str(&text).expect("parses");
    assert_eq!(back, report);
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["schema_version"], SCHEMA_VERSION);
    assert_eq!(json["history"][0]["outcome"], "acknowledged");
    assert_eq!(
        json["history"][0]["started_ms"], -100.0,
        "relative to the fault"
    );
    assert_eq!(json["history"][10]["sqlstate"], "57P01");
    assert_eq!(json["lost"][0]["writer"], 1);
    assert_eq!(json["lost"][0]["seq"], 5);
    // Failures and one indeterminate until 600 ms; acknowledged again at 611 ms.
    assert_eq!(json["faults"][0]["rto_ms"], 511.0);
    assert_eq!(json["failure"], "slo", "one write lost: {text}");
}

#[test]
fn junit_carries_each_workloads_figures_and_the_series_judged() {
    let mut report = sample();
    report.workloads.push(WorkloadRecord {
        name: "orders".into(),
        slo: true,
        verified: true,
        rto_ms: Some(5742.0),
        fault_rto_ms: vec![Some(5742.0)],
        write_gap_ms: Some(5750.5),
        median_latency_ms: 2.0,
        p99_latency_ms: 9.0,
        writes: WriteCounts {
            attempted: 10,
            acknowledged: 7,
            indeterminate: 1,
            ..WriteCounts::default()
        },
        lost: vec!["42".into()],
        errors: Vec::new(),
        panics: Vec::new(),
        history: Vec::new(),
    });
    let xml = junit::to_xml(&report, "suite").expect("xml");
    for (name, value) in [
        ("workload_orders_rto_ms", "5742.000"),
        ("workload_orders_write_gap_ms", "5750.500"),
        ("workload_orders_acknowledged_writes", "7"),
        ("workload_orders_indeterminate_writes", "1"),
        ("workload_orders_lost_writes", "1"),
        ("slo_on", "orders"),
    ] {
        let prop = format!(r#"<property name="{name}" value="{value}"/>"#);
        assert!(xml.contains(&prop), "{prop} missing from {xml}");
    }
    // The summary names the series the SLO was judged on, first.
    let summary = report.summary();
    assert!(
        summary.contains(" — SLO judged on workload orders: RTO 5.742s (max "),
        "{summary}"
    );
    assert!(
        summary.contains("write gap 5.750s, 1 lost; probe: RTO "),
        "{summary}"
    );
}

#[test]
fn a_slowdown_without_outage_is_said_in_the_summary_junit_and_json() {
    let mut report = sample();
    let lat = |p50_ms, p99_ms| LatencyRecord {
        count: 100,
        p50_ms,
        p99_ms,
    };
    report.rto_ms = None;
    report.faults[0].rto_ms = None;
    report.faults[0].kind = "throttle-primary-disk".into();
    report.faults[0].slowdown = Some(SlowdownRecord {
        outage: false,
        before: lat(2.7, 4.0),
        during: lat(250.7, 376.0),
        after: Some(lat(3.9, 6.0)),
        factor: 250.7 / 2.7,
        outage_start_ms: None,
        longest_gap_ms: 376.0,
    });
    let summary = report.summary();
    assert!(
        summary.contains("RTO none (no outage, a slowdown)"),
        "{summary}"
    );
    assert!(
        summary.contains(
            "throttle-primary-disk: slowdown ×92.9 (commit p50 2.7 → 250.7 → 3.9 ms, \
             p99 4.0 → 376.0 ms), longest gap 376 ms, no outage"
        ),
        "{summary}"
    );
    let xml = junit::to_xml(&report, "suite").expect("xml");
    for (name, value) in [
        ("slowdown_factor", "92.85"),
        ("outage", "false"),
        ("latency_during_p99_ms", "376.000"),
        ("latency_after_p50_ms", "3.900"),
    ] {
        let prop = format!(r#"<property name="{name}" value="{value}"/>"#);
        assert!(xml.contains(&prop), "{prop} missing from {xml}");
    }
    let json = serde_json::to_string(&report).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back.faults[0].slowdown, report.faults[0].slowdown);
    // Older reports have no `slowdown` and read as before.
    let old = json.replace(r#","slowdown":"#, r#","x_slowdown":"#);
    let back: Report = serde_json::from_str(&old).unwrap();
    assert_eq!(back.faults[0].slowdown, None);
}

#[test]
fn failures_other_than_the_slo_name_their_cause() {
    let mut report = sample();
    report.add_failure(FailureKind::Panic, "test body panicked: boom");
    assert_eq!(report.failure, Some(FailureKind::Panic));
    assert!(!report.passed());
    let xml = junit::to_xml(&report, "suite").expect("xml");
    assert!(xml.contains("<testsuites"), "{xml}");
    assert!(xml.contains(r#"<testsuite name="suite""#), "{xml}");
    assert!(xml.contains(r#"type="panic""#), "{xml}");
    assert!(
        xml.contains(r#"<property name="lost_writes" value="1"/>"#),
        "{xml}"
    );
    assert!(
        report.summary_line().contains("FAILED"),
        "{}",
        report.summary_line()
    );
}
