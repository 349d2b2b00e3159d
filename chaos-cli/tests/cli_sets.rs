//! The `chaos` binary as a user runs it: sets of runs (`--repeat`) and
//! experiments comparing variants, with their pages, summaries and files
//! drawn again and compared.

use std::path::Path;

mod support;

use support::{chaos, read_json, report_dir, run};

/// `--repeat`: one set of runs on one cluster, its page and summary; then the
/// files it wrote drawn again and compared, as a user would.
#[test]
fn repeated_runs_are_judged_as_a_set_and_their_files_compared() {
    let dir = report_dir("repeat");
    let dir_arg = dir.display().to_string();
    let (code, out, err) = run(chaos(&[
        "run",
        "--fault",
        "switchover",
        "--repeat",
        "2",
        "--max-rto-p95",
        "30s",
        "--warmup",
        "500ms",
        "--report-dir",
        &dir_arg,
        "--name",
        "cli_set",
    ]));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // Progress says which run is going.
    assert!(
        err.contains("chaos: run 1 of 2") && err.contains("chaos: run 2 of 2"),
        "{err}"
    );
    assert!(out.contains("chaos: cli_set ×2 PASSED — RTO p50 "), "{out}");
    // Each run's line once prefixed, and every file listed, pictures included.
    assert!(
        out.contains("run   1: cli_set-run01 PASSED — RTO "),
        "{out}"
    );
    assert!(
        !out.contains(": chaos: ") && !err.contains(": chaos: "),
        "{out}\n{err}"
    );
    for file in [
        "cli_set-run01.json",
        "cli_set-run01.svg",
        "cli_set-run01.html",
    ] {
        assert!(out.contains(file), "reports: lists {file}:\n{out}");
    }
    assert!(
        out.contains("max_rto_p95 30.000s, max_rto 60.000s"),
        "{out}"
    );
    let set = read_json(&dir.join("cli_set.runs.json"));
    assert_eq!(set["kind"], "chaos-run-set", "{set}");
    assert_eq!(set["runs"].as_array().map(Vec::len), Some(2), "{set}");
    assert_eq!(set["stats"]["recovered"], 2, "{set}");
    assert_eq!(set["slo"]["max_rto_p95_ms"], 30000.0, "{set}");
    let seeds = set["stats"]["seeds"].as_array().expect("seeds").clone();
    assert_eq!(seeds.len(), 2);
    assert_ne!(seeds[0], seeds[1]);
    assert_eq!(set["runs"][1]["seed"], seeds[1]);
    // One JUnit file for the set: a case per run and one for the set.
    let xml = std::fs::read_to_string(dir.join("cli_set.runs.xml")).expect("the set's JUnit");
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert!(
        !dir.join("cli_set-run01.xml").exists(),
        "no JUnit file per run"
    );
    let page = std::fs::read_to_string(dir.join("cli_set.runs.html")).expect("the set's page");
    assert!(page.contains("cli_set"), "set page without its name");
    for run in ["cli_set-run01", "cli_set-run02"] {
        assert!(dir.join(format!("{run}.json")).is_file(), "{run}.json");
        assert!(dir.join(format!("{run}.html")).is_file(), "{run}.html");
        assert!(dir.join(format!("{run}.svg")).is_file(), "{run}.svg");
    }

    // An old report drawn again from its file alone.
    let run1 = dir.join("cli_set-run01.json");
    std::fs::remove_file(dir.join("cli_set-run01.html")).expect("remove");
    let (code, out, err) = run(chaos(&["report", "show", &run1.display().to_string()]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("picture: ") && dir.join("cli_set-run01.html").is_file(),
        "{out}"
    );

    // Two single runs: a difference, but too few runs for a verdict.
    let run2 = dir.join("cli_set-run02.json").display().to_string();
    let (code, out, err) = run(chaos(&["compare", &run1.display().to_string(), &run2]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("too few to tell a change from noise"), "{out}");
    // A set against itself: no detectable difference.
    let set_path = dir.join("cli_set.runs.json").display().to_string();
    let json_out = dir.join("same.json").display().to_string();
    let (code, out, err) = run(chaos(&[
        "compare", &set_path, &set_path, "--json", &json_out,
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no detectable difference in RTO"), "{out}");
    assert_eq!(
        read_json(Path::new(&json_out))["rto"]["verdict"],
        "no_detectable_difference"
    );
    assert!(dir.join("cli_set.runs.comparison.html").is_file(), "{out}");

    // Something else is a usage error naming the file and what was expected.
    let (code, _, err) = run(chaos(&["compare", &set_path, "Cargo.toml"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("Cargo.toml") && err.contains("expected the JSON of a report"),
        "{err}"
    );
    let (code, _, err) = run(chaos(&["report", "show", "/nonexistent/r.json"]));
    assert_eq!(code, 2, "{err}");
}

/// The seed's question, answered: a variant known to be slower (Patroni's
/// ttl raised from 5 s to 12 s: the dead primary's leader key lives 7 s
/// longer, more than the spread of failovers on a loaded machine) is found
/// slower, with an interval that excludes zero.
#[test]
fn an_experiment_finds_a_longer_ttl_slower() {
    let dir = report_dir("experiment");
    let dir_arg = dir.display().to_string();
    let (code, out, err) = run(chaos(&[
        "experiment",
        "--set",
        "ttl=12",
        "--repeat",
        "2",
        "--max-rto",
        "60s",
        "--warmup",
        "500ms",
        "--report-dir",
        &dir_arg,
        "--name",
        "ttl",
    ]));
    eprintln!("{out}");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("run 4 of 4"), "{err}");
    assert!(out.contains("variant is slower by"), "{out}");
    let c = read_json(&dir.join("ttl.comparison.json"));
    assert_eq!(c["rto"]["verdict"], "slower", "{c}");
    assert!(
        c["rto"]["ci_low_ms"].as_f64().is_some_and(|lo| lo > 0.0),
        "{c}"
    );
    assert_eq!(c["a"]["settings"][0], "ttl=5", "{c}");
    assert_eq!(c["b"]["settings"][0], "ttl=12", "{c}");
    // Detection is where the time went.
    let detection = c["phases"]
        .as_array()
        .and_then(|p| p.iter().find(|d| d["metric"] == "detection"))
        .unwrap_or_else(|| panic!("no detection phase compared: {c}"));
    assert!(
        detection["diff_ms"].as_f64().is_some_and(|d| d > 3000.0),
        "{detection}"
    );
    for f in [
        "ttl-baseline.runs.json",
        "ttl-variant.runs.json",
        "ttl.comparison.html",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
}

#[test]
fn an_experiment_refuses_an_unknown_setting_before_any_run() {
    let (code, _, err) = run(chaos(&["experiment", "--set", "ttl"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NAME=VALUE"), "{err}");
}
