//! The command line, parsed with clap: flags, their defaults and help, and
//! the checks across flags that clap cannot express; the value parsers
//! (durations, RPO, settings, fault names) are in `values.rs`. Every problem
//! here is a usage error: clap prints it and exits with status 2.

use std::path::PathBuf;

use chaos_core::experiment::{DEFAULT_RECOVERY_TIMEOUT, DEFAULT_WARMUP};
use chaos_core::fault::FaultSpec;
use chaos_core::probe::{DEFAULT_INTERVAL, DEFAULT_WRITERS};
use chaos_core::report::default_report_dir;
use chaos_core::runs::Setting;
use chaos_core::slo::{Rpo, Slo};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

mod values;

pub use values::Dur;
use values::{FaultParser, duration, parse_rpo, parse_setting, positive_duration};

const EXAMPLES: &str = "\
Examples:
  # Boot a local 3-node Patroni cluster, kill its primary, check RTO <= 10s and RPO = 0
  chaos run

  # A freeze shorter than the failover threshold: held 2s, then thawed
  chaos run --fault freeze-primary --hold 2s --max-rto 5s

  # Your own cluster (e.g. CloudNativePG): the command deletes the primary's pod;
  # $CHAOS_PRIMARY is the current primary's name
  chaos run --target external --rw-dsn \"$APP_DSN\" --fault kill-primary \\
    --fault-cmd 'kubectl -n cnpg-database delete pod \"$CHAOS_PRIMARY\" --grace-period=0 --force'

Exit status: 0 the SLO held, 1 the run finished but did not pass (see the
report), 2 usage or set-up error (nothing was measured), 130 interrupted.";

const RUN_EXAMPLES: &str = "\
Examples:
  chaos run
  chaos run --fault stop-primary --nodes 5 --max-rto 15s
  chaos run --fault freeze-primary --hold 2s --max-rto 5s --report-dir ci-reports
  chaos run --target external --rw-dsn \"$APP_DSN\" --fault kill-primary \\
    --fault-cmd 'kubectl -n cnpg-database delete pod \"$CHAOS_PRIMARY\" --grace-period=0 --force'
  CHAOS_RW_DSN=\"$APP_DSN\" chaos run --target external --rpo 2s \\
    --fault-cmd 'ssh db1 sudo systemctl stop patroni' --heal-cmd 'ssh db1 sudo systemctl start patroni'
  CHAOS_ALLOW=kind-chaos/pg-chaos chaos run --target cnpg --context kind-chaos \\
    --namespace pg-chaos --cluster cluster-example --fault kill-primary

On --target cnpg the built-in faults are kill-primary, stop-primary,
switchover, isolate-primary, partition-primary-from-replicas and
throttle-primary-disk (or a --fault-cmd of your own); nothing is changed
outside a context/namespace allowed for chaos (CHAOS_ALLOW=context/namespace,
or the namespace label chaos.dev/allow=true), and --dry-run prints each change
instead of making it.

Fault and heal commands run with `sh -c` and see CHAOS_PRIMARY (the current
primary, when the target knows it), CHAOS_TARGET_KIND and, for a fault given
with a value (--fault primary-packet-loss=30%), CHAOS_FAULT_ARG. The fault is
in effect when the command exits 0.

The JSON and JUnit XML reports go to --report-dir as <name>.json and <name>.xml.

Exit status: 0 the SLO held, 1 the run finished but did not pass (see the
report), 2 usage or set-up error (nothing was measured), 130 interrupted.";

/// `chaos`: measure a PostgreSQL failover's RTO and RPO.
#[derive(Debug, Parser)]
#[command(
    name = "chaos",
    version,
    about = "Measure a PostgreSQL failover: inject a fault under a write probe, check RTO and RPO",
    long_about = "Measure a PostgreSQL failover: boot (or connect to) an HA cluster, write to it \
                  continuously, inject a fault, and check the recovery time (RTO) and the \
                  acknowledged writes lost (RPO) against an SLO. Writes a JSON and a JUnit XML \
                  report.",
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one failover experiment (or --repeat N of them) and check it
    /// against the SLO.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Does a setting change the RTO? Baseline and variant runs, interleaved
    /// on one local cluster re-configured between them, then compared.
    #[command(after_help = EXPERIMENT_EXAMPLES,
              mut_arg("repeat", |a| a.help("Runs per arm: N baseline and N variant runs, \
                  interleaved, on one cluster healthy between runs [default: 5]")))]
    Experiment(ExperimentArgs),
    /// Compare two reports or sets of runs: the difference in RTO and in each
    /// phase, with a 95 % confidence interval.
    #[command(after_help = COMPARE_EXAMPLES)]
    Compare(CompareArgs),
    /// Work with report files.
    #[command(subcommand)]
    Report(ReportCommand),
}

const EXPERIMENT_EXAMPLES: &str = "\
Examples:
  # Does a longer Patroni ttl slow failover down? 5 runs each, interleaved
  chaos experiment --set ttl=20 --repeat 5
  # A PostgreSQL parameter (nodes are restarted through Patroni if it needs it)
  chaos experiment --set checkpoint_timeout=1min --set wal_sender_timeout=5s --repeat 10

Settings named ttl, loop_wait, retry_timeout, maximum_lag_on_failover,
primary_start_timeout, primary_stop_timeout, synchronous_mode,
synchronous_mode_strict, synchronous_node_count, failsafe_mode or check_timeline
are Patroni's; any other name is a PostgreSQL parameter. The cluster's
configuration is restored afterwards. Writes <NAME>.baseline.runs.json,
<NAME>.variant.runs.json (and .html) and <NAME>.comparison.json/.html.

Exit status: 0 the experiment ran (whatever it found), 1 runs failed to
complete, 2 usage or set-up error, 130 interrupted.";

const COMPARE_EXAMPLES: &str = "\
Examples:
  chaos compare before.json after.json
  chaos compare baseline.runs.json variant.runs.json --html comparison.html

A and B are reports (chaos run, a test) or sets of runs (chaos run --repeat N).
The verdict needs at least two runs on each side.

Exit status: 0 compared, 2 a file is not a report or a set of runs.";

/// `chaos report …`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Draw a report (or a set of runs) again: writes its timeline picture as
    /// HTML (and SVG) beside it and prints the path.
    Show(ShowArgs),
}

/// `chaos report show`'s arguments.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The report (`<name>.json`) or set of runs (`<name>.runs.json`).
    #[arg(value_name = "REPORT.json")]
    pub report: PathBuf,
    /// Also open the page with the desktop's browser (xdg-open).
    #[arg(long)]
    pub open: bool,
}

/// `chaos compare`'s arguments.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a report or a set of runs.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The change: a report or a set of runs.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Write the comparison's picture (HTML) here [default: beside B, as
    /// <B>.comparison.html].
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the comparison as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Seed of the bootstrap (the same seed gives the same interval).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

/// `chaos experiment`'s arguments: `chaos run`'s, plus the settings.
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// A setting of the variant, NAME=VALUE (repeatable). Local target: a
    /// Patroni setting (ttl=20) or a PostgreSQL parameter
    /// (checkpoint_timeout=1min). CNPG target: a field of the Cluster's spec
    /// (spec.primaryLease.leaseDurationSeconds=5, spec.switchoverDelay=10,
    /// spec.postgresql.parameters.checkpoint_timeout=1min), checked against
    /// the installed CRD, applied as a guarded patch and restored afterwards.
    #[arg(long = "set", value_name = "NAME=VALUE", required = true,
          value_parser = parse_setting, help_heading = "Experiment")]
    pub settings: Vec<Setting>,

    /// The run's flags (targets local and cnpg; with --dry-run on cnpg the
    /// patches are printed and nothing runs).
    #[command(flatten)]
    pub run: RunArgs,
}

/// Which cluster to measure.
/// `--sync`: the local cluster's replication
/// ([`SynchronousMode`](chaos_core::cluster::local::SynchronousMode)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyncArg {
    /// Every commit waits for the synchronous standby; without one, writes stop.
    Strict,
    /// Commits wait for a synchronous standby while there is one.
    NonStrict,
    /// Quorum commit: any one standby (CloudNativePG's `method: any`); needs
    /// Patroni 4.0 or later, e.g. --patroni /opt/chaos/patroni-4.1.5/bin/patroni.
    Quorum,
    /// Asynchronous replication: a failover can lose acknowledged writes.
    Off,
}

impl From<SyncArg> for chaos_core::cluster::local::SynchronousMode {
    fn from(s: SyncArg) -> Self {
        use chaos_core::cluster::local::SynchronousMode as M;
        match s {
            SyncArg::Strict => M::Strict,
            SyncArg::NonStrict => M::NonStrict,
            SyncArg::Quorum => M::Quorum,
            SyncArg::Off => M::Off,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// An embedded etcd + Patroni + PostgreSQL cluster booted on this machine.
    Local,
    /// A cluster that runs elsewhere, given by --rw-dsn.
    External,
    /// A CloudNativePG cluster, through the Kubernetes API (--context,
    /// --namespace, --cluster).
    Cnpg,
}

/// `chaos run`'s flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where to run: boot a local Patroni cluster (local), measure one reached by
    /// its DSN (external), or a CloudNativePG Cluster through the Kubernetes API
    /// (cnpg, with --context, --namespace and --cluster).
    #[arg(long, value_enum, default_value_t = TargetKind::Local, help_heading = "Target")]
    pub target: TargetKind,

    /// Nodes of the local cluster (2 to 9).
    #[arg(long, value_name = "N", default_value_t = 3, help_heading = "Target",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=9))]
    pub nodes: usize,

    /// How the local cluster's commits wait for standbys.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = SyncArg::Strict, help_heading = "Target")]
    pub sync: SyncArg,

    /// The Patroni executable of the local cluster (or CHAOS_PATRONI)
    /// [default: Patroni 3.1.2 in /opt/chaos/patroni-3.1.2, as ci/install-deps.sh installs it].
    #[arg(long, value_name = "PATH", help_heading = "Target")]
    pub patroni: Option<std::path::PathBuf>,

    /// Read-write DSN (libpq string or postgresql:// URL): required for --target
    /// external; optional for --target cnpg, which otherwise forwards a local port
    /// to the Cluster's -rw (or --pooler) Service with the <cluster>-app Secret's
    /// credentials.
    #[arg(
        long,
        value_name = "DSN",
        env = "CHAOS_RW_DSN",
        hide_env_values = true,
        help_heading = "Target"
    )]
    pub rw_dsn: Option<String>,

    /// DSN of one node of the external cluster, for its topology (repeatable).
    #[arg(
        long = "node-dsn",
        value_name = "DSN",
        env = "CHAOS_NODE_DSNS",
        value_delimiter = ',',
        hide_env_values = true,
        help_heading = "Target"
    )]
    pub node_dsns: Vec<String>,

    /// How long the target may take to be healthy before the run
    /// [default: 90s to boot a local cluster, 30s for an external or cnpg one].
    #[arg(long, value_name = "DURATION", value_parser = duration("--ready-timeout"), help_heading = "Target")]
    pub ready_timeout: Option<Dur>,

    /// kubeconfig context of the CloudNativePG cluster [default: the current one].
    #[arg(
        long,
        value_name = "CONTEXT",
        env = "CHAOS_KUBE_CONTEXT",
        help_heading = "Target"
    )]
    pub context: Option<String>,

    /// Namespace of the CloudNativePG cluster.
    #[arg(
        long,
        value_name = "NAMESPACE",
        env = "CHAOS_CNPG_NAMESPACE",
        help_heading = "Target"
    )]
    pub namespace: Option<String>,

    /// Name of the CloudNativePG `Cluster`.
    #[arg(
        long,
        value_name = "NAME",
        env = "CHAOS_CNPG_CLUSTER",
        help_heading = "Target"
    )]
    pub cluster: Option<String>,

    /// Write through this CloudNativePG `Pooler`'s Service instead of `<cluster>-rw`.
    #[arg(
        long,
        value_name = "NAME",
        env = "CHAOS_CNPG_POOLER",
        help_heading = "Target"
    )]
    pub pooler: Option<String>,

    /// Print every Kubernetes object the run would create, patch or delete, and
    /// touch nothing (CHAOS_DRY_RUN=1).
    #[arg(long, help_heading = "Target")]
    pub dry_run: bool,

    /// The fault to inject [default: kill-primary, unless --fault-cmd is given].
    /// Some take a value: `--fault throttle-primary-disk=1MiB/s`.
    #[arg(long, value_name = "FAULT[=VALUE]", value_parser = FaultParser, help_heading = "Fault")]
    pub fault: Option<FaultSpec>,

    /// Shell command that injects the fault. With --fault, it is how that fault is
    /// done (on an external cluster, its only way); alone, a fault named `shell`.
    #[arg(long, value_name = "SHELL", help_heading = "Fault")]
    pub fault_cmd: Option<String>,

    /// Shell command that heals the fault injected by --fault-cmd.
    #[arg(
        long,
        value_name = "SHELL",
        requires = "fault_cmd",
        help_heading = "Fault"
    )]
    pub heal_cmd: Option<String>,

    /// Keep the fault this long, then heal it (e.g. a freeze shorter than the
    /// failover threshold). Without it, the fault is healed after recovery.
    #[arg(long, value_name = "DURATION", value_parser = duration("--hold"), help_heading = "Fault")]
    pub hold: Option<Dur>,

    /// Longest acceptable RTO.
    #[arg(long, value_name = "DURATION", default_value_t = Dur(Slo::default().max_rto),
          value_parser = positive_duration("--max-rto"), help_heading = "SLO")]
    pub max_rto: Dur,

    /// Longest acceptable RTO at the 95th percentile of the runs (with
    /// --repeat; nearest rank). Without --max-rto, each run's cap becomes the
    /// larger of this and --recovery-timeout.
    #[arg(long, value_name = "DURATION", value_parser = positive_duration("--max-rto-p95"),
          help_heading = "SLO")]
    pub max_rto_p95: Option<Dur>,

    /// Acknowledged writes that may be lost: a whole number, or a time window
    /// such as 2s.
    #[arg(long, value_name = "N|DURATION", default_value = "0", value_parser = parse_rpo,
          allow_negative_numbers = true, help_heading = "SLO")]
    pub rpo: Rpo,

    /// How long the probe writes before the fault.
    #[arg(long, value_name = "DURATION", default_value_t = Dur(DEFAULT_WARMUP),
          value_parser = duration("--warmup"), help_heading = "Run")]
    pub warmup: Dur,

    /// Concurrent probe writers.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WRITERS,
          value_parser = clap::value_parser!(u32).range(1..), help_heading = "Run")]
    pub writers: u32,

    /// Pacing of each probe writer: one write per interval.
    #[arg(long, value_name = "DURATION", default_value_t = Dur(DEFAULT_INTERVAL),
          value_parser = positive_duration("--interval"), help_heading = "Run")]
    pub interval: Dur,

    /// How long the service may take to accept writes again after the fault.
    #[arg(long, value_name = "DURATION", default_value_t = Dur(DEFAULT_RECOVERY_TIMEOUT),
          value_parser = duration("--recovery-timeout"), help_heading = "Run")]
    pub recovery_timeout: Dur,

    /// Directory for the JSON and JUnit XML reports ($CHAOS_REPORT_DIR, else
    /// target/chaos-reports of the enclosing cargo workspace).
    #[arg(long, value_name = "DIR", default_value_os_t = default_report_dir(), help_heading = "Run")]
    pub report_dir: PathBuf,

    /// The scenario's name, and the report files' (<NAME>.json, <NAME>.xml)
    /// [default: chaos_run; chaos_experiment for `chaos experiment`].
    #[arg(long, value_name = "NAME", help_heading = "Run")]
    pub name: Option<String>,

    /// Run the scenario N times on one cluster, healthy between runs, and
    /// judge the set (RTO p50/p95/max; with --max-rto-p95, the percentile).
    /// Writes <NAME>.runs.json and <NAME>.runs.html with every run's timeline.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000),
          help_heading = "Run")]
    pub repeat: Option<u32>,

    /// Whether --max-rto was given (not a flag).
    #[arg(skip)]
    pub max_rto_given: bool,

    /// Whether the run re-configures the cluster (`chaos experiment`), not a flag.
    #[arg(skip)]
    pub reconfigures: bool,
}

impl RunArgs {
    /// The objectives given by --max-rto and --rpo.
    pub fn slo(&self) -> Slo {
        let mut slo = Slo::max_rto(self.max_rto.0);
        if let Some(p95) = self.max_rto_p95 {
            // Refused at parsing when it does not fit (check_percentile).
            slo = slo
                .with_p95(p95.0, self.max_rto_given, self.recovery_timeout.0)
                .unwrap_or(slo);
        }
        match self.rpo {
            Rpo::MaxLostWrites(n) => slo.max_lost_writes(n),
            Rpo::MaxLostWindow(w) => slo.max_lost_window(w),
        }
    }

    /// The scenario's name: --name, else `default`.
    pub fn name_or(&self, default: &str) -> String {
        self.name.clone().unwrap_or_else(|| default.to_string())
    }

    /// The read-write DSN, when one was given and is not blank.
    pub fn rw_dsn(&self) -> Option<&str> {
        self.rw_dsn.as_deref().filter(|d| !d.trim().is_empty())
    }
}

/// Parses the process's arguments; prints the error and exits with status 2
/// (0 for `--help` and `--version`) when they are not valid.
pub fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    match from_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

/// Builds the [`Cli`] from clap's matches and checks the flags against each other.
///
/// # Errors
/// A clap error (usage error, exit status 2) naming the flags involved.
pub fn from_matches(matches: &ArgMatches) -> Result<Cli, clap::Error> {
    let mut cli = Cli::from_arg_matches(matches).map_err(|e| e.format(&mut Cli::command()))?;
    match (&mut cli.command, matches.subcommand()) {
        (Command::Run(run), Some(("run", sub))) => {
            run.max_rto_given = sub.value_source("max_rto") == Some(ValueSource::CommandLine);
            check_run(run, sub, "run")?;
            check_percentile(run, "run")?;
        }
        (Command::Experiment(e), Some(("experiment", sub))) => {
            e.run.max_rto_given = sub.value_source("max_rto") == Some(ValueSource::CommandLine);
            e.run.reconfigures = true;
            check_run(&e.run, sub, "experiment")?;
            check_percentile(&e.run, "experiment")?;
        }
        _ => {}
    }
    Ok(cli)
}

/// A usage error of subcommand `sub`.
fn sub_error(sub: &str, kind: ErrorKind, msg: String) -> clap::Error {
    let mut cmd = Cli::command();
    cmd.build(); // gives the subcommand its full name, `chaos run`
    match cmd.find_subcommand_mut(sub) {
        Some(s) => s.error(kind, msg),
        None => cmd.error(kind, msg),
    }
}

/// `--max-rto-p95` must fit under an explicit `--max-rto`.
fn check_percentile(args: &RunArgs, sub: &str) -> Result<(), clap::Error> {
    if let Some(p95) = args.max_rto_p95
        && Slo::max_rto(args.max_rto.0)
            .with_p95(p95.0, args.max_rto_given, args.recovery_timeout.0)
            .is_err()
    {
        return Err(sub_error(
            sub,
            ErrorKind::ArgumentConflict,
            format!(
                "--max-rto-p95 {p95} is above --max-rto {}, which caps every run: lower \
                 --max-rto-p95 or raise --max-rto",
                args.max_rto
            ),
        ));
    }
    Ok(())
}

/// Checks that clap cannot express: which flags go with which target.
fn check_run(args: &RunArgs, m: &ArgMatches, sub: &str) -> Result<(), clap::Error> {
    let on_command_line = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    let error = |kind: ErrorKind, msg: String| sub_error(sub, kind, msg);
    match args.target {
        TargetKind::External if sub == "experiment" => {
            return Err(error(
                ErrorKind::ArgumentConflict,
                "chaos experiment changes the cluster's configuration between runs: --target \
                 local (Patroni settings) or cnpg (Cluster fields); an external cluster's \
                 configuration is yours to change"
                    .into(),
            ));
        }
        TargetKind::External if args.rw_dsn().is_none() => {
            return Err(error(
                ErrorKind::MissingRequiredArgument,
                "--target external needs --rw-dsn or CHAOS_RW_DSN: the read-write DSN of the \
                 cluster, e.g. --rw-dsn 'postgresql://app@db-rw:5432/app'"
                    .into(),
            ));
        }
        TargetKind::External if on_command_line("nodes") => {
            return Err(error(
                ErrorKind::ArgumentConflict,
                "--nodes is for --target local; give the nodes of an external cluster with \
                 --node-dsn"
                    .into(),
            ));
        }
        TargetKind::External | TargetKind::Cnpg
            if on_command_line("sync") || on_command_line("patroni") =>
        {
            return Err(error(
                ErrorKind::ArgumentConflict,
                "--sync and --patroni are for --target local: they configure the cluster it boots"
                    .into(),
            ));
        }
        TargetKind::Local => {
            for (id, flag) in [("rw_dsn", "--rw-dsn"), ("node_dsns", "--node-dsn")] {
                if on_command_line(id) {
                    return Err(error(
                        ErrorKind::ArgumentConflict,
                        format!(
                            "{flag} is for an external cluster; add --target external to \
                             measure that cluster (the default target boots a local one)"
                        ),
                    ));
                }
            }
        }
        TargetKind::Cnpg => {
            for (value, id, flag) in [
                (&args.namespace, "namespace", "--namespace"),
                (&args.cluster, "cluster", "--cluster"),
            ] {
                if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
                    return Err(error(
                        ErrorKind::MissingRequiredArgument,
                        format!(
                            "--target cnpg needs {flag} (or CHAOS_CNPG_{}): the CloudNativePG \
                             cluster to measure, e.g. --namespace pg-chaos --cluster cluster-example",
                            id.to_uppercase()
                        ),
                    ));
                }
            }
            if on_command_line("nodes") || on_command_line("node_dsns") {
                return Err(error(
                    ErrorKind::ArgumentConflict,
                    "--nodes and --node-dsn are not for --target cnpg: its nodes come from the \
                     Cluster's status"
                        .into(),
                ));
            }
        }
        TargetKind::External => {}
    }
    if args.target != TargetKind::Cnpg {
        for (id, flag) in [
            ("context", "--context"),
            ("namespace", "--namespace"),
            ("cluster", "--cluster"),
            ("pooler", "--pooler"),
            ("dry_run", "--dry-run"),
        ] {
            if on_command_line(id) {
                return Err(error(
                    ErrorKind::ArgumentConflict,
                    format!("{flag} is for --target cnpg"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
