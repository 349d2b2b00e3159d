//! `chaos experiment --set NAME=VALUE --repeat N`: boots the embedded
//! cluster (or connects to a CloudNativePG one), runs the library's
//! [`ConfigExperiment`] with `chaos run`'s fault and SLO flags, prints the
//! comparison. Interrupted, it restores the configuration before it exits.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chaos_core::runs::ConfigExperiment;

use crate::args::ExperimentArgs;
use crate::progress::Status;
use crate::run::{
    FaultPlan, Verdict, body, connect, experiment, finish_with, probe_failure,
    set_injection_failure, stop,
};

/// Runs per arm without --repeat.
const DEFAULT_REPEAT: u32 = 5;

/// Runs `chaos experiment` and returns the exit status.
pub fn execute(args: ExperimentArgs, status: Arc<Status>) -> ExitCode {
    let verdict = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let v = rt.block_on(run(&args, status.clone()));
            rt.shutdown_timeout(Duration::from_secs(5));
            v
        }
        Err(e) => Verdict::Setup(format!("cannot start the async runtime: {e}")),
    };
    status.finish();
    match &verdict {
        Verdict::Setup(msg) => eprintln!("error: {msg}"),
        Verdict::Interrupted => eprintln!(
            "chaos: interrupted; injected faults were healed and the configuration restored"
        ),
        Verdict::Passed | Verdict::Failed => {}
    }
    verdict.exit_code()
}

async fn run(args: &ExperimentArgs, status: Arc<Status>) -> Verdict {
    let fault = FaultPlan::from_args(&args.run);
    let target = match connect(&args.run, &fault, &status).await {
        Ok(t) => t,
        Err(msg) => return Verdict::Setup(msg),
    };
    if args.run.dry_run {
        return dry_run(target.as_ref(), &args.settings, &status).await;
    }
    let mut e = ConfigExperiment::new(experiment(&args.run, status.clone(), "chaos_experiment"))
        .repeat(args.run.repeat.unwrap_or(DEFAULT_REPEAT) as usize);
    for s in &args.settings {
        e = e.setting(s.clone());
    }
    let body = body(fault, args.run.hold.map(|h| h.0));
    let progress = status.clone();
    let experiment = e.run_with_progress(target.clone(), body, move |i, n, arm| {
        progress.set_run(Some(format!("run {i} of {n} ({arm})")))
    });
    let result = tokio::select! {
        r = experiment => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    status.finish();
    if result.is_none()
        && let Some(config) = target.reconfigure()
    {
        // The experiment was dropped mid-run: its baseline goes back now.
        status.step("restoring the configuration…");
        match config.restore_leftovers().await {
            Ok(restored) => restored
                .iter()
                .for_each(|r| status.line(&format!("chaos: {r}"))),
            Err(e) => status.line(&format!("chaos: restoring the configuration failed: {e}")),
        }
    }
    stop(&args.run, target, &status).await;
    let Some(result) = result else {
        return Verdict::Interrupted;
    };
    let result = match result {
        Ok(r) => r,
        Err(chaos_core::Error::Config {
            field,
            expected,
            found,
        }) => {
            return Verdict::Setup(format!("invalid {field} {found:?}: expected {expected}"));
        }
        Err(e) => return probe_failure(&e),
    };
    if let Some(v) = set_injection_failure(&result.errors) {
        return v;
    }
    println!(
        "baseline ({}): {}",
        result.baseline.settings.join(" "),
        result.baseline.summary()
    );
    println!(
        "variant  ({}): {}",
        result.variant.settings.join(" "),
        result.variant.summary()
    );
    print!("{}", result.comparison);
    for e in &result.errors {
        println!("  - {e}");
    }
    finish_with(&result.report_paths, result.errors.is_empty())
}

/// `--dry-run`: checks the settings, reads the baseline, and prints the patch
/// of the variant and the one restoring the baseline (each printed as it is
/// planned, by the target's dry run); changes and measures nothing.
async fn dry_run(
    target: &dyn chaos_core::cluster::Target,
    settings: &[chaos_core::cluster::Setting],
    status: &crate::progress::Status,
) -> Verdict {
    let Some(config) = target.reconfigure() else {
        return Verdict::Setup(format!(
            "the {} target cannot be re-configured by an experiment",
            target.kind()
        ));
    };
    let planned = async {
        let baseline = config.baseline(settings).await?;
        config.apply(settings).await?;
        config.apply(&baseline).await?;
        Ok::<_, chaos_core::Error>(baseline)
    };
    match planned.await {
        Ok(baseline) => {
            let shown: Vec<String> = baseline.iter().map(ToString::to_string).collect();
            status.line(&format!(
                "chaos: dry run: the variant and the restore of the baseline ({}) were \
                 planned above; nothing was changed or measured",
                shown.join(" ")
            ));
            Verdict::Passed
        }
        Err(chaos_core::Error::Config {
            field,
            expected,
            found,
        }) => Verdict::Setup(format!("invalid {field} {found:?}: expected {expected}")),
        Err(e) => Verdict::Setup(format!("dry run: {e}")),
    }
}
