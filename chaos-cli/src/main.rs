//! # `chaos` — measure a PostgreSQL failover from a shell
//!
//! ```text
//! cargo build --release -p chaos-cli
//! target/release/chaos run                                   # local 3-node cluster, kill the primary
//! target/release/chaos run --fault freeze-primary --hold 2s  # a short stall, healed after 2 s
//! target/release/chaos run --target external --rw-dsn "$APP_DSN" --fault kill-primary \
//!     --fault-cmd 'kubectl -n cnpg-database delete pod "$CHAOS_PRIMARY" --grace-period=0 --force'
//! ```
//!
//! `chaos run` is a thin front-end over `chaos_core`'s one experiment
//! pipeline: it boots an embedded etcd + Patroni + PostgreSQL cluster
//! (`--target local`, the default) or connects to yours (`--target external
//! --rw-dsn DSN`, optionally `--node-dsn DSN` per node, or a CloudNativePG
//! `Cluster` through the Kubernetes API: `--target cnpg --namespace NS
//! --cluster NAME`, in a place allowed with `CHAOS_ALLOW`), starts the write
//! probe, injects one fault, waits for recovery, heals, verifies every
//! acknowledged write, prints the report and writes `<name>.json` and
//! `<name>.xml` to `--report-dir`.
//!
//! ## Faults
//!
//! * `--fault kill-primary|stop-primary|freeze-primary|freeze-replicas|pause-primary|
//!   stop-dcs|switchover|isolate-primary|partition-primary-from-replicas`: the
//!   built-in faults (default `kill-primary`). An external cluster needs the
//!   command that does it: `--fault-cmd 'shell'` (or `CHAOS_<FAULT>_CMD`), so
//!   the report still calls the fault by its name.
//! * `--fault-cmd 'shell'` alone: a fault of your own, on any target, healed by
//!   `--heal-cmd 'shell'` if given. Commands see `CHAOS_PRIMARY` (the current
//!   primary) and `CHAOS_TARGET_KIND`; the fault is in effect when the command
//!   exits 0.
//! * `--hold 2s`: keep the fault that long, then heal it (a freeze shorter than
//!   the failover threshold); otherwise the fault is healed after recovery.
//!
//! ## SLO and exit status
//!
//! `--max-rto 10s` and `--rpo 0` (a count of acknowledged writes that may be
//! lost, or a window such as `2s`). The exit status is **0** when the run
//! completed and the SLO held, **1** when it produced a report that did not
//! pass (SLO violated, or a failure after measuring began), **2** for usage
//! errors and set-up errors (the target cannot boot or be reached, the probe
//! cannot start, the fault is not available or its command failed — nothing
//! was measured), **130** when interrupted (faults healed first).
//!
//! Progress goes to stderr: a spinner line on a terminal, plain lines otherwise.
//! The report goes to stdout. DSNs are printed only without their password.

mod args;
mod compare;
mod experiment;
mod progress;
mod run;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = args::parse();
    let status = Arc::new(progress::Status::for_stderr());
    let logs = status.clone();
    // Library warnings (RUST_LOG, default `warn`), without tearing the spinner.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(move || logs.log_writer())
        .try_init();
    match cli.command {
        args::Command::Run(run_args) => run::execute(run_args, status),
        args::Command::Experiment(e) => experiment::execute(e, status),
        args::Command::Compare(c) => compare::execute(&c),
        args::Command::Report(args::ReportCommand::Show(s)) => compare::show(&s),
    }
}
