//! The picture of a comparison of two samples of runs, and its page.

use std::fmt::Write as _;

use crate::report::picture::{
    GRID, HALO, INK, Lin, ML, MR, MUTED, Rows, W, axis, clip, dur, esc, list_box, page, palette,
    signed, svg_open, text, text_width, ticks, w,
};
use crate::runs::{Comparison, Difference, Verdict};

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
    let (x0, x1) = (ML + 40.0, W - MR);
    let mut body = String::new();
    let y = heading(&mut body, c, &headline);
    let mut y = rto_strips(&mut body, c, x0, x1, y);
    let metrics: Vec<&Difference> = c.rto.iter().chain(&c.phases).collect();
    if !metrics.is_empty() {
        y = differences(&mut body, c, &metrics, x0, x1, y);
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
    let mut o = String::new();
    svg_open(&mut o, y + 4.0, &headline);
    o.push_str(&body);
    o.push_str("</svg>");
    o
}

/// The verdict as a title (wrapped), and a line per sample; returns the y
/// below them.
fn heading(body: &mut String, c: &Comparison, headline: &str) -> f64 {
    let title_lines = wrap(headline, 118);
    let mut y = 26.0;
    let title_colour = c.rto.as_ref().map_or(MUTED, |d| verdict_colour(d.verdict));
    for l in &title_lines {
        text(
            body,
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
            body,
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
    y
}

/// Panel 1: both samples' RTOs as strips on one axis, with their medians,
/// from `y` across `x0..x1`; returns the y below.
fn rto_strips(body: &mut String, c: &Comparison, x0: f64, x1: f64, mut y: f64) -> f64 {
    y += 14.0;
    text(
        body,
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
            body,
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
                body,
                tx,
                cy - 9.0,
                anchor,
                &format!("font-weight=\"600\" {HALO}"),
                &label,
            );
        }
    }
    let axis_y = strips_top + 2.0 * strip_h;
    axis(body, xs, &tv, step, axis_y, false, false);
    axis_y + 40.0
}

/// Panel 2: per metric (the RTO and each phase) the medians side by side and
/// the difference B − A with its interval, from `y` across `x0..x1`; returns
/// the y below.
fn differences(
    body: &mut String,
    c: &Comparison,
    metrics: &[&Difference],
    x0: f64,
    x1: f64,
    mut y: f64,
) -> f64 {
    let (m0, m1) = (x0, 620.0);
    let (d0, d1) = (700.0, x1);
    text(
        body,
        24.0,
        y,
        "start",
        "font-size=\"13\" font-weight=\"700\"",
        "Medians",
    );
    text(
        body,
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
            body,
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
                body,
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
            body,
            (d0 + d1) / 2.0,
            top + 11.0,
            "middle",
            &format!("font-size=\"10.5\" fill=\"{colour}\" {HALO}"),
            &label,
        );
    }
    axis(body, ms, &mtv, mstep, rows_bottom, false, false);
    axis(body, ds, &dtv, dstep, rows_bottom, true, false);
    text(
        body,
        d0,
        rows_bottom + 30.0,
        "start",
        &format!("fill=\"{MUTED}\" font-size=\"10.5\""),
        "← B faster",
    );
    text(
        body,
        d1,
        rows_bottom + 30.0,
        "end",
        &format!("fill=\"{MUTED}\" font-size=\"10.5\""),
        "B slower →",
    );
    rows_bottom + 52.0
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
