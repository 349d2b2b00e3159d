//! The pictures as a person sees them: a real report of the embedded cluster
//! (`fixtures/local_failover.report.json`, from `cargo run --release
//! --example local_failover`), a set of runs and a comparison, rendered by
//! headless Chromium at 1200 px: the screenshots are not blank and show the
//! palette's colours for acknowledged writes, the phase shading and the fault
//! bar; the rendered text holds the labels. The fixture with a workload (the
//! probe's attempts again, as the application's `orders`) shows its lane and
//! says the SLO was judged on it; without workloads the picture is the same
//! bytes as before workloads were drawn. A 180 s run whose fault comes at
//! its very end gets a close-up of that fault, and Chromium measures every
//! label of the picture within its width.
//!
//! `CHAOS_KEEP_SCREENSHOTS=<dir>` copies the screenshots there as
//! `picture-<name>.png`, to look at them.

use std::path::PathBuf;

use chaos_core::report::picture::{self, palette};
use chaos_core::report::{AttemptOutcome, HistoryEntry, Report, WorkloadRecord};
use chaos_core::runs::{Comparison, RunSet, Sample};
use chaos_core::timeline::{Event, Timestamp};
use chaos_tests::chromium::{self, Image, rgb};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/local_failover.report.json"
);

fn fixture() -> Report {
    let text = std::fs::read_to_string(FIXTURE).expect("the fixture");
    serde_json::from_str(&text).expect("a report")
}

/// The fixture without RTO phases, as reports written before they existed.
fn without_phases(mut r: Report) -> Report {
    r.phases.clear();
    for f in &mut r.faults {
        f.phases.clear();
    }
    if let Some(f) = &mut r.fault {
        f.phases.clear();
    }
    r
}

/// The fixture with its RTO (and phases) scaled by `factor`, seed `seed`.
fn scaled(r: &Report, factor: f64, seed: u64) -> Report {
    let mut r = r.clone();
    r.seed = Some(seed);
    r.rto_ms = r.rto_ms.map(|v| v * factor);
    for p in &mut r.phases {
        p.ms *= factor;
    }
    r.fault = None;
    for f in &mut r.faults {
        f.rto_ms = f.rto_ms.map(|v| v * factor);
        for p in &mut f.phases {
            p.ms *= factor;
        }
        // Each phase starts where the one before ended.
        let mut at = f.injected_at;
        for p in &mut f.phases {
            p.at = at;
            at = at.plus(std::time::Duration::from_micros((p.ms * 1000.0) as u64));
        }
    }
    r.fault = r.faults.first().cloned();
    r
}

/// `r` with a workload `orders` that saw what the probe saw (its attempts,
/// RTO and write gap), verified, on which the SLO was judged (`slo_on`).
fn with_orders(mut r: Report) -> Report {
    r.workloads.push(WorkloadRecord {
        name: "orders".into(),
        slo: true,
        verified: true,
        rto_ms: r.rto_ms,
        fault_rto_ms: r.faults.iter().map(|f| f.rto_ms).collect(),
        write_gap_ms: r.write_gap_ms,
        median_latency_ms: r.median_latency_ms,
        p99_latency_ms: r.median_latency_ms * 4.0,
        writes: r.writes,
        lost: Vec::new(),
        errors: Vec::new(),
        panics: Vec::new(),
        history: r.history.clone(),
    });
    r
}

/// The fixture as a 180 s run whose fault comes at its very end: the probe
/// (two writers, every 50 ms) writes from 178.5 s before the injection; the
/// outage lasts 1 s (the fixture's phases and events scaled to it), the
/// fault is healed 1.3 s after its injection and the probe stops at +1.5 s.
fn long_run() -> Report {
    let plain = fixture();
    let k = 1_000.0 / plain.rto_ms.expect("an RTO");
    let mut r = scaled(&plain, k, 5);
    let inj = r.faults[0].injected_at.ms_since(r.origin);
    let at = |ms: f64| -> Timestamp {
        let o = r.origin.system_time();
        let d = std::time::Duration::from_micros((ms.abs() * 1_000.0) as u64);
        Timestamp::from(if ms < 0.0 { o - d } else { o + d })
    };
    r.faults[0].healed_at = Some(at(inj + 1_300.0));
    r.fault = r.faults.first().cloned();
    // The run's events, those of the failover squeezed into its second.
    r.events = plain
        .events
        .iter()
        .map(|e| {
            let t = e.at.ms_since(plain.origin);
            let t = if t >= inj { inj + (t - inj) * k } else { t };
            Event::new(e.kind.clone(), at(t), e.detail.clone())
        })
        .collect();
    r.history.clear();
    let mut t = -178_500.0;
    let mut seq = 0;
    while t < 1_500.0 {
        seq += 1;
        for writer in 1..=2u32 {
            let start = t + f64::from(writer) * 9.0;
            let down = (inj..inj + 1_000.0).contains(&start);
            let after = start >= inj + 1_000.0;
            r.history.push(HistoryEntry {
                writer,
                seq,
                started_ms: start,
                finished_ms: start + if down { 0.5 } else { 2.0 + (seq % 9) as f64 },
                outcome: if down {
                    AttemptOutcome::Failed
                } else {
                    AttemptOutcome::Acknowledged
                },
                server: (!down).then(|| {
                    if after {
                        "127.0.0.11:5432"
                    } else {
                        "127.0.0.12:5432"
                    }
                    .to_string()
                }),
                timeline: (!down).then_some(if after { 2 } else { 1 }),
                sqlstate: None,
                reason: None,
                identity: None,
                error: None,
            });
        }
        t += 50.0;
    }
    let count = |o: AttemptOutcome| r.history.iter().filter(|h| h.outcome == o).count() as u64;
    r.writes.attempted = r.history.len() as u64;
    r.writes.acknowledged = count(AttemptOutcome::Acknowledged);
    r.writes.failed = count(AttemptOutcome::Failed);
    r.writes.indeterminate = 0;
    r.window_start_ms = -178_500.0;
    r.window_end_ms = 1_500.0;
    r.duration_ms = 180_000.0;
    r.write_gap_start_ms = Some(inj - 5.0);
    r.write_gap_ms = Some(1_010.0);
    r
}

/// The horizontal extent of every text of `svg` as Chromium lays it out,
/// from the left of the picture: a page around it (with a script, which the
/// pictures never have) writes them into the DOM.
fn measured_texts(name: &str, svg: &str) -> Vec<(String, f64, f64)> {
    let dir = out_dir(name);
    let page = dir.join("measure.html");
    let html = format!(
        "<!DOCTYPE html><html><body style=\"margin:0\">{svg}<pre id=\"extents\"></pre><script>\
         const svg = document.querySelector('svg'); const o = svg.getBoundingClientRect();\
         const out = [];\
         for (const t of svg.querySelectorAll('text')) {{ const b = t.getBoundingClientRect();\
         out.push([t.textContent, b.left - o.left, b.right - o.left]); }}\
         document.getElementById('extents').textContent = JSON.stringify(out);\
         </script></body></html>"
    );
    std::fs::write(&page, html).expect("page written");
    let dom = chromium::dump_dom(&page).expect("the DOM");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let json = dom
        .split("<pre id=\"extents\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .expect("the extents");
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let v: Vec<(String, f64, f64)> = serde_json::from_str(&json).expect("extents");
    assert!(v.len() > 20, "{name}: {} texts measured", v.len());
    v
}

/// FNV-1a, 64 bits: a fingerprint of a picture's bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chaos-picture-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Renders `html` at 1200 × `height`, keeps a copy if asked, and returns the
/// image and the rendered DOM.
fn render(name: &str, html: &str, height: u32) -> (Image, String) {
    let dir = out_dir(name);
    let page = dir.join(format!("{name}.html"));
    std::fs::write(&page, html).expect("page written");
    let png = chromium::screenshot(&page, 1200, height).expect("a screenshot");
    if let Some(keep) = std::env::var_os("CHAOS_KEEP_SCREENSHOTS") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).expect("keep dir");
        std::fs::copy(&png, keep.join(format!("picture-{name}.png"))).expect("kept");
        std::fs::copy(&page, keep.join(format!("picture-{name}.html"))).expect("kept");
    }
    let image = Image::read(&png).expect("a PNG");
    let dom = chromium::dump_dom(&page).expect("the DOM");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert_eq!(image.width, 1200, "{name}");
    (image, dom)
}

/// Not blank: many colours, a good share of ink.
fn assert_not_blank(name: &str, img: &Image) {
    let colours = img.distinct_colours();
    let ink = img.non_white_share();
    assert!(colours >= 40, "{name}: only {colours} colours");
    assert!(ink >= 0.04, "{name}: only {:.1} % non-white", ink * 100.0);
}

fn assert_colour(name: &str, img: &Image, what: &str, hex: &str, at_least: usize) {
    let n = img.count(rgb(hex));
    assert!(
        n >= at_least,
        "{name}: {what} ({hex}) has {n} pixels, expected at least {at_least}"
    );
}

fn assert_text(name: &str, dom: &str, needles: &[&str]) {
    for n in needles {
        assert!(dom.contains(n), "{name}: {n:?} is not in the rendered page");
    }
}

/// Whether to skip for want of Chromium, after a notice: only on a
/// developer's machine. CI (root, or `CI` set) runs `ci/install-deps.sh`
/// first, so there a missing browser fails.
fn skip() -> bool {
    if chromium::available() {
        return false;
    }
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    assert!(
        !(ci || chaos_tests::is_root()),
        "{} is not installed: run ci/install-deps.sh (CI does before the tests)",
        chromium::CHROMIUM
    );
    println!(
        "skipped: {} is not installed (ci/install-deps.sh installs it)",
        chromium::CHROMIUM
    );
    true
}

#[test]
fn the_fixture_is_a_real_failover() {
    let r = fixture();
    assert_eq!(r.scenario, "local_failover");
    assert_eq!(r.target.kind, "local");
    assert!(
        r.rto_ms.is_some() && !r.faults.is_empty(),
        "a recovered fault"
    );
    assert!(r.history.len() > 1_000, "{} attempts", r.history.len());
    // Every attempt is drawn: one path command per attempt of its class.
    let svg = picture::report_svg(&r);
    let drawn: usize = svg
        .split("data-n=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse::<usize>().ok())
        .sum::<usize>()
        - r.lost.len();
    assert_eq!(drawn, r.history.len());
    assert!(svg.len() < 200_000, "the SVG is {} bytes", svg.len());
}

#[test]
fn the_report_page_shows_the_timeline() {
    if skip() {
        return;
    }
    let r = fixture();
    let phase_names: Vec<String> = r.phases.iter().map(|p| p.name.clone()).collect();
    for (name, report) in [
        ("report", r.clone()),
        ("report-no-phases", without_phases(r)),
    ] {
        let (img, dom) = render(name, &picture::report_html(&report), 1500);
        assert_not_blank(name, &img);
        assert_colour(
            name,
            &img,
            "acknowledged writes",
            palette::ACKNOWLEDGED,
            300,
        );
        assert_colour(name, &img, "the fault bar", palette::FAULT, 300);
        assert_colour(
            name,
            &img,
            "cannot-connect failures",
            palette::CANNOT_CONNECT,
            300,
        );
        assert_text(
            name,
            &dom,
            &[
                "local_failover",
                "RTO",
                "write gap",
                "delete-primary",
                "PASSED",
                "primary → node",
            ],
        );
        if report.phases.is_empty() {
            assert!(!dom.contains("RTO phases"), "{name}: no phases to show");
        } else {
            assert_colour(
                name,
                &img,
                "the detection phase",
                palette::phase("detection"),
                2_000,
            );
            let names: Vec<&str> = phase_names.iter().map(String::as_str).collect();
            assert_text(name, &dom, &names);
        }
    }
}

/// The picture of the fixture, which has no workload, is byte for byte what
/// it was before workloads (and close-ups of faults) were drawn: the
/// fingerprints of its SVG and page were taken then. A deliberate change of
/// the pictures updates them (the failure prints the new ones).
#[test]
fn a_report_without_workloads_draws_as_before() {
    let r = fixture();
    assert!(r.workloads.is_empty());
    let svg = picture::report_svg(&r);
    let html = picture::report_html(&r);
    assert_eq!(
        (fnv1a(svg.as_bytes()), svg.len()),
        (0x5357_2e45_45dc_a4c1, 56_889),
        "the fixture's SVG changed: {:#x}",
        fnv1a(svg.as_bytes())
    );
    assert_eq!(
        (fnv1a(html.as_bytes()), html.len()),
        (0x1cb7_bb82_addf_b16d, 62_997),
        "the fixture's page changed: {:#x}",
        fnv1a(html.as_bytes())
    );
    for doc in [&svg, &html] {
        assert!(!doc.contains("class=\"workload"));
        assert!(!doc.contains("judged on"));
    }
}

#[test]
fn the_report_page_shows_each_workload() {
    if skip() {
        return;
    }
    let plain = fixture();
    let r = with_orders(plain.clone());
    let (img, dom) = render("workload", &picture::report_html(&r), 1700);
    let (before, _) = render("workload-none", &picture::report_html(&plain), 1700);
    assert_not_blank("workload", &img);
    // The lane's acknowledged writes, a row of the probe's colour.
    let (with, without) = (
        img.count(rgb(palette::ACKNOWLEDGED)),
        before.count(rgb(palette::ACKNOWLEDGED)),
    );
    assert!(
        with >= without + 1_500,
        "the lane adds few acknowledged dots: {with} vs {without} pixels"
    );
    assert_colour("workload", &img, "the fault bar", palette::FAULT, 300);
    let rto = chaos_core::slo::fmt_duration(std::time::Duration::from_secs_f64(
        r.rto_ms.expect("an RTO") / 1000.0,
    ));
    assert_text(
        "workload",
        &dom,
        &[
            "SLO judged on workload `orders`",
            "orders",
            "— SLO judged on it · RTO ",
            &format!("RTO {rto} · longest write gap"),
            "lost 0",
            "workload orders (SLO)",
            "probe RTO",
            "probe",
        ],
    );
    assert!(!dom.contains("lost: not checked"), "orders was verified");
}

#[test]
fn a_long_run_gets_a_closeup_with_every_label_inside() {
    if skip() {
        return;
    }
    let r = long_run();
    let svg = picture::report_svg(&r);
    let closeup = svg.find("<g class=\"closeup\"").expect("a close-up");
    assert_eq!(svg.matches("<g class=\"closeup\"").count(), 1);
    for label in [
        "Close-up of fault 1 of 1: delete-primary (kill) on node2",
        ">RTO 1.000s</text>",
        ">max_rto 10.000s →</text>",
        ">detection 0.927s</text>",
        "primary → node1",
        "timeline 1 → 2",
        "seconds since fault 1 was injected (+0.020s on the run&#39;s axis)",
    ] {
        assert!(
            svg[closeup..].contains(label),
            "{label:?} not in the close-up"
        );
    }
    // What Chromium draws: every label within the picture's width, in the
    // run's timeline and in the close-up.
    for (text, left, right) in measured_texts("long-run", &svg) {
        assert!(
            left >= -0.5 && right <= 1_200.5,
            "{text:?} is drawn from {left:.1} to {right:.1} px, outside 0..1200"
        );
    }
    let (img, dom) = render("long-run", &picture::report_html(&r), 2000);
    assert_not_blank("long-run", &img);
    assert_colour("long-run", &img, "the fault bars", palette::FAULT, 300);
    assert_colour(
        "long-run",
        &img,
        "the detection phase",
        palette::phase("detection"),
        2_000,
    );
    assert_text(
        "long-run",
        &dom,
        &["Close-up of fault 1 of 1", "RTO 1.000s"],
    );
}

#[test]
fn the_set_page_shows_every_run() {
    if skip() {
        return;
    }
    let r = fixture();
    let runs = vec![
        scaled(&r, 1.0, 11),
        scaled(&r, 1.2, 12),
        scaled(&r, 0.9, 13),
    ];
    let mut slo = r.slo.clone();
    slo.max_rto_p95_ms = Some(8_000.0);
    let set = RunSet::new("local_failover", slo, 7, runs);
    let (img, dom) = render("set", &chaos_core::runs::picture::set_html(&set), 2600);
    assert_not_blank("set", &img);
    assert_colour(
        "set",
        &img,
        "acknowledged writes",
        palette::ACKNOWLEDGED,
        300,
    );
    assert_colour("set", &img, "the fault bars", palette::FAULT, 300);
    assert_colour(
        "set",
        &img,
        "the detection phase",
        palette::phase("detection"),
        2_000,
    );
    assert_text(
        "set",
        &dom,
        &[
            "local_failover",
            "max_rto 10.000s",
            "max_rto_p95 8.000s",
            "p50",
            "p95",
            "run 3 of 3",
            "detection",
            "seed 13",
        ],
    );
}

#[test]
fn the_comparison_page_shows_both_samples() {
    if skip() {
        return;
    }
    let r = fixture();
    let a: Vec<Report> = [0.95, 1.0, 1.05, 0.98, 1.02]
        .iter()
        .enumerate()
        .map(|(i, f)| scaled(&r, *f, i as u64))
        .collect();
    let b: Vec<Report> = [0.70, 0.74, 0.69, 0.72, 0.76]
        .iter()
        .enumerate()
        .map(|(i, f)| scaled(&r, *f, 10 + i as u64))
        .collect();
    let c = Comparison::new(
        Sample::of_reports("baseline", &a),
        Sample::of_reports("variant", &b),
        3,
    );
    let html = chaos_core::runs::picture::comparison_html(&c);
    let (img, dom) = render("comparison", &html, 1100);
    assert_not_blank("comparison", &img);
    assert_colour("comparison", &img, "sample A", palette::SAMPLE_A, 300);
    assert_colour("comparison", &img, "sample B", palette::SAMPLE_B, 300);
    assert_text(
        "comparison",
        &dom,
        &[
            "variant is faster by",
            "baseline",
            "median",
            "detection",
            "RTO of every run",
        ],
    );
}
