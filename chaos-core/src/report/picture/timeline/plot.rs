//! The timeline's plot: the time grid, commit latency on a log scale, every
//! attempt (one path per class), the failure bands beneath, and the median.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::super::{GRID, HALO, INK, Lin, MUTED, esc, palette, text};
use super::{Class, Layout, View};
use crate::report::{AttemptOutcome, Report};

/// Commit latency (log, by decades) to y.
#[derive(Clone, Copy)]
pub(super) struct LatencyScale {
    /// The lowest decade (10^dlo ms).
    dlo: i32,
    /// The highest decade.
    dhi: i32,
    ys: Lin,
    /// Whether any attempt had a latency to plot.
    any: bool,
}

impl LatencyScale {
    /// Decades covering the latencies of the acknowledged and indeterminate
    /// attempts (at least two), over `top..bottom`.
    pub(super) fn of(r: &Report, top: f64, bottom: f64) -> Self {
        let lats: Vec<f64> = r
            .history
            .iter()
            .filter(|h| h.outcome != AttemptOutcome::Failed)
            .map(|h| h.finished_ms - h.started_ms)
            .filter(|l| l.is_finite() && *l > 0.0)
            .collect();
        let lmin = lats.iter().copied().fold(f64::INFINITY, f64::min);
        let lmax = lats.iter().copied().fold(0.0, f64::max);
        let mut dlo = if lmin.is_finite() {
            lmin.max(0.01).log10().floor() as i32
        } else {
            0
        };
        let dhi = if lmax > 0.0 {
            (lmax.log10().ceil() as i32).max(dlo + 2)
        } else {
            dlo + 3
        };
        dlo = dlo.min(dhi - 2);
        LatencyScale {
            dlo,
            dhi,
            ys: Lin {
                d0: f64::from(dlo),
                d1: f64::from(dhi),
                r0: bottom,
                r1: top,
            },
            any: !lats.is_empty(),
        }
    }

    /// The same decades over `top..bottom` (a close-up's plot).
    pub(super) fn over(&self, top: f64, bottom: f64) -> Self {
        LatencyScale {
            ys: Lin {
                r0: bottom,
                r1: top,
                ..self.ys
            },
            ..*self
        }
    }

    /// The y of a latency in ms, kept within the decades.
    pub(super) fn y(&self, lat: f64) -> f64 {
        let l = if lat.is_finite() && lat > 0.0 {
            lat.log10()
        } else {
            f64::from(self.dlo)
        };
        self.ys
            .at(l.clamp(f64::from(self.dlo), f64::from(self.dhi)))
    }

    /// The y of the median line, if there is one to draw.
    fn median_y(&self, r: &Report) -> Option<f64> {
        (r.median_latency_ms > 0.0 && r.median_latency_ms.is_finite() && self.any)
            .then(|| self.y(r.median_latency_ms))
    }
}

/// The grid (time ticks `tvals`, latency decades) with the decades' labels,
/// the latency caption and the failure bands' names.
pub(super) fn grid(
    o: &mut String,
    view: View,
    tvals: &[f64],
    scale: &LatencyScale,
    l: &Layout,
    bands: &[Class],
) {
    let (x0, x1) = (view.x0, view.x1);
    o.push_str(&format!("<g stroke=\"{GRID}\" stroke-width=\"1\">"));
    for &t in tvals {
        let x = view.xs.at(t);
        w!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>",
            l.plot_top,
            l.lanes_bottom
        );
    }
    for d in scale.dlo..=scale.dhi {
        let yy = scale.ys.at(f64::from(d));
        w!(
            o,
            "<line x1=\"{x0:.1}\" y1=\"{yy:.1}\" x2=\"{x1:.1}\" y2=\"{yy:.1}\"/>"
        );
    }
    o.push_str("</g>");
    o.push_str(&format!("<g fill=\"{MUTED}\" font-size=\"10.5\">"));
    for d in scale.dlo..=scale.dhi {
        let yy = scale.ys.at(f64::from(d));
        let label = if d < 0 {
            format!("{} ms", 10f64.powi(d))
        } else if d < 3 {
            format!("{} ms", 10i64.pow(d as u32))
        } else {
            format!("{} s", 10i64.pow((d - 3) as u32))
        };
        text(o, x0 - 6.0, yy + 3.5, "end", "", &label);
    }
    let mid = (l.plot_top + l.plot_bottom) / 2.0;
    text(
        o,
        14.0,
        mid,
        "middle",
        &format!("transform=\"rotate(-90 14 {mid:.1})\" font-size=\"11\""),
        "commit latency (log)",
    );
    for (i, c) in bands.iter().enumerate() {
        text(
            o,
            x0 - 6.0,
            l.band_top + i as f64 * l.band_row + l.band_row / 2.0 + 3.5,
            "end",
            &format!("fill=\"{}\"", INK),
            c.band(),
        );
    }
    o.push_str("</g>");
}

/// The plot's frame and the median latency's line.
pub(super) fn frame(o: &mut String, r: &Report, view: View, scale: &LatencyScale, l: &Layout) {
    let (x0, x1) = (view.x0, view.x1);
    w!(
        o,
        "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#B3B3B3\"/>",
        l.plot_top,
        x1 - x0,
        l.plot_h
    );
    if let Some(yy) = scale.median_y(r) {
        w!(
            o,
            "<line x1=\"{x0:.1}\" y1=\"{yy:.1}\" x2=\"{x1:.1}\" y2=\"{yy:.1}\" stroke=\"{MUTED}\" stroke-dasharray=\"2 3\"/>"
        );
    }
}

/// Other events: small triangles on the plot's top edge, named on hover.
pub(super) fn events(o: &mut String, events: &[(f64, String)], view: View, top: f64) {
    for (t, title) in events {
        let x = view.xs.at(*t);
        w!(
            o,
            "<path d=\"M{x:.1} {top:.1}l-3.5-6h7z\" fill=\"#8C8C8C\"><title>{}</title></path>",
            esc(title)
        );
    }
}

/// Every attempt, one path per class: acknowledged ones as dots and
/// indeterminate ones as diamonds by latency, failed ones as bars on their
/// class's band; lost writes ringed.
pub(super) fn attempts(
    o: &mut String,
    r: &Report,
    view: View,
    scale: &LatencyScale,
    l: &Layout,
    bands: &[Class],
    counts: &[u64; 6],
) {
    let xs = view.xs;
    let class = view.class();
    let mut paths: [String; 6] = Default::default();
    let lost: HashSet<(u32, u64)> = r.lost.iter().map(|l| (l.writer, l.seq)).collect();
    let mut lost_path = String::new();
    for h in &r.history {
        let c = Class::of(h);
        let x = xs.clamped(h.started_ms);
        let lat = h.finished_ms - h.started_ms;
        let p = &mut paths[c.index()];
        match c {
            Class::Acknowledged => {
                let yy = scale.y(lat);
                w!(p, "M{x:.1} {yy:.1}h0");
                if lost.contains(&(h.writer, h.seq)) {
                    w!(
                        lost_path,
                        "M{:.1} {yy:.1}a5.5 5.5 0 1 0 11 0a5.5 5.5 0 1 0-11 0",
                        x - 5.5
                    );
                }
            }
            Class::Indeterminate => {
                let yy = scale.y(lat);
                w!(p, "M{x:.1} {:.1}l5 5-5 5-5-5z", yy - 5.0);
            }
            _ => {
                let row = bands.iter().position(|x| *x == c).unwrap_or(0) as f64;
                let yy = l.band_top + row * l.band_row + l.band_row / 2.0;
                let wd = (xs.clamped(h.finished_ms) - x).max(1.2);
                w!(p, "M{x:.1} {yy:.1}h{wd:.1}");
            }
        }
    }
    for c in Class::ALL {
        let d = &paths[c.index()];
        if d.is_empty() {
            continue;
        }
        // The run's paths say how many attempts they draw (a close-up's
        // draw some of them again).
        let n = counts[c.index()];
        let (n_attr, n) = if view.closeup {
            (String::new(), d.matches('M').count() as u64)
        } else {
            (format!(" data-n=\"{n}\""), n)
        };
        match c {
            Class::Acknowledged => w!(
                o,
                "<path class=\"{class}acknowledged\"{n_attr} d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"3.4\" stroke-linecap=\"round\"><title>{n} acknowledged writes</title></path>",
                c.colour()
            ),
            Class::Indeterminate => w!(
                o,
                "<path class=\"{class}indeterminate\"{n_attr} d=\"{d}\" fill=\"{}\" stroke=\"#FFFFFF\" stroke-width=\"0.8\"><title>{n} indeterminate writes</title></path>",
                c.colour()
            ),
            _ => w!(
                o,
                "<path class=\"{class}failed\"{n_attr} d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"9\"><title>{n} writes {}</title></path>",
                c.colour(),
                esc(c.label())
            ),
        }
    }
    if !lost_path.is_empty() {
        let n = lost_path.matches('M').count();
        w!(
            o,
            "<path class=\"{class}lost\"{} d=\"{lost_path}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"><title>{} acknowledged writes lost</title></path>",
            if view.closeup {
                String::new()
            } else {
                format!(" data-n=\"{}\"", r.lost.len())
            },
            palette::LOST,
            if view.closeup { n } else { r.lost.len() }
        );
    }
}

/// The median's label, and a note when there was no attempt at all.
pub(super) fn notes(o: &mut String, r: &Report, view: View, scale: &LatencyScale, l: &Layout) {
    if let Some(yy) = scale.median_y(r) {
        text(
            o,
            view.x1 - 4.0,
            yy - 4.0,
            "end",
            &format!("fill=\"{MUTED}\" font-size=\"10\" {HALO}"),
            &format!("median {:.1} ms", r.median_latency_ms),
        );
    }
    if r.history.is_empty() {
        text(
            o,
            (view.x0 + view.x1) / 2.0,
            (l.plot_top + l.plot_bottom) / 2.0,
            "middle",
            &format!("fill=\"{MUTED}\" font-size=\"13\""),
            "no write attempts were recorded",
        );
    }
}
