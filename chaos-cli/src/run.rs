//! `chaos run`: builds the target and the [`Experiment`] from the flags, runs
//! the one pipeline with a body that injects the chosen fault, prints the
//! report, and turns the outcome into an exit status. Nothing is measured
//! here: the experiment does it all.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chaos_core::cluster::cnpg::{CnpgCluster, CnpgClusterBuilder};
use chaos_core::cluster::external::{
    ENV_NODE_DSNS, ENV_RW_DSN, ExternalCluster, ExternalClusterBuilder, FaultCommand,
};
use chaos_core::cluster::local::LocalCluster;
use chaos_core::cluster::{Target, TargetSpec};
use chaos_core::dsn::redact;
use chaos_core::experiment::{
    BodyError, BodyOutcome, DEFAULT_RECOVERY_TIMEOUT, DEFAULT_TIMEOUT, RunOutcome,
};
use chaos_core::fault::{FaultKind, FaultSpec, Shell};
use chaos_core::probe::ProbeConfig;
use chaos_core::runs::{RunSetError, RunSetOutcome, Runs};
use chaos_core::{Error, Experiment, FailoverCtx};

use crate::args::{RunArgs, TargetKind};
use crate::progress::Status;

/// How long an external cluster may take to be healthy, unless --ready-timeout says.
const EXTERNAL_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How a run ended, and so the process's exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The run completed and the SLO held: 0.
    Passed,
    /// The run produced a report that did not pass, or no report after it
    /// started measuring: 1.
    Failed,
    /// Nothing was measured: the target, the probe or the fault could not be
    /// set up: 2, with the message (which says what to do).
    Setup(String),
    /// Ctrl-C: 130, after healing and stopping what was started.
    Interrupted,
}

impl Verdict {
    /// The exit status.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Verdict::Passed => 0,
            Verdict::Failed => 1,
            Verdict::Setup(_) => 2,
            Verdict::Interrupted => 130,
        })
    }
}

/// Runs `chaos run` and returns the exit status.
pub fn execute(args: RunArgs, status: Arc<Status>) -> ExitCode {
    let secrets: Vec<String> = args
        .rw_dsn
        .iter()
        .chain(&args.node_dsns)
        .filter(|d| !d.trim().is_empty())
        .cloned()
        .collect();
    let verdict = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let verdict = rt.block_on(run(args, status.clone()));
            // Stops the progress task and the probe's leftovers; a fault
            // command still running is not waited for long.
            rt.shutdown_timeout(Duration::from_secs(5));
            verdict
        }
        Err(e) => Verdict::Setup(format!("cannot start the async runtime: {e}")),
    };
    status.finish();
    match &verdict {
        Verdict::Setup(msg) => eprintln!("error: {}", scrub(msg, &secrets)),
        Verdict::Interrupted => {
            eprintln!("chaos: interrupted; injected faults were healed, nothing was measured")
        }
        Verdict::Passed | Verdict::Failed => {}
    }
    verdict.exit_code()
}

/// Replaces every DSN given on the command line by its redacted form, in case
/// a message quotes one verbatim.
fn scrub(msg: &str, secrets: &[String]) -> String {
    secrets.iter().fold(msg.to_string(), |m, dsn| {
        m.replace(dsn.as_str(), &redact(dsn))
    })
}

/// The fault the body injects.
#[derive(Debug, Clone)]
pub(crate) enum FaultPlan {
    /// A built-in fault: the target does it its own way (on an external
    /// cluster, with the command registered for it).
    Builtin(FaultSpec),
    /// Shell commands.
    Shell(Shell),
}

impl FaultPlan {
    /// From --fault, --fault-cmd and --heal-cmd.
    pub(crate) fn from_args(args: &RunArgs) -> Self {
        let shell = |cmd: &str| {
            let s = Shell::new(cmd);
            match &args.heal_cmd {
                Some(h) => s.heal(h.clone()),
                None => s,
            }
        };
        match (args.fault.clone(), args.fault_cmd.as_deref(), args.target) {
            (None, None, _) => FaultPlan::Builtin(FaultKind::KillPrimary.into()),
            (Some(spec), None, _) => FaultPlan::Builtin(spec),
            (None, Some(cmd), _) => FaultPlan::Shell(shell(cmd)),
            // The external cluster gets the command as that fault's own.
            (Some(spec), Some(_), TargetKind::External) => FaultPlan::Builtin(spec),
            // Elsewhere the command does the fault, under the fault's name.
            (Some(spec), Some(cmd), TargetKind::Local | TargetKind::Cnpg) => {
                FaultPlan::Shell(shell(cmd).name(spec.kind().name()))
            }
        }
    }

    /// Injects the fault through the context, so the pipeline heals it whatever happens.
    async fn inject(
        self,
        ctx: &mut FailoverCtx,
    ) -> chaos_core::Result<chaos_core::experiment::FaultHandle> {
        match self {
            FaultPlan::Builtin(spec) => ctx.inject(spec).await,
            FaultPlan::Shell(shell) => ctx.inject(shell).await,
        }
    }
}

/// The whole run on a runtime: target, experiment, report.
async fn run(args: RunArgs, status: Arc<Status>) -> Verdict {
    let fault = FaultPlan::from_args(&args);
    let experiment = experiment(&args, status.clone(), "chaos_run");
    let target = tokio::select! {
        t = connect(&args, &fault, &status) => match t {
            Ok(t) => t,
            Err(msg) => return Verdict::Setup(msg),
        },
        _ = tokio::signal::ctrl_c() => return Verdict::Interrupted,
    };
    if target.dry_run_plan().is_some() {
        return dry_run(target.as_ref(), fault, &status).await;
    }
    let verdict = tokio::select! {
        v = measure(&experiment, target.clone(), fault, args.hold.map(|h| h.0), args.repeat, &status) => v,
        _ = tokio::signal::ctrl_c() => {
            // The run was dropped: its context healed the faults it held.
            status.finish();
            Verdict::Interrupted
        }
    };
    stop(&args, target, &status).await;
    verdict
}

/// Stops what the run started: the local cluster it booted (other targets
/// were there before the run and stay).
pub(crate) async fn stop(args: &RunArgs, target: Arc<dyn Target>, status: &Status) {
    if args.target != TargetKind::Local {
        return;
    }
    status.step("stopping the local cluster…");
    if let Err(e) = tokio::task::spawn_blocking(move || target.shutdown()).await {
        status.line(&format!("chaos: stopping the local cluster failed: {e}"));
    }
}

/// `--dry-run`: resolves the fault's victim and plans what it would create,
/// patch or delete (each printed once, by the target, as it is planned),
/// heals it the same way, writes nothing and measures nothing.
async fn dry_run(target: &dyn Target, fault: FaultPlan, status: &Status) -> Verdict {
    use chaos_core::fault::{Fault, FaultGuard};
    // The plan's lines go straight to stderr: no spinner to tear.
    status.finish();
    let guard = match fault {
        FaultPlan::Builtin(spec) => spec.inject(target).await,
        FaultPlan::Shell(shell) => {
            status.line("chaos: dry run: a --fault-cmd command is not run");
            drop(shell);
            return Verdict::Passed;
        }
    };
    let healed = match guard {
        Ok(g) => g.heal().await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = healed {
        return Verdict::Setup(format!("dry run: {e}"));
    }
    // Each change was printed as it was planned: only the count here.
    status.line(&format!(
        "chaos: dry run: {} change(s) planned (above), none made",
        target.dry_run_plan().map_or(0, |plan| plan.len())
    ));
    Verdict::Passed
}

/// The experiment the flags describe, called `default_name` without --name.
pub(crate) fn experiment(args: &RunArgs, status: Arc<Status>, default_name: &str) -> Experiment {
    let hold = args.hold.map_or(Duration::ZERO, |h| h.0);
    // Room for the hold and for a recovery timeout above the default.
    let deadline = DEFAULT_TIMEOUT
        + hold
        + args
            .recovery_timeout
            .0
            .saturating_sub(DEFAULT_RECOVERY_TIMEOUT);
    Experiment::new(args.name_or(default_name))
        .slo(args.slo())
        .warmup(args.warmup.0)
        .recovery_timeout(args.recovery_timeout.0)
        .timeout(deadline)
        .probe(
            ProbeConfig::default()
                .writers(args.writers)
                .interval(args.interval.0),
        )
        .report_dir(args.report_dir.clone())
        .suite("chaos")
        .print_summary(false)
        .progress(move |p| status.update(p))
}

/// Boots or connects to the target, through chaos-core's one factory
/// ([`TargetSpec`]) with the flags as its settings, and waits until it is
/// healthy.
pub(crate) async fn connect(
    args: &RunArgs,
    fault: &FaultPlan,
    status: &Status,
) -> Result<Arc<dyn Target>, String> {
    match args.target {
        TargetKind::Local => {
            status.step(&format!(
                "booting a {}-node Patroni + etcd + PostgreSQL cluster…",
                args.nodes
            ));
            let target = TargetSpec::Local(local(args, fault))
                .build()
                .await
                .map_err(|e| format!("the local cluster did not start: {e}"))?;
            let primary = target
                .topology()
                .await
                .ok()
                .and_then(|t| t.primary_name().map(str::to_string))
                .unwrap_or_else(|| "?".into());
            status.line(&format!(
                "chaos: local cluster ready ({} nodes, primary {primary}) at {}",
                args.nodes,
                redact(&target.rw_dsn())
            ));
            Ok(target)
        }
        TargetKind::Cnpg => {
            let (builder, shown) = cnpg(args, fault)?;
            let target = TargetSpec::Cnpg(builder)
                .build()
                .await
                .map_err(cnpg_error)?;
            status.step(&format!("connecting to the {}…", target.describe()));
            let wait = args.ready_timeout.map_or(EXTERNAL_READY_TIMEOUT, |t| t.0);
            let topology = target
                .wait_healthy(wait)
                .await
                .map_err(|e| format!("the CloudNativePG cluster {shown} is not healthy: {e}"))?;
            status.line(&format!(
                "chaos: CloudNativePG cluster {shown} ready (primary {}){}",
                topology.primary_name().unwrap_or("unknown"),
                if target.dry_run_plan().is_some() {
                    " — dry run: nothing will be created, patched or deleted"
                } else {
                    ""
                }
            ));
            Ok(target)
        }
        TargetKind::External => {
            let target = TargetSpec::External(external(args, fault)?)
                .build()
                .await
                .map_err(|e| {
                    format!("{e}; check --rw-dsn and --node-dsn (or CHAOS_RW_DSN, CHAOS_NODE_DSNS)")
                })?;
            let shown = redact(&target.rw_dsn());
            status.step(&format!("connecting to the external cluster at {shown}…"));
            let wait = args.ready_timeout.map_or(EXTERNAL_READY_TIMEOUT, |t| t.0);
            let topology = target.wait_healthy(wait).await.map_err(|e| {
                format!(
                    "the external cluster is not ready: {e}. Check --rw-dsn (or \
                     CHAOS_RW_DSN) and that a primary there accepts writes"
                )
            })?;
            status.line(&format!(
                "chaos: external cluster ready (primary {}) at {shown}",
                topology.primary_name().unwrap_or("unknown")
            ));
            Ok(target)
        }
    }
}

/// The local cluster the flags describe: its nodes, replication and Patroni,
/// and its own disks when the fault throttles one.
fn local(args: &RunArgs, fault: &FaultPlan) -> chaos_core::cluster::local::LocalClusterBuilder {
    let mut builder = LocalCluster::builder()
        .nodes(args.nodes)
        .synchronous_mode(args.sync.into());
    if let Some(patroni) = &args.patroni {
        builder = builder.patroni(patroni);
    }
    if let FaultPlan::Builtin(spec) = fault
        && spec.kind() == FaultKind::ThrottlePrimaryDisk
    {
        // The primary's disk must be a device of its own to be throttled.
        builder = builder.disk_faults(true);
    }
    if let Some(t) = args.ready_timeout {
        builder = builder.ready_timeout(t.0);
    }
    builder
}

/// The CloudNativePG target the flags (and, behind them, the environment:
/// `CHAOS_ALLOW`, `CHAOS_KUBE_APISERVER_IPS`, …) describe, to be built once
/// the place is allowed and the identity may do what `fault` needs; and
/// `namespace/cluster` for messages.
fn cnpg(args: &RunArgs, fault: &FaultPlan) -> Result<(CnpgClusterBuilder, String), String> {
    use chaos_core::cluster::cnpg::{
        ENV_CLUSTER, ENV_DRY_RUN, ENV_KUBE_CONTEXT, ENV_NAMESPACE, ENV_POOLER, ENV_RW_DSN,
        ENV_TARGET,
    };
    let var = |k: &str| -> Option<String> {
        let flag = match k {
            ENV_NAMESPACE => args.namespace.clone(),
            ENV_CLUSTER => args.cluster.clone(),
            ENV_KUBE_CONTEXT => args.context.clone(),
            ENV_POOLER => args.pooler.clone(),
            ENV_RW_DSN => args.rw_dsn().map(str::to_string),
            ENV_DRY_RUN if args.dry_run => Some("1".into()),
            // The target was chosen with --target.
            ENV_TARGET => return None,
            _ => None,
        };
        flag.or_else(|| std::env::var(k).ok())
            .filter(|v| !v.trim().is_empty())
    };
    let mut builder = CnpgCluster::builder_from_vars(var).map_err(|e| e.to_string())?;
    let shown = format!(
        "{}/{}",
        var(ENV_NAMESPACE).unwrap_or_default(),
        var(ENV_CLUSTER).unwrap_or_default()
    );
    if let FaultPlan::Builtin(spec) = fault {
        builder = builder.faults([spec.kind()]);
    }
    Ok((builder.reconfigures(args.reconfigures), shown))
}

/// A CloudNativePG target that could not be built, in the command line's terms.
fn cnpg_error(e: Error) -> String {
    match e {
        Error::NotAllowed {
            context,
            namespace,
            why,
            ..
        } => not_allowed(&context, &namespace, &why),
        e @ Error::KubeForbidden(_) => e.to_string(),
        e => format!(
            "{e}; check --context, --namespace and --cluster (or CHAOS_KUBE_CONTEXT, \
             CHAOS_CNPG_NAMESPACE, CHAOS_CNPG_CLUSTER) and KUBECONFIG"
        ),
    }
}

/// The refusal of a place not allowed for chaos, in the command line's terms.
fn not_allowed(context: &str, namespace: &str, why: &str) -> String {
    format!(
        "refusing to run in namespace `{namespace}` of kube context `{context}`: it is not \
         allowed for chaos ({why}); nothing was changed or measured. Allow it for this run \
         with the environment variable CHAOS_ALLOW={context}/{namespace} (e.g. \
         `CHAOS_ALLOW={context}/{namespace} chaos run --target cnpg ...`), or for good by \
         labelling the namespace: kubectl --context {context} label namespace {namespace} \
         chaos.dev/allow=true"
    )
}

/// The external cluster the flags describe, with the command of the chosen
/// built-in fault registered.
fn external(args: &RunArgs, fault: &FaultPlan) -> Result<ExternalClusterBuilder, String> {
    let rw = args.rw_dsn().ok_or_else(|| {
        "--target external needs --rw-dsn or CHAOS_RW_DSN (the read-write DSN)".to_string()
    })?;
    let mut builder = ExternalCluster::builder(rw).node_dsns(args.node_dsns.iter().cloned());
    // A built-in fault needs its command: --fault-cmd, else CHAOS_<FAULT>_CMD
    // read the way the library reads it.
    if let FaultPlan::Builtin(spec) = fault {
        let kind = spec.kind();
        let cmd = match &args.fault_cmd {
            Some(inject) => FaultCommand {
                inject: inject.clone(),
                heal: args.heal_cmd.clone(),
            },
            None => env_fault_command(kind, rw).ok_or_else(|| {
                format!(
                    "--target external cannot do {kind}{} by itself: give the command that does \
                     it with --fault-cmd (or {}), e.g. --fault-cmd 'kubectl delete pod \
                     \"$CHAOS_PRIMARY\" --grace-period=0 --force'",
                    if args.fault.is_none() {
                        " (the default fault)"
                    } else {
                        ""
                    },
                    kind.env_var()
                )
            })?,
        };
        builder = builder.fault_command(kind, cmd.inject, cmd.heal);
    }
    Ok(builder)
}

/// The command for built-in fault `kind` given in the environment
/// (`CHAOS_KILL_PRIMARY_CMD`, …), as [`ExternalCluster::from_env`] reads it.
fn env_fault_command(kind: FaultKind, rw: &str) -> Option<FaultCommand> {
    let var = |k: &str| match k {
        ENV_RW_DSN => Some(rw.to_string()),
        ENV_NODE_DSNS => None,
        _ => std::env::var(k).ok().filter(|v| !v.trim().is_empty()),
    };
    ExternalCluster::from_vars(var)
        .ok()?
        .fault_command_for(kind)
        .cloned()
}

/// The body every run uses: injects the fault (holding and healing it when
/// --hold says). A fault that could not be injected fails the body with the
/// injection's [`Error`] itself (see [`injection_failure`]); a failed heal
/// with a [`BodyError`] that says so.
pub(crate) fn body(
    fault: FaultPlan,
    hold: Option<Duration>,
) -> impl for<'a> Fn(&'a mut FailoverCtx) -> futures::future::BoxFuture<'a, Result<(), BodyError>>
+ Send
+ Sync
+ 'static {
    move |ctx| {
        let fault = fault.clone();
        Box::pin(async move {
            let handle = fault.inject(ctx).await.map_err(BodyError::new)?;
            if let Some(hold) = hold {
                tokio::time::sleep(hold).await;
                ctx.heal(handle)
                    .await
                    .map_err(|e| BodyError::msg(format!("healing the fault: {e}")))?;
            }
            Ok(())
        })
    }
}

/// The set-up error for a fault that could not be injected, if one was not:
/// the body's own [`Error`] (a failed heal is a [`BodyError`] of words only).
pub(crate) fn injection_failure(body: &BodyOutcome) -> Option<Verdict> {
    match body {
        BodyOutcome::Failed(e) => e.downcast_ref::<Error>().map(not_injected),
        _ => None,
    }
}

/// The set-up error for a fault of a set of runs that could not be injected,
/// if one was not: the first run whose body failed with the injection's
/// [`Error`].
pub(crate) fn set_injection_failure(errors: &[RunSetError]) -> Option<Verdict> {
    errors.iter().find_map(|e| match e {
        RunSetError::BodyFailed { source, .. } => source.downcast_ref::<Error>().map(not_injected),
        _ => None,
    })
}

/// The set-up error for a fault that could not be injected.
fn not_injected(e: &Error) -> Verdict {
    let hint = match e {
        Error::Command { .. } => {
            "; fix the fault command: it must exit 0 once the fault is in effect"
        }
        Error::Timeout { .. } => "; the fault command must return once the fault is in effect",
        _ => "",
    };
    Verdict::Setup(format!("the fault could not be injected: {e}{hint}"))
}

/// The message for a probe that could not start.
pub(crate) fn probe_failure(e: &Error) -> Verdict {
    Verdict::Setup(format!(
        "the write probe could not start: {e}. The DSN's user must be able to connect and \
         CREATE TABLE"
    ))
}

/// Runs the experiment (`repeat` times, when given) and presents its outcome.
async fn measure(
    experiment: &Experiment,
    target: Arc<dyn Target>,
    fault: FaultPlan,
    hold: Option<Duration>,
    repeat: Option<u32>,
    status: &Arc<Status>,
) -> Verdict {
    // An injection that fails means nothing was measured: a set-up error.
    if repeat.is_some() || experiment.slo_ref().max_rto_p95.is_some() {
        let body = body(fault, hold);
        let n = repeat.unwrap_or(1) as usize;
        let (start, done) = (status.clone(), status.clone());
        let runs = Runs::new(experiment.clone())
            .repeat(n)
            .on_start(move |i, n| start.set_run(Some(format!("run {i} of {n}"))))
            .on_done(move |i, n, out| {
                if let Some(r) = &out.report {
                    done.line(&format!("chaos: run {i} of {n}: {}", r.summary()));
                }
            });
        let outcome = runs.run(target, body).await;
        status.finish();
        return match outcome {
            Ok(o) => set_injection_failure(&o.errors).unwrap_or_else(|| present_set(&o)),
            Err(e) => probe_failure(&e),
        };
    }
    let outcome = experiment.run(target, body(fault, hold)).await;
    status.finish();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return probe_failure(&e),
    };
    if let Some(v) = injection_failure(&outcome.body) {
        return v;
    }
    present(&outcome)
}

/// Prints a set's summary, its runs and files; the verdict.
fn present_set(outcome: &RunSetOutcome) -> Verdict {
    let set = &outcome.set;
    for (i, r) in set.runs.iter().enumerate() {
        println!("run {:>3}: {}", i + 1, r.summary());
    }
    println!("{}", set.summary_line());
    for v in &set.violations {
        println!("  - {v}");
    }
    for e in &outcome.errors {
        println!("  - {e}");
    }
    finish_with(&outcome.report_paths, outcome.passed())
}

/// Lists the files written; the verdict.
pub(crate) fn finish_with(paths: &[std::path::PathBuf], passed: bool) -> Verdict {
    if !paths.is_empty() {
        println!("reports:");
        for path in paths {
            println!("  {}", path.display());
        }
    }
    if passed {
        Verdict::Passed
    } else {
        Verdict::Failed
    }
}

/// Prints the report and the files written; the verdict.
fn present(outcome: &RunOutcome) -> Verdict {
    match &outcome.report {
        Some(report) => println!("{report}"),
        None => {
            eprintln!("error: no report: the run's rows could not be read back");
            for e in &outcome.errors {
                eprintln!("  {e}");
            }
        }
    }
    finish_with(&outcome.report_paths, outcome.passed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_passwords_of_the_dsns_given() {
        let secrets = vec!["postgresql://u:pw123@h:1/x".to_string()];
        let msg = scrub("cannot reach postgresql://u:pw123@h:1/x now", &secrets);
        assert_eq!(msg, "cannot reach postgresql://u@h:1/x now");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Verdict::Passed.exit_code(), ExitCode::SUCCESS);
        assert_eq!(Verdict::Failed.exit_code(), ExitCode::from(1));
        assert_eq!(Verdict::Setup(String::new()).exit_code(), ExitCode::from(2));
    }
}
