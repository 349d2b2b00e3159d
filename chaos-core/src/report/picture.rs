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

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::json::{file_stem, write_file};
use super::{AttemptOutcome, HistoryEntry, PhaseRecord, Report};
use crate::Result;
use crate::runs::{Comparison, Difference, RunSet, Verdict};
use crate::slo::fmt_duration;
use crate::timeline::{Timestamp, from_ms};

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

const W: f64 = 1200.0;
const ML: f64 = 116.0;
const MR: f64 = 28.0;
const FONT: &str =
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";
const INK: &str = "#1A1A1A";
const MUTED: &str = "#5C5C5C";
const GRID: &str = "#E2E2E2";
const MARKER: &str = "#333333";

/// `s` for XML/HTML text and attributes: markup characters escaped, and
/// characters XML cannot hold replaced by U+FFFD.
fn esc(s: &str) -> String {
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
fn dur(ms: f64) -> String {
    fmt_duration(from_ms(ms))
}

/// A signed offset or difference (`+5.748s`, `−0.120s`).
fn signed(ms: f64) -> String {
    let d = dur(ms.abs());
    if ms < 0.0 && d != "0.000s" {
        format!("−{d}")
    } else {
        format!("+{d}")
    }
}

/// The width of `s` in px at `size`, roughly (a sans-serif's average advance).
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.56
}

/// `s` cut to `n` characters with an ellipsis.
fn clip(s: &str, n: usize) -> String {
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
struct Lin {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Lin {
    fn at(self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        if span.abs() < f64::EPSILON || !v.is_finite() {
            return self.r0;
        }
        self.r0 + (v - self.d0) / span * (self.r1 - self.r0)
    }

    /// `at`, kept within the range.
    fn clamped(self, v: f64) -> f64 {
        let (lo, hi) = (self.r0.min(self.r1), self.r0.max(self.r1));
        self.at(v).clamp(lo, hi)
    }
}

/// Greedy rows for labels that must not overlap: each item goes to the first
/// row where it fits after the last one.
struct Rows {
    ends: Vec<f64>,
    max: usize,
    gap: f64,
}

impl Rows {
    /// At most `max` rows, items at least 6 px apart.
    fn new(max: usize) -> Self {
        Rows::with_gap(max, 6.0)
    }

    fn with_gap(max: usize, gap: f64) -> Self {
        Rows {
            ends: Vec::new(),
            max: max.max(1),
            gap,
        }
    }

    /// The row for an item spanning `a..b` px.
    fn place(&mut self, a: f64, b: f64) -> usize {
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

    fn len(&self) -> usize {
        self.ends.len()
    }
}

/// A label placed beside a point: its row, text x and anchor.
struct Placed {
    row: usize,
    x: f64,
    anchor: &'static str,
}

/// Places a label of width `tw` to the right of `x` (to its left when it would
/// leave `right`).
fn place_beside(rows: &mut Rows, x: f64, tw: f64, right: f64) -> Placed {
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
fn ticks(lo: f64, hi: f64, px: f64, min_px: f64) -> (f64, Vec<f64>) {
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
fn tick_label(v: f64, step: f64, sign: bool) -> String {
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
fn svg_open(out: &mut String, h: f64, label: &str) {
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
fn text(out: &mut String, x: f64, y: f64, anchor: &str, extra: &str, s: &str) {
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
const HALO: &str =
    "stroke=\"#FFFFFF\" stroke-width=\"3\" paint-order=\"stroke\" stroke-linejoin=\"round\"";

// ---------------------------------------------------------------------------
// A report's timeline.
// ---------------------------------------------------------------------------

/// What became of an attempt, finer than its outcome: failures by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Acknowledged,
    ReadOnly,
    ShuttingDown,
    CannotConnect,
    OtherFailure,
    Indeterminate,
}

impl Class {
    const ALL: [Class; 6] = [
        Class::Acknowledged,
        Class::ReadOnly,
        Class::ShuttingDown,
        Class::CannotConnect,
        Class::OtherFailure,
        Class::Indeterminate,
    ];

    fn of(e: &HistoryEntry) -> Class {
        match e.outcome {
            AttemptOutcome::Acknowledged => Class::Acknowledged,
            AttemptOutcome::Indeterminate => Class::Indeterminate,
            AttemptOutcome::Failed => match e.sqlstate.as_deref() {
                None => Class::CannotConnect,
                Some("25006") => Class::ReadOnly,
                Some("57P01" | "57P02" | "57P03") => Class::ShuttingDown,
                Some(_) => Class::OtherFailure,
            },
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn is_failure(self) -> bool {
        !matches!(self, Class::Acknowledged | Class::Indeterminate)
    }

    fn colour(self) -> &'static str {
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
    fn label(self) -> &'static str {
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
    fn band(self) -> &'static str {
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
        if e.name != "new primary observed" {
            continue;
        }
        let detail = e.detail.clone().unwrap_or_default();
        let node = detail.split_whitespace().next().unwrap_or("?").to_string();
        if last.as_deref() == Some(node.as_str()) {
            continue;
        }
        let t = e.at.ms_since(r.origin);
        out.push(Marker {
            t,
            label: format!("primary → {node}"),
            title: format!("{} new primary observed ({detail})", signed(t)),
            dashed: false,
        });
        last = Some(node);
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
    for h in &r.history {
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

/// The phases to shade: every fault's, or the report's when the faults have none.
fn phases_of(r: &Report) -> Vec<&PhaseRecord> {
    let per_fault: Vec<&PhaseRecord> = r.faults.iter().flat_map(|f| &f.phases).collect();
    if per_fault.is_empty() {
        r.phases.iter().collect()
    } else {
        per_fault
    }
}

/// How many attempts of each class.
fn class_counts(r: &Report) -> [u64; 6] {
    let mut n = [0u64; 6];
    for h in &r.history {
        n[Class::of(h).index()] += 1;
    }
    n
}

/// The report's verdict and key figures in one line.
fn summary_words(r: &Report) -> String {
    let rto = match (r.rto_ms, r.faults.is_empty()) {
        (Some(v), _) => dur(v),
        (None, true) => "n/a (no fault)".into(),
        (None, false) => "none (no recovery)".into(),
    };
    let gap = r.write_gap_ms.map_or_else(|| "none".into(), dur);
    let w = &r.writes;
    format!(
        "RTO {rto} (max {}) · write gap {gap} · {} attempts: {} acknowledged, {} failed, {} \
         indeterminate · {} lost · split-brain {}",
        dur(r.slo.max_rto_ms),
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

fn timeline_svg(r: &Report, compact: bool) -> String {
    let (t0, t1) = time_domain(r);
    let (x0, x1) = (ML, W - MR);
    let xs = Lin {
        d0: t0,
        d1: t1,
        r0: x0,
        r1: x1,
    };
    let rel = |t: Timestamp| t.ms_since(r.origin);
    let counts = class_counts(r);
    let failure_rows: Vec<Class> = Class::ALL
        .into_iter()
        .filter(|c| c.is_failure() && counts[c.index()] > 0)
        .collect();

    // Marker labels, in rows at the top.
    let markers = markers(r);
    let mut mrows = Rows::new(5);
    let mplaced: Vec<Placed> = markers
        .iter()
        .map(|m| place_beside(&mut mrows, xs.at(m.t), text_width(&m.label, 11.0), x1))
        .collect();

    // Fault bars.
    struct FaultBar {
        xa: f64,
        xb: f64,
        open: bool,
        label: String,
        title: String,
        inside: bool,
        place: Placed,
    }
    let mut frows = Rows::new(6);
    let faults: Vec<FaultBar> = r
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
            let title = format!(
                "{} {}{}: injected {}, {}, RTO {}",
                f.kind,
                f.mode,
                f.victim
                    .as_ref()
                    .map(|v| format!(" on {v}"))
                    .unwrap_or_default(),
                signed(inj),
                healed.map_or_else(|| "not healed".into(), |h| format!("healed {}", signed(h))),
                f.rto_ms.map_or_else(|| "none (no recovery)".into(), dur)
            );
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
                open: healed.is_none(),
                label,
                title,
                inside,
                place,
            }
        })
        .collect();

    // Phase segments; labels inside when they fit, else in rows below.
    struct PhaseSeg {
        xa: f64,
        xb: f64,
        colour: &'static str,
        label: String,
        place: Option<Placed>,
    }
    let mut prows = Rows::new(4);
    let mut phase_segs: Vec<PhaseSeg> = phases_of(r)
        .into_iter()
        .map(|p| {
            let a = rel(p.at);
            PhaseSeg {
                xa: xs.clamped(a),
                xb: xs.clamped(a + p.ms),
                colour: palette::phase(&p.name),
                label: format!("{} {}", p.name, dur(p.ms)),
                place: None,
            }
        })
        .collect();
    for s in &mut phase_segs {
        let tw = text_width(&s.label, 10.0);
        if s.xb - s.xa < tw + 8.0 {
            s.place = Some(place_beside(&mut prows, s.xb + 3.0, tw, x1));
        }
    }

    // RTO brackets (one per fault), with max_rto.
    struct Bracket {
        xa: f64,
        xb: f64,
        open: bool,
        label: String,
        colour: &'static str,
        place: Placed,
        max: MaxMark,
    }
    struct MaxMark {
        x: f64,
        tick: bool,
        label: String,
        lx: f64,
        anchor: &'static str,
        above: bool,
    }
    let mut rrows = Rows::new(6);
    let mut brackets: Vec<Bracket> = Vec::new();
    for f in &r.faults {
        let inj = rel(f.injected_at);
        let xa = xs.clamped(inj);
        let (xb, open, label, colour) = match f.rto_ms {
            Some(rto) => (
                xs.clamped(inj + rto),
                false,
                format!("RTO {}", dur(rto)),
                if rto > r.slo.max_rto_ms {
                    palette::FAILED
                } else {
                    INK
                },
            ),
            None => (x1, true, "RTO: no recovery".to_string(), palette::FAILED),
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
        let mut right = xb;
        let (lx, anchor) = if xb - xa >= tw + 8.0 {
            ((xa + xb) / 2.0, "middle")
        } else {
            right = right.max(xa + 2.0 + tw);
            (xa + 2.0, "start")
        };
        right = right.max(if manchor == "start" { mlx + mtw } else { mx });
        let max = MaxMark {
            x: mx,
            tick,
            label: ml,
            lx: mlx,
            anchor: manchor,
            above,
        };
        let row = rrows.place(xa, right);
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

    // The write gap.
    let gap = match (r.write_gap_start_ms, r.write_gap_ms) {
        (Some(s), Some(g)) if s.is_finite() && g.is_finite() => Some((
            xs.clamped(s),
            xs.clamped(s + g),
            format!("write gap {}", dur(g)),
        )),
        _ => None,
    };

    // Vertical layout.
    let header_h = if compact { 10.0 } else { 60.0 };
    let mut y = header_h;
    let marker_top = y;
    if mrows.len() > 0 {
        y += mrows.len() as f64 * 14.0 + 4.0;
    }
    let fault_top = y;
    if !faults.is_empty() {
        y += frows.len() as f64 * 18.0 + 4.0;
    }
    let phase_top = y;
    if !phase_segs.is_empty() {
        y += 16.0 + prows.len() as f64 * 13.0 + 4.0;
    }
    let rto_top = y;
    y += rrows.len() as f64 * 24.0;
    let gap_top = y;
    if gap.is_some() {
        y += 24.0;
    }
    let plot_top = y + 8.0;
    let plot_h = if compact { 120.0 } else { 250.0 };
    let plot_bottom = plot_top + plot_h;
    let band_top = plot_bottom + 8.0;
    let band_row = 13.0;
    let band_bottom = band_top + failure_rows.len() as f64 * band_row;
    let axis_y = band_bottom + 4.0;
    let legend_top = axis_y + if compact { 34.0 } else { 44.0 };

    // The legend's items, laid out in rows.
    let mut legend: Vec<(&'static str, String)> = Vec::new();
    for c in Class::ALL {
        if counts[c.index()] > 0 || c == Class::Acknowledged {
            let kind = match c {
                Class::Acknowledged => "dot",
                Class::Indeterminate => "diamond",
                _ => "band",
            };
            let mut label = format!("{} ({})", c.label(), counts[c.index()]);
            if c == Class::OtherFailure {
                let mut states: Vec<&str> = r
                    .history
                    .iter()
                    .filter(|h| Class::of(h) == Class::OtherFailure)
                    .filter_map(|h| h.sqlstate.as_deref())
                    .collect();
                states.sort_unstable();
                states.dedup();
                label = format!(
                    "failed: other ({}{}) ({})",
                    states
                        .iter()
                        .take(4)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", "),
                    if states.len() > 4 { ", …" } else { "" },
                    counts[c.index()]
                );
            }
            legend.push((kind, label));
        }
    }
    if !r.lost.is_empty() {
        legend.push(("lost", format!("acknowledged but lost ({})", r.lost.len())));
    }
    if !r.faults.is_empty() {
        legend.push(("fault", "fault, injected → healed".into()));
    }
    if markers.iter().any(|m| !m.dashed) {
        legend.push(("leader", "leader change".into()));
    }
    if markers.iter().any(|m| m.dashed) {
        legend.push(("timeline", "timeline switch".into()));
    }
    let other_events: Vec<(f64, String)> = r
        .events
        .iter()
        .filter(|e| e.name != "new primary observed" && e.name != "fault injected")
        .map(|e| {
            let t = rel(e.at);
            (
                t,
                format!(
                    "{} {}{}",
                    signed(t),
                    e.name,
                    e.detail
                        .as_ref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
            )
        })
        .filter(|(t, _)| *t >= t0 && *t <= t1)
        .collect();
    if !other_events.is_empty() {
        legend.push(("event", "other event (hover for its name)".into()));
    }
    let mut legend_pos: Vec<(f64, f64)> = Vec::new();
    {
        let (mut lx, mut ly) = (x0, legend_top);
        for (_, label) in &legend {
            let wdt = 22.0 + text_width(label, 11.0) + 18.0;
            if lx + wdt > x1 && lx > x0 {
                lx = x0;
                ly += 18.0;
            }
            legend_pos.push((lx, ly));
            lx += wdt;
        }
    }
    let height = legend_pos.last().map_or(legend_top, |p| p.1) + 16.0;

    let mut o = String::with_capacity(64 * 1024 + r.history.len() * 16);
    let verdict = if r.passed { "PASSED" } else { "FAILED" };
    svg_open(
        &mut o,
        height,
        &format!("{} — {verdict}: {}", r.scenario, summary_words(r)),
    );

    // Title.
    if !compact {
        w!(
            o,
            "<text x=\"{ML:.0}\" y=\"24\" font-size=\"17\" font-weight=\"600\">{} <tspan fill=\"{}\">— {verdict}</tspan></text>",
            esc(&clip(&r.scenario, 90)),
            if r.passed {
                palette::PASSED
            } else {
                palette::FAILED
            }
        );
        text(
            &mut o,
            ML,
            44.0,
            "start",
            &format!("fill=\"{MUTED}\" font-size=\"12\""),
            &summary_words(r),
        );
    }

    // Phase shading, from the phase strip down through the bands.
    if !phase_segs.is_empty() {
        o.push_str("<g>");
        for s in &phase_segs {
            w!(
                o,
                "<rect x=\"{:.1}\" y=\"{phase_top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>",
                s.xa,
                (s.xb - s.xa).max(0.8),
                band_bottom - phase_top,
                s.colour
            );
        }
        o.push_str("</g>");
    }

    // Grid: time ticks and latency decades.
    let (step, tvals) = ticks(t0, t1, x1 - x0, 80.0);
    o.push_str(&format!("<g stroke=\"{GRID}\" stroke-width=\"1\">"));
    for &t in &tvals {
        let x = xs.at(t);
        w!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{plot_top:.1}\" x2=\"{x:.1}\" y2=\"{band_bottom:.1}\"/>"
        );
    }
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
    let ys = Lin {
        d0: f64::from(dlo),
        d1: f64::from(dhi),
        r0: plot_bottom,
        r1: plot_top,
    };
    let y_of = |lat: f64| -> f64 {
        let l = if lat.is_finite() && lat > 0.0 {
            lat.log10()
        } else {
            f64::from(dlo)
        };
        ys.at(l.clamp(f64::from(dlo), f64::from(dhi)))
    };
    for d in dlo..=dhi {
        let yy = ys.at(f64::from(d));
        w!(
            o,
            "<line x1=\"{x0:.1}\" y1=\"{yy:.1}\" x2=\"{x1:.1}\" y2=\"{yy:.1}\"/>"
        );
    }
    o.push_str("</g>");
    o.push_str(&format!("<g fill=\"{MUTED}\" font-size=\"10.5\">"));
    for d in dlo..=dhi {
        let yy = ys.at(f64::from(d));
        let label = if d < 0 {
            format!("{} ms", 10f64.powi(d))
        } else if d < 3 {
            format!("{} ms", 10i64.pow(d as u32))
        } else {
            format!("{} s", 10i64.pow((d - 3) as u32))
        };
        text(&mut o, x0 - 6.0, yy + 3.5, "end", "", &label);
    }
    text(
        &mut o,
        14.0,
        (plot_top + plot_bottom) / 2.0,
        "middle",
        &format!(
            "transform=\"rotate(-90 14 {:.1})\" font-size=\"11\"",
            (plot_top + plot_bottom) / 2.0
        ),
        "commit latency (log)",
    );
    for c in &failure_rows {
        let i = failure_rows.iter().position(|x| x == c).unwrap_or(0) as f64;
        text(
            &mut o,
            x0 - 6.0,
            band_top + i * band_row + band_row / 2.0 + 3.5,
            "end",
            &format!("fill=\"{}\"", INK),
            c.band(),
        );
    }
    o.push_str("</g>");
    // The plot's frame.
    w!(
        o,
        "<rect x=\"{x0:.1}\" y=\"{plot_top:.1}\" width=\"{:.1}\" height=\"{plot_h:.1}\" fill=\"none\" stroke=\"#B3B3B3\"/>",
        x1 - x0
    );
    if r.median_latency_ms > 0.0 && r.median_latency_ms.is_finite() && !lats.is_empty() {
        let yy = y_of(r.median_latency_ms);
        w!(
            o,
            "<line x1=\"{x0:.1}\" y1=\"{yy:.1}\" x2=\"{x1:.1}\" y2=\"{yy:.1}\" stroke=\"{MUTED}\" stroke-dasharray=\"2 3\"/>"
        );
    }

    // Fault injection and healing lines, markers.
    let lanes_bottom = band_bottom;
    for f in &faults {
        let fy = fault_top + f.place.row as f64 * 18.0 + 15.0;
        w!(
            o,
            "<line x1=\"{:.1}\" y1=\"{fy:.1}\" x2=\"{:.1}\" y2=\"{lanes_bottom:.1}\" stroke=\"{}\" stroke-width=\"1.5\"/>",
            f.xa,
            f.xa,
            palette::FAULT
        );
        if !f.open {
            w!(
                o,
                "<line x1=\"{:.1}\" y1=\"{fy:.1}\" x2=\"{:.1}\" y2=\"{lanes_bottom:.1}\" stroke=\"{}\" stroke-width=\"1\" stroke-dasharray=\"1 3\"/>",
                f.xb,
                f.xb,
                palette::FAULT
            );
        }
    }
    for (m, p) in markers.iter().zip(&mplaced) {
        let x = xs.at(m.t);
        let top = marker_top + p.row as f64 * 14.0 + 3.0;
        w!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{lanes_bottom:.1}\" stroke=\"{MARKER}\" stroke-width=\"1.2\"{}><title>{}</title></line>",
            if m.dashed {
                " stroke-dasharray=\"5 3\""
            } else {
                ""
            },
            esc(&m.title)
        );
    }
    for (t, title) in &other_events {
        let x = xs.at(*t);
        w!(
            o,
            "<path d=\"M{x:.1} {:.1}l-3.5-6h7z\" fill=\"#8C8C8C\"><title>{}</title></path>",
            plot_top,
            esc(title)
        );
    }

    // Every attempt: one path per class.
    let mut paths: [String; 6] = Default::default();
    let lost: HashSet<(u32, u64)> = r.lost.iter().map(|l| (l.writer, l.seq)).collect();
    let mut lost_path = String::new();
    for h in &r.history {
        let c = Class::of(h);
        let x = xs.at(h.started_ms);
        let lat = h.finished_ms - h.started_ms;
        let p = &mut paths[c.index()];
        match c {
            Class::Acknowledged => {
                let yy = y_of(lat);
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
                let yy = y_of(lat);
                w!(p, "M{x:.1} {:.1}l5 5-5 5-5-5z", yy - 5.0);
            }
            _ => {
                let row = failure_rows.iter().position(|x| *x == c).unwrap_or(0) as f64;
                let yy = band_top + row * band_row + band_row / 2.0;
                let wd = (xs.at(h.finished_ms) - x).max(1.2);
                w!(p, "M{x:.1} {yy:.1}h{wd:.1}");
            }
        }
    }
    for c in Class::ALL {
        let d = &paths[c.index()];
        if d.is_empty() {
            continue;
        }
        let n = counts[c.index()];
        match c {
            Class::Acknowledged => w!(
                o,
                "<path class=\"{}\" data-n=\"{n}\" d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"3.4\" stroke-linecap=\"round\"><title>{n} acknowledged writes</title></path>",
                "acknowledged",
                c.colour()
            ),
            Class::Indeterminate => w!(
                o,
                "<path class=\"indeterminate\" data-n=\"{n}\" d=\"{d}\" fill=\"{}\" stroke=\"#FFFFFF\" stroke-width=\"0.8\"><title>{n} indeterminate writes</title></path>",
                c.colour()
            ),
            _ => w!(
                o,
                "<path class=\"failed\" data-n=\"{n}\" d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"9\"><title>{n} writes {}</title></path>",
                c.colour(),
                esc(c.label())
            ),
        }
    }
    if !lost_path.is_empty() {
        w!(
            o,
            "<path class=\"lost\" data-n=\"{}\" d=\"{lost_path}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"><title>{} acknowledged writes lost</title></path>",
            r.lost.len(),
            palette::LOST,
            r.lost.len()
        );
    }

    if r.median_latency_ms > 0.0 && r.median_latency_ms.is_finite() && !lats.is_empty() {
        text(
            &mut o,
            x1 - 4.0,
            y_of(r.median_latency_ms) - 4.0,
            "end",
            &format!("fill=\"{MUTED}\" font-size=\"10\" {HALO}"),
            &format!("median {:.1} ms", r.median_latency_ms),
        );
    }

    if r.history.is_empty() {
        text(
            &mut o,
            (x0 + x1) / 2.0,
            (plot_top + plot_bottom) / 2.0,
            "middle",
            &format!("fill=\"{MUTED}\" font-size=\"13\""),
            "no write attempts were recorded",
        );
    }

    // Lanes: fault bars.
    for f in &faults {
        let by = fault_top + f.place.row as f64 * 18.0 + 3.0;
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
        text(
            &mut o,
            f.place.x,
            by + 9.5,
            f.place.anchor,
            &extra,
            &f.label,
        );
        o.push_str("</g>");
    }

    // Phase strip and labels.
    if !phase_segs.is_empty() {
        for s in &phase_segs {
            w!(
                o,
                "<rect x=\"{:.1}\" y=\"{phase_top:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{}\" stroke=\"#8C8C8C\" stroke-width=\"0.6\"/>",
                s.xa,
                (s.xb - s.xa).max(0.8),
                s.colour
            );
        }
        for s in &phase_segs {
            match &s.place {
                None => text(
                    &mut o,
                    (s.xa + s.xb) / 2.0,
                    phase_top + 10.5,
                    "middle",
                    "font-size=\"10\"",
                    &s.label,
                ),
                Some(p) => {
                    let ly = phase_top + 14.0 + 11.0 + p.row as f64 * 13.0;
                    let cx = (s.xa + s.xb) / 2.0;
                    let tip = if p.anchor == "start" {
                        p.x - 2.0
                    } else {
                        p.x + 2.0
                    };
                    w!(
                        o,
                        "<path d=\"M{cx:.1} {:.1}V{:.1}H{tip:.1}\" fill=\"none\" stroke=\"#8C8C8C\" stroke-width=\"0.8\"/>",
                        phase_top + 14.0,
                        ly - 3.5
                    );
                    text(
                        &mut o,
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

    // RTO brackets, max_rto, write gap.
    for b in &brackets {
        let by = rto_top + b.place.row as f64 * 24.0 + 18.0;
        let m = &b.max;
        w!(
            o,
            "<path d=\"M{:.1} {by:.1}H{:.1}{}\" fill=\"none\" stroke=\"#8C8C8C\" stroke-dasharray=\"3 3\"/>",
            b.xa,
            m.x,
            if m.tick { "m0 -5v10" } else { "" }
        );
        text(
            &mut o,
            m.lx,
            by + if m.above { -5.0 } else { 3.5 },
            m.anchor,
            &format!("fill=\"{MUTED}\" font-size=\"10\" {HALO}"),
            &m.label,
        );
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
            &mut o,
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
    if let Some((ga, gb, label)) = &gap {
        let gy = gap_top + 18.0;
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
            &mut o,
            tx,
            ty,
            anchor,
            &format!("fill=\"{MUTED}\" font-size=\"11\" font-weight=\"600\" {HALO}"),
            label,
        );
    }

    // Marker labels.
    for (m, p) in markers.iter().zip(&mplaced) {
        let ly = marker_top + p.row as f64 * 14.0 + 11.0;
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

    // Time axis.
    axis(&mut o, xs, &tvals, step, axis_y, true, !r.faults.is_empty());
    if !compact {
        let what = match r.faults.len() {
            0 => "seconds since the measured window began (no fault)",
            1 => "seconds since the fault was injected",
            _ => "seconds since the first fault was injected",
        };
        text(
            &mut o,
            (x0 + x1) / 2.0,
            axis_y + 31.0,
            "middle",
            &format!("fill=\"{MUTED}\""),
            what,
        );
    }

    // Legend.
    for ((kind, label), (lx, ly)) in legend.iter().zip(&legend_pos) {
        let (lx, ly) = (*lx, *ly);
        let cy = ly - 4.0;
        match *kind {
            "dot" => w!(
                o,
                "<circle cx=\"{:.1}\" cy=\"{cy:.1}\" r=\"3.5\" fill=\"{}\"/>",
                lx + 8.0,
                palette::ACKNOWLEDGED
            ),
            "diamond" => w!(
                o,
                "<path d=\"M{:.1} {:.1}l5 5-5 5-5-5z\" fill=\"{}\"/>",
                lx + 8.0,
                cy - 5.0,
                palette::INDETERMINATE
            ),
            "band" => {
                let c = Class::ALL
                    .into_iter()
                    .find(|c| label.starts_with(c.label().split(" (").next().unwrap_or("")))
                    .map_or(palette::OTHER_FAILURE, Class::colour);
                w!(
                    o,
                    "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"16\" height=\"9\" fill=\"{c}\"/>",
                    cy - 4.5
                );
            }
            "lost" => w!(
                o,
                "<circle cx=\"{:.1}\" cy=\"{cy:.1}\" r=\"5\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>",
                lx + 8.0,
                palette::LOST
            ),
            "fault" => w!(
                o,
                "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"16\" height=\"9\" fill=\"{}\"/>",
                cy - 4.5,
                palette::FAULT
            ),
            "leader" => w!(
                o,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{MARKER}\" stroke-width=\"1.5\"/>",
                lx + 8.0,
                cy - 7.0,
                lx + 8.0,
                cy + 7.0
            ),
            "timeline" => w!(
                o,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{MARKER}\" stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>",
                lx + 8.0,
                cy - 7.0,
                lx + 8.0,
                cy + 7.0
            ),
            _ => w!(
                o,
                "<path d=\"M{:.1} {:.1}l-4-7h8z\" fill=\"#8C8C8C\"/>",
                lx + 8.0,
                cy + 3.5
            ),
        }
        text(&mut o, lx + 22.0, ly, "start", "", label);
    }
    o.push_str("</svg>");
    o
}

// ---------------------------------------------------------------------------
// HTML pages.
// ---------------------------------------------------------------------------

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;\
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

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

fn verdict_badge(passed: bool) -> String {
    if passed {
        "<span class=\"verdict pass\">PASSED</span>".into()
    } else {
        "<span class=\"verdict fail\">FAILED</span>".into()
    }
}

fn list_box(out: &mut String, class: &str, title: &str, items: &[String]) {
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

fn figures_table(b: &mut String, r: &Report) {
    let w_ = &r.writes;
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
    b.push_str("<table class=\"figures\">");
    for (k, v) in rows {
        w!(b, "<tr><td>{}</td><td>{v}</td></tr>", esc(&k));
    }
    b.push_str("</table>\n");
}

fn report_tables(b: &mut String, r: &Report) {
    if !r.phases.is_empty() {
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
    if !r.faults.is_empty() {
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
    if !r.events.is_empty() {
        b.push_str(
            "<h2>Events</h2><table><tr><th class=\"n\">at</th><th>event</th><th>detail</th></tr>",
        );
        for e in &r.events {
            w!(
                b,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                signed(e.at.ms_since(r.origin)),
                esc(&e.name),
                esc(e.detail.as_deref().unwrap_or(""))
            );
        }
        b.push_str("</table>\n");
    }
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

// ---------------------------------------------------------------------------
// A set of runs.
// ---------------------------------------------------------------------------

/// The RTO of every run of a set against the SLO as a standalone SVG: a dot
/// per run (runs without recovery apart), `max_rto` and, if set,
/// `max_rto_p95` lines, p50 and p95 marked.
pub fn set_rto_svg(s: &RunSet) -> String {
    let (x0, x1) = (ML, W - MR - 90.0);
    let nr_x = W - MR - 40.0;
    let rtos: Vec<(usize, f64, bool)> = s
        .runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.rto_ms.filter(|v| v.is_finite()).map(|v| (i, v, r.passed)))
        .collect();
    let unrecovered: Vec<usize> = s
        .runs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.rto_ms.is_none())
        .map(|(i, _)| i)
        .collect();
    let mut hi = s.slo.max_rto_ms.max(s.slo.max_rto_p95_ms.unwrap_or(0.0));
    for (_, v, _) in &rtos {
        hi = hi.max(*v);
    }
    let hi = (hi * 1.06).max(1_000.0);
    let xs = Lin {
        d0: 0.0,
        d1: hi,
        r0: x0,
        r1: x1,
    };
    // Reference lines with labels in rows at the top.
    let mut lines: Vec<(f64, String, &'static str, &'static str)> = vec![(
        s.slo.max_rto_ms,
        format!("max_rto {}", dur(s.slo.max_rto_ms)),
        palette::FAILED,
        "6 3",
    )];
    if let Some(p) = s.slo.max_rto_p95_ms {
        lines.push((
            p,
            format!("max_rto_p95 {}", dur(p)),
            palette::SHUTTING_DOWN,
            "6 3",
        ));
    }
    if let Some(d) = &s.stats.rto {
        lines.push((d.p50_ms, format!("p50 {}", dur(d.p50_ms)), INK, ""));
        lines.push((d.p95_ms, format!("p95 {}", dur(d.p95_ms)), INK, ""));
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut lrows = Rows::new(4);
    let lplaced: Vec<Placed> = lines
        .iter()
        .map(|(v, l, _, _)| place_beside(&mut lrows, xs.at(*v), text_width(l, 11.0), x1 + 60.0))
        .collect();
    // Dots stacked where they would overlap.
    const DOT: f64 = 5.5;
    let mut drows = Rows::with_gap(12, 0.5);
    let mut sorted = rtos.clone();
    sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let dots: Vec<(usize, f64, bool, usize)> = sorted
        .iter()
        .map(|&(i, v, p)| {
            let x = xs.at(v);
            (i, x, p, drows.place(x - DOT, x + DOT))
        })
        .collect();
    let label_top = 8.0;
    let top = label_top + lrows.len().max(1) as f64 * 14.0 + 4.0;
    let stack = drows.len().max(unrecovered.len().min(12)).max(4) as f64;
    let base = top + 4.0 + stack * 2.0 * DOT;
    let axis_y = base + 10.0;
    let legend_y = axis_y + 44.0;
    let height = legend_y + 12.0;

    let mut o = String::new();
    svg_open(
        &mut o,
        height,
        &format!("RTO of every run of {} against the SLO", s.scenario),
    );
    let (step, tv) = ticks(0.0, hi, x1 - x0, 70.0);
    o.push_str(&format!("<g stroke=\"{GRID}\">"));
    for &t in &tv {
        let x = xs.at(t);
        w!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{axis_y:.1}\"/>"
        );
    }
    o.push_str("</g>");
    for ((v, label, colour, dash), p) in lines.iter().zip(&lplaced) {
        let x = xs.at(*v);
        let ly = label_top + p.row as f64 * 14.0 + 11.0;
        w!(
            o,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{axis_y:.1}\" stroke=\"{colour}\" stroke-width=\"1.6\"{}/>",
            ly + 3.0,
            if dash.is_empty() {
                String::new()
            } else {
                format!(" stroke-dasharray=\"{dash}\"")
            }
        );
        text(
            &mut o,
            p.x,
            ly,
            p.anchor,
            &format!("fill=\"{colour}\" font-weight=\"600\" {HALO}"),
            label,
        );
    }
    for (i, x, passed, row) in &dots {
        let r = &s.runs[*i];
        let cy = base - *row as f64 * 2.0 * DOT;
        w!(
            o,
            "<circle cx=\"{x:.1}\" cy=\"{cy:.1}\" r=\"{DOT}\" fill=\"{}\" stroke=\"#FFFFFF\" stroke-width=\"0.8\"><title>run {}{}: RTO {}{}</title></circle>",
            if *passed {
                palette::ACKNOWLEDGED
            } else {
                palette::FAILED
            },
            i + 1,
            r.seed.map(|s| format!(" (seed {s})")).unwrap_or_default(),
            r.rto_ms.map_or_else(String::new, dur),
            if *passed { "" } else { ", failed" }
        );
    }
    if !unrecovered.is_empty() {
        for (k, i) in unrecovered.iter().enumerate() {
            let cy = base - (k.min(11)) as f64 * 2.0 * DOT;
            w!(
                o,
                "<path d=\"M{:.1} {:.1}l9 9m0-9l-9 9\" stroke=\"{}\" stroke-width=\"2.2\"><title>run {}: no recovery</title></path>",
                nr_x - 4.5,
                cy - 4.5,
                palette::FAILED,
                i + 1
            );
        }
        text(
            &mut o,
            nr_x,
            axis_y + 15.0,
            "middle",
            &format!("fill=\"{}\" font-size=\"10.5\"", palette::FAILED),
            &format!("no recovery ({})", unrecovered.len()),
        );
    }
    axis(&mut o, xs, &tv, step, axis_y, false, false);
    text(
        &mut o,
        (x0 + x1) / 2.0,
        axis_y + 31.0,
        "middle",
        &format!("fill=\"{MUTED}\""),
        "RTO of each run (fault injection to the first acknowledged write)",
    );
    text(
        &mut o,
        x0 - 8.0,
        base + 3.5,
        "end",
        "font-weight=\"600\"",
        &format!("{} runs", s.runs.len()),
    );
    let mut lx = x0;
    for (colour, label) in [
        (palette::ACKNOWLEDGED, "run that passed"),
        (palette::FAILED, "run that failed"),
    ] {
        w!(
            o,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4.5\" fill=\"{colour}\"/>",
            lx + 6.0,
            legend_y - 4.0
        );
        text(&mut o, lx + 16.0, legend_y, "start", "", label);
        lx += 30.0 + text_width(label, 11.0);
    }
    o.push_str("</svg>");
    o
}

/// An HTML page for a set of runs: the verdict and violations, the RTO
/// distribution against the SLO, the phase medians, a table of the runs, and
/// every run's timeline.
pub fn set_html(s: &RunSet) -> String {
    let mut b = String::new();
    w!(
        b,
        "<h1>{}{} × {} {}</h1>\n<p class=\"meta\">{}{}seed {} (CHAOS_SEED={} replays the set)</p>\n",
        esc(&s.scenario),
        s.label
            .as_ref()
            .map(|l| format!(" [{}]", esc(l)))
            .unwrap_or_default(),
        s.runs.len(),
        verdict_badge(s.passed),
        s.target
            .as_ref()
            .map(|t| format!("target {} ({} nodes) · ", esc(&t.kind), t.nodes))
            .unwrap_or_default(),
        if s.settings.is_empty() {
            String::new()
        } else {
            format!("settings {} · ", esc(&s.settings.join(", ")))
        },
        s.seed,
        s.seed
    );
    w!(b, "<p>{}</p>\n", esc(&s.summary_line()));
    list_box(&mut b, "violations", "Violations", &s.violations);
    b.push_str("<h2>RTO against the SLO</h2>\n");
    b.push_str(&set_rto_svg(s));
    b.push('\n');
    if !s.stats.phases.is_empty() {
        let total: f64 = s.stats.phases.iter().map(|p| p.median_ms).sum();
        b.push_str("<h2>Phase medians</h2><table><tr><th>phase</th><th class=\"n\">median</th><th class=\"n\">runs</th><th></th></tr>");
        for p in &s.stats.phases {
            let wpx = if total > 0.0 {
                (p.median_ms / total * 400.0).max(1.0)
            } else {
                1.0
            };
            w!(
                b,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"402\" height=\"12\"><rect x=\"0.5\" y=\"0.5\" width=\"{wpx:.1}\" height=\"11\" fill=\"{}\" stroke=\"#8C8C8C\"/></svg></td></tr>",
                esc(&p.name),
                dur(p.median_ms),
                p.runs,
                palette::phase(&p.name)
            );
        }
        b.push_str("</table>\n");
    }
    // Phases present in any run, in phase order.
    let phase_names: Vec<&str> = palette::PHASES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| s.runs.iter().any(|r| r.phases.iter().any(|p| p.name == *n)))
        .collect();
    b.push_str("<h2>Runs</h2><table><tr><th class=\"n\">run</th><th class=\"n\">seed</th><th class=\"n\">RTO</th><th class=\"n\">write gap</th>");
    for n in &phase_names {
        w!(b, "<th class=\"n\">{}</th>", esc(n));
    }
    b.push_str("<th class=\"n\">lost</th><th class=\"n\">indeterminate</th><th>verdict</th></tr>");
    for (i, r) in s.runs.iter().enumerate() {
        w!(
            b,
            "<tr><td class=\"n\"><a href=\"#run-{}\">{}</a></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
            i + 1,
            i + 1,
            r.seed.map(|x| x.to_string()).unwrap_or_default(),
            r.rto_ms.map_or_else(|| "no recovery".into(), dur),
            r.write_gap_ms.map_or_else(|| "none".into(), dur)
        );
        for n in &phase_names {
            w!(
                b,
                "<td class=\"n\">{}</td>",
                r.phases
                    .iter()
                    .find(|p| p.name == *n)
                    .map_or_else(String::new, |p| dur(p.ms))
            );
        }
        w!(
            b,
            "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"{}\">{}</td></tr>",
            r.writes.lost,
            r.writes.indeterminate,
            if r.passed { "good" } else { "bad" },
            if r.passed { "passed" } else { "failed" }
        );
    }
    b.push_str("</table>\n<h2>Every run's timeline</h2>\n");
    for (i, r) in s.runs.iter().enumerate() {
        w!(
            b,
            "<section id=\"run-{}\"><h3>run {} of {}{} · {} <span class=\"{}\">{}</span></h3>\n<p class=\"meta\">{}</p>\n{}{}\n</section>\n",
            i + 1,
            i + 1,
            s.runs.len(),
            r.seed.map(|x| format!(" · seed {x}")).unwrap_or_default(),
            esc(&r.scenario),
            if r.passed { "good" } else { "bad" },
            if r.passed { "PASSED" } else { "FAILED" },
            esc(&summary_words(r)),
            if r.violations.is_empty() {
                String::new()
            } else {
                let mut v = String::new();
                list_box(&mut v, "violations", "Violations", &r.violations);
                v
            },
            report_svg_compact(r)
        );
    }
    page(
        &format!(
            "{} × {} — {}",
            s.scenario,
            s.runs.len(),
            if s.passed { "PASSED" } else { "FAILED" }
        ),
        &b,
    )
}

/// Writes `dir/<scenario>.runs.html`; returns its path.
///
/// # Errors
/// [`crate::Error::ReportWrite`] naming the file.
pub fn write_set_html(s: &RunSet, dir: &Path) -> Result<PathBuf> {
    write_file(
        dir,
        &format!("{}.runs.html", file_stem(&s.scenario)),
        set_html(s).as_bytes(),
    )
}

// ---------------------------------------------------------------------------
// A comparison.
// ---------------------------------------------------------------------------

/// `s` broken into lines of at most `n` characters at spaces.
fn wrap(s: &str, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split(' ') {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > n {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

fn verdict_colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Faster => palette::PASSED,
        Verdict::Slower => palette::FAILED,
        Verdict::NoDetectableDifference | Verdict::TooFewRuns => MUTED,
    }
}

/// A comparison as a standalone SVG document: the verdict as its title, both
/// samples' RTOs as strips on one axis with their medians, then per metric
/// (the RTO and each phase) the medians side by side and the difference
/// B − A with its confidence interval.
pub fn comparison_svg(c: &Comparison) -> String {
    let headline = c.headline();
    let title_lines = wrap(&headline, 118);
    let mut o = String::new();
    let (x0, x1) = (ML + 40.0, W - MR);
    let mut y = 26.0;
    let mut body = String::new();
    let title_colour = c.rto.as_ref().map_or(MUTED, |d| verdict_colour(d.verdict));
    for l in &title_lines {
        text(
            &mut body,
            24.0,
            y,
            "start",
            &format!("font-size=\"16\" font-weight=\"700\" fill=\"{title_colour}\""),
            l,
        );
        y += 21.0;
    }
    y += 2.0;
    for (s, colour, which) in [
        (&c.a, palette::SAMPLE_A, "A"),
        (&c.b, palette::SAMPLE_B, "B"),
    ] {
        w!(
            body,
            "<circle cx=\"30\" cy=\"{:.1}\" r=\"5\" fill=\"{colour}\"/>",
            y - 4.0
        );
        text(
            &mut body,
            42.0,
            y,
            "start",
            "font-size=\"12\"",
            &clip(
                &format!(
                    "{which} = {}: {} recovered run(s){}, scenario {}{}, {} lost",
                    s.label,
                    s.rto_ms.len(),
                    if s.unrecovered > 0 {
                        format!(" + {} without recovery", s.unrecovered)
                    } else {
                        String::new()
                    },
                    s.scenario,
                    if s.settings.is_empty() {
                        String::new()
                    } else {
                        format!(", settings {}", s.settings.join(", "))
                    },
                    s.lost
                ),
                180,
            ),
        );
        y += 18.0;
    }

    // Panel 1: every RTO.
    y += 14.0;
    text(
        &mut body,
        24.0,
        y,
        "start",
        "font-size=\"13\" font-weight=\"700\"",
        "RTO of every run",
    );
    y += 10.0;
    let all: Vec<f64> =
        c.a.rto_ms
            .iter()
            .chain(&c.b.rto_ms)
            .copied()
            .filter(|v| v.is_finite())
            .collect();
    let hi = (all.iter().copied().fold(0.0, f64::max) * 1.08).max(1_000.0);
    let xs = Lin {
        d0: 0.0,
        d1: hi,
        r0: x0,
        r1: x1,
    };
    let strip_h = 46.0;
    let strips_top = y;
    let (step, tv) = ticks(0.0, hi, x1 - x0, 70.0);
    body.push_str(&format!("<g stroke=\"{GRID}\">"));
    for &t in &tv {
        let x = xs.at(t);
        w!(
            body,
            "<line x1=\"{x:.1}\" y1=\"{strips_top:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/>",
            strips_top + 2.0 * strip_h
        );
    }
    body.push_str("</g>");
    for (k, (s, colour)) in [(&c.a, palette::SAMPLE_A), (&c.b, palette::SAMPLE_B)]
        .into_iter()
        .enumerate()
    {
        let cy = strips_top + k as f64 * strip_h + strip_h / 2.0;
        text(
            &mut body,
            x0 - 10.0,
            cy + 4.0,
            "end",
            &format!("font-weight=\"600\" fill=\"{colour}\""),
            &clip(&s.label, 22),
        );
        let mut rows = Rows::with_gap(5, 0.5);
        let mut vals: Vec<(usize, f64)> = s.rto_ms.iter().copied().enumerate().collect();
        vals.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        for (i, v) in vals {
            let x = xs.at(v);
            let row = rows.place(x - 4.0, x + 4.0);
            let off = match row {
                0 => 0.0,
                r if r % 2 == 1 => -(r.div_ceil(2) as f64) * 9.0,
                r => ((r / 2) as f64) * 9.0,
            };
            w!(
                body,
                "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"4.5\" fill=\"{colour}\" stroke=\"#FFFFFF\" stroke-width=\"0.8\"><title>{} run {}: {}</title></circle>",
                cy + off,
                esc(&s.label),
                i + 1,
                dur(v)
            );
        }
        if let Some(m) = s.median_rto_ms() {
            let x = xs.at(m);
            w!(
                body,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{INK}\" stroke-width=\"2.5\"/>",
                cy - 17.0,
                cy + 17.0
            );
            let label = format!("median {}", dur(m));
            let (tx, anchor) = if x + 6.0 + text_width(&label, 11.0) <= x1 {
                (x + 6.0, "start")
            } else {
                (x - 6.0, "end")
            };
            text(
                &mut body,
                tx,
                cy - 9.0,
                anchor,
                &format!("font-weight=\"600\" {HALO}"),
                &label,
            );
        }
    }
    let axis_y = strips_top + 2.0 * strip_h;
    axis(&mut body, xs, &tv, step, axis_y, false, false);
    y = axis_y + 40.0;

    // Panel 2: medians and differences per metric.
    let metrics: Vec<&Difference> = c.rto.iter().chain(&c.phases).collect();
    if !metrics.is_empty() {
        let (m0, m1) = (x0, 620.0);
        let (d0, d1) = (700.0, x1);
        text(
            &mut body,
            24.0,
            y,
            "start",
            "font-size=\"13\" font-weight=\"700\"",
            "Medians",
        );
        text(
            &mut body,
            d0,
            y,
            "start",
            "font-size=\"13\" font-weight=\"700\"",
            &format!(
                "Difference B − A, with its {:.0} % interval",
                c.confidence * 100.0
            ),
        );
        y += 12.0;
        let mhi = metrics
            .iter()
            .map(|d| d.median_a_ms.max(d.median_b_ms))
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.18;
        let ms = Lin {
            d0: 0.0,
            d1: mhi,
            r0: m0,
            r1: m1,
        };
        let dmax = metrics
            .iter()
            .flat_map(|d| [Some(d.diff_ms), d.ci_low_ms, d.ci_high_ms])
            .flatten()
            .filter(|v| v.is_finite())
            .map(f64::abs)
            .fold(0.0, f64::max)
            .max(10.0)
            * 1.15;
        let ds = Lin {
            d0: -dmax,
            d1: dmax,
            r0: d0,
            r1: d1,
        };
        let row_h = 40.0;
        let rows_top = y;
        let rows_bottom = rows_top + metrics.len() as f64 * row_h;
        let (mstep, mtv) = ticks(0.0, mhi, m1 - m0, 70.0);
        let (dstep, dtv) = ticks(-dmax, dmax, d1 - d0, 70.0);
        body.push_str(&format!("<g stroke=\"{GRID}\">"));
        for &t in &mtv {
            let x = ms.at(t);
            w!(
                body,
                "<line x1=\"{x:.1}\" y1=\"{rows_top:.1}\" x2=\"{x:.1}\" y2=\"{rows_bottom:.1}\"/>"
            );
        }
        for &t in &dtv {
            let x = ds.at(t);
            w!(
                body,
                "<line x1=\"{x:.1}\" y1=\"{rows_top:.1}\" x2=\"{x:.1}\" y2=\"{rows_bottom:.1}\"/>"
            );
        }
        body.push_str("</g>");
        let zx = ds.at(0.0);
        w!(
            body,
            "<line x1=\"{zx:.1}\" y1=\"{rows_top:.1}\" x2=\"{zx:.1}\" y2=\"{rows_bottom:.1}\" stroke=\"{INK}\" stroke-width=\"1.2\"/>"
        );
        for (k, d) in metrics.iter().enumerate() {
            let top = rows_top + k as f64 * row_h;
            if k % 2 == 1 {
                w!(
                    body,
                    "<rect x=\"20\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{row_h:.1}\" fill=\"#F4F4F4\"/>",
                    W - 40.0
                );
            }
            let name = if d.metric == "rto" { "RTO" } else { &d.metric };
            if d.metric != "rto" {
                w!(
                    body,
                    "<rect x=\"24\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\" stroke=\"#8C8C8C\"/>",
                    top + row_h / 2.0 - 6.0,
                    palette::phase(&d.metric)
                );
            }
            text(
                &mut body,
                40.0,
                top + row_h / 2.0 + 4.0,
                "start",
                "font-weight=\"600\"",
                name,
            );
            for (j, (v, colour)) in [
                (d.median_a_ms, palette::SAMPLE_A),
                (d.median_b_ms, palette::SAMPLE_B),
            ]
            .into_iter()
            .enumerate()
            {
                let by = top + 8.0 + j as f64 * 13.0;
                let xb = ms.clamped(v);
                w!(
                    body,
                    "<rect x=\"{m0:.1}\" y=\"{by:.1}\" width=\"{:.1}\" height=\"11\" fill=\"{colour}\"/>",
                    (xb - m0).max(1.0)
                );
                text(
                    &mut body,
                    xb + 4.0,
                    by + 9.5,
                    "start",
                    "font-size=\"10.5\"",
                    &dur(v),
                );
            }
            let cy = top + row_h / 2.0 + 4.0;
            let colour = verdict_colour(d.verdict);
            if let (Some(lo), Some(hi)) = (d.ci_low_ms, d.ci_high_ms) {
                let (xa, xb) = (ds.clamped(lo), ds.clamped(hi));
                w!(
                    body,
                    "<path d=\"M{xa:.1} {:.1}v10M{xa:.1} {cy:.1}H{xb:.1}M{xb:.1} {:.1}v10\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                    cy - 5.0,
                    cy - 5.0
                );
            }
            let dx = ds.clamped(d.diff_ms);
            w!(
                body,
                "<circle cx=\"{dx:.1}\" cy=\"{cy:.1}\" r=\"5\" fill=\"{colour}\"/>"
            );
            let label = match (d.ci_low_ms, d.ci_high_ms) {
                (Some(lo), Some(hi)) => {
                    format!("{} [{} … {}]", signed(d.diff_ms), signed(lo), signed(hi))
                }
                _ => format!("{} (too few runs for an interval)", signed(d.diff_ms)),
            };
            text(
                &mut body,
                (d0 + d1) / 2.0,
                top + 11.0,
                "middle",
                &format!("font-size=\"10.5\" fill=\"{colour}\" {HALO}"),
                &label,
            );
        }
        axis(&mut body, ms, &mtv, mstep, rows_bottom, false, false);
        axis(&mut body, ds, &dtv, dstep, rows_bottom, true, false);
        text(
            &mut body,
            d0,
            rows_bottom + 30.0,
            "start",
            &format!("fill=\"{MUTED}\" font-size=\"10.5\""),
            "← B faster",
        );
        text(
            &mut body,
            d1,
            rows_bottom + 30.0,
            "end",
            &format!("fill=\"{MUTED}\" font-size=\"10.5\""),
            "B slower →",
        );
        y = rows_bottom + 52.0;
    }
    for n in &c.notes {
        text(
            &mut body,
            24.0,
            y,
            "start",
            &format!("fill=\"{}\"", palette::FAILED),
            &format!("note: {n}"),
        );
        y += 16.0;
    }
    svg_open(&mut o, y + 4.0, &headline);
    o.push_str(&body);
    o.push_str("</svg>");
    o
}

/// A horizontal axis at `y` with tick labels; with `bold_zero`, the label
/// of 0 (the fault's injection) stands out.
fn axis(o: &mut String, xs: Lin, tv: &[f64], step: f64, y: f64, sign: bool, bold_zero: bool) {
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

/// An HTML page for a comparison: the verdict, the picture, and a table of
/// the medians, differences and intervals.
pub fn comparison_html(c: &Comparison) -> String {
    let mut b = String::new();
    w!(
        b,
        "<h1>Comparison: {} vs {}</h1>\n",
        esc(&c.a.label),
        esc(&c.b.label)
    );
    w!(
        b,
        "<p class=\"meta\">A = {} · B = {} · {:.0} % bootstrap interval of the difference of medians, {} resamples, seed {}</p>\n",
        esc(&c.a.label),
        esc(&c.b.label),
        c.confidence * 100.0,
        c.resamples,
        c.seed
    );
    list_box(&mut b, "warnings", "Notes", &c.notes);
    b.push_str(&comparison_svg(c));
    b.push_str("\n<h2>Medians and differences</h2><table><tr><th>metric</th><th class=\"n\">A</th><th class=\"n\">B</th><th class=\"n\">B − A</th><th class=\"n\">interval</th><th>verdict</th></tr>");
    for d in c.rto.iter().chain(&c.phases) {
        w!(
            b,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(if d.metric == "rto" { "RTO" } else { &d.metric }),
            dur(d.median_a_ms),
            dur(d.median_b_ms),
            signed(d.diff_ms),
            match (d.ci_low_ms, d.ci_high_ms) {
                (Some(lo), Some(hi)) => format!("{} … {}", signed(lo), signed(hi)),
                _ => "—".into(),
            },
            esc(&d.text)
        );
    }
    b.push_str("</table>\n<h2>Samples</h2><table><tr><th></th><th>label</th><th>scenario</th><th>settings</th><th class=\"n\">recovered</th><th class=\"n\">no recovery</th><th class=\"n\">lost</th><th>RTOs</th></tr>");
    for (which, s) in [("A", &c.a), ("B", &c.b)] {
        w!(
            b,
            "<tr><td>{which}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&s.label),
            esc(&s.scenario),
            esc(&s.settings.join(", ")),
            s.rto_ms.len(),
            s.unrecovered,
            s.lost,
            esc(&s
                .rto_ms
                .iter()
                .map(|v| dur(*v))
                .collect::<Vec<_>>()
                .join(", "))
        );
    }
    b.push_str("</table>\n");
    page(&c.headline(), &b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::Sample;
    use serde_json::{Value, json};

    const T0: &str = "2026-11-27T10:00:00Z";

    /// An RFC 3339 time `ms` after 10:00:00.
    fn at(ms: f64) -> String {
        let t = humantime::parse_rfc3339(T0).unwrap()
            + std::time::Duration::from_micros((ms * 1000.0) as u64);
        humantime::format_rfc3339_micros(t).to_string()
    }

    /// A report of `history` with `faults`, `events` and `phases` around a
    /// fault at 0 (10:00:00).
    fn report_of(
        scenario: &str,
        history: Vec<Value>,
        faults: Vec<Value>,
        events: Vec<Value>,
        phases: Vec<Value>,
    ) -> Report {
        let count = |o: &str| history.iter().filter(|h| h["outcome"] == o).count();
        let rto = faults.first().and_then(|f| f["rto_ms"].as_f64());
        serde_json::from_value(json!({
            "schema_version": 1, "run_id": "r1", "scenario": scenario, "seed": 42,
            "target": { "kind": "local", "rw_dsn": "postgresql://x/<db>&", "nodes": 3 },
            "started_at": at(0.0), "origin": T0,
            "duration_ms": 12000.0, "window_start_ms": -2000.0, "window_end_ms": 8000.0,
            "fault": faults.first().cloned(), "faults": faults,
            "slo": { "max_rto_ms": 3000.0, "max_lost_writes": 0, "max_lost_window_ms": null },
            "rto_ms": rto, "write_gap_ms": rto, "write_gap_start_ms": rto.map(|_| -5.0),
            "unexplained_gap_ms": null, "resolution_ms": 12.0, "median_latency_ms": 2.0,
            "lost_window_ms": 0.0,
            "writes": { "attempted": history.len(), "acknowledged": count("acknowledged"),
                        "failed": count("failed"), "indeterminate": count("indeterminate"),
                        "lost": 2, "indeterminate_found": 0, "indeterminate_missing": 1, "failed_but_present": 0 },
            "lost": [{ "writer": 1, "seq": 10 }, { "writer": 2, "seq": 20 }],
            "split_brain": true, "split_brain_writes": 1, "phases": phases,
            "events": events, "warnings": ["synchronous_standby_names is empty"], "history": history,
            "passed": false, "failure": "slo",
            "violations": ["RTO 3.100s exceeds max_rto 3.000s", "2 acknowledged writes lost (allowed: 0)"]
        }))
        .expect("a report")
    }

    /// Two faults (a kill with phases, a switchover), every class of
    /// attempt, two lost writes, a split-brain write.
    fn sample() -> Report {
        let mut history = Vec::new();
        let mut seq = [0u64; 2];
        let mut rng: u64 = 7;
        let mut t = -2000.0;
        while t < 8000.0 {
            for (writer, seq) in seq.iter_mut().enumerate() {
                *seq += 1;
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let jitter = (rng >> 33) as f64 / f64::from(u32::MAX);
                let start = t + writer as f64 * 5.0;
                let (outcome, lat, extra) = match start {
                    s if s < 0.0 => (
                        "acknowledged",
                        1.0 + 3.0 * jitter,
                        json!({ "server": "127.0.0.11:5432", "timeline": 1 }),
                    ),
                    s if s < 1500.0 => ("failed", 0.4 + jitter, json!({})),
                    s if s < 2500.0 => ("failed", 2.0, json!({ "sqlstate": "57P01" })),
                    s if s < 2900.0 => ("failed", 1.5, json!({ "sqlstate": "25006" })),
                    s if s < 3000.0 => ("failed", 1.5, json!({ "sqlstate": "40001" })),
                    s if (5000.0..5300.0).contains(&s) => {
                        ("failed", 1.0, json!({ "sqlstate": "57P03" }))
                    }
                    s if s < 5000.0 => (
                        "acknowledged",
                        2.0 + 20.0 * jitter,
                        json!({ "server": "127.0.0.12:5432", "timeline": 2 }),
                    ),
                    _ => (
                        "acknowledged",
                        1.5 + 8.0 * jitter,
                        json!({ "server": "127.0.0.13:5432", "timeline": 3 }),
                    ),
                };
                let mut h = json!({ "writer": writer + 1, "seq": *seq, "started_ms": start,
                                    "finished_ms": start + lat, "outcome": outcome });
                for (k, v) in extra.as_object().unwrap() {
                    h[k] = v.clone();
                }
                history.push(h);
            }
            t += 10.0;
        }
        history.push(
            json!({ "writer": 3, "seq": 1, "started_ms": 1000.0, "finished_ms": 6000.0,
                             "outcome": "indeterminate", "reason": "deadline" }),
        );
        // A late acknowledgement on the old timeline: split-brain.
        history.push(json!({ "writer": 3, "seq": 2, "started_ms": 3200.0, "finished_ms": 3204.0,
                             "outcome": "acknowledged", "server": "127.0.0.11:5432", "timeline": 1 }));
        history.sort_by(|a, b| {
            a["started_ms"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["started_ms"].as_f64().unwrap())
        });
        let phase =
            |name: &str, from: f64, ms: f64| json!({ "name": name, "ms": ms, "at": at(from) });
        let phases = vec![
            phase("detection", 0.0, 1400.0),
            phase("election", 1400.0, 200.0),
            phase("promotion", 1600.0, 900.0),
            phase("routing", 2500.0, 500.0),
            phase("first_write", 3000.0, 100.0),
        ];
        let faults = vec![
            json!({ "kind": "delete-primary", "mode": "kill", "victim": "node1", "injected_at": T0,
                    "healed_at": at(4000.0), "marked": false, "rto_ms": 3100.0, "phases": phases }),
            json!({ "kind": "switchover", "mode": "to <sync> & \"standby\"", "victim": "node2",
                    "injected_at": at(5000.0), "healed_at": null, "marked": false, "rto_ms": 300.0 }),
        ];
        let event = |ms: f64, name: &str, detail: &str| json!({ "name": name, "at": at(ms), "detail": detail });
        let events = vec![
            event(1400.0, "member down", "node1"),
            event(2900.0, "new primary observed", "node2 on timeline 1"),
            event(2950.0, "new primary observed", "node2 on timeline 2"),
            event(3000.0, "proxy routes to", "node2"),
            event(5250.0, "new primary observed", "node3 on timeline 3"),
            event(99_000.0, "member back", "node1 (after the window)"),
        ];
        report_of(
            "unit::two <faults> & \"quotes\"",
            history,
            faults,
            events,
            phases,
        )
    }

    fn empty() -> Report {
        report_of(
            "unit::nothing",
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        )
    }

    /// Checks that `doc` is well-formed XML-ish markup: tags balanced and
    /// properly nested, attributes quoted, no stray `<` or `&`. `void`:
    /// elements without an end tag (HTML's).
    fn assert_well_formed(doc: &str, void: &[&str]) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = doc;
        let check_text = |t: &str| {
            let mut s = t;
            while let Some(i) = s.find('&') {
                let ent = &s[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                        .iter()
                        .any(|e| ent.starts_with(e)),
                    "unescaped & near {:?}",
                    &ent[..ent.len().min(40)]
                );
                s = &s[i + 1..];
            }
            assert!(!t.contains('>'), "stray > in {:?}", &t[..t.len().min(60)]);
        };
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open]);
            let close = rest[open..].find('>').expect("an unclosed tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "< inside a tag: {tag:?}");
            rest = &rest[close + 1..];
            if tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack
                    .pop()
                    .unwrap_or_else(|| panic!("</{name}> closes nothing"));
                assert_eq!(top, name, "</{name}> closes <{top}>");
                continue;
            }
            let name: String = tag
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '/')
                .collect();
            // Attribute values are quoted and hold no raw quotes or <.
            let quotes = tag.matches('"').count();
            assert!(quotes.is_multiple_of(2), "unbalanced quotes in <{tag}>");
            for (i, part) in tag.split('"').enumerate() {
                if i % 2 == 1 {
                    check_text(part);
                }
            }
            if !tag.ends_with('/') && !void.contains(&name.as_str()) {
                stack.push(name);
            }
        }
        check_text(rest);
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    /// How many attempts a class's path draws (its move commands).
    fn drawn(svg: &str, class: &str) -> usize {
        svg.split(&format!("<path class=\"{class}\""))
            .skip(1)
            .map(|p| {
                let d = p.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
                d.matches('M').count()
            })
            .sum()
    }

    #[test]
    fn the_timeline_is_well_formed_and_labelled() {
        let r = sample();
        let svg = report_svg(&r);
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{}",
            &svg[..80]
        );
        assert_well_formed(&svg, &[]);
        for label in [
            "RTO 3.100s",
            "RTO 0.300s",
            "write gap 3.100s",
            "max_rto 3.000s",
            "delete-primary (kill) on node1",
            "switchover (to &lt;sync&gt; &amp; &quot;standby&quot;) on node2",
            "detection 1.400s",
            "election 0.200s",
            "promotion 0.900s",
            "routing 0.500s",
            "first_write 0.100s",
            "primary → node2",
            "primary → node3",
            "timeline 1 → 2",
            "timeline 2 → 3",
            "unit::two &lt;faults&gt; &amp; &quot;quotes&quot; <tspan",
            "FAILED",
            "failed: read-only (25006)",
            "failed: shutting down",
            "failed: cannot connect",
            "failed: other (40001)",
            "indeterminate (1)",
            "acknowledged but lost (2)",
            "member down (node1)",
            "seconds since the first fault was injected",
        ] {
            assert!(svg.contains(label), "{label:?} missing");
        }
        // The same report gives the same bytes.
        assert_eq!(svg, report_svg(&r.clone()));
        // Events outside the drawn span are left out of the picture.
        assert!(!svg.contains("after the window"));
    }

    #[test]
    fn every_attempt_is_drawn_once() {
        let r = sample();
        let svg = report_svg(&r);
        let ack = r
            .history
            .iter()
            .filter(|h| h.outcome == AttemptOutcome::Acknowledged)
            .count();
        let failed = r
            .history
            .iter()
            .filter(|h| h.outcome == AttemptOutcome::Failed)
            .count();
        assert_eq!(drawn(&svg, "acknowledged"), ack);
        assert_eq!(drawn(&svg, "failed"), failed);
        assert_eq!(drawn(&svg, "indeterminate"), 1);
        assert_eq!(drawn(&svg, "lost"), 2);
        assert_eq!(ack + failed + 1, r.history.len());
        // Four failure bands (57P01 and 57P03 share one), none of them empty.
        assert_eq!(svg.matches("<path class=\"failed\"").count(), 4);
    }

    #[test]
    fn a_report_without_history_or_fault_renders() {
        let r = empty();
        let svg = report_svg(&r);
        assert_well_formed(&svg, &[]);
        assert!(svg.contains("no fault"), "says why there is no RTO");
        assert!(svg.contains("no write attempts were recorded"));
        assert!(svg.contains("(no fault)"));
        assert!(!svg.contains("RTO 0"));
        assert_eq!(drawn(&svg, "acknowledged"), 0);
        let html = report_html(&r);
        assert_well_formed(&html, &["meta"]);
        assert!(html.contains("none injected or marked"));
        // Without phases in the report, none are shown.
        assert!(!report_html(&sample_without_phases()).contains("RTO phases"));
    }

    fn sample_without_phases() -> Report {
        let mut r = sample();
        r.phases.clear();
        for f in &mut r.faults {
            f.phases.clear();
        }
        r
    }

    #[test]
    fn the_report_page_embeds_the_timeline_with_the_figures() {
        let mut r = sample();
        r.phases = r.faults[0].phases.clone();
        let html = report_html(&r);
        assert_well_formed(&html, &["meta"]);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains(&report_svg(&r)), "the SVG is inline");
        assert!(!html.contains("<script"), "no JavaScript");
        for label in [
            "FAILED",
            "exceeds max_rto",
            "2 acknowledged writes lost",
            "synchronous_standby_names",
            "RTO phases",
            "detection",
            "1400.0",
            "57P01",
            "25006",
            "40001",
            "none (could not connect)",
            "deadline",
            "1 writes on an old timeline",
            "delete-primary",
            "postgresql://x/&lt;db&gt;&amp;",
        ] {
            assert!(
                html.contains(label) || html.contains(&esc(label)),
                "{label:?} missing"
            );
        }
        let dir = std::env::temp_dir().join(format!("chaos-picture-unit-{}", std::process::id()));
        let [svg, path] = write_report_html(&r, &dir).expect("written");
        assert!(svg.is_file() && svg.extension().is_some_and(|e| e == "svg"));
        assert!(
            path.ends_with("unit__two__faults_____quotes_.html"),
            "{}",
            path.display()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), html);
        assert_eq!(
            std::fs::read_to_string(path.with_extension("svg")).unwrap(),
            report_svg(&r)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn thousands_of_attempts_stay_fast_and_small() {
        let mut r = sample();
        let base = r.history.clone();
        while r.history.len() < 30_000 {
            r.history.extend(base.iter().cloned());
        }
        let started = std::time::Instant::now();
        let svg = report_svg(&r);
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
        let per_attempt = svg.len() as f64 / r.history.len() as f64;
        assert!(per_attempt < 20.0, "{per_attempt:.1} bytes per attempt");
    }

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

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(esc("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&#39;\u{FFFD}");
        assert_eq!(signed(-0.0001), "+0.000s");
        assert_eq!(signed(-1500.0), "−1.500s");
        assert_eq!(tick_label(-2000.0, 1000.0, true), "−2s");
        assert_eq!(tick_label(500.0, 100.0, true), "+0.5s");
        assert_eq!(tick_label(750.0, 250.0, false), "0.75s");
    }
}
