//! Unit tests of the set and comparison pages, on the single report's test
//! reports.

use super::*;
use crate::report::Report;
use crate::report::picture::esc;
use crate::report::picture::tests::{assert_well_formed, empty, sample, sample_without_phases};
use crate::runs::{Comparison, RunSet, Sample};

fn set() -> RunSet {
    let mut a = sample();
    a.seed = Some(1);
    let mut b = sample_without_phases();
    b.seed = Some(2);
    b.rto_ms = Some(2500.0);
    b.passed = true;
    b.violations.clear();
    let mut c = empty();
    c.seed = Some(3);
    let mut slo = a.slo.clone();
    slo.max_rto_p95_ms = Some(2_000.0);
    RunSet::new("unit::<set>", slo, 9, vec![a, b, c])
}

#[test]
fn the_set_page_has_the_distribution_the_table_and_every_timeline() {
    let s = set();
    let svg = set_rto_svg(&s);
    assert_well_formed(&svg, &[]);
    for label in [
        "max_rto 3.000s",
        "max_rto_p95 2.000s",
        "p50 2.800s",
        "p95 3.100s",
        "no recovery (1)",
        "3 runs",
    ] {
        assert!(svg.contains(label), "{label:?} missing from {svg}");
    }
    let html = set_html(&s);
    assert_well_formed(&html, &["meta"]);
    for label in [
        "unit::&lt;set&gt;",
        "FAILED",
        "Phase medians",
        "run 1 of 3",
        "run 3 of 3",
        "seed 2",
        "RTO p95",
        "no recovery",
        "detection",
    ] {
        assert!(html.contains(label), "{label:?} missing");
    }
    assert_eq!(html.matches("<section id=\"run-").count(), 3);
    // Every run's timeline, each drawing all of its attempts.
    assert_eq!(html.matches("<path class=\"acknowledged\"").count(), 2);
    let dir = std::env::temp_dir().join(format!("chaos-picture-set-{}", std::process::id()));
    let path = write_set_html(&s, &dir).expect("written");
    assert!(path.ends_with("unit___set_.runs.html"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_comparison_shows_strips_medians_and_intervals() {
    let mk = |label: &str, rtos: &[f64]| {
        let reports: Vec<Report> = rtos
            .iter()
            .map(|v| {
                let mut r = sample();
                r.rto_ms = Some(*v);
                r.phases = r.faults[0].phases.clone();
                r.phases[0].ms = v - 1700.0;
                r
            })
            .collect();
        Sample::of_reports(label, &reports)
    };
    let c = Comparison::new(
        mk("A <old>", &[3100.0, 3200.0, 3000.0, 3150.0]),
        mk("B", &[2100.0, 2200.0, 2050.0, 2300.0]),
        1,
    );
    let svg = comparison_svg(&c);
    assert_well_formed(&svg, &[]);
    assert!(
        svg.contains(&esc(&c.headline())),
        "the verdict is the title"
    );
    for label in [
        "RTO of every run",
        "median 3.125s",
        "median 2.150s",
        "detection",
        "first_write",
        "B − A",
        "A &lt;old&gt;",
    ] {
        assert!(svg.contains(label), "{label:?} missing");
    }
    // One dot per run.
    assert_eq!(
        svg.matches("<circle").count(),
        8 + 2 + c.rto.iter().chain(&c.phases).count()
    );
    let html = comparison_html(&c);
    assert_well_formed(&html, &["meta"]);
    assert!(html.contains(&svg));
    // Too few runs, and no RTO at all, still render.
    let few = Comparison::new(mk("A", &[3000.0]), mk("B", &[2000.0]), 1);
    assert_well_formed(&comparison_svg(&few), &[]);
    assert!(comparison_svg(&few).contains("too few runs for an interval"));
    let none = Comparison::new(
        Sample::of_reports("A", [&empty()]),
        Sample::of_reports("B", [&empty()]),
        1,
    );
    let svg = comparison_svg(&none);
    assert_well_formed(&svg, &[]);
    assert!(svg.contains("no RTO to compare"));
}
