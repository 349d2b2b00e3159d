//! The application's workloads on the timeline: a lane per workload beneath
//! the probe's plot, on the same time axis and in the same colours — its
//! acknowledged writes as dots and indeterminate ones as diamonds on one row,
//! its failures by class on a row beneath, its lost writes ringed, its RTO
//! after each fault as a bracket — headed by its name, RTO, longest write
//! gap and lost writes. Whether the SLO was judged on it or on the probe is
//! said on its lane and on the probe's plot.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::super::{HALO, INK, MUTED, W, clip, dur, esc, palette, text, text_width};
use super::{Class, Layout, View, counts_of, judged_workload, rto_words};
use crate::report::{Report, WorkloadRecord};

/// The height of a workload's lane.
pub(super) const LANE_H: f64 = 48.0;

/// The offsets within a lane: the header's baseline, the row of acknowledged
/// and indeterminate attempts, the row of failures.
const HEADER_Y: f64 = 13.0;
const ACK_Y: f64 = 25.0;
const FAILED_Y: f64 = 38.0;

/// The probe's label above its plot, and each workload's lane; nothing
/// without workloads.
pub(super) fn draw(o: &mut String, r: &Report, view: View, l: &Layout) {
    let Some(sy) = l.series_y else {
        return;
    };
    let judged = judged_workload(r).is_none();
    let probe = format!(
        "the library's own writes · RTO {} · write gap {}{}",
        rto_words(r.rto_ms, r),
        r.write_gap_ms.map_or_else(|| "none".into(), dur),
        if judged { " · SLO judged on it" } else { "" }
    );
    header(o, view, sy, "probe", &probe, judged);
    for (i, w) in r.workloads.iter().enumerate() {
        lane(o, r, w, view, l.lanes_top + i as f64 * LANE_H);
    }
}

/// A series' name (bold) and its figures at baseline `y`, cut to fit the
/// width; the name in the failed colour if the SLO was judged on it and
/// not met.
fn header(o: &mut String, view: View, y: f64, name: &str, figures: &str, judged: bool) {
    let name = clip(name, 40);
    let room = W - 4.0 - view.x0 - text_width(&name, 11.5) - text_width(" — ", 11.0);
    let mut figures = figures.to_string();
    while text_width(&figures, 11.0) > room && figures.contains(" · ") {
        // Drop the last figure rather than clip one in the middle.
        if let Some(i) = figures.rfind(" · ") {
            figures.truncate(i);
        }
    }
    let max_chars = (room / (11.0 * 0.56)).floor().max(1.0) as usize;
    let figures = clip(&figures, max_chars);
    w!(
        o,
        "<text class=\"{}series\" x=\"{:.1}\" y=\"{y:.1}\" font-size=\"11\" {HALO}><tspan font-weight=\"700\" fill=\"{}\">{}</tspan><tspan fill=\"{MUTED}\"> — {}</tspan></text>",
        view.class(),
        view.x0,
        if judged { INK } else { MUTED },
        esc(&name),
        esc(&figures)
    );
}

/// A workload's figures, as its lane's header says them.
fn figures(r: &Report, w: &WorkloadRecord) -> String {
    let c = &w.writes;
    format!(
        "{}RTO {} · longest write gap {} · {} · {} attempts: {} acknowledged, {} failed, {} \
         indeterminate",
        if w.slo { "SLO judged on it · " } else { "" },
        rto_words(w.rto_ms, r),
        w.write_gap_ms.map_or_else(|| "none".into(), dur),
        if w.verified {
            format!("lost {}", c.lost)
        } else {
            "lost: not checked".into()
        },
        c.attempted,
        c.acknowledged,
        c.failed,
        c.indeterminate
    )
}

/// One workload's lane from `top`.
fn lane(o: &mut String, r: &Report, w: &WorkloadRecord, view: View, top: f64) {
    let (xs, x0, x1) = (view.xs, view.x0, view.x1);
    let class = view.class();
    let (ya, yf) = (top + ACK_Y, top + FAILED_Y);
    w!(
        o,
        "<g class=\"{class}workload\" data-name=\"{}\"><rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#C8C8C8\" stroke-width=\"0.8\"/>",
        esc(&w.name),
        ya - 7.0,
        x1 - x0,
        yf - ya + 14.0
    );
    header(o, view, top + HEADER_Y, &w.name, &figures(r, w), w.slo);
    text(
        o,
        x0 - 6.0,
        ya + 3.5,
        "end",
        &format!("fill=\"{MUTED}\" font-size=\"10.5\""),
        "acknowledged",
    );
    text(
        o,
        x0 - 6.0,
        yf + 3.5,
        "end",
        &format!("fill=\"{MUTED}\" font-size=\"10.5\""),
        "failed",
    );
    let counts = counts_of(&w.history);
    let lost: HashSet<&str> = w.lost.iter().map(String::as_str).collect();
    let mut paths: [String; 6] = Default::default();
    let mut lost_path = String::new();
    for h in &w.history {
        let c = Class::of(h);
        let x = xs.clamped(h.started_ms);
        let p = &mut paths[c.index()];
        match c {
            Class::Acknowledged => {
                w!(p, "M{x:.1} {ya:.1}h0");
                if h.identity.as_deref().is_some_and(|id| lost.contains(id)) {
                    w!(
                        lost_path,
                        "M{:.1} {ya:.1}a5.5 5.5 0 1 0 11 0a5.5 5.5 0 1 0-11 0",
                        x - 5.5
                    );
                }
            }
            Class::Indeterminate => w!(p, "M{x:.1} {:.1}l4 4-4 4-4-4z", ya - 4.0),
            _ => {
                let wd = (xs.clamped(h.finished_ms) - x).max(1.2);
                w!(p, "M{x:.1} {yf:.1}h{wd:.1}");
            }
        }
    }
    for c in Class::ALL {
        let d = &paths[c.index()];
        if d.is_empty() {
            continue;
        }
        let n = counts[c.index()];
        let what = esc(&format!("{n} operations of {}: {}", w.name, c.label()));
        match c {
            Class::Acknowledged => w!(
                o,
                "<path class=\"{class}workload-acknowledged\" data-count=\"{n}\" d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"3.4\" stroke-linecap=\"round\"><title>{what}</title></path>",
                c.colour()
            ),
            Class::Indeterminate => w!(
                o,
                "<path class=\"{class}workload-indeterminate\" data-count=\"{n}\" d=\"{d}\" fill=\"{}\" stroke=\"#FFFFFF\" stroke-width=\"0.8\"><title>{what}</title></path>",
                c.colour()
            ),
            _ => w!(
                o,
                "<path class=\"{class}workload-failed\" data-count=\"{n}\" d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"8\"><title>{what}</title></path>",
                c.colour()
            ),
        }
    }
    if !lost_path.is_empty() {
        w!(
            o,
            "<path class=\"{class}workload-lost\" d=\"{lost_path}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"><title>{}</title></path>",
            palette::LOST,
            esc(&format!(
                "{} acknowledged writes of {} lost",
                lost.len(),
                w.name
            ))
        );
    }
    rto_brackets(o, r, w, view, ya);
    o.push_str("</g>");
}

/// The workload's RTO after each fault: a bracket from the injection to its
/// first acknowledged operation after it (open at the end without one, or
/// when that is beyond the view), on
/// the row of its acknowledged writes — across the gap in them.
fn rto_brackets(o: &mut String, r: &Report, w: &WorkloadRecord, view: View, y: f64) {
    let class = view.class();
    for (i, f) in r.faults.iter().enumerate() {
        let inj = f.injected_at.ms_since(r.origin);
        let xa = view.xs.clamped(inj);
        let rto = w.fault_rto_ms.get(i).copied().flatten();
        // Open when it did not recover, or after the view's end.
        let (xb, open) = match rto {
            Some(v) => (view.xs.clamped(inj + v).max(xa + 1.0), inj + v > view.t1),
            None => (view.x1, true),
        };
        let colour = match rto {
            Some(v) if v <= r.slo.max_rto_ms => INK,
            _ => palette::FAILED,
        };
        w!(
            o,
            "<path class=\"{class}workload-rto\" d=\"M{xa:.1} {:.1}v10M{xa:.1} {y:.1}H{xb:.1}{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"><title>{}</title></path>",
            y - 5.0,
            if open {
                String::new()
            } else {
                format!("M{xb:.1} {:.1}v10", y - 5.0)
            },
            esc(&format!(
                "{}: RTO {} after fault {} ({})",
                w.name,
                rto.map_or_else(|| "none (no recovery)".into(), dur),
                i + 1,
                f.kind
            ))
        );
    }
}

/// How many attempts of each class all workloads made, and how many of
/// their acknowledged writes were lost.
pub(super) fn totals(r: &Report) -> ([u64; 6], usize) {
    let mut n = [0u64; 6];
    let mut lost = 0;
    for w in &r.workloads {
        for (a, b) in n.iter_mut().zip(counts_of(&w.history)) {
            *a += b;
        }
        lost += w.lost.len();
    }
    (n, lost)
}
