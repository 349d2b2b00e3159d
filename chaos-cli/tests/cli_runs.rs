//! The `chaos` binary as a user runs it: real runs on the embedded local
//! cluster and on an external primary/standby pair, with their exit statuses,
//! output and report files.

use chaos_tests::pair::Pair;

mod support;

use support::{chaos, read_json, report_dir, run};

/// Boots the embedded cluster twice (about 10 s each): one run that passes,
/// one that violates its RTO.
#[test]
fn local_runs_exit_by_their_verdict_and_write_reports() {
    let dir = report_dir("local");
    let dir_arg = dir.display().to_string();
    let freeze = |hold: Option<&str>, max_rto: &str, name: &str| {
        let mut args = vec!["run", "--fault", "freeze-primary"];
        if let Some(hold) = hold {
            args.extend(["--hold", hold]);
        }
        args.extend([
            "--max-rto",
            max_rto,
            "--warmup",
            "1s",
            "--report-dir",
            &dir_arg,
            "--name",
            name,
        ]);
        run(chaos(&args))
    };

    let (code, out, err) = freeze(Some("1s"), "10s", "cli_pass");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("chaos report: cli_pass — PASSED"), "{out}");
    assert!(err.contains("booting a 3-node"), "{err}");
    // Not a terminal: plain progress lines, one per phase.
    assert!(
        err.lines()
            .any(|l| l.starts_with("chaos: warm-up") && l.contains("acknowledged")),
        "{err}"
    );
    assert!(err.lines().any(|l| l.starts_with("chaos: faults")), "{err}");
    let json_path = dir.join("cli_pass.json");
    assert!(out.contains(&json_path.display().to_string()), "{out}");
    let json = read_json(&json_path);
    assert_eq!(json["passed"], true, "{json}");
    assert_eq!(json["faults"][0]["kind"], "freeze-primary", "{json}");
    assert_eq!(json["target"]["kind"], "local", "{json}");
    assert!(dir.join("cli_pass.xml").is_file());

    // Without --hold a freeze lasts until the service has recovered, by a
    // failover (Patroni's leader key expires while PostgreSQL is frozen),
    // and is thawed then: the RTO is the failover's, not the freeze's.
    let (code, out, err) = freeze(None, "1ms", "cli_fail");
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("FAILED"), "{out}");
    assert!(out.contains("exceeds max_rto 0.001s"), "{out}");
    let json = read_json(&dir.join("cli_fail.json"));
    assert_eq!(json["passed"], false);
    let fault = &json["faults"][0];
    let rto = json["rto_ms"].as_f64().expect("recovered");
    let healed = fault["healed_at"].as_str().expect("thawed");
    assert!(healed >= fault["injected_at"].as_str().unwrap(), "{json}");
    let timelines: std::collections::BTreeSet<u64> = json["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["timeline"].as_u64())
        .collect();
    assert!(timelines.len() >= 2, "no failover: timelines {timelines:?}");
    assert!(rto < 30_000.0, "RTO {rto} ms: {out}");
}

/// A network partition from the command line (needs root: iptables).
#[test]
fn a_partition_runs_from_the_command_line() {
    if !chaos_tests::root_or_skip("a_partition_runs_from_the_command_line") {
        return;
    }
    let dir = report_dir("partition");
    let dir_arg = dir.display().to_string();
    let (code, out, err) = run(chaos(&[
        "run",
        "--fault",
        "partition-primary-from-replicas",
        "--hold",
        "1s",
        "--max-rto",
        "30s",
        "--warmup",
        "1s",
        "--report-dir",
        &dir_arg,
        "--name",
        "cli_partition",
    ]));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let json = read_json(&dir.join("cli_partition.json"));
    assert_eq!(
        json["faults"][0]["kind"], "partition-primary-from-replicas",
        "{json}"
    );
    assert_eq!(json["writes"]["lost"], 0, "{json}");
}

#[test]
fn a_disk_throttle_with_its_rate_runs_from_the_command_line() {
    if !chaos_tests::root_or_skip("a_disk_throttle_with_its_rate_runs_from_the_command_line") {
        return;
    }
    let dir = report_dir("throttle");
    let dir_arg = dir.display().to_string();
    let (code, out, err) = run(chaos(&[
        "run",
        "--fault",
        "throttle-primary-disk=64KiB/s",
        "--hold",
        "3s",
        "--max-rto",
        "2s",
        "--warmup",
        "1s",
        "--nodes",
        "2",
        "--report-dir",
        &dir_arg,
        "--name",
        "cli_throttle",
    ]));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let json = read_json(&dir.join("cli_throttle.json"));
    let fault = &json["faults"][0];
    assert_eq!(fault["kind"], "throttle-primary-disk", "{json}");
    assert!(
        fault["mode"].as_str().unwrap_or("").contains("64 KiB/s"),
        "{json}"
    );
    assert_eq!(json["writes"]["lost"], 0, "{json}");
    // Commits slowed down (the throttle really held the WAL writes back) but
    // went through: a slowdown with its latency figures, and no RTO held to
    // max_rto 2s for an outage that did not happen.
    let slowdown = &fault["slowdown"];
    let factor = slowdown["factor"].as_f64().expect("a slowdown");
    println!(
        "throttle: {}",
        out.lines().find(|l| l.contains("slowdown")).unwrap_or("")
    );
    assert!(factor > 3.0, "commits barely slowed: {slowdown}");
    assert!(
        slowdown["during"]["p50_ms"].as_f64() > slowdown["before"]["p50_ms"].as_f64(),
        "{slowdown}"
    );
    assert!(slowdown["after"]["count"].as_u64() > Some(0), "{slowdown}");
    if slowdown["outage"] == false {
        assert!(json["rto_ms"].is_null(), "{json}");
        assert!(out.contains("no outage"), "{out}");
    }
}

#[test]
fn an_external_cluster_is_measured_from_the_command_line() {
    let pair = Pair::start(true).expect("a primary and a synchronous standby");
    let dir = report_dir("external");
    let rw = pair.rw_dsn();
    let nodes = pair.node_dsns();
    let promote = pair.promote_cmd();
    let (code, out, err) = run(chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        &rw,
        "--node-dsn",
        &nodes[0],
        "--node-dsn",
        &nodes[1],
        "--fault",
        "kill-primary",
        "--fault-cmd",
        &promote,
        "--max-rto",
        "30s",
        "--warmup",
        "1s",
        "--report-dir",
        &dir.display().to_string(),
        "--name",
        "cli_external",
    ]));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("chaos report: cli_external — PASSED"), "{out}");
    let json = read_json(&dir.join("cli_external.json"));
    assert_eq!(json["target"]["kind"], "external", "{json}");
    assert_eq!(json["faults"][0]["kind"], "kill-primary", "{json}");
    assert_eq!(json["writes"]["lost"], 0, "{json}");
    // The RTO ends with the first write the promoted standby acknowledged,
    // on the newer timeline.
    let rto = json["rto_ms"].as_f64().expect("an RTO");
    let acked = |tl: u64| {
        json["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(move |h| h["outcome"] == "acknowledged" && h["timeline"].as_u64() == Some(tl))
            .map(|h| h["finished_ms"].as_f64().unwrap())
    };
    let promoted = acked(2).fold(f64::INFINITY, f64::min);
    assert!(
        acked(1).count() > 0 && promoted.is_finite(),
        "no promotion seen: {out}"
    );
    assert!(
        (promoted - rto).abs() < 0.001,
        "RTO {rto} ms, first write on timeline 2 at {promoted} ms"
    );
    // Shown with --nocapture: the figures of the run.
    println!("{out}");
}

#[test]
fn a_failing_fault_command_is_a_setup_error() {
    let pair = Pair::start(false).expect("a primary and a standby");
    let dir = report_dir("failing_cmd");
    let dsn = pair.rw_dsn();
    let dir_arg = dir.display().to_string();
    // One run, and a set of runs (whose body's error comes back typed
    // through the set's errors).
    for extra in [&[][..], &["--repeat", "2"][..]] {
        let mut args = vec![
            "run",
            "--target",
            "external",
            "--rw-dsn",
            &dsn,
            "--fault-cmd",
            "echo no such pod >&2; exit 3",
            "--warmup",
            "100ms",
            "--report-dir",
            &dir_arg,
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = run(chaos(&args));
        assert_eq!(code, 2, "{extra:?}: stdout:\n{out}\nstderr:\n{err}");
        assert!(
            err.contains("error: the fault could not be injected")
                && err.contains("no such pod")
                && err.contains("fix the fault command"),
            "{extra:?}: {err}"
        );
        assert!(!out.contains("chaos report"), "nothing was measured: {out}");
    }
}
