//! JUnit XML for CI test-result views: one test suite named after the test
//! binary, one test case per failover, with the figures as properties.

use std::path::{Path, PathBuf};

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::{FailureKind, Report};
use crate::timeline::from_ms;
use crate::{Error, Result};

pub(crate) fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "none".into(), |v| format!("{v:.3}"))
}

/// Renders `report` as a JUnit XML document (`<testsuites>` root) whose suite
/// is called `suite`.
///
/// # Errors
/// [`Error::Junit`] if the XML cannot be serialised.
pub fn to_xml(report: &Report, suite: &str) -> Result<String> {
    let time = from_ms(report.duration_ms);
    let mut ts = TestSuite::new(suite);
    ts.set_time(time);
    ts.add_test_case(case(report, suite));
    let mut doc = quick_junit::Report::new(suite);
    doc.set_time(time);
    doc.add_test_suite(ts);
    doc.to_string().map_err(|source| Error::Junit {
        what: suite.to_string(),
        source,
    })
}

pub(crate) fn case(report: &Report, suite: &str) -> TestCase {
    let (class, name) = match report.scenario.rsplit_once("::") {
        Some((c, n)) => (c.to_string(), n.to_string()),
        None => (suite.to_string(), report.scenario.clone()),
    };
    let status = if report.passed {
        TestCaseStatus::success()
    } else {
        let kind = report.failure.unwrap_or(FailureKind::Slo);
        let mut s = TestCaseStatus::non_success(match kind {
            FailureKind::Slo => NonSuccessKind::Failure,
            _ => NonSuccessKind::Error,
        });
        s.set_type(kind.as_str())
            .set_message(report.violations.join("; "))
            .set_description(report.to_string());
        s
    };
    let time = from_ms(report.duration_ms);
    let mut case = TestCase::new(name, status);
    case.set_classname(class).set_time(time);
    let props = [
        ("rto_ms", ms(report.rto_ms)),
        ("write_gap_ms", ms(report.write_gap_ms)),
        ("resolution_ms", ms(Some(report.resolution_ms))),
        ("max_rto_ms", ms(Some(report.slo.max_rto_ms))),
        ("lost_writes", report.writes.lost.to_string()),
        (
            "indeterminate_writes",
            report.writes.indeterminate.to_string(),
        ),
        (
            "acknowledged_writes",
            report.writes.acknowledged.to_string(),
        ),
        ("split_brain", report.split_brain.to_string()),
        (
            "faults",
            report
                .faults
                .iter()
                .map(|f| f.kind.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("target", report.target.kind.clone()),
        ("run_id", report.run_id.clone()),
    ];
    for (k, v) in props {
        case.add_property(Property::new(k, v));
    }
    for p in &report.phases {
        case.add_property(Property::new(
            format!("phase_{}_ms", p.name),
            ms(Some(p.ms)),
        ));
    }
    // A degrading fault's latency figures (the first fault's without a
    // prefix, others as `fault<N>_…`).
    for (i, f) in report.faults.iter().enumerate() {
        let Some(s) = f.slowdown else { continue };
        let key = |what: &str| match i {
            0 => what.to_string(),
            _ => format!("fault{}_{what}", i + 1),
        };
        let mut props = vec![
            (key("slowdown_factor"), format!("{:.2}", s.factor)),
            (key("outage"), s.outage.to_string()),
            (key("latency_before_p50_ms"), ms(Some(s.before.p50_ms))),
            (key("latency_during_p50_ms"), ms(Some(s.during.p50_ms))),
            (key("latency_during_p99_ms"), ms(Some(s.during.p99_ms))),
            (key("longest_gap_during_ms"), ms(Some(s.longest_gap_ms))),
        ];
        if let Some(a) = s.after {
            props.push((key("latency_after_p50_ms"), ms(Some(a.p50_ms))));
        }
        for (k, v) in props {
            case.add_property(Property::new(k, v));
        }
    }
    // Each of the application's own workloads, beside the probe's figures;
    // `slo_on` names the one the RTO was judged on.
    for w in &report.workloads {
        let key = |what: &str| format!("workload_{}_{what}", w.name);
        for (k, v) in [
            (key("rto_ms"), ms(w.rto_ms)),
            (key("write_gap_ms"), ms(w.write_gap_ms)),
            (
                key("acknowledged_writes"),
                w.writes.acknowledged.to_string(),
            ),
            (
                key("indeterminate_writes"),
                w.writes.indeterminate.to_string(),
            ),
            (
                key("lost_writes"),
                if w.verified {
                    w.lost.len().to_string()
                } else {
                    "unverified".into()
                },
            ),
        ] {
            case.add_property(Property::new(k, v));
        }
        if w.slo {
            case.add_property(Property::new("slo_on", w.name.clone()));
        }
    }
    case.set_system_out(report.to_string());
    case
}

pub(super) fn write(report: &Report, dir: &Path, suite: &str) -> Result<PathBuf> {
    let xml = to_xml(report, suite)?;
    super::json::write_file(
        dir,
        &format!("{}.xml", super::file_stem(&report.scenario)),
        xml.as_bytes(),
    )
}

/// The name of the running test binary without cargo's hash suffix
/// (`failover_macro-0123abcd` → `failover_macro`), for the suite name.
pub fn current_binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str())
        .unwrap_or("chaos");
    match stem.rsplit_once('-') {
        Some((base, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            base.to_string()
        }
        _ => stem.to_string(),
    }
}
