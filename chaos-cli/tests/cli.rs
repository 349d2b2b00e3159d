//! The `chaos` binary as a user runs it, before anything boots: usage
//! errors, set-up errors and help, with their exit statuses and output.
//! (Runs are in `cli_runs.rs` and `cli_sets.rs`, the CNPG target in
//! `cli_cnpg.rs`: separate binaries, so that CI runs them side by side.)

mod support;

use support::{chaos, run};

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let (code, _, err) = run(chaos(&["run", "--bogus"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unexpected argument '--bogus'"), "{err}");
    assert!(err.contains("Usage: chaos run"), "{err}");
}

#[test]
fn a_bad_duration_names_the_flag_and_an_example() {
    let (code, _, err) = run(chaos(&["run", "--max-rto", "ten"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--max-rto") && err.contains("\"10s\""),
        "{err}"
    );
    let (code, _, err) = run(chaos(&["run", "--interval", "0s"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--interval") && err.contains("above zero"),
        "{err}"
    );
}

#[test]
fn an_unknown_fault_lists_the_valid_names() {
    let (code, _, err) = run(chaos(&["run", "--fault", "bogus"]));
    assert_eq!(code, 2, "{err}");
    for name in [
        "kill-primary",
        "stop-primary",
        "freeze-primary",
        "freeze-replicas",
    ] {
        assert!(err.contains(name), "{name} missing: {err}");
    }
}

#[test]
fn the_external_target_needs_a_dsn() {
    let (code, _, err) = run(chaos(&["run", "--target", "external"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--target external needs --rw-dsn or CHAOS_RW_DSN"),
        "{err}"
    );
}

#[test]
fn flags_must_fit_the_target() {
    let (code, _, err) = run(chaos(&[
        "run",
        "--target",
        "local",
        "--fault",
        "freeze-primary",
        "--target",
        "external",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'--target <TARGET>' cannot be used multiple times"),
        "{err}"
    );

    let (code, _, err) = run(chaos(&["run", "--rw-dsn", "postgresql://app@db/app"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("add --target external"), "{err}");

    let (code, _, err) = run(chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://app@db/app",
        "--nodes",
        "5",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--nodes is for --target local"), "{err}");

    let (code, _, err) = run(chaos(&["run", "--heal-cmd", "true"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--fault-cmd"), "{err}");

    let (code, _, err) = run(chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://app@db/app",
        "--sync",
        "quorum",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--sync and --patroni are for --target local"),
        "{err}"
    );
}

/// Values that can never make sense are refused at once, exit 2, before a
/// cluster boots, each saying what was expected.
#[test]
fn impossible_values_are_refused_before_anything_boots() {
    for (args, says) in [
        (&["run", "--max-rto", "0s"][..], "above zero"),
        (&["run", "--nodes", "1"][..], "--nodes"),
        (&["run", "--nodes", "10"][..], "--nodes"),
        (&["run", "--rpo", "-1"][..], "-1 is negative"),
    ] {
        let started = std::time::Instant::now();
        let (code, _, err) = run(chaos(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("booting"), "{args:?} booted: {err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
    // --repeat's help fits the command it is read in.
    let (_, run_help, _) = run(chaos(&["run", "--help"]));
    assert!(!run_help.contains("per arm"), "{run_help}");
    let (_, experiment_help, _) = run(chaos(&["experiment", "--help"]));
    assert!(
        experiment_help.contains("Runs per arm"),
        "{experiment_help}"
    );
}

#[test]
fn quorum_commit_needs_a_patroni_that_has_it_and_says_so_before_booting() {
    let started = std::time::Instant::now();
    let (code, _, err) = run(chaos(&["run", "--sync", "quorum"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Patroni 4.0 or later"), "{err}");
    assert!(err.contains("/opt/chaos/patroni-4.1.5"), "{err}");
    // Refused on the version alone: no cluster was booted (a boot takes seconds).
    assert!(!err.contains("booted"), "{err}");
    println!("refused after {:?}", started.elapsed());

    let (code, _, err) = run(chaos(&["run", "--sync", "sometimes"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("strict") && err.contains("quorum"), "{err}");
}

#[test]
fn an_external_builtin_fault_without_its_command_is_a_setup_error() {
    let (code, out, err) = run(chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://u:pw123@127.0.0.1:1/x",
        "--fault",
        "stop-primary",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("error: --target external cannot do stop-primary by itself")
            && err.contains("--fault-cmd")
            && err.contains("CHAOS_STOP_PRIMARY_CMD"),
        "{err}"
    );
    assert!(
        !out.contains("pw123") && !err.contains("pw123"),
        "{out}{err}"
    );

    // The command may come from the environment, as the library reads it.
    let mut cmd = chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://u@127.0.0.1:1/x",
        "--fault",
        "stop-primary",
        "--ready-timeout",
        "100ms",
    ]);
    cmd.env("CHAOS_STOP_PRIMARY_CMD", "true");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the external cluster is not ready"), "{err}");
}

#[test]
fn an_unreachable_cluster_is_a_setup_error_without_its_password() {
    let (code, out, err) = run(chaos(&[
        "run",
        "--target",
        "external",
        "--rw-dsn",
        "postgresql://u:pw123@127.0.0.1:1/x",
        "--fault-cmd",
        "true",
        "--ready-timeout",
        "1s",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error: the external cluster is not ready")
            && err.contains("postgresql://u@127.0.0.1:1/x")
            && err.contains("Check --rw-dsn"),
        "{err}"
    );
    assert!(
        !out.contains("pw123") && !err.contains("pw123"),
        "{out}{err}"
    );
}

#[test]
fn the_dsns_may_come_from_the_environment_and_are_never_shown() {
    let mut cmd = chaos(&[
        "run",
        "--target",
        "external",
        "--fault-cmd",
        "true",
        "--ready-timeout",
        "1s",
    ]);
    cmd.env("CHAOS_RW_DSN", "postgresql://u:pw123@127.0.0.1:1/x")
        .env("CHAOS_NODE_DSNS", "postgresql://u:pw456@127.0.0.1:2/x");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("postgresql://u@127.0.0.1:1/x"), "{err}");
    assert!(!format!("{out}{err}").contains("pw"), "{out}{err}");

    let mut cmd = chaos(&["run", "--help"]);
    cmd.env("CHAOS_RW_DSN", "postgresql://u:pw123@127.0.0.1:1/x");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("[env: CHAOS_RW_DSN]"), "{out}");
    assert!(!out.contains("pw123"), "{out}");
}

#[test]
fn help_shows_the_defaults_and_examples() {
    let (code, out, err) = run(chaos(&["--help"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "--fault-cmd 'kubectl -n cnpg-database delete pod \"$CHAOS_PRIMARY\" \
             --grace-period=0 --force'"
        ),
        "{out}"
    );
    let (code, out, err) = run(chaos(&["run", "--help"]));
    assert_eq!(code, 0, "{err}");
    for default in [
        "[default: local]",
        "[default: 3]",
        "[default: 10s]",
        "[default: 1s]",
        "[default: 1m]",
        "[default: 10ms]",
        "[default: chaos_run; chaos_experiment for `chaos experiment`]",
    ] {
        assert!(out.contains(default), "{default} missing: {out}");
    }
    assert!(out.contains("Exit status: 0"), "{out}");
}

/// `chaos run --help` describes the CNPG target too: what --target offers,
/// that --rw-dsn is optional there, what the faults are on it.
#[test]
fn help_describes_the_cnpg_target() {
    let (code, out, err) = run(chaos(&["run", "--help"]));
    assert_eq!(code, 0, "{err}");
    // Wrapped lines joined again.
    let help = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for text in [
        "a CloudNativePG Cluster through the Kubernetes API (cnpg, with --context, --namespace and --cluster)",
        "required for --target external; optional for --target cnpg",
        "SIGKILL the primary (a lost node); on cnpg a forced delete of its pod (grace period 0)",
        "on cnpg a delete of its pod with its grace period",
        "on cnpg to the most advanced standby",
        "on cnpg a Chaos Mesh NetworkChaos",
        "CHAOS_ALLOW=kind-chaos/pg-chaos chaos run --target cnpg",
        "30s for an external or cnpg one",
    ] {
        assert!(help.contains(text), "{text:?} missing: {out}");
    }
    for stale in [
        "boot a local cluster, or measure an external one",
        "Read-write DSN of the external cluster",
    ] {
        assert!(!help.contains(stale), "{stale:?} still there: {out}");
    }
}
