//! A set of runs as JUnit XML: each run's test case (as the single report
//! renders it) and one for the set.

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::RunSet;
use crate::report::junit::{case, ms};
use crate::timeline::from_ms;
use crate::{Error, Result};

/// Renders a set of runs as one JUnit document: a test case per run, and one
/// for the set (`<scenario> (set of N)`) with its figures (`rto_p50_ms`,
/// `rto_p95_ms`, `rto_max_ms`, `lost_total`, …) failing on the set's
/// violations (a percentile objective, a failed run).
///
/// # Errors
/// [`Error::Junit`] if the XML cannot be serialised.
pub fn set_to_xml(set: &RunSet, suite: &str) -> Result<String> {
    let mut ts = TestSuite::new(suite);
    let mut total = std::time::Duration::ZERO;
    for r in &set.runs {
        total += from_ms(r.duration_ms);
        ts.add_test_case(case(r, suite));
    }
    let status = if set.passed {
        TestCaseStatus::success()
    } else {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_type("slo")
            .set_message(set.violations.join("; "))
            .set_description(set.summary_line());
        s
    };
    let (class, name) = match set.scenario.rsplit_once("::") {
        Some((c, n)) => (c.to_string(), n.to_string()),
        None => (suite.to_string(), set.scenario.clone()),
    };
    let mut c = TestCase::new(format!("{name} (set of {})", set.stats.runs), status);
    c.set_classname(class).set_time(total);
    let d = set.stats.rto.as_ref();
    let props = [
        ("runs", set.stats.runs.to_string()),
        ("recovered", set.stats.recovered.to_string()),
        ("rto_p50_ms", ms(d.map(|d| d.p50_ms))),
        ("rto_p95_ms", ms(d.map(|d| d.p95_ms))),
        ("rto_max_ms", ms(d.map(|d| d.max_ms))),
        ("max_rto_ms", ms(Some(set.slo.max_rto_ms))),
        ("max_rto_p95_ms", ms(set.slo.max_rto_p95_ms)),
        ("lost_total", set.stats.lost_total.to_string()),
        (
            "indeterminate_total",
            set.stats.indeterminate_total.to_string(),
        ),
        ("seed", set.seed.to_string()),
    ];
    for (k, v) in props {
        c.add_property(Property::new(k, v));
    }
    for p in &set.stats.phases {
        c.add_property(Property::new(
            format!("phase_{}_median_ms", p.name),
            ms(Some(p.median_ms)),
        ));
    }
    c.set_system_out(set.summary_line());
    ts.add_test_case(c);
    ts.set_time(total);
    let mut doc = quick_junit::Report::new(suite);
    doc.set_time(total);
    doc.add_test_suite(ts);
    doc.to_string().map_err(|source| Error::Junit {
        what: suite.to_string(),
        source,
    })
}
