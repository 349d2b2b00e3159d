//! The lanes above the timeline's plot, top to bottom: leader-change and
//! timeline-switch markers, fault bars, the RTO's phases, RTO brackets with
//! `max_rto`, and the write gap; each lane's labels placed in rows so that
//! none overlap, and none runs past the picture's right edge. A fault that
//! has a close-up of its own is labelled quietly here: its phases only where
//! their names fit inside, its `max_rto` without words.

use std::fmt::Write as _;

use super::super::{
    HALO, INK, MARKER, MUTED, Placed, Rows, W, clip, dur, esc, palette, place_beside, text,
    text_width,
};
use super::{Layout, Marker, View, markers, phases_by_fault};
use crate::report::Report;

/// A fault from injection to healing, with its label.
struct FaultBar {
    xa: f64,
    xb: f64,
    /// Not healed: the bar runs on to the plot's end.
    open: bool,
    label: String,
    title: String,
    /// The label is inside the bar.
    inside: bool,
    place: Placed,
}

/// A phase of the RTO; its label below the strip (`place`) when it does not
/// fit inside.
struct PhaseSeg {
    xa: f64,
    xb: f64,
    colour: &'static str,
    label: String,
    place: Option<Placed>,
}

/// A fault's RTO bracket, and its `max_rto` mark.
struct Bracket {
    xa: f64,
    xb: f64,
    /// No recovery: the bracket runs on to the plot's end.
    open: bool,
    label: String,
    colour: &'static str,
    place: Placed,
    max: MaxMark,
}

/// Where `max_rto` falls after the injection, and its label.
struct MaxMark {
    x: f64,
    /// Within the plot (else an arrow at its end).
    tick: bool,
    label: String,
    lx: f64,
    anchor: &'static str,
    /// The label above the bracket's line (rather than on it).
    above: bool,
}

/// The longest write gap, from `xa` to `xb`.
struct Gap {
    xa: f64,
    xb: f64,
    label: String,
}

/// Everything above the plot, placed.
pub(super) struct Lanes {
    markers: Vec<Marker>,
    mplaced: Vec<Placed>,
    mrows: usize,
    faults: Vec<FaultBar>,
    frows: usize,
    phases: Vec<PhaseSeg>,
    prows: usize,
    brackets: Vec<Bracket>,
    rrows: usize,
    gap: Option<Gap>,
}

impl Lanes {
    /// Places the lanes of `r` in `view`; the faults (by index) in `quiet`
    /// have close-ups of their own.
    pub(super) fn place(r: &Report, view: View, quiet: &[usize]) -> Lanes {
        Lanes::placed(r, view, quiet, markers(r))
    }

    /// Places the lanes of `r` in `view` with these `markers` (a close-up's:
    /// those of the whole run within its span).
    pub(super) fn with_markers(r: &Report, view: View, markers: Vec<Marker>) -> Lanes {
        Lanes::placed(r, view, &[], markers)
    }

    fn placed(r: &Report, view: View, quiet: &[usize], mut markers: Vec<Marker>) -> Lanes {
        // Only those within the view (a marker beyond it would stand in the
        // margin, its label cut off).
        markers.retain(|m| m.t >= view.t0 && m.t <= view.t1);
        let mut mrows = Rows::new(5);
        let mplaced = markers
            .iter()
            .map(|m| {
                place_beside(
                    &mut mrows,
                    view.xs.at(m.t),
                    text_width(&m.label, 11.0),
                    view.x1,
                )
            })
            .collect();
        let (faults, frows) = fault_bars(r, view);
        let (phases, prows) = phase_segments(r, view, quiet);
        let (brackets, rrows) = rto_brackets(r, view, quiet);
        Lanes {
            markers,
            mplaced,
            mrows: mrows.len(),
            faults,
            frows,
            phases,
            prows,
            brackets,
            rrows,
            gap: gap(r, view),
        }
    }

    /// The leader changes and timeline switches.
    pub(super) fn markers(&self) -> &[Marker] {
        &self.markers
    }

    /// The height of the markers' labels.
    pub(super) fn markers_h(&self) -> f64 {
        if self.mrows > 0 {
            self.mrows as f64 * 14.0 + 4.0
        } else {
            0.0
        }
    }

    /// The height of the fault bars.
    pub(super) fn faults_h(&self) -> f64 {
        if self.faults.is_empty() {
            0.0
        } else {
            self.frows as f64 * 18.0 + 4.0
        }
    }

    /// The height of the phase strip and its labels.
    pub(super) fn phases_h(&self) -> f64 {
        if self.phases.is_empty() {
            0.0
        } else {
            16.0 + self.prows as f64 * 13.0 + 4.0
        }
    }

    /// The height of the RTO brackets.
    pub(super) fn brackets_h(&self) -> f64 {
        self.rrows as f64 * 24.0
    }

    /// The height of the write gap's bracket.
    pub(super) fn gap_h(&self) -> f64 {
        if self.gap.is_some() { 24.0 } else { 0.0 }
    }

    /// The phases' shading, from the phase strip at `top` down to `bottom`.
    pub(super) fn shade_phases(&self, o: &mut String, top: f64, bottom: f64) {
        if self.phases.is_empty() {
            return;
        }
        o.push_str("<g>");
        for s in &self.phases {
            w!(
                o,
                "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
                s.xa,
                (s.xb - s.xa).max(0.8),
                bottom - top,
                s.colour
            );
        }
        o.push_str("</g>");
    }

    /// The faults' injection and healing lines and the markers' lines, from
    /// their lanes down to `bottom`.
    pub(super) fn draw_lines(&self, o: &mut String, view: View, l: &Layout, bottom: f64) {
        for f in &self.faults {
            let fy = l.fault_top + f.place.row as f64 * 18.0 + 15.0;
            w!(
                o,
                "<line x1=\"{:.1}\" y1=\"{fy:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\" stroke=\"{}\" stroke-width=\"1.5\"/>",
                f.xa,
                f.xa,
                palette::FAULT
            );
            if !f.open {
                w!(
                    o,
                    "<line x1=\"{:.1}\" y1=\"{fy:.1}\" x2=\"{:.1}\" y2=\"{bottom:.1}\" stroke=\"{}\" stroke-width=\"1\" stroke-dasharray=\"1 3\"/>",
                    f.xb,
                    f.xb,
                    palette::FAULT
                );
            }
        }
        for (m, p) in self.markers.iter().zip(&self.mplaced) {
            let x = view.xs.at(m.t);
            let top = l.marker_top + p.row as f64 * 14.0 + 3.0;
            w!(
                o,
                "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"{MARKER}\" stroke-width=\"1.2\"{}><title>{}</title></line>",
                if m.dashed {
                    " stroke-dasharray=\"5 3\""
                } else {
                    ""
                },
                esc(&m.title)
            );
        }
    }

    /// The lanes themselves, over the plot's lines: fault bars, the phase
    /// strip, RTO brackets, the write gap and the markers' labels.
    pub(super) fn draw_labels(&self, o: &mut String, view: View, l: &Layout) {
        self.draw_fault_bars(o, l.fault_top);
        self.draw_phase_strip(o, l.phase_top);
        self.draw_brackets(o, l.rto_top);
        self.draw_gap(o, l.gap_top, view.x1);
        self.draw_marker_labels(o, l.marker_top);
    }

    fn draw_fault_bars(&self, o: &mut String, top: f64) {
        for f in &self.faults {
            let by = top + f.place.row as f64 * 18.0 + 3.0;
            w!(
                o,
                "<g><title>{}</title><rect x=\"{:.1}\" y=\"{by:.1}\" width=\"{:.1}\" height=\"12\" fill=\"{}\"/>",
                esc(&f.title),
                f.xa,
                f.xb - f.xa,
                palette::FAULT
            );
            if f.open {
                w!(
                    o,
                    "<path d=\"M{:.1} {:.1}l6 6-6 6z\" fill=\"{}\"/>",
                    f.xb,
                    by,
                    palette::FAULT
                );
            }
            let extra = if f.inside {
                "fill=\"#FFFFFF\" font-size=\"10.5\" font-weight=\"600\"".to_string()
            } else {
                format!(
                    "fill=\"{}\" font-size=\"10.5\" font-weight=\"600\"",
                    palette::FAULT
                )
            };
            text(o, f.place.x, by + 9.5, f.place.anchor, &extra, &f.label);
            o.push_str("</g>");
        }
    }

    fn draw_phase_strip(&self, o: &mut String, top: f64) {
        for s in &self.phases {
            w!(
                o,
                "<rect x=\"{:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{}\" stroke=\"#8C8C8C\" stroke-width=\"0.6\"/>",
                s.xa,
                (s.xb - s.xa).max(0.8),
                s.colour
            );
        }
        for s in self.phases.iter().filter(|s| !s.label.is_empty()) {
            match &s.place {
                None => text(
                    o,
                    (s.xa + s.xb) / 2.0,
                    top + 10.5,
                    "middle",
                    "font-size=\"10\"",
                    &s.label,
                ),
                Some(p) => {
                    let ly = top + 14.0 + 11.0 + p.row as f64 * 13.0;
                    let cx = (s.xa + s.xb) / 2.0;
                    let tip = if p.anchor == "start" {
                        p.x - 2.0
                    } else {
                        p.x + 2.0
                    };
                    w!(
                        o,
                        "<path d=\"M{cx:.1} {:.1}V{:.1}H{tip:.1}\" fill=\"none\" stroke=\"#8C8C8C\" stroke-width=\"0.8\"/>",
                        top + 14.0,
                        ly - 3.5
                    );
                    text(
                        o,
                        p.x,
                        ly,
                        p.anchor,
                        &format!("font-size=\"10\" {HALO}"),
                        &s.label,
                    );
                }
            }
        }
    }

    fn draw_brackets(&self, o: &mut String, top: f64) {
        for b in &self.brackets {
            let by = top + b.place.row as f64 * 24.0 + 18.0;
            let m = &b.max;
            w!(
                o,
                "<path d=\"M{:.1} {by:.1}H{:.1}{}\" fill=\"none\" stroke=\"#8C8C8C\" stroke-dasharray=\"3 3\"/>",
                b.xa,
                m.x,
                if m.tick { "m0 -5v10" } else { "" }
            );
            if !m.label.is_empty() {
                text(
                    o,
                    m.lx,
                    by + if m.above { -5.0 } else { 3.5 },
                    m.anchor,
                    &format!("fill=\"{MUTED}\" font-size=\"10\" {HALO}"),
                    &m.label,
                );
            }
            w!(
                o,
                "<path d=\"M{:.1} {:.1}v12M{:.1} {by:.1}H{:.1}{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
                b.xa,
                by - 6.0,
                b.xa,
                b.xb,
                if b.open {
                    String::new()
                } else {
                    format!("M{:.1} {:.1}v12", b.xb, by - 6.0)
                },
                b.colour
            );
            text(
                o,
                b.place.x,
                by - 5.0,
                b.place.anchor,
                &format!(
                    "fill=\"{}\" font-size=\"11.5\" font-weight=\"700\" {HALO}",
                    b.colour
                ),
                &b.label,
            );
        }
    }

    fn draw_gap(&self, o: &mut String, top: f64, x1: f64) {
        let Some(Gap {
            xa: ga,
            xb: gb,
            label,
        }) = &self.gap
        else {
            return;
        };
        let (ga, gb) = (*ga, *gb);
        let gy = top + 18.0;
        let tw = text_width(label, 11.0);
        w!(
            o,
            "<path d=\"M{ga:.1} {:.1}v10M{ga:.1} {gy:.1}H{gb:.1}M{gb:.1} {:.1}v10\" fill=\"none\" stroke=\"{MUTED}\" stroke-width=\"1.5\"/>",
            gy - 5.0,
            gy - 5.0
        );
        let (tx, anchor, ty) = if gb - ga >= tw + 8.0 {
            ((ga + gb) / 2.0, "middle", gy - 5.0)
        } else if gb + 5.0 + tw <= x1 {
            (gb + 5.0, "start", gy + 4.0)
        } else {
            (ga - 5.0, "end", gy + 4.0)
        };
        text(
            o,
            tx,
            ty,
            anchor,
            &format!("fill=\"{MUTED}\" font-size=\"11\" font-weight=\"600\" {HALO}"),
            label,
        );
    }

    fn draw_marker_labels(&self, o: &mut String, top: f64) {
        for (m, p) in self.markers.iter().zip(&self.mplaced) {
            let ly = top + p.row as f64 * 14.0 + 11.0;
            w!(
                o,
                "<text x=\"{:.1}\" y=\"{ly:.1}\"{} fill=\"{MARKER}\" font-weight=\"600\" {HALO}><title>{}</title>{}</text>",
                p.x,
                if p.anchor == "start" {
                    String::new()
                } else {
                    format!(" text-anchor=\"{}\"", p.anchor)
                },
                esc(&m.title),
                esc(&m.label)
            );
        }
    }
}

/// The fault bars, each labelled inside, after or before it; with the rows
/// they take.
fn fault_bars(r: &Report, view: View) -> (Vec<FaultBar>, usize) {
    let (xs, x1) = (view.xs, view.x1);
    let rel = |t: crate::timeline::Timestamp| t.ms_since(r.origin);
    let mut frows = Rows::new(6);
    let faults = r
        .faults
        .iter()
        .map(|f| {
            let inj = rel(f.injected_at);
            let healed = f.healed_at.map(rel);
            let xa = xs.clamped(inj);
            let xb = healed.map_or(x1, |h| xs.clamped(h)).max(xa + 2.0);
            let label = format!(
                "{}{}{}{}",
                f.kind,
                if f.mode.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", clip(&f.mode, 40))
                },
                f.victim
                    .as_ref()
                    .map(|v| format!(" on {}", clip(v, 30)))
                    .unwrap_or_default(),
                if f.marked { " [marked]" } else { "" }
            );
            let (kind, mode, victim) = super::fault_name(f);
            let title = format!("{kind} {mode}{victim}: {}", super::fault_course(f, r));
            let tw = text_width(&label, 10.5);
            let inside = xb - xa >= tw + 10.0;
            let place = if inside {
                Placed {
                    row: frows.place(xa, xb),
                    x: xa + 5.0,
                    anchor: "start",
                }
            } else if xb + 4.0 + tw <= x1 {
                Placed {
                    row: frows.place(xa, xb + 4.0 + tw),
                    x: xb + 4.0,
                    anchor: "start",
                }
            } else {
                Placed {
                    row: frows.place(xa - 4.0 - tw, xb),
                    x: xa - 4.0,
                    anchor: "end",
                }
            };
            FaultBar {
                xa,
                xb,
                // Healed after the view's end (in a close-up): it runs on.
                open: healed.is_none_or(|h| h > view.t1),
                label,
                title,
                inside,
                place,
            }
        })
        .collect();
    (faults, frows.len())
}

/// The phase segments, labelled inside when they fit, else in rows below
/// the strip (not at all for a fault in `quiet`); with the rows those take.
fn phase_segments(r: &Report, view: View, quiet: &[usize]) -> (Vec<PhaseSeg>, usize) {
    let xs = view.xs;
    let mut prows = Rows::new(4);
    let mut segs: Vec<(bool, PhaseSeg)> = phases_by_fault(r)
        .into_iter()
        .map(|(fault, p)| {
            let a = p.at.ms_since(r.origin);
            let seg = PhaseSeg {
                xa: xs.clamped(a),
                xb: xs.clamped(a + p.ms),
                colour: palette::phase(&p.name),
                label: format!("{} {}", p.name, dur(p.ms)),
                place: None,
            };
            (fault.is_some_and(|i| quiet.contains(&i)), seg)
        })
        .collect();
    for (quiet, s) in &mut segs {
        let tw = text_width(&s.label, 10.0);
        if s.xb - s.xa < tw + 8.0 {
            if *quiet {
                s.label.clear();
            } else {
                s.place = Some(place_beside(&mut prows, s.xb + 3.0, tw, view.x1));
            }
        }
    }
    (segs.into_iter().map(|(_, s)| s).collect(), prows.len())
}

/// One RTO bracket per fault, with `max_rto` after its injection (without
/// words for a fault in `quiet`); with the rows they take. The RTO's label
/// goes inside the bracket, else after its start, else before it — and
/// before it too when it would run into `max_rto`'s label.
fn rto_brackets(r: &Report, view: View, quiet: &[usize]) -> (Vec<Bracket>, usize) {
    let (xs, x1, t1) = (view.xs, view.x1, view.t1);
    let mut rrows = Rows::new(6);
    let mut brackets: Vec<Bracket> = Vec::new();
    for (i, f) in r.faults.iter().enumerate() {
        let quiet = quiet.contains(&i);
        // A degrading fault's RTO runs from the outage it caused.
        let inj = f
            .slowdown
            .and_then(|s| s.outage_start_ms)
            .unwrap_or_else(|| f.injected_at.ms_since(r.origin));
        let xa = xs.clamped(inj);
        let slowdown = f.slowdown.filter(|s| !s.outage);
        let (xb, open, label, colour) = match (f.rto_ms, slowdown) {
            (None, Some(s)) => (
                f.healed_at.map_or(x1, |h| xs.clamped(h.ms_since(r.origin))),
                false,
                format!("slowdown ×{:.1}, no outage", s.factor),
                INK,
            ),
            (Some(rto), _) => (
                xs.clamped(inj + rto),
                false,
                format!("RTO {}", dur(rto)),
                if rto > r.slo.max_rto_ms {
                    palette::FAILED
                } else {
                    INK
                },
            ),
            (None, None) => (x1, true, "RTO: no recovery".to_string(), palette::FAILED),
        };
        let xmax_t = inj + r.slo.max_rto_ms;
        let tick = xmax_t <= t1;
        let mx = if tick { xs.at(xmax_t) } else { x1 };
        let ml = format!(
            "max_rto {}{}",
            dur(r.slo.max_rto_ms),
            if tick { "" } else { " →" }
        );
        let mtw = text_width(&ml, 10.0);
        // Beside the tick, after the bracket's end when that is close.
        let after = if !open && xb > mx - 2.0 { xb } else { mx } + 4.0;
        let (mlx, manchor, above) = if tick && after + mtw <= W - 4.0 {
            (after, "start", false)
        } else {
            (if tick { mx - 4.0 } else { mx }, "end", true)
        };
        let tw = text_width(&label, 11.5);
        let before = xa - 4.0 - tw >= 4.0;
        let (mut lx, mut anchor) = if xb - xa >= tw + 8.0 {
            ((xa + xb) / 2.0, "middle")
        } else if xa + 2.0 + tw <= W - 4.0 || !before {
            (xa + 2.0, "start")
        } else {
            (xa - 4.0, "end")
        };
        // Off `max_rto`'s label when both are above the line.
        let mspan = if manchor == "start" {
            (mlx, mlx + mtw)
        } else {
            (mlx - mtw, mlx)
        };
        if !quiet && above && overlap(span(lx, anchor, tw), mspan) && before {
            (lx, anchor) = (xa - 4.0, "end");
        }
        let (left, lright) = span(lx, anchor, tw);
        let mut right = xb.max(lright);
        right = right.max(if manchor == "start" && !quiet {
            mlx + mtw
        } else {
            mx
        });
        let max = MaxMark {
            x: mx,
            tick,
            label: if quiet { String::new() } else { ml },
            lx: mlx,
            anchor: manchor,
            above,
        };
        let row = rrows.place(xa.min(left), right);
        brackets.push(Bracket {
            xa,
            xb: xb.max(xa + 1.0),
            open,
            label,
            colour,
            place: Placed { row, x: lx, anchor },
            max,
        });
    }
    (brackets, rrows.len())
}

/// The extent of a label of width `tw` at `x` with `anchor`.
fn span(x: f64, anchor: &str, tw: f64) -> (f64, f64) {
    match anchor {
        "start" => (x, x + tw),
        "end" => (x - tw, x),
        _ => (x - tw / 2.0, x + tw / 2.0),
    }
}

/// Whether two extents overlap (with a little room).
fn overlap(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 < b.1 + 4.0 && b.0 < a.1 + 4.0
}

/// The longest write gap, if the report has one.
fn gap(r: &Report, view: View) -> Option<Gap> {
    match (r.write_gap_start_ms, r.write_gap_ms) {
        (Some(s), Some(g)) if s.is_finite() && g.is_finite() => Some(Gap {
            xa: view.xs.clamped(s),
            xb: view.xs.clamped(s + g),
            label: format!("write gap {}", dur(g)),
        }),
        _ => None,
    }
}
