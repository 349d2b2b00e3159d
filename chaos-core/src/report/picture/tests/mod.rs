//! Unit tests of the pictures: markup well-formed, labels present, every
//! attempt drawn once.

use super::*;
use crate::report::{AttemptOutcome, Report};
use serde_json::{Value, json};

const T0: &str = "2026-11-27T10:00:00Z";

/// An RFC 3339 time `ms` after 10:00:00.
pub(crate) fn at(ms: f64) -> String {
    let t = humantime::parse_rfc3339(T0).unwrap()
        + std::time::Duration::from_micros((ms * 1000.0) as u64);
    humantime::format_rfc3339_micros(t).to_string()
}

/// A report of `history` with `faults`, `events` and `phases` around a
/// fault at 0 (10:00:00).
pub(crate) fn report_of(
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
pub(crate) fn sample() -> Report {
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
    history.push(
        json!({ "writer": 3, "seq": 2, "started_ms": 3200.0, "finished_ms": 3204.0,
                         "outcome": "acknowledged", "server": "127.0.0.11:5432", "timeline": 1 }),
    );
    history.sort_by(|a, b| {
        a["started_ms"]
            .as_f64()
            .unwrap()
            .total_cmp(&b["started_ms"].as_f64().unwrap())
    });
    let phase = |name: &str, from: f64, ms: f64| json!({ "name": name, "ms": ms, "at": at(from) });
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
    let event =
        |ms: f64, name: &str, detail: &str| json!({ "name": name, "at": at(ms), "detail": detail });
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

pub(crate) fn empty() -> Report {
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
pub(crate) fn assert_well_formed(doc: &str, void: &[&str]) {
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
pub(crate) fn drawn(svg: &str, class: &str) -> usize {
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

pub(crate) fn sample_without_phases() -> Report {
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

#[test]
fn text_is_escaped_for_xml() {
    assert_eq!(esc("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&#39;\u{FFFD}");
    assert_eq!(signed(-0.0001), "+0.000s");
    assert_eq!(signed(-1500.0), "−1.500s");
    assert_eq!(tick_label(-2000.0, 1000.0, true), "−2s");
    assert_eq!(tick_label(500.0, 100.0, true), "+0.5s");
    assert_eq!(tick_label(750.0, 250.0, false), "0.75s");
}

mod long_runs;
mod workloads;

/// A degrading fault without an outage: drawn as a slowdown over the time it
/// held, with no "no recovery" bracket.
#[test]
fn a_slowdown_is_drawn_as_one_not_as_a_missing_recovery() {
    let mut r = sample();
    r.faults.truncate(1);
    let f = &mut r.faults[0];
    f.kind = "throttle-primary-disk".into();
    f.rto_ms = None;
    f.phases.clear();
    f.healed_at = Some(f.injected_at.plus(std::time::Duration::from_secs(3)));
    let lat = |p50_ms, p99_ms| crate::report::LatencyRecord {
        count: 100,
        p50_ms,
        p99_ms,
    };
    f.slowdown = Some(crate::report::SlowdownRecord {
        outage: false,
        before: lat(1.7, 6.0),
        during: lat(249.8, 379.6),
        after: Some(lat(2.9, 5.0)),
        factor: 146.9,
        outage_start_ms: None,
        longest_gap_ms: 251.0,
    });
    r.fault = r.faults.first().cloned();
    r.rto_ms = None;
    r.phases.clear();
    let svg = report_svg(&r);
    assert!(
        svg.contains("slowdown ×146.9, no outage"),
        "no slowdown label"
    );
    assert!(!svg.contains("no recovery"), "drawn as a missing recovery");
    assert!(
        svg.contains("none (no outage, a slowdown)"),
        "summary words"
    );
}
