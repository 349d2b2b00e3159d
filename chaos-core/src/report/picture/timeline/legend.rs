//! The timeline's legend: a symbol and words for every class of attempt
//! drawn, lost writes, faults, markers and other events, in rows.

use std::fmt::Write as _;

use super::super::{MARKER, palette, text, text_width};
use super::{Class, Marker, View, sqlstate_in, workloads};
use crate::report::Report;

/// The legend's items and where each goes.
pub(super) struct Legend {
    /// The symbol's kind and the words.
    items: Vec<(&'static str, String)>,
    /// Each item's x and text baseline.
    pos: Vec<(f64, f64)>,
    top: f64,
}

impl Legend {
    /// The items for `r` (with `counts` of each class, its `markers`, and
    /// whether other events are drawn), in rows from `top` across `view`.
    pub(super) fn of(
        r: &Report,
        counts: &[u64; 6],
        markers: &[Marker],
        other_events: bool,
        view: View,
        top: f64,
    ) -> Legend {
        let items = items(r, counts, markers, other_events);
        let mut pos = Vec::with_capacity(items.len());
        let (mut lx, mut ly) = (view.x0, top);
        for (_, label) in &items {
            let wdt = 22.0 + text_width(label, 11.0) + 18.0;
            if lx + wdt > view.x1 && lx > view.x0 {
                lx = view.x0;
                ly += 18.0;
            }
            pos.push((lx, ly));
            lx += wdt;
        }
        Legend { items, pos, top }
    }

    /// The baseline of its last row.
    pub(super) fn bottom(&self) -> f64 {
        self.pos.last().map_or(self.top, |p| p.1)
    }

    /// Draws it.
    pub(super) fn draw(&self, o: &mut String) {
        for ((kind, label), &(lx, ly)) in self.items.iter().zip(&self.pos) {
            symbol(o, kind, label, lx, ly - 4.0);
            text(o, lx + 22.0, ly, "start", "", label);
        }
    }
}

/// The items, in order: classes of attempt with their counts, lost writes,
/// faults, leader changes, timeline switches, other events.
fn items(
    r: &Report,
    counts: &[u64; 6],
    markers: &[Marker],
    other_events: bool,
) -> Vec<(&'static str, String)> {
    let mut legend: Vec<(&'static str, String)> = Vec::new();
    let (wcounts, wlost) = workloads::totals(r);
    // With workloads, the probe's count and theirs.
    let count = |probe: u64, theirs: u64| {
        if r.workloads.is_empty() {
            probe.to_string()
        } else {
            format!("probe {probe}, workloads {theirs}")
        }
    };
    for c in Class::ALL {
        let (n, m) = (counts[c.index()], wcounts[c.index()]);
        if n > 0 || m > 0 || c == Class::Acknowledged {
            let kind = match c {
                Class::Acknowledged => "dot",
                Class::Indeterminate => "diamond",
                _ => "band",
            };
            let mut label = format!("{} ({})", c.label(), count(n, m));
            let states = other_sqlstates(r);
            if c == Class::OtherFailure && !states.is_empty() {
                label = format!("failed: other ({states}) ({})", count(n, m));
            }
            legend.push((kind, label));
        }
    }
    if !r.lost.is_empty() || wlost > 0 {
        legend.push((
            "lost",
            format!(
                "acknowledged but lost ({})",
                count(r.lost.len() as u64, wlost as u64)
            ),
        ));
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
    if other_events {
        legend.push(("event", "other event (hover for its name)".into()));
    }
    legend
}

/// The SQLSTATEs of the other failures (of the probe and the workloads):
/// the first four, sorted.
fn other_sqlstates(r: &Report) -> String {
    let mut states: Vec<&str> = r
        .history
        .iter()
        .chain(r.workloads.iter().flat_map(|w| &w.history))
        .filter(|h| Class::of(h) == Class::OtherFailure)
        .filter_map(|h| {
            h.sqlstate
                .as_deref()
                .or_else(|| h.error.as_deref().and_then(sqlstate_in))
        })
        .collect();
    states.sort_unstable();
    states.dedup();
    format!(
        "{}{}",
        states
            .iter()
            .take(4)
            .copied()
            .collect::<Vec<_>>()
            .join(", "),
        if states.len() > 4 { ", …" } else { "" }
    )
}

/// An item's symbol at `lx`, centred on `cy`.
fn symbol(o: &mut String, kind: &str, label: &str, lx: f64, cy: f64) {
    match kind {
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
}
