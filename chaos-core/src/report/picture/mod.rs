//! The timeline picture of a report (a static SVG, and an HTML page around it
//! with the figures), the page of a set of runs, and the picture of a
//! comparison.
//!
//! Everything is hand-written SVG: no JavaScript, no external resources, the
//! same bytes for the same input. Every write attempt of the probe is drawn —
//! acknowledged and indeterminate ones by commit latency (log scale) over
//! time, failed ones by class on bands beneath — one path per class, so that
//! thousands of attempts stay small. Faults are bars from injection to
//! healing, leader changes and timeline switches vertical markers, the RTO and
//! the write gap brackets with their values, and the RTO's phases bands
//! across the plot. Colours are the Okabe–Ito palette ([`palette`]), and every
//! class has its own shape as well.

// One file per page: `timeline/` (a report's picture), `report_page` (the
// HTML page around it), `set` (a set of runs), `comparison`. This one holds
// what they share: escaping, text widths, scales, ticks and axes, the palette
// and the pages' shell.

use std::fmt::Write as _;

use crate::slo::fmt_duration;
use crate::timeline::from_ms;

/// The colours of the pictures, as `#rrggbb` (Okabe–Ito, safe for colour-blind
/// readers; every class also has its own shape).
pub mod palette {
    /// Acknowledged writes (dots).
    pub const ACKNOWLEDGED: &str = "#0072B2";
    /// Writes failed as read-only (SQLSTATE 25006).
    pub const READ_ONLY: &str = "#009E73";
    /// Writes failed because the server shuts down or starts (57P01–57P03).
    pub const SHUTTING_DOWN: &str = "#E69F00";
    /// Writes that could not connect (no SQLSTATE).
    pub const CANNOT_CONNECT: &str = "#CC79A7";
    /// Writes failed with any other SQLSTATE.
    pub const OTHER_FAILURE: &str = "#7F7F7F";
    /// Indeterminate writes (diamonds).
    pub const INDETERMINATE: &str = "#000000";
    /// Acknowledged writes that were lost (rings).
    pub const LOST: &str = "#D55E00";
    /// Fault bars, injection and healing markers.
    pub const FAULT: &str = "#D55E00";
    /// A passed verdict.
    pub const PASSED: &str = "#007A5E";
    /// A failed verdict, and an exceeded objective.
    pub const FAILED: &str = "#D55E00";
    /// The first side of a comparison.
    pub const SAMPLE_A: &str = "#0072B2";
    /// The second side of a comparison.
    pub const SAMPLE_B: &str = "#E69F00";
    /// Each RTO phase's shading (opaque pale tints), in phase order.
    pub const PHASES: [(&str, &str); 5] = [
        ("detection", "#D6E6F5"),
        ("election", "#D4EFE3"),
        ("promotion", "#FAEFC2"),
        ("routing", "#F6DCCB"),
        ("first_write", "#EFD9E7"),
    ];

    /// The shading of the phase called `name` (grey for an unknown name).
    pub fn phase(name: &str) -> &'static str {
        PHASES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("#E6E6E6", |(_, c)| c)
    }
}

/// Writes to a `String`, which cannot fail.
macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {{
        let _ = write!($dst, $($arg)*);
    }};
}
pub(crate) use w;

mod report_page;
mod timeline;

pub use report_page::{report_html, write_report_html};
pub(crate) use timeline::summary_words;
pub use timeline::{report_svg, report_svg_compact};

pub(crate) const W: f64 = 1200.0;
pub(crate) const ML: f64 = 116.0;
pub(crate) const MR: f64 = 28.0;
pub(crate) const FONT: &str =
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";
pub(crate) const INK: &str = "#1A1A1A";
pub(crate) const MUTED: &str = "#5C5C5C";
pub(crate) const GRID: &str = "#E2E2E2";
pub(crate) const MARKER: &str = "#333333";

/// `s` for XML/HTML text and attributes: markup characters escaped, and
/// characters XML cannot hold replaced by U+FFFD.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A duration in ms as the text report writes it (`5.748s`).
pub(crate) fn dur(ms: f64) -> String {
    fmt_duration(from_ms(ms))
}

/// A signed offset or difference (`+5.748s`, `−0.120s`).
pub(crate) fn signed(ms: f64) -> String {
    let d = dur(ms.abs());
    if ms < 0.0 && d != "0.000s" {
        format!("−{d}")
    } else {
        format!("+{d}")
    }
}

/// The width of `s` in px at `size`, roughly (a sans-serif's average advance).
pub(crate) fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.56
}

/// `s` cut to `n` characters with an ellipsis.
pub(crate) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!(
            "{}…",
            s.chars().take(n.saturating_sub(1)).collect::<String>()
        )
    }
}

/// A linear map from a domain to pixels.
#[derive(Clone, Copy)]
pub(crate) struct Lin {
    pub(crate) d0: f64,
    pub(crate) d1: f64,
    pub(crate) r0: f64,
    pub(crate) r1: f64,
}

impl Lin {
    pub(crate) fn at(self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        if span.abs() < f64::EPSILON || !v.is_finite() {
            return self.r0;
        }
        self.r0 + (v - self.d0) / span * (self.r1 - self.r0)
    }

    /// `at`, kept within the range.
    pub(crate) fn clamped(self, v: f64) -> f64 {
        let (lo, hi) = (self.r0.min(self.r1), self.r0.max(self.r1));
        self.at(v).clamp(lo, hi)
    }
}

/// Greedy rows for labels that must not overlap: each item goes to the first
/// row where it fits after the last one.
pub(crate) struct Rows {
    ends: Vec<f64>,
    max: usize,
    gap: f64,
}

impl Rows {
    /// At most `max` rows, items at least 6 px apart.
    pub(crate) fn new(max: usize) -> Self {
        Rows::with_gap(max, 6.0)
    }

    pub(crate) fn with_gap(max: usize, gap: f64) -> Self {
        Rows {
            ends: Vec::new(),
            max: max.max(1),
            gap,
        }
    }

    /// The row for an item spanning `a..b` px.
    pub(crate) fn place(&mut self, a: f64, b: f64) -> usize {
        if let Some(i) = self.ends.iter().position(|&e| a >= e + self.gap) {
            self.ends[i] = b;
            return i;
        }
        if self.ends.len() < self.max {
            self.ends.push(b);
            return self.ends.len() - 1;
        }
        // Full: the row that ends first (overlap is unavoidable).
        let i = self
            .ends
            .iter()
            .enumerate()
            .min_by(|x, y| x.1.total_cmp(y.1))
            .map_or(0, |(i, _)| i);
        self.ends[i] = self.ends[i].max(b);
        i
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
}

/// A label placed beside a point: its row, text x and anchor.
pub(crate) struct Placed {
    pub(crate) row: usize,
    pub(crate) x: f64,
    pub(crate) anchor: &'static str,
}

/// Places a label of width `tw` to the right of `x` (to its left when it would
/// leave `right`).
pub(crate) fn place_beside(rows: &mut Rows, x: f64, tw: f64, right: f64) -> Placed {
    if x + 3.0 + tw <= right {
        Placed {
            row: rows.place(x, x + 3.0 + tw),
            x: x + 3.0,
            anchor: "start",
        }
    } else {
        Placed {
            row: rows.place(x - 3.0 - tw, x),
            x: x - 3.0,
            anchor: "end",
        }
    }
}

/// Tick values over `lo..hi` (ms) at a round step with at least `min_px`
/// between ticks over `px` pixels; with the step.
pub(crate) fn ticks(lo: f64, hi: f64, px: f64, min_px: f64) -> (f64, Vec<f64>) {
    const STEPS: [f64; 22] = [
        1.0,
        2.0,
        5.0,
        10.0,
        20.0,
        50.0,
        100.0,
        200.0,
        250.0,
        500.0,
        1_000.0,
        2_000.0,
        5_000.0,
        10_000.0,
        15_000.0,
        30_000.0,
        60_000.0,
        120_000.0,
        300_000.0,
        600_000.0,
        1_800_000.0,
        3_600_000.0,
    ];
    let span = (hi - lo).max(1e-9);
    let max_ticks = (px / min_px).max(1.0);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= max_ticks)
        .unwrap_or(span / max_ticks);
    let mut out = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 && out.len() < 200 {
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        v += step;
    }
    (step, out)
}

/// A tick's label in seconds with as many decimals as the step needs;
/// `sign`: `+` on positive values.
pub(crate) fn tick_label(v: f64, step: f64, sign: bool) -> String {
    let secs = step / 1_000.0;
    let decimals = (0..3)
        .find(|&d| {
            let scaled = secs * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(3) as usize;
    let s = format!("{:.*}", decimals, (v / 1_000.0).abs());
    if v < 0.0 {
        format!("−{s}s")
    } else if sign && v > 0.0 {
        format!("+{s}s")
    } else {
        format!("{s}s")
    }
}

/// The opening tag of a standalone SVG document `h` px high.
pub(crate) fn svg_open(out: &mut String, h: f64, label: &str) {
    w!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {W:.0} {h:.0}\" font-family=\"{FONT}\" font-size=\"11\" fill=\"{INK}\" \
         role=\"img\" aria-label=\"{}\"><title>{}</title>\
         <rect width=\"{W:.0}\" height=\"{h:.0}\" fill=\"#FFFFFF\"/>",
        esc(label),
        esc(label)
    );
}

/// A text element; `extra` holds further attributes.
pub(crate) fn text(out: &mut String, x: f64, y: f64, anchor: &str, extra: &str, s: &str) {
    w!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\"{}{}{}>{}</text>",
        if anchor == "start" {
            String::new()
        } else {
            format!(" text-anchor=\"{anchor}\"")
        },
        if extra.is_empty() { "" } else { " " },
        extra,
        esc(s)
    );
}

/// Attributes that give text a white halo, readable over lines and shading.
pub(crate) const HALO: &str =
    "stroke=\"#FFFFFF\" stroke-width=\"3\" paint-order=\"stroke\" stroke-linejoin=\"round\"";

/// A horizontal axis at `y` with tick labels; with `bold_zero`, the label
/// of 0 (the fault's injection) stands out.
pub(crate) fn axis(
    o: &mut String,
    xs: Lin,
    tv: &[f64],
    step: f64,
    y: f64,
    sign: bool,
    bold_zero: bool,
) {
    w!(
        o,
        "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#8C8C8C\"/><g fill=\"{MUTED}\" font-size=\"10.5\">",
        xs.r0,
        xs.r1
    );
    for &t in tv {
        let x = xs.at(t);
        w!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#8C8C8C\"/>",
            y + 4.0
        );
        let extra = if bold_zero && t == 0.0 {
            "font-weight=\"700\" fill=\"#1A1A1A\""
        } else {
            ""
        };
        text(o, x, y + 15.0, "middle", extra, &tick_label(t, step, sign));
    }
    o.push_str("</g>");
}

// The pages' shell.

/// The pages' style sheet.
pub(crate) const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;\
color:#1A1A1A;margin:24px auto;max-width:1220px;padding:0 12px;font-size:14px;line-height:1.4}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:15px;margin:22px 0 4px}\
.verdict{display:inline-block;padding:1px 10px;border-radius:4px;color:#FFF;font-size:16px;vertical-align:2px}\
.pass{background:#007A5E}.fail{background:#D55E00}.meta{color:#5C5C5C;margin:0 0 12px}\
table{border-collapse:collapse;margin:4px 0 8px}th,td{padding:3px 12px 3px 0;text-align:left;vertical-align:top;\
border-bottom:1px solid #E2E2E2}th{font-weight:600;color:#5C5C5C}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
.figures td:first-child{color:#5C5C5C}.box{border-left:4px solid;padding:6px 12px;margin:10px 0}\
.box ul{margin:2px 0;padding-left:20px}.violations{border-color:#D55E00;background:#FBEDE6}\
.warnings{border-color:#E69F00;background:#FDF5E6}svg{max-width:100%;height:auto;display:block}\
.bad{color:#D55E00;font-weight:600}.good{color:#007A5E;font-weight:600}code{font-size:13px}";

/// A standalone HTML page titled `title` around `body`, with the style sheet.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

/// PASSED or FAILED, in colour.
pub(crate) fn verdict_badge(passed: bool) -> String {
    if passed {
        "<span class=\"verdict pass\">PASSED</span>".into()
    } else {
        "<span class=\"verdict fail\">FAILED</span>".into()
    }
}

/// A titled box listing `items` (violations, warnings); nothing without items.
pub(crate) fn list_box(out: &mut String, class: &str, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    w!(
        out,
        "<div class=\"box {class}\"><strong>{}</strong><ul>",
        esc(title)
    );
    for i in items {
        w!(out, "<li>{}</li>", esc(i));
    }
    out.push_str("</ul></div>\n");
}

#[cfg(test)]
pub(crate) mod tests;
