//! A report's timeline: every attempt of the probe over time, with the
//! faults, leader changes and timeline switches, the RTO and write gap
//! brackets and the RTO's phases above the plot, the time axis and the legend
//! beneath; a lane per workload under the plot. When a fault's outage is
//! too short for the run to show it (or its labels), a close-up of it
//! follows the legend. `lanes` places and draws what is above the plot,
//! `plot` the attempts, `workloads` their lanes, `legend` the legend,
//! `closeup` the close-ups; this file lays them out.

mod closeup;
mod lanes;
mod legend;
mod plot;
mod workloads;

use std::fmt::Write as _;

use super::{
    Lin, ML, MR, MUTED, W, axis, clip, dur, esc, palette, signed, svg_open, text, text_width, ticks,
};
use crate::report::{AttemptOutcome, HistoryEntry, PhaseRecord, Report, WorkloadRecord};
use crate::timeline::EventKind;
use lanes::Lanes;
use legend::Legend;
use plot::LatencyScale;

/// What became of an attempt, finer than its outcome: failures by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    Acknowledged,
    ReadOnly,
    ShuttingDown,
    CannotConnect,
    OtherFailure,
    Indeterminate,
}

impl Class {
    pub(super) const ALL: [Class; 6] = [
        Class::Acknowledged,
        Class::ReadOnly,
        Class::ShuttingDown,
        Class::CannotConnect,
        Class::OtherFailure,
        Class::Indeterminate,
    ];

    /// The class of an attempt of the probe or of a workload. A workload's
    /// failure has its SQLSTATE in its error's words, if anywhere (`…
    /// (SQLSTATE 25006)`); one without is an other error, not a failure to
    /// connect (the application's error may be anything).
    pub(super) fn of(e: &HistoryEntry) -> Class {
        match e.outcome {
            AttemptOutcome::Acknowledged => Class::Acknowledged,
            AttemptOutcome::Indeterminate => Class::Indeterminate,
            AttemptOutcome::Failed => match e
                .sqlstate
                .as_deref()
                .or_else(|| e.error.as_deref().and_then(sqlstate_in))
            {
                None if e.error.is_some() => Class::OtherFailure,
                None => Class::CannotConnect,
                Some("25006") => Class::ReadOnly,
                Some("57P01" | "57P02" | "57P03") => Class::ShuttingDown,
                Some(_) => Class::OtherFailure,
            },
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }

    pub(super) fn is_failure(self) -> bool {
        !matches!(self, Class::Acknowledged | Class::Indeterminate)
    }

    pub(super) fn colour(self) -> &'static str {
        match self {
            Class::Acknowledged => palette::ACKNOWLEDGED,
            Class::ReadOnly => palette::READ_ONLY,
            Class::ShuttingDown => palette::SHUTTING_DOWN,
            Class::CannotConnect => palette::CANNOT_CONNECT,
            Class::OtherFailure => palette::OTHER_FAILURE,
            Class::Indeterminate => palette::INDETERMINATE,
        }
    }

    /// The legend's words.
    pub(super) fn label(self) -> &'static str {
        match self {
            Class::Acknowledged => "acknowledged",
            Class::ReadOnly => "failed: read-only (25006)",
            Class::ShuttingDown => "failed: shutting down (57P01/57P03)",
            Class::CannotConnect => "failed: cannot connect",
            Class::OtherFailure => "failed: other error",
            Class::Indeterminate => "indeterminate",
        }
    }

    /// The name of its band.
    pub(super) fn band(self) -> &'static str {
        match self {
            Class::ReadOnly => "read-only",
            Class::ShuttingDown => "shutting down",
            Class::CannotConnect => "cannot connect",
            Class::OtherFailure => "other error",
            Class::Acknowledged => "acknowledged",
            Class::Indeterminate => "indeterminate",
        }
    }
}

/// The SQLSTATE named in an error's words (`SQLSTATE 25006`), if any.
fn sqlstate_in(error: &str) -> Option<&str> {
    let (_, rest) = error.split_once("SQLSTATE ")?;
    let code = rest.get(..5)?;
    code.chars()
        .all(|c| c.is_ascii_alphanumeric())
        .then_some(code)
}

/// A vertical marker: a leader change or a timeline switch.
struct Marker {
    t: f64,
    label: String,
    title: String,
    dashed: bool,
}

/// Leader changes (`new primary observed` naming another node than the last)
/// and timeline switches (the first acknowledged write on a higher timeline).
fn markers(r: &Report) -> Vec<Marker> {
    let mut out = Vec::new();
    let mut last: Option<String> = None;
    for e in &r.events {
        let EventKind::NewPrimary { node, .. } = &e.kind else {
            continue;
        };
        if last.as_ref() == Some(node) {
            continue;
        }
        let t = e.at.ms_since(r.origin);
        out.push(Marker {
            t,
            label: format!("primary → {node}"),
            title: format!(
                "{} {} ({})",
                signed(t),
                e.name(),
                e.detail_text().unwrap_or_default()
            ),
            dashed: false,
        });
        last = Some(node.clone());
    }
    let mut tl: Option<u32> = None;
    for h in &r.history {
        if h.outcome != AttemptOutcome::Acknowledged {
            continue;
        }
        let Some(t) = h.timeline else { continue };
        match tl {
            Some(prev) if t > prev => {
                out.push(Marker {
                    t: h.started_ms,
                    label: format!("timeline {prev} → {t}"),
                    title: format!(
                        "{} first write acknowledged on timeline {t}{}",
                        signed(h.started_ms),
                        h.server
                            .as_ref()
                            .map(|s| format!(" by {s}"))
                            .unwrap_or_default()
                    ),
                    dashed: true,
                });
                tl = Some(t);
            }
            None => tl = Some(t),
            _ => {}
        }
    }
    out.sort_by(|a, b| a.t.total_cmp(&b.t));
    out
}

/// The time span to draw, in ms from the origin.
fn time_domain(r: &Report) -> (f64, f64) {
    let mut v = vec![r.window_start_ms, r.window_end_ms];
    for h in r
        .history
        .iter()
        .chain(r.workloads.iter().flat_map(|w| &w.history))
    {
        v.push(h.started_ms);
        v.push(h.finished_ms);
    }
    for f in &r.faults {
        v.push(f.injected_at.ms_since(r.origin));
        if let Some(h) = f.healed_at {
            v.push(h.ms_since(r.origin));
        }
        if let Some(rto) = f.rto_ms {
            v.push(f.injected_at.ms_since(r.origin) + rto);
        }
    }
    if let (Some(s), Some(g)) = (r.write_gap_start_ms, r.write_gap_ms) {
        v.push(s);
        v.push(s + g);
    }
    let v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi - lo >= 1.0 {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 1_000.0, lo + 1_000.0)
    } else {
        (-1_000.0, 1_000.0)
    };
    let pad = (hi - lo) * 0.012;
    (lo - pad, hi + pad)
}

/// The phases to shade, each with the index of its fault: every fault's, or
/// the report's when the faults have none (those belong to the fault whose
/// RTO is the report's).
fn phases_by_fault(r: &Report) -> Vec<(Option<usize>, &PhaseRecord)> {
    let per_fault: Vec<(Option<usize>, &PhaseRecord)> = r
        .faults
        .iter()
        .enumerate()
        .flat_map(|(i, f)| f.phases.iter().map(move |p| (Some(i), p)))
        .collect();
    if per_fault.is_empty() {
        let owner = r
            .faults
            .iter()
            .position(|f| f.rto_ms.is_some() && f.rto_ms == r.rto_ms);
        r.phases.iter().map(|p| (owner, p)).collect()
    } else {
        per_fault
    }
}

/// How many attempts of the probe of each class.
pub(super) fn class_counts(r: &Report) -> [u64; 6] {
    counts_of(&r.history)
}

/// How many attempts of each class in `history`.
fn counts_of(history: &[HistoryEntry]) -> [u64; 6] {
    let mut n = [0u64; 6];
    for h in history {
        n[Class::of(h).index()] += 1;
    }
    n
}

/// The workload the SLO's RTO was judged on, if any (else the probe).
pub(super) fn judged_workload(r: &Report) -> Option<&WorkloadRecord> {
    r.workloads.iter().find(|w| w.slo)
}

/// Which series the SLO was judged on, in words: `SLO judged on workload
/// `orders`` or `SLO judged on the probe`.
pub(super) fn judged_on(r: &Report) -> String {
    match judged_workload(r) {
        Some(w) => format!("SLO judged on workload `{}`", w.name),
        None => "SLO judged on the probe".into(),
    }
}

/// A fault's course in words, for titles: `injected +0.000s, healed
/// +2.000s, RTO 5.742s` (a slowdown without outage says so).
fn fault_course(f: &crate::report::FaultRecord, r: &Report) -> String {
    let at = |t: crate::timeline::Timestamp| signed(t.ms_since(r.origin));
    format!(
        "injected {}, {}, RTO {}",
        at(f.injected_at),
        f.healed_at
            .map_or_else(|| "not healed".into(), |h| format!("healed {}", at(h))),
        match (f.rto_ms, f.slowdown) {
            (Some(rto), _) => dur(rto),
            (None, Some(s)) if !s.outage => format!("none: {}", s.describe()),
            (None, _) => rto_words(None, r),
        }
    )
}

/// `kind`, `mode` and ` on victim`, as the titles name a fault.
fn fault_name(f: &crate::report::FaultRecord) -> (&str, &str, String) {
    let victim = f
        .victim
        .as_ref()
        .map(|v| format!(" on {v}"))
        .unwrap_or_default();
    (&f.kind, &f.mode, victim)
}

/// An RTO in words: its value, or why there is none.
fn rto_words(rto: Option<f64>, r: &Report) -> String {
    match (rto, r.faults.is_empty()) {
        (Some(v), _) => dur(v),
        (None, true) => "n/a (no fault)".into(),
        (None, false) if r.only_slowdowns() => "none (no outage, a slowdown)".into(),
        (None, false) => "none (no recovery)".into(),
    }
}

/// The report's key figures in one line. With workloads, it starts with the
/// series the SLO was judged on (and that series' RTO), and the figures
/// after it are the probe's.
pub(crate) fn summary_words(r: &Report) -> String {
    let rto = rto_words(r.rto_ms, r);
    let gap = r.write_gap_ms.map_or_else(|| "none".into(), dur);
    let w = &r.writes;
    let head = if r.workloads.is_empty() {
        format!("RTO {rto} (max {})", dur(r.slo.max_rto_ms))
    } else if let Some(judged) = judged_workload(r) {
        format!(
            "{} (RTO {}, max {}) · probe RTO {rto}",
            judged_on(r),
            rto_words(judged.rto_ms, r),
            dur(r.slo.max_rto_ms)
        )
    } else {
        format!(
            "{} · probe RTO {rto} (max {})",
            judged_on(r),
            dur(r.slo.max_rto_ms)
        )
    };
    format!(
        "{head} · write gap {gap} · {} attempts: {} acknowledged, {} failed, {} \
         indeterminate · {} lost · split-brain {}",
        w.attempted,
        w.acknowledged,
        w.failed,
        w.indeterminate,
        w.lost,
        if r.split_brain_writes == 0 {
            "none".to_string()
        } else {
            format!("{} writes", r.split_brain_writes)
        }
    )
}

/// The report's timeline as a standalone SVG document, 1200 px wide: every
/// write attempt over time (acknowledged and indeterminate by commit latency,
/// failed by class on bands), faults from injection to healing, leader
/// changes and timeline switches, the RTO and the write gap, and the RTO's
/// phases.
pub fn report_svg(r: &Report) -> String {
    timeline_svg(r, false)
}

/// The report's timeline without its title, with a shorter plot: for pages
/// that stack many (a set of runs).
pub fn report_svg_compact(r: &Report) -> String {
    timeline_svg(r, true)
}

/// The horizontal frame of a timeline: the span drawn (ms from the report's
/// origin) and the pixels it spans.
#[derive(Clone, Copy)]
struct View {
    t0: f64,
    t1: f64,
    x0: f64,
    x1: f64,
    xs: Lin,
    /// What the time axis counts from (ms from the origin): 0, or a
    /// close-up's fault's injection.
    zero: f64,
    /// A close-up (its drawings carry other class names than the run's).
    closeup: bool,
}

impl View {
    /// `t0..t1` over the full width between the margins.
    fn new((t0, t1): (f64, f64)) -> Self {
        let (x0, x1) = (ML, W - MR);
        View {
            t0,
            t1,
            x0,
            x1,
            xs: Lin {
                d0: t0,
                d1: t1,
                r0: x0,
                r1: x1,
            },
            zero: 0.0,
            closeup: false,
        }
    }

    /// The prefix of class names: `closeup-` in a close-up (so that the
    /// run's own drawings can be told and counted apart).
    fn class(self) -> &'static str {
        if self.closeup { "closeup-" } else { "" }
    }

    /// Time ticks at round seconds from `zero` (as offsets from it), and
    /// their step.
    fn ticks(self) -> (f64, Vec<f64>) {
        ticks(
            self.t0 - self.zero,
            self.t1 - self.zero,
            self.x1 - self.x0,
            80.0,
        )
    }
}

/// Where the parts of a timeline go, top to bottom (px).
struct Layout {
    marker_top: f64,
    fault_top: f64,
    phase_top: f64,
    rto_top: f64,
    gap_top: f64,
    plot_top: f64,
    plot_h: f64,
    plot_bottom: f64,
    band_top: f64,
    band_row: f64,
    /// The probe's series label, above the plot (only with workloads).
    series_y: Option<f64>,
    /// The workloads' lanes, beneath the bands.
    lanes_top: f64,
    lanes_bottom: f64,
    axis_y: f64,
    legend_top: f64,
}

impl Layout {
    /// Below a header `header_h` high: the lanes' rows, the plot `plot_h`
    /// high (labelled when there are workloads), `bands` failure bands, a
    /// lane per workload, the axis, and `caption_h` for its caption.
    fn of(
        lanes: &Lanes,
        header_h: f64,
        plot_h: f64,
        caption_h: f64,
        bands: usize,
        workloads: usize,
    ) -> Layout {
        let mut y = header_h;
        let marker_top = y;
        y += lanes.markers_h();
        let fault_top = y;
        y += lanes.faults_h();
        let phase_top = y;
        y += lanes.phases_h();
        let rto_top = y;
        y += lanes.brackets_h();
        let gap_top = y;
        y += lanes.gap_h();
        let series_y = (workloads > 0).then_some(y + 14.0);
        if workloads > 0 {
            y += 16.0;
        }
        let plot_top = y + 8.0;
        let plot_bottom = plot_top + plot_h;
        let band_top = plot_bottom + 8.0;
        let band_row = 13.0;
        let band_bottom = band_top + bands as f64 * band_row;
        let lanes_top = band_bottom + if workloads > 0 { 8.0 } else { 0.0 };
        let lanes_bottom = lanes_top + workloads as f64 * workloads::LANE_H;
        let axis_y = lanes_bottom + 4.0;
        let legend_top = axis_y + caption_h;
        Layout {
            marker_top,
            fault_top,
            phase_top,
            rto_top,
            gap_top,
            plot_top,
            plot_h,
            plot_bottom,
            band_top,
            band_row,
            series_y,
            lanes_top,
            lanes_bottom,
            axis_y,
            legend_top,
        }
    }
}

/// The classes of failure that have attempts, each on a band of its own.
fn failure_bands(counts: &[u64; 6]) -> Vec<Class> {
    Class::ALL
        .into_iter()
        .filter(|c| c.is_failure() && counts[c.index()] > 0)
        .collect()
}

/// Events other than leader changes and injections within the view, with
/// their offset and hover text.
fn other_events(r: &Report, view: View) -> Vec<(f64, String)> {
    r.events
        .iter()
        .filter(|e| {
            !matches!(
                e.kind,
                EventKind::NewPrimary { .. } | EventKind::FaultInjected
            )
        })
        .map(|e| {
            let t = e.at.ms_since(r.origin);
            (
                t,
                format!(
                    "{} {}{}",
                    signed(t),
                    e.name(),
                    e.detail_text()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
            )
        })
        .filter(|(t, _)| *t >= view.t0 && *t <= view.t1)
        .collect()
}

/// PASSED or FAILED.
fn verdict(r: &Report) -> &'static str {
    if r.passed { "PASSED" } else { "FAILED" }
}

/// The summary in lines that fit the width (broken between figures).
fn summary_lines(r: &Report) -> Vec<String> {
    let room = W - MR - ML;
    let mut lines: Vec<String> = Vec::new();
    for part in summary_words(r).split(" · ") {
        match lines.last_mut() {
            Some(l) if text_width(&format!("{l} · {part}"), 12.0) <= room => {
                l.push_str(" · ");
                l.push_str(part);
            }
            _ => lines.push(part.to_string()),
        }
    }
    lines
}

/// The height of the title and summary.
fn header_h(r: &Report, compact: bool) -> f64 {
    if compact {
        10.0
    } else {
        60.0 + (summary_lines(r).len().max(1) - 1) as f64 * 16.0
    }
}

/// The scenario and verdict, and the summary beneath.
fn title(o: &mut String, r: &Report) {
    w!(
        o,
        "<text x=\"{ML:.0}\" y=\"24\" font-size=\"17\" font-weight=\"600\">{} <tspan fill=\"{}\">— {}</tspan></text>",
        esc(&clip(&r.scenario, 90)),
        if r.passed {
            palette::PASSED
        } else {
            palette::FAILED
        },
        verdict(r)
    );
    for (i, line) in summary_lines(r).iter().enumerate() {
        text(
            o,
            ML,
            44.0 + i as f64 * 16.0,
            "start",
            &format!("fill=\"{MUTED}\" font-size=\"12\""),
            line,
        );
    }
}

/// What the time axis counts from.
fn axis_caption(r: &Report) -> &'static str {
    match r.faults.len() {
        0 => "seconds since the measured window began (no fault)",
        1 => "seconds since the fault was injected",
        _ => "seconds since the first fault was injected",
    }
}

/// The timeline: the lanes above the plot, the plot and its bands, the axis
/// and the legend; under a title unless `compact`, and with a close-up of
/// each fault it cannot show well unless `compact`.
fn timeline_svg(r: &Report, compact: bool) -> String {
    let view = View::new(time_domain(r));
    let closeups = if compact {
        Vec::new()
    } else {
        closeup::crowded_faults(r, view)
    };
    let counts = class_counts(r);
    let bands = failure_bands(&counts);
    let lanes = Lanes::place(r, view, &closeups);
    let layout = Layout::of(
        &lanes,
        header_h(r, compact),
        if compact { 120.0 } else { 250.0 },
        if compact { 34.0 } else { 44.0 },
        bands.len(),
        r.workloads.len(),
    );
    let others = other_events(r, view);
    let legend = Legend::of(
        r,
        &counts,
        lanes.markers(),
        !others.is_empty(),
        view,
        layout.legend_top,
    );
    let scale = LatencyScale::of(r, layout.plot_top, layout.plot_bottom);
    let panels: Vec<closeup::Closeup> = closeups
        .iter()
        .map(|&i| closeup::Closeup::of(r, i, view))
        .collect();
    let overview_h = legend.bottom() + 16.0;

    let mut o = String::with_capacity(64 * 1024 + r.history.len() * 16);
    svg_open(
        &mut o,
        overview_h + panels.iter().map(closeup::Closeup::height).sum::<f64>(),
        &format!("{} — {}: {}", r.scenario, verdict(r), summary_words(r)),
    );
    if !compact {
        title(&mut o, r);
    }
    let drawn = Drawn {
        r,
        view,
        lanes: &lanes,
        layout: &layout,
        scale: &scale,
        bands: &bands,
        counts: &counts,
        others: &others,
    };
    drawn.body(&mut o);
    if !compact {
        text(
            &mut o,
            (view.x0 + view.x1) / 2.0,
            layout.axis_y + 31.0,
            "middle",
            &format!("fill=\"{MUTED}\""),
            axis_caption(r),
        );
    }
    legend.draw(&mut o);
    let mut y = overview_h;
    for p in &panels {
        p.draw(&mut o, y, &scale);
        y += p.height();
    }
    o.push_str("</svg>");
    o
}

/// A timeline's parts, placed: what [`Drawn::body`] draws.
struct Drawn<'a> {
    r: &'a Report,
    view: View,
    lanes: &'a Lanes,
    layout: &'a Layout,
    scale: &'a LatencyScale,
    bands: &'a [Class],
    counts: &'a [u64; 6],
    others: &'a [(f64, String)],
}

impl Drawn<'_> {
    /// Everything between the title and the axis's caption: phase shading,
    /// grid, lines, attempts, workloads' lanes, the lanes' labels, the axis.
    fn body(&self, o: &mut String) {
        let Drawn {
            r,
            view,
            lanes,
            layout,
            scale,
            bands,
            counts,
            others,
        } = *self;
        lanes.shade_phases(o, layout.phase_top, layout.lanes_bottom);
        let (step, offsets) = view.ticks();
        let tvals: Vec<f64> = offsets.iter().map(|t| t + view.zero).collect();
        plot::grid(o, view, &tvals, scale, layout, bands);
        plot::frame(o, r, view, scale, layout);
        lanes.draw_lines(o, view, layout, layout.lanes_bottom);
        plot::events(o, others, view, layout.plot_top);
        plot::attempts(o, r, view, scale, layout, bands, counts);
        plot::notes(o, r, view, scale, layout);
        workloads::draw(o, r, view, layout);
        lanes.draw_labels(o, view, layout);
        let xs = Lin {
            d0: view.t0 - view.zero,
            d1: view.t1 - view.zero,
            ..view.xs
        };
        axis(
            o,
            xs,
            &offsets,
            step,
            layout.axis_y,
            true,
            !r.faults.is_empty(),
        );
    }
}
