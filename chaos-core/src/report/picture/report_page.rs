//! A report's HTML page: the verdict, the figures (the probe's, and a row
//! per workload), the timeline inline, and tables of the phases, faults,
//! attempts that were not acknowledged and events.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::timeline::{Class, class_counts, judged_on, judged_workload, report_svg};
use super::{dur, esc, list_box, page, palette, signed, verdict_badge};
use crate::Result;
use crate::report::json::{file_stem, write_file};
use crate::report::{AttemptOutcome, Report};

/// An HTML page with the report's timeline (inline SVG) and its figures:
/// verdict, RTO, write gap, phases, writes by outcome, lost, indeterminate,
/// split-brain, faults, events, violations and warnings.
pub fn report_html(r: &Report) -> String {
    let mut b = String::new();
    w!(
        b,
        "<h1>{} {}</h1>\n<p class=\"meta\">target {} ({} nodes) <code>{}</code> · run {} {}· started {}</p>\n",
        esc(&r.scenario),
        verdict_badge(r.passed),
        esc(&r.target.kind),
        r.target.nodes,
        esc(&r.target.rw_dsn),
        esc(&r.run_id),
        r.seed.map(|s| format!("· seed {s} ")).unwrap_or_default(),
        r.started_at
    );
    list_box(&mut b, "violations", "Violations", &r.violations);
    list_box(&mut b, "warnings", "Warnings", &r.warnings);
    figures_table(&mut b, r);
    b.push_str(&report_svg(r));
    b.push('\n');
    report_tables(&mut b, r);
    page(
        &format!(
            "{} — {}",
            r.scenario,
            if r.passed { "PASSED" } else { "FAILED" }
        ),
        &b,
    )
}

/// The figures, one row each. With workloads, first the series the SLO was
/// judged on and a row per workload, then the probe's figures named as the
/// probe's.
fn figures_table(b: &mut String, r: &Report) {
    let mut rows = workload_rows(r);
    let mut probe = timing_rows(r);
    probe.extend(write_rows(r));
    if !r.workloads.is_empty() {
        for (k, _) in &mut probe {
            if k != "phases" {
                *k = format!("probe {k}");
            }
        }
    }
    rows.extend(probe);
    rows.extend(run_rows(r));
    b.push_str("<table class=\"figures\">");
    for (k, v) in rows {
        w!(b, "<tr><td>{}</td><td>{v}</td></tr>", esc(&k));
    }
    b.push_str("</table>\n");
}

/// Which series the SLO was judged on, and a row per workload: its RTO (per
/// fault too when there are several), longest write gap, lost writes (or
/// that they were not checked), attempts, latency and commonest errors.
/// Nothing without workloads.
fn workload_rows(r: &Report) -> Vec<(String, String)> {
    if r.workloads.is_empty() {
        return Vec::new();
    }
    let mut rows = vec![(
        "SLO judged on".to_string(),
        format!(
            "<strong>{}</strong>: {} RTO against max_rto {} (lost writes: the probe's and every \
             verified workload's)",
            esc(judged_on(r)
                .strip_prefix("SLO judged on ")
                .unwrap_or_default()),
            if judged_workload(r).is_some() {
                "its"
            } else {
                "the probe's"
            },
            dur(r.slo.max_rto_ms)
        ),
    )];
    for w in &r.workloads {
        let rto = match (w.rto_ms, r.faults.is_empty()) {
            (Some(v), _) => format!(
                "<span class=\"{}\">RTO {}</span>",
                if v <= r.slo.max_rto_ms { "good" } else { "bad" },
                dur(v)
            ),
            (None, true) => "RTO n/a (no fault)".into(),
            (None, false) => "<span class=\"bad\">RTO none (no recovery)</span>".into(),
        };
        let per_fault = if w.fault_rto_ms.len() > 1 {
            format!(
                " (by fault: {})",
                w.fault_rto_ms
                    .iter()
                    .map(|v| v.map_or_else(|| "none".into(), dur))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        let c = &w.writes;
        let lost = if w.verified {
            format!(
                "<span class=\"{}\">lost {}</span>{}",
                if c.lost == 0 { "good" } else { "bad" },
                c.lost,
                match w.lost.as_slice() {
                    [] => String::new(),
                    ids => esc(&format!(
                        " ({}{})",
                        ids[..ids.len().min(5)].join(", "),
                        if ids.len() > 5 { ", …" } else { "" }
                    )),
                }
            )
        } else {
            "lost: not checked".into()
        };
        let errors = w
            .errors
            .iter()
            .take(3)
            .map(|e| format!("{} ×{}", e.message, e.count))
            .collect::<Vec<_>>()
            .join("; ");
        rows.push((
            format!("workload {}{}", w.name, if w.slo { " (SLO)" } else { "" }),
            format!(
                "{rto}{per_fault} · longest write gap {} · {lost} · {} attempted, {} acknowledged, \
                 {} failed, {} indeterminate · median latency {:.1} ms, p99 {:.1} ms{}{}",
                w.write_gap_ms.map_or_else(|| "none".into(), dur),
                c.attempted,
                c.acknowledged,
                c.failed,
                c.indeterminate,
                w.median_latency_ms,
                w.p99_latency_ms,
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(" · errors: {}", esc(&errors))
                },
                if w.panics.is_empty() {
                    String::new()
                } else {
                    format!(" · <span class=\"bad\">{} panics</span>", w.panics.len())
                }
            ),
        ));
    }
    rows
}

/// The RTO (against the SLO), the write gap and the phases.
fn timing_rows(r: &Report) -> Vec<(String, String)> {
    let rto = match (r.rto_ms, r.faults.is_empty()) {
        (Some(v), _) => format!(
            "<span class=\"{}\">{}</span>",
            if v <= r.slo.max_rto_ms { "good" } else { "bad" },
            dur(v)
        ),
        (None, true) => "n/a (no fault)".into(),
        (None, false) => "<span class=\"bad\">none (no recovery)</span>".into(),
    };
    let mut rows: Vec<(String, String)> = vec![
        (
            "RTO".into(),
            format!(
                "{rto} (max {}{})",
                dur(r.slo.max_rto_ms),
                r.slo
                    .max_rto_p95_ms
                    .map(|p| format!(", p95 of a set {}", dur(p)))
                    .unwrap_or_default()
            ),
        ),
        (
            "write gap".into(),
            match (r.write_gap_ms, r.write_gap_start_ms) {
                (Some(g), Some(s)) => format!("{} from {}", dur(g), signed(s)),
                (Some(g), None) => dur(g),
                _ => "none".into(),
            },
        ),
    ];
    if !r.phases.is_empty() {
        rows.push((
            "phases".into(),
            esc(&r
                .phases
                .iter()
                .map(|p| format!("{} {:.0} ms", p.name, p.ms))
                .collect::<Vec<_>>()
                .join(" → ")),
        ));
    }
    rows
}

/// Attempts by outcome and class, lost writes, indeterminate outcomes.
fn write_rows(r: &Report) -> Vec<(String, String)> {
    let w_ = &r.writes;
    let mut rows: Vec<(String, String)> = Vec::new();
    let counts = class_counts(r);
    let failed_by: Vec<String> = Class::ALL
        .into_iter()
        .filter(|c| c.is_failure() && counts[c.index()] > 0)
        .map(|c| format!("{} {}", counts[c.index()], c.band()))
        .collect();
    rows.push((
        "writes".into(),
        format!(
            "{} attempted, {} acknowledged, {} failed{}, {} indeterminate",
            w_.attempted,
            w_.acknowledged,
            w_.failed,
            if failed_by.is_empty() {
                String::new()
            } else {
                format!(" ({})", failed_by.join(", "))
            },
            w_.indeterminate
        ),
    ));
    let allowed = match (r.slo.max_lost_writes, r.slo.max_lost_window_ms) {
        (_, Some(win)) => format!("window {}", dur(win)),
        (n, None) => n.unwrap_or(0).to_string(),
    };
    rows.push((
        "lost".into(),
        format!(
            "<span class=\"{}\">{}</span> acknowledged writes (max {allowed}){}",
            match (r.slo.max_lost_window_ms, r.slo.max_lost_writes) {
                (Some(win), _) if r.lost_window_ms > win => "bad",
                (None, n) if w_.lost > n.unwrap_or(0) => "bad",
                _ => "good",
            },
            w_.lost,
            if w_.failed_but_present > 0 {
                format!(
                    "; {} writes reported failed were committed",
                    w_.failed_but_present
                )
            } else {
                String::new()
            }
        ),
    ));
    rows.push((
        "indeterminate".into(),
        format!("{} ({})", w_.indeterminate, w_.indeterminate_outcomes()),
    ));
    rows
}

/// Split-brain, the faults, and how precise the figures are.
fn run_rows(r: &Report) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    rows.push((
        "split-brain".into(),
        if r.split_brain_writes == 0 {
            "none".into()
        } else {
            format!(
                "<span class=\"bad\">{} writes on an old timeline</span>",
                r.split_brain_writes
            )
        },
    ));
    rows.push((
        "faults".into(),
        if r.faults.is_empty() {
            "none injected or marked".into()
        } else {
            esc(&r
                .faults
                .iter()
                .map(|f| {
                    format!(
                        "{} ({}){}",
                        f.kind,
                        f.mode,
                        f.victim
                            .as_ref()
                            .map(|v| format!(" on {v}"))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; "))
        },
    ));
    rows.push((
        "resolution".into(),
        format!(
            "±{:.0} ms (median commit latency {:.1} ms)",
            r.resolution_ms, r.median_latency_ms
        ),
    ));
    rows
}

fn report_tables(b: &mut String, r: &Report) {
    phases_table(b, r);
    faults_table(b, r);
    unacknowledged_table(b, r);
    events_table(b, r);
}

/// The RTO's phases: length, start and share of the RTO.
fn phases_table(b: &mut String, r: &Report) {
    if r.phases.is_empty() {
        return;
    }
    let rto = r.rto_ms.unwrap_or(0.0);
    b.push_str("<h2>RTO phases</h2><table><tr><th>phase</th><th class=\"n\">ms</th><th class=\"n\">from</th><th class=\"n\">share</th></tr>");
    for p in &r.phases {
        w!(
            b,
            "<tr><td><span style=\"display:inline-block;width:10px;height:10px;background:{};border:1px solid #8C8C8C;margin-right:6px\"></span>{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            palette::phase(&p.name),
            esc(&p.name),
            p.ms,
            signed(p.at.ms_since(r.origin)),
            if rto > 0.0 {
                format!("{:.0} %", p.ms / rto * 100.0)
            } else {
                String::new()
            }
        );
    }
    b.push_str("</table>\n");
}

/// Each fault: kind, mode, victim, injection, healing and RTO.
fn faults_table(b: &mut String, r: &Report) {
    if r.faults.is_empty() {
        return;
    }
    b.push_str("<h2>Faults</h2><table><tr><th>kind</th><th>mode</th><th>victim</th><th class=\"n\">injected</th><th class=\"n\">healed</th><th class=\"n\">RTO</th><th></th></tr>");
    for f in &r.faults {
        w!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&f.kind),
            esc(&f.mode),
            esc(f.victim.as_deref().unwrap_or("")),
            signed(f.injected_at.ms_since(r.origin)),
            f.healed_at
                .map_or_else(|| "not healed".into(), |h| signed(h.ms_since(r.origin))),
            f.rto_ms.map_or_else(|| "no recovery".into(), dur),
            if f.marked { "marked" } else { "" }
        );
    }
    b.push_str("</table>\n");
}

/// Failed attempts by SQLSTATE and indeterminate ones by reason.
fn unacknowledged_table(b: &mut String, r: &Report) {
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    let mut indeterminate: BTreeMap<String, u64> = BTreeMap::new();
    for h in &r.history {
        match h.outcome {
            AttemptOutcome::Failed => {
                *failed
                    .entry(
                        h.sqlstate
                            .clone()
                            .unwrap_or_else(|| "none (could not connect)".into()),
                    )
                    .or_default() += 1;
            }
            AttemptOutcome::Indeterminate => {
                let reason = h.reason.map_or_else(
                    || "unknown".to_string(),
                    |x| {
                        serde_json::to_value(x)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    },
                );
                *indeterminate.entry(reason).or_default() += 1;
            }
            AttemptOutcome::Acknowledged => {}
        }
    }
    if !failed.is_empty() || !indeterminate.is_empty() {
        b.push_str("<h2>Attempts that were not acknowledged</h2><table><tr><th>outcome</th><th>SQLSTATE or reason</th><th class=\"n\">attempts</th></tr>");
        for (k, n) in &failed {
            w!(
                b,
                "<tr><td>failed</td><td>{}</td><td class=\"n\">{n}</td></tr>",
                esc(k)
            );
        }
        for (k, n) in &indeterminate {
            w!(
                b,
                "<tr><td>indeterminate</td><td>{}</td><td class=\"n\">{n}</td></tr>",
                esc(k)
            );
        }
        b.push_str("</table>\n");
    }
}

/// Every event of the run.
fn events_table(b: &mut String, r: &Report) {
    if r.events.is_empty() {
        return;
    }
    b.push_str(
        "<h2>Events</h2><table><tr><th class=\"n\">at</th><th>event</th><th>detail</th></tr>",
    );
    for e in &r.events {
        w!(
            b,
            "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
            signed(e.at.ms_since(r.origin)),
            esc(e.name()),
            esc(e.detail_text().as_deref().unwrap_or(""))
        );
    }
    b.push_str("</table>\n");
}

/// Writes `dir/<scenario>.svg` and `dir/<scenario>.html`; returns their
/// paths, the SVG's first.
///
/// # Errors
/// [`crate::Error::ReportWrite`] naming the file.
pub fn write_report_html(r: &Report, dir: &Path) -> Result<[PathBuf; 2]> {
    let stem = file_stem(&r.scenario);
    let svg = write_file(dir, &format!("{stem}.svg"), report_svg(r).as_bytes())?;
    let html = write_file(dir, &format!("{stem}.html"), report_html(r).as_bytes())?;
    Ok([svg, html])
}
