//! `chaos experiment --set NAME=VALUE --repeat N`: boots the embedded
//! cluster, runs the library's [`ConfigExperiment`] with `chaos run`'s fault
//! and SLO flags, prints the comparison.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos_core::runs::ConfigExperiment;

use crate::args::ExperimentArgs;
use crate::progress::Status;
use crate::run::{
    FaultPlan, Verdict, body, connect, experiment, finish_with, injection_failure, probe_failure,
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
            let v = rt.block_on(async {
                tokio::select! {
                    v = run(&args, status.clone()) => v,
                    _ = tokio::signal::ctrl_c() => Verdict::Interrupted,
                }
            });
            rt.shutdown_timeout(Duration::from_secs(5));
            v
        }
        Err(e) => Verdict::Setup(format!("cannot start the async runtime: {e}")),
    };
    status.finish();
    match &verdict {
        Verdict::Setup(msg) => eprintln!("error: {msg}"),
        Verdict::Interrupted => eprintln!(
            "chaos: interrupted; injected faults were healed; the cluster (and its \
             configuration) goes with this process"
        ),
        Verdict::Passed | Verdict::Failed => {}
    }
    verdict.exit_code()
}

async fn run(args: &ExperimentArgs, status: Arc<Status>) -> Verdict {
    let fault = FaultPlan::from_args(&args.run);
    let (target, local) = match connect(&args.run, &fault, &status).await {
        Ok(t) => t,
        Err(msg) => return Verdict::Setup(msg),
    };
    drop(target);
    let Some(local) = local else {
        return Verdict::Setup("chaos experiment needs the embedded cluster".into());
    };
    let cluster = Arc::new(local.clone());
    let mut e = ConfigExperiment::new(experiment(&args.run, status.clone(), "chaos_experiment"))
        .repeat(args.run.repeat.unwrap_or(DEFAULT_REPEAT) as usize);
    for s in &args.settings {
        e = e.setting(s.clone());
    }
    let not_injected: Arc<Mutex<Option<chaos_core::Error>>> = Arc::default();
    let body = body(fault, args.run.hold.map(|h| h.0), not_injected.clone());
    let progress = status.clone();
    let result = e
        .run_with_progress(cluster, body, move |i, n, arm| {
            progress.set_run(Some(format!("run {i} of {n} ({arm})")))
        })
        .await;
    status.finish();
    status.step("stopping the local cluster…");
    if let Err(e) = tokio::task::spawn_blocking(move || local.stop()).await {
        status.line(&format!("chaos: stopping the local cluster failed: {e}"));
    }
    if let Some(v) = injection_failure(&not_injected) {
        return v;
    }
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
