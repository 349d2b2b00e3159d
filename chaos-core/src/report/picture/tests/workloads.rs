//! Workloads on the timeline and the page: a lane each, labelled, and the
//! series the SLO was judged on named.

use super::*;
use crate::report::{HistoryEntry, WorkloadRecord};

/// A workload that saw what the probe saw, 100 ms later: its acknowledged
/// writes named `id-<writer>-<seq>`, its failures the application's words (the
/// read-only ones with their SQLSTATE), `id-1-7` lost when `verified`.
pub(super) fn workload(r: &Report, name: &str, slo: bool, verified: bool) -> WorkloadRecord {
    let history: Vec<HistoryEntry> = r
        .history
        .iter()
        .map(|h| {
            let mut h = h.clone();
            h.started_ms += 100.0;
            h.finished_ms += 100.0;
            match h.outcome {
                AttemptOutcome::Acknowledged => {
                    h.identity = Some(format!("id-{}-{}", h.writer, h.seq))
                }
                AttemptOutcome::Failed => {
                    h.error = Some(match h.sqlstate.take() {
                        Some(code) => format!("db error (SQLSTATE {code})"),
                        None => "pool timed out".into(),
                    })
                }
                AttemptOutcome::Indeterminate => h.error = Some("connection reset".into()),
            }
            h
        })
        .collect();
    let mut writes = r.writes;
    writes.lost = u64::from(verified);
    WorkloadRecord {
        name: name.into(),
        slo,
        verified,
        rto_ms: Some(3_250.0),
        fault_rto_ms: vec![Some(3_250.0), None],
        write_gap_ms: Some(3_300.0),
        median_latency_ms: 4.0,
        p99_latency_ms: 9.5,
        writes,
        lost: if verified {
            vec!["id-1-7".into()]
        } else {
            Vec::new()
        },
        errors: vec![crate::report::ErrorCount {
            message: "pool timed out".into(),
            count: 300,
        }],
        panics: Vec::new(),
        history,
    }
}

fn with_workloads(slo_on_orders: bool) -> Report {
    let mut r = sample();
    r.workloads = vec![
        workload(&r, "orders", slo_on_orders, true),
        workload(&r, "audit <log>", false, false),
    ];
    r
}

/// The text of the lane headers (`<text class="series" …>`), tags removed.
fn series_texts(svg: &str) -> Vec<String> {
    svg.split("<text class=\"series\"")
        .skip(1)
        .map(|t| {
            let body = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
            let mut out = String::new();
            let mut in_tag = false;
            for c in body.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => out.push(c),
                    _ => {}
                }
            }
            out
        })
        .collect()
}

#[test]
fn each_workload_has_a_lane_with_its_figures() {
    let r = with_workloads(true);
    let svg = report_svg(&r);
    assert_well_formed(&svg, &[]);
    assert_eq!(svg.matches("<g class=\"workload\"").count(), 2);
    let headers = series_texts(&svg);
    assert_eq!(headers.len(), 3, "the probe and two workloads: {headers:?}");
    assert!(
        headers[0].starts_with("probe — the library"),
        "{}",
        headers[0]
    );
    assert!(!headers[0].contains("SLO judged"), "{}", headers[0]);
    let orders = &headers[1];
    for needle in [
        "orders — SLO judged on it",
        "RTO 3.250s",
        "longest write gap 3.300s",
        "lost 1",
    ] {
        assert!(orders.contains(needle), "{needle:?} not in {orders:?}");
    }
    let audit = &headers[2];
    assert!(
        audit.starts_with("audit &lt;log&gt; — RTO 3.250s"),
        "{audit}"
    );
    assert!(audit.contains("lost: not checked"), "{audit}");
    assert!(!audit.contains("SLO judged"), "{audit}");
    // Every attempt of each workload, in the probe's colours: its own
    // failures by class (the SQLSTATE read from the error), the lost write
    // ringed, its RTO bracketed after the fault it recovered from and open
    // after the one it did not.
    let ack = r.workloads[0]
        .history
        .iter()
        .filter(|h| h.outcome == AttemptOutcome::Acknowledged)
        .count();
    assert_eq!(drawn(&svg, "workload-acknowledged"), 2 * ack);
    assert_eq!(
        drawn(&svg, "workload-failed"),
        2 * r
            .history
            .iter()
            .filter(|h| h.outcome == AttemptOutcome::Failed)
            .count()
    );
    assert!(
        svg.contains(&format!(
            "class=\"workload-failed\" data-count=\"{}\"",
            r.history
                .iter()
                .filter(|h| h.sqlstate.as_deref() == Some("25006"))
                .count()
        )) && svg.contains(&format!("stroke=\"{}\"", palette::READ_ONLY)),
        "read-only failures of a workload"
    );
    assert_eq!(drawn(&svg, "workload-lost"), 1);
    assert_eq!(svg.matches("<path class=\"workload-rto\"").count(), 4);
    assert!(svg.contains("orders: RTO 3.250s after fault 1"));
    assert!(svg.contains("orders: RTO none (no recovery) after fault 2"));
    // The probe's own paths still count the probe's attempts only.
    assert_eq!(
        drawn(&svg, "acknowledged"),
        r.history
            .iter()
            .filter(|h| h.outcome == AttemptOutcome::Acknowledged)
            .count()
    );
    // The legend counts both.
    assert!(svg.contains(&format!(
        "acknowledged (probe {ack}, workloads {})",
        2 * ack
    )));
    assert!(svg.contains("acknowledged but lost (probe 2, workloads 1)"));
}

#[test]
fn the_summary_says_which_series_the_slo_was_judged_on() {
    let on_orders = report_svg(&with_workloads(true));
    assert!(
        on_orders.contains("SLO judged on workload `orders` (RTO 3.250s, max 3.000s)"),
        "the judged workload and its RTO in the summary"
    );
    assert!(on_orders.contains("probe RTO 3.100s"));
    let on_probe = report_svg(&with_workloads(false));
    assert!(on_probe.contains("SLO judged on the probe · probe RTO 3.100s (max 3.000s)"));
    assert!(!on_probe.contains("judged on workload"));
    let headers = series_texts(&on_probe);
    assert!(headers[0].ends_with("SLO judged on it"), "{}", headers[0]);
    // Each summary line fits the picture.
    for line in on_orders
        .split("font-size=\"12\">")
        .skip(1)
        .filter_map(|t| t.split("</text>").next())
    {
        assert!(
            ML + text_width(line, 12.0) <= W - MR,
            "summary line too long: {line}"
        );
    }
}

#[test]
fn the_page_has_a_row_per_workload() {
    let r = with_workloads(true);
    let html = report_html(&r);
    assert_well_formed(&html, &["meta"]);
    for needle in [
        "<td>SLO judged on</td><td><strong>workload `orders`</strong>: its RTO against max_rto 3.000s",
        "<td>workload orders (SLO)</td>",
        "<td>workload audit &lt;log&gt;</td>",
        "RTO 3.250s</span> (by fault: 3.250s, none)",
        "lost 1</span> (id-1-7)",
        "lost: not checked",
        "pool timed out ×300",
        "median latency 4.0 ms, p99 9.5 ms",
        "<td>probe RTO</td>",
        "<td>probe lost</td>",
    ] {
        assert!(html.contains(needle), "{needle:?} missing");
    }
    let on_probe = report_html(&with_workloads(false));
    assert!(on_probe.contains("<strong>the probe</strong>: the probe's RTO against max_rto"));
}

#[test]
fn a_report_without_workloads_has_no_lanes_and_names_no_series() {
    let r = sample();
    assert!(r.workloads.is_empty());
    let svg = report_svg(&r);
    let html = report_html(&r);
    for doc in [&svg, &html] {
        assert!(!doc.contains("class=\"workload"));
        assert!(!doc.contains("class=\"series\""));
        assert!(!doc.contains("judged on"));
        assert!(!doc.contains("probe RTO"));
    }
    assert!(html.contains("<td>RTO</td>"));
    // The lanes take room only when there are workloads.
    let height = |svg: &str| -> f64 {
        svg.split("height=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap()
    };
    assert!(height(&report_svg(&with_workloads(true))) >= height(&svg) + 2.0 * 48.0);
}
