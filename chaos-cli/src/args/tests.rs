//! The command line's parsing, checks and help, without running anything.

use std::time::Duration;

use chaos_core::fault::CATALOGUE;

use super::*;

fn parse_args(args: &[&str]) -> Result<RunArgs, clap::Error> {
    let argv = ["chaos", "run"].iter().chain(args).copied();
    let matches = Cli::command().try_get_matches_from(argv)?;
    match from_matches(&matches)?.command {
        Command::Run(run) => Ok(run),
        other => panic!("not a run: {other:?}"),
    }
}

fn parse_cli(args: &[&str]) -> Result<Command, clap::Error> {
    let argv = std::iter::once("chaos").chain(args.iter().copied());
    let matches = Cli::command().try_get_matches_from(argv)?;
    Ok(from_matches(&matches)?.command)
}

#[test]
fn repeat_and_the_percentile_objective() {
    let a = parse_args(&["--repeat", "20", "--max-rto-p95", "10s"]).expect("parses");
    assert_eq!(a.repeat, Some(20));
    let slo = a.slo();
    assert_eq!(slo.max_rto_p95, Some(Duration::from_secs(10)));
    // Without --max-rto, single slow runs are judged by the percentile.
    assert_eq!(slo.max_rto, DEFAULT_RECOVERY_TIMEOUT);
    let a = parse_args(&["--max-rto", "30s", "--max-rto-p95", "10s"]).expect("both");
    assert_eq!(a.slo().max_rto, Duration::from_secs(30));
    let e = parse_args(&["--max-rto", "5s", "--max-rto-p95", "10s"]).expect_err("above");
    assert!(
        e.to_string()
            .contains("--max-rto-p95 10s is above --max-rto 5s"),
        "{e}"
    );
    let e = parse_args(&["--repeat", "0"]).expect_err("zero");
    assert_eq!(e.kind(), ErrorKind::ValueValidation);
}

#[test]
fn experiment_settings_and_target() {
    let Command::Experiment(e) = parse_cli(&[
        "experiment",
        "--set",
        "ttl=20",
        "--set",
        "checkpoint_timeout=1min",
        "--repeat",
        "3",
    ])
    .expect("parses") else {
        panic!("an experiment");
    };
    assert_eq!(e.settings.len(), 2);
    assert_eq!(e.settings[0].to_string(), "ttl=20");
    assert_eq!(e.run.repeat, Some(3));
    let err = parse_cli(&["experiment"]).expect_err("no --set");
    assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    let err = parse_cli(&["experiment", "--set", "ttl"]).expect_err("no value");
    assert!(err.to_string().contains("NAME=VALUE"), "{err}");
    let err = parse_cli(&[
        "experiment",
        "--set",
        "ttl=9",
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://h/db",
    ])
    .expect_err("not re-configurable");
    assert!(
        err.to_string().contains("--target local") && err.to_string().contains("cnpg"),
        "{err}"
    );
    let Command::Experiment(e) = parse_cli(&[
        "experiment",
        "--set",
        "spec.primaryLease.leaseDurationSeconds=5",
        "--target",
        "cnpg",
        "--namespace",
        "pg-chaos",
        "--cluster",
        "cluster-example",
        "--dry-run",
    ])
    .expect("an experiment on CNPG") else {
        panic!("an experiment");
    };
    assert_eq!(e.settings[0].name, "spec.primaryLease.leaseDurationSeconds");
    assert!(e.run.dry_run);
}

#[test]
fn compare_and_report_show() {
    let Command::Compare(c) = parse_cli(&["compare", "a.json", "b.json"]).expect("parses") else {
        panic!("a comparison");
    };
    assert_eq!(
        (c.a, c.b),
        (PathBuf::from("a.json"), PathBuf::from("b.json"))
    );
    parse_cli(&["compare", "a.json"]).expect_err("needs two");
    let Command::Report(ReportCommand::Show(s)) =
        parse_cli(&["report", "show", "r.json", "--open"]).expect("parses")
    else {
        panic!("report show");
    };
    assert!(s.open);
}

#[test]
fn the_command_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn defaults_are_the_librarys() {
    let a = parse_args(&[]).expect("defaults parse");
    assert_eq!(a.target, TargetKind::Local);
    assert_eq!(a.nodes, 3);
    assert_eq!(a.fault, None);
    assert_eq!(a.warmup.0, DEFAULT_WARMUP);
    assert_eq!(a.recovery_timeout.0, DEFAULT_RECOVERY_TIMEOUT);
    assert_eq!(a.slo(), Slo::default());
    assert_eq!(a.interval.0, Duration::from_millis(10));
    assert_eq!(a.name_or("chaos_run"), "chaos_run");
}

#[test]
fn rpo_is_a_count_or_a_window() {
    let a = parse_args(&["--rpo", "3"]).expect("count");
    assert_eq!(a.slo().rpo, Rpo::MaxLostWrites(3));
    let a = parse_args(&["--rpo", "2s"]).expect("window");
    assert_eq!(a.slo().rpo, Rpo::MaxLostWindow(Duration::from_secs(2)));
    let e = parse_args(&["--rpo", "lots"]).expect_err("neither");
    assert!(e.to_string().contains("whole number"), "{e}");
}

/// The help's sentence on the CNPG target's faults names exactly those
/// the catalogue says it does.
#[test]
fn the_cnpg_faults_in_the_help_are_the_catalogues() {
    let text = RUN_EXAMPLES
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let (_, rest) = text
        .split_once("On --target cnpg the built-in faults are ")
        .expect("the sentence");
    let (list, _) = rest.split_once(" (or a --fault-cmd").expect("its end");
    let mut listed: Vec<&str> = list.split(", ").flat_map(|s| s.split(" and ")).collect();
    listed.sort_unstable();
    let mut catalogue: Vec<&str> = CATALOGUE
        .iter()
        .filter(|e| e.on_cnpg)
        .map(|e| e.name)
        .collect();
    catalogue.sort_unstable();
    assert_eq!(listed, catalogue);
}

#[test]
fn faults_are_named_as_in_the_library() {
    use chaos_core::fault::FaultKind;
    for kind in FaultKind::ALL {
        let spec = FaultSpec::from(kind).to_string();
        let a = parse_args(&["--fault", &spec]).expect("a built-in fault");
        assert_eq!(a.fault.map(|f| f.kind()), Some(kind));
    }
    let a = parse_args(&["--fault", "throttle-primary-disk=256KiB/s"]).expect("a rate");
    assert_eq!(a.fault.unwrap().arg(), Some("256KiB/s"));
    let e = parse_args(&["--fault", "bogus"]).expect_err("unknown fault");
    assert_eq!(e.kind(), ErrorKind::InvalidValue);
    assert!(e.to_string().contains("kill-primary"), "{e}");
    let e = parse_args(&["--fault", "primary-packet-loss=200%"]).expect_err("bad value");
    assert!(e.to_string().contains("at most 100"), "{e}");
}

#[test]
fn the_cnpg_target_needs_its_cluster_and_only_it_takes_its_flags() {
    let a = parse_args(&[
        "--target",
        "cnpg",
        "--namespace",
        "pg-chaos",
        "--cluster",
        "cluster-example",
        "--dry-run",
    ])
    .expect("a CNPG target");
    assert_eq!(a.target, TargetKind::Cnpg);
    assert!(a.dry_run);
    if std::env::var_os("CHAOS_CNPG_CLUSTER").is_none() {
        let e =
            parse_args(&["--target", "cnpg", "--namespace", "pg-chaos"]).expect_err("no cluster");
        assert!(e.to_string().contains("--cluster"), "{e}");
    }
    let e = parse_args(&["--namespace", "pg-chaos"]).expect_err("local with a namespace");
    assert!(e.to_string().contains("--target cnpg"), "{e}");
    let e = parse_args(&[
        "--target",
        "cnpg",
        "--namespace",
        "n",
        "--cluster",
        "c",
        "--nodes",
        "5",
    ])
    .expect_err("nodes on cnpg");
    assert_eq!(e.kind(), ErrorKind::ArgumentConflict);
}

#[test]
fn flags_must_fit_the_target() {
    let e = parse_args(&["--rw-dsn", "postgresql://h/db"]).expect_err("local with a DSN");
    assert!(e.to_string().contains("--target external"), "{e}");
    let e = parse_args(&[
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://h/db",
        "--nodes",
        "5",
    ])
    .expect_err("external with --nodes");
    assert!(e.to_string().contains("--node-dsn"), "{e}");
    let e = parse_args(&["--heal-cmd", "true"]).expect_err("heal without fault");
    assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
    let a = parse_args(&[
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://h/db",
        "--node-dsn",
        "postgresql://a/db,postgresql://b/db",
        "--node-dsn",
        "postgresql://c/db",
    ])
    .expect("node DSNs");
    assert_eq!(a.node_dsns.len(), 3);
}

#[test]
fn durations_are_checked_at_the_edge() {
    let e = parse_args(&["--interval", "0s"]).expect_err("zero interval");
    assert!(e.to_string().contains("above zero"), "{e}");
    let a = parse_args(&["--hold", "1500ms", "--max-rto", "2m"]).expect("durations");
    assert_eq!(a.hold, Some(Dur(Duration::from_millis(1500))));
    assert_eq!(a.max_rto, Dur(Duration::from_secs(120)));
}
