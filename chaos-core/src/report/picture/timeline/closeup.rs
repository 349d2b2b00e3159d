//! Close-ups of faults a run's timeline cannot show well: in a long run a
//! fault's outage is a few pixels wide at the edge of the picture, and its
//! phases, RTO and `max_rto` have no room for their words. Under the run's
//! timeline, each such fault gets a panel of its own, from a little before
//! its injection to a little after its recovery (or healing): the probe's
//! attempts, the markers, the phases, the RTO bracket with `max_rto`, and
//! the workloads' lanes, on a time axis counted from that injection.

use std::fmt::Write as _;

use super::super::{ML, MR, MUTED, W, clip, dur, esc, signed, text, text_width};
use super::lanes::Lanes;
use super::plot::LatencyScale;
use super::{
    Class, Drawn, Layout, View, class_counts, failure_bands, markers, other_events, rto_words,
};
use crate::report::{AttemptOutcome, HistoryEntry, Report};

/// An outage narrower than this share of the plot gets a close-up.
const NARROW: f64 = 0.15;

/// The faults (by index) that need a close-up in `view`: their outage (RTO
/// bracket) is narrower than [`NARROW`] of the plot, or the RTO's label fits
/// neither inside the bracket nor after its start.
pub(super) fn crowded_faults(r: &Report, view: View) -> Vec<usize> {
    let plot = view.x1 - view.x0;
    r.faults
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            let inj = f.injected_at.ms_since(r.origin);
            let xa = view.xs.clamped(inj);
            let xb = f.rto_ms.map_or(view.x1, |rto| view.xs.clamped(inj + rto));
            let tw = text_width(&format!("RTO {}", rto_words(f.rto_ms, r)), 11.5);
            xb - xa < NARROW * plot || (xb - xa < tw + 8.0 && xa + 2.0 + tw > W - 4.0)
        })
        .map(|(i, _)| i)
        .collect()
}

/// The span of fault `i`'s close-up (ms from the origin), within the run's
/// `t0..t1`: from a little before its injection to a little after the end of
/// its outage for the probe and every workload, and of its phases (the
/// run's end without recovery), with its healing and `max_rto` when they are
/// near (within three outages of the injection).
fn span(r: &Report, i: usize, t0: f64, t1: f64) -> (f64, f64) {
    let f = &r.faults[i];
    let inj = f.injected_at.ms_since(r.origin);
    let mut end = f.rto_ms.map_or(t1, |rto| inj + rto);
    for p in &f.phases {
        end = end.max(p.at.ms_since(r.origin) + p.ms);
    }
    for w in &r.workloads {
        if let Some(Some(rto)) = w.fault_rto_ms.get(i) {
            end = end.max(inj + rto);
        }
    }
    let near = inj + 3.0 * (end - inj).max(1.0);
    let healed = f.healed_at.map(|h| h.ms_since(r.origin));
    for t in [healed, Some(inj + r.slo.max_rto_ms)].into_iter().flatten() {
        if t <= near {
            end = end.max(t);
        }
    }
    let pad = ((end - inj) * 0.12).max(200.0);
    let (a, b) = ((inj - pad).max(t0), (end + pad).min(t1));
    if b - a >= 1.0 { (a, b) } else { (a, a + 1.0) }
}

/// The report as a close-up of fault `i` over `t0..t1` sees it: that fault
/// alone (with the report's phases if its RTO is the report's), the
/// attempts in the span (those drawn where they started, that started in
/// it; failures, drawn as bars, that overlap it), each workload's RTO for
/// that fault.
fn focus(r: &Report, i: usize, t0: f64, t1: f64) -> Report {
    let f = &r.faults[i];
    let within = |h: &HistoryEntry| match h.outcome {
        AttemptOutcome::Failed => h.finished_ms >= t0 && h.started_ms <= t1,
        _ => h.started_ms >= t0 && h.started_ms <= t1,
    };
    let mut fr = r.clone();
    fr.faults = vec![f.clone()];
    fr.fault = Some(f.clone());
    fr.rto_ms = f.rto_ms;
    if f.rto_ms.is_none() || f.rto_ms != r.rto_ms {
        fr.phases.clear();
    }
    fr.history.retain(within);
    fr.history.shrink_to_fit();
    if let (Some(s), Some(g)) = (fr.write_gap_start_ms, fr.write_gap_ms)
        && (s > t1 || s + g < t0)
    {
        fr.write_gap_start_ms = None;
        fr.write_gap_ms = None;
    }
    for w in &mut fr.workloads {
        w.history.retain(within);
        w.history.shrink_to_fit();
        let rto = w.fault_rto_ms.get(i).copied().flatten();
        w.fault_rto_ms = vec![rto];
        w.rto_ms = rto;
    }
    fr
}

/// A fault's close-up, placed.
pub(super) struct Closeup {
    report: Report,
    view: View,
    lanes: Lanes,
    layout: Layout,
    bands: Vec<Class>,
    counts: [u64; 6],
    others: Vec<(f64, String)>,
    title: String,
    caption: String,
}

impl Closeup {
    /// The close-up of fault `i` of `r`, whose timeline is `run`.
    pub(super) fn of(r: &Report, i: usize, run: View) -> Closeup {
        let f = &r.faults[i];
        let inj = f.injected_at.ms_since(r.origin);
        let (t0, t1) = span(r, i, run.t0, run.t1);
        let view = View {
            zero: inj,
            closeup: true,
            ..View::new((t0, t1))
        };
        let report = focus(r, i, t0, t1);
        // Markers from the whole run (a leader change is one against the
        // leader before the close-up's span), those within it.
        let lanes = Lanes::with_markers(&report, view, markers(r));
        let counts = class_counts(&report);
        let bands = failure_bands(&counts);
        let layout = Layout::of(
            &lanes,
            36.0,
            170.0,
            44.0,
            bands.len(),
            report.workloads.len(),
        );
        let others = other_events(r, view);
        let n = r.faults.len();
        let (kind, mode, victim) = super::fault_name(f);
        let title = format!(
            "Close-up of fault {} of {n}: {kind} ({mode}){victim} — {} (max {})",
            i + 1,
            super::fault_course(f, r),
            dur(r.slo.max_rto_ms)
        );
        let fit = ((W - MR - 4.0 - 24.0) / (13.0 * 0.56)).floor() as usize;
        let caption = if inj == 0.0 {
            format!("seconds since fault {} was injected", i + 1)
        } else {
            format!(
                "seconds since fault {} was injected ({} on the run's axis)",
                i + 1,
                signed(inj)
            )
        };
        Closeup {
            report,
            view,
            lanes,
            layout,
            bands,
            counts,
            others,
            title: clip(&title, fit),
            caption,
        }
    }

    /// Its height.
    pub(super) fn height(&self) -> f64 {
        self.layout.legend_top + 6.0
    }

    /// Draws it from `y` down, latencies on the run's decades (`scale`).
    pub(super) fn draw(&self, o: &mut String, y: f64, scale: &LatencyScale) {
        let l = &self.layout;
        w!(
            o,
            "<g class=\"closeup\" transform=\"translate(0 {y:.1})\"><line x1=\"24\" y1=\"8\" x2=\"{:.1}\" y2=\"8\" stroke=\"#B3B3B3\"/>",
            W - 24.0
        );
        w!(
            o,
            "<text x=\"24\" y=\"28\" font-size=\"13\" font-weight=\"700\">{}</text>",
            esc(&self.title)
        );
        let scale = scale.over(l.plot_top, l.plot_bottom);
        Drawn {
            r: &self.report,
            view: self.view,
            lanes: &self.lanes,
            layout: l,
            scale: &scale,
            bands: &self.bands,
            counts: &self.counts,
            others: &self.others,
        }
        .body(o);
        text(
            o,
            (ML + W - MR) / 2.0,
            l.axis_y + 31.0,
            "middle",
            &format!("fill=\"{MUTED}\""),
            &self.caption,
        );
        o.push_str("</g>");
    }
}
