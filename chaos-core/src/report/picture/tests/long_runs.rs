//! Long runs: a fault whose outage the run's timeline shows only as a sliver
//! gets a close-up of its own, and no label runs past the picture's edges.

use super::*;

/// Every text's words and horizontal extent, estimated as the pictures
/// estimate widths, with the font size inherited from groups; rotated texts
/// left out. Hover titles are not drawn, so not counted.
pub(super) fn text_extents(svg: &str) -> Vec<(String, f64, f64)> {
    fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        tag[at..].split('"').next()
    }
    fn words(inner: &str) -> String {
        let mut out = String::new();
        let mut rest = inner;
        // Drop hover titles, then tags; then unescape.
        while let Some(i) = rest.find("<title>") {
            out.push_str(&rest[..i]);
            rest = rest[i..].split_once("</title>").map_or("", |x| x.1);
        }
        out.push_str(rest);
        let mut plain = String::new();
        let mut in_tag = false;
        for c in out.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => plain.push(c),
                _ => {}
            }
        }
        plain
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }
    let mut out = Vec::new();
    let mut sizes: Vec<f64> = vec![11.0];
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        let end = rest.find('>').expect("a closed tag");
        let tag = &rest[1..end];
        let size = |tag: &str, inherited: f64| {
            attr(tag, "font-size").map_or(inherited, |s| s.parse().expect("a size"))
        };
        let inherited = *sizes.last().expect("the root's size");
        if tag == "/g" {
            sizes.pop();
        } else if (tag == "g" || tag.starts_with("g ")) && !tag.ends_with('/') {
            sizes.push(size(tag, inherited));
        } else if tag.starts_with("text ") {
            let close = rest.find("</text>").expect("a closed text");
            let text = words(&rest[end + 1..close]);
            if !attr(tag, "transform").is_some_and(|t| t.contains("rotate")) {
                let x: f64 = attr(tag, "x").expect("an x").parse().expect("a number");
                let w = text_width(&text, size(tag, inherited));
                let (a, b) = match attr(tag, "text-anchor") {
                    Some("end") => (x - w, x),
                    Some("middle") => (x - w / 2.0, x + w / 2.0),
                    _ => (x, x + w),
                };
                out.push((text, a, b));
            }
            rest = &rest[close..];
            continue;
        }
        rest = &rest[end + 1..];
    }
    out
}

/// Asserts that every label of `svg` lies within its width.
pub(super) fn assert_labels_within(name: &str, svg: &str) {
    let texts = text_extents(svg);
    assert!(texts.len() > 10, "{name}: {} texts", texts.len());
    for (t, a, b) in texts {
        assert!(
            a >= 0.0 && b <= W,
            "{name}: {t:?} spans {a:.0}..{b:.0}, beyond 0..{W}"
        );
    }
}

/// A 180 s run whose one fault, a second's outage, comes at its very end:
/// the probe writes every 50 ms from −178.5 s; the primary is killed at 0,
/// writes cannot connect until +1 s (RTO 1 s, in five phases), the fault is
/// healed at +1.3 s and the probe stops at +1.5 s; max_rto is 10 s.
pub(super) fn long_run() -> Report {
    let mut history = Vec::new();
    let mut t = -178_500.0;
    let mut seq = 0;
    while t < 1_500.0 {
        seq += 1;
        for writer in 1..=2u32 {
            let start = t + f64::from(writer) * 7.0;
            let lat = 2.0 + f64::from((seq * 7 + writer * 3) % 11) * 0.4;
            let mut h = json!({ "writer": writer, "seq": seq, "started_ms": start,
                                "finished_ms": start + lat, "outcome": "acknowledged",
                                "server": "127.0.0.11:5432", "timeline": 1 });
            if (0.0..1_000.0).contains(&start) {
                h = json!({ "writer": writer, "seq": seq, "started_ms": start,
                            "finished_ms": start + 0.6, "outcome": "failed" });
            } else if start >= 1_000.0 {
                h["server"] = json!("127.0.0.12:5432");
                h["timeline"] = json!(2);
            }
            history.push(h);
        }
        t += 50.0;
    }
    let phase = |name: &str, from: f64, ms: f64| json!({ "name": name, "ms": ms, "at": at(from) });
    let phases = vec![
        phase("detection", 0.0, 700.0),
        phase("election", 700.0, 50.0),
        phase("promotion", 750.0, 150.0),
        phase("routing", 900.0, 20.0),
        phase("first_write", 920.0, 80.0),
    ];
    let faults = vec![json!({
        "kind": "delete-primary", "mode": "kill", "victim": "node1", "injected_at": T0,
        "healed_at": at(1_300.0), "marked": false, "rto_ms": 1_000.0, "phases": phases
    })];
    let events = vec![
        json!({ "name": "new primary observed", "at": at(760.0), "detail": "node2 on timeline 1" }),
        json!({ "name": "proxy routes to", "at": at(910.0), "detail": "node2" }),
    ];
    let mut r = report_of("unit::long_run", history, faults, events, phases);
    r.window_start_ms = -178_500.0;
    r.window_end_ms = 1_500.0;
    r.duration_ms = 180_000.0;
    r.slo.max_rto_ms = 10_000.0;
    r.write_gap_start_ms = Some(-3.0);
    r.write_gap_ms = Some(1_010.0);
    r.lost.clear();
    r.writes.lost = 0;
    r.split_brain = false;
    r.split_brain_writes = 0;
    r.passed = true;
    r.failure = None;
    r.violations.clear();
    r
}

/// The part of `svg` from its close-ups on.
fn closeups(svg: &str) -> &str {
    svg.find("<g class=\"closeup\"").map_or("", |i| &svg[i..])
}

/// The RTO brackets' ends (x) in `svg`: the paths `M xa y v12 M xa y H xb`.
fn brackets(svg: &str) -> Vec<(f64, f64)> {
    svg.split("<path d=\"M")
        .skip(1)
        .filter_map(|p| {
            let d = p.split('"').next()?;
            let (head, tail) = d.split_once("v12M")?;
            let xa: f64 = head.split(' ').next()?.parse().ok()?;
            let xb: f64 = tail.split_once('H')?.1.split('M').next()?.parse().ok()?;
            Some((xa, xb))
        })
        .collect()
}

#[test]
fn a_long_run_gets_a_closeup_of_its_fault() {
    let r = long_run();
    let svg = report_svg(&r);
    assert_well_formed(&svg, &[]);
    assert_eq!(svg.matches("<g class=\"closeup\"").count(), 1);
    // In the run's timeline the outage is a sliver at the right edge.
    let run = &svg[..svg.find("<g class=\"closeup\"").unwrap()];
    let [(xa, xb)] = brackets(run)[..] else {
        panic!("one RTO bracket in the run: {:?}", brackets(run));
    };
    assert!(xb - xa < 0.15 * (W - MR - ML), "{xa}..{xb}");
    assert!(xa > W - MR - 40.0, "the fault is at the end: {xa}");
    // The close-up spans the outage with room to spare, and has the words.
    let close = closeups(&svg);
    let [(ca, cb)] = brackets(close)[..] else {
        panic!("one RTO bracket in the close-up: {:?}", brackets(close));
    };
    assert!(cb - ca >= 0.4 * (W - MR - ML), "{ca}..{cb}");
    for label in [
        "Close-up of fault 1 of 1: delete-primary (kill) on node1 — injected +0.000s, \
         healed +1.300s, RTO 1.000s (max 10.000s)",
        "text-anchor=\"middle\" fill=\"#1A1A1A\" font-size=\"11.5\" font-weight=\"700\"",
        ">RTO 1.000s</text>",
        ">max_rto 10.000s →</text>",
        ">detection 0.700s</text>",
        ">election 0.050s</text>",
        ">promotion 0.150s</text>",
        ">routing 0.020s</text>",
        ">first_write 0.080s</text>",
        "primary → node2",
        "seconds since fault 1 was injected",
        "class=\"closeup-acknowledged\"",
        "class=\"closeup-failed\"",
    ] {
        assert!(close.contains(label), "{label:?} not in the close-up");
    }
    // The run's timeline names max_rto once, in the close-up; its own
    // phases have no room for words there.
    assert_eq!(svg.matches(">max_rto 10.000s").count(), 1);
    assert!(!run.contains(">detection 0.700s"));
    // The close-up redraws attempts without counting them again.
    let counted: usize = svg
        .split("data-n=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(counted, r.history.len());
}

#[test]
fn no_label_runs_past_the_edges() {
    let long = long_run();
    assert_labels_within("long run", &report_svg(&long));
    assert_labels_within("long run, compact", &report_svg_compact(&long));
    let mut unhealed = long.clone();
    unhealed.faults[0].rto_ms = None;
    unhealed.faults[0].healed_at = None;
    unhealed.rto_ms = None;
    assert_labels_within("long run without recovery", &report_svg(&unhealed));
    assert_labels_within("sample", &report_svg(&sample()));
    assert_labels_within("sample, compact", &report_svg_compact(&sample()));
}

#[test]
fn a_short_outage_in_a_short_run_gets_a_closeup_too() {
    // The sample's switchover (0.3 s of a 10 s run) is a sliver; its kill
    // (3.1 s) is not.
    let svg = report_svg(&sample());
    assert_eq!(svg.matches("<g class=\"closeup\"").count(), 1);
    assert!(closeups(&svg).contains("Close-up of fault 2 of 2: switchover"));
    assert!(closeups(&svg).contains("(+5.000s on the run&#39;s axis)"));
    // A set's pages stack compact timelines: no close-ups there.
    assert!(!report_svg_compact(&sample()).contains("closeup"));
}

#[test]
fn a_closeup_has_the_workloads_lanes_for_its_fault() {
    let mut r = long_run();
    r.workloads = vec![super::workloads::workload(&r, "orders", true, true)];
    r.workloads[0].fault_rto_ms = vec![Some(1_100.0)];
    let svg = report_svg(&r);
    assert_labels_within("long run with a workload", &svg);
    let close = closeups(&svg);
    assert_eq!(close.matches("<g class=\"closeup-workload\"").count(), 1);
    // The lane's header gives its RTO after this fault, and its bracket
    // ends (with a tick) at its recovery, inside the close-up.
    assert!(close.contains("— SLO judged on it · RTO 1.100s"));
    assert!(close.contains("orders: RTO 1.100s after fault 1"));
    let bracket = close
        .split("<path class=\"closeup-workload-rto\" d=\"")
        .nth(1)
        .and_then(|p| p.split('"').next())
        .expect("the workload's bracket");
    assert_eq!(bracket.matches("v10").count(), 2, "closed: {bracket}");
}
