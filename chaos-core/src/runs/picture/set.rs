//! The page of a set of runs: the RTO of every run against the SLO, the
//! phase medians, a table of the runs and every run's timeline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::Result;
use crate::report::json::{file_stem, write_file};
use crate::report::picture::{
    GRID, HALO, INK, Lin, ML, MR, MUTED, Placed, Rows, W, axis, dur, esc, list_box, page, palette,
    place_beside, svg_open, text, text_width, ticks, verdict_badge, w,
};
use crate::report::picture::{report_svg_compact, summary_words};
use crate::runs::RunSet;

/// The radius of a run's dot.
const DOT: f64 = 5.5;

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
    let lines = reference_lines(s);
    let mut lrows = Rows::new(4);
    let lplaced: Vec<Placed> = lines
        .iter()
        .map(|(v, l, _, _)| place_beside(&mut lrows, xs.at(*v), text_width(l, 11.0), x1 + 60.0))
        .collect();
    // Dots stacked where they would overlap.
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
    draw_runs(&mut o, s, &dots, &unrecovered, base, nr_x, axis_y);
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
    run_legend(&mut o, x0, legend_y);
    o.push_str("</svg>");
    o
}

/// The SLO's lines (`max_rto`, `max_rto_p95`) and the set's p50 and p95: value,
/// label, colour and dash pattern, by value.
fn reference_lines(s: &RunSet) -> Vec<(f64, String, &'static str, &'static str)> {
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
    lines
}

/// A dot per recovered run (`dots`: run, x, passed, stacking row) above
/// `base`, and a cross per run without recovery at `nr_x`.
fn draw_runs(
    o: &mut String,
    s: &RunSet,
    dots: &[(usize, f64, bool, usize)],
    unrecovered: &[usize],
    base: f64,
    nr_x: f64,
    axis_y: f64,
) {
    for (i, x, passed, row) in dots {
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
            o,
            nr_x,
            axis_y + 15.0,
            "middle",
            &format!("fill=\"{}\" font-size=\"10.5\"", palette::FAILED),
            &format!("no recovery ({})", unrecovered.len()),
        );
    }
}

/// What the dots' colours mean, from `x0` on the baseline `y`.
fn run_legend(o: &mut String, x0: f64, legend_y: f64) {
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
        text(o, lx + 16.0, legend_y, "start", "", label);
        lx += 30.0 + text_width(label, 11.0);
    }
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
    phase_medians(&mut b, s);
    runs_table(&mut b, s);
    b.push_str("\n<h2>Every run's timeline</h2>\n");
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

/// The median of each phase over the runs, with a bar.
fn phase_medians(b: &mut String, s: &RunSet) {
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
}

/// A row per run: seed, RTO, write gap, phases, lost, indeterminate, verdict.
fn runs_table(b: &mut String, s: &RunSet) {
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
    b.push_str("</table>");
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
