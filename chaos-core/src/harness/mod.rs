//! The harness behind `#[failover_test]`: set-up, probe, body, recovery, healing,
//! verification, teardown, reports, SLO assertion — in that order, whatever the
//! body does.
//!
//! [`run`] returns the outcome; [`run_test`] turns it into a passing or
//! panicking test. Both are synchronous and must not be called from inside an
//! async runtime (they drive a runtime shared by all failover tests).

mod ctx;
mod shared;

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use futures::future::BoxFuture;

pub use ctx::{FailoverCtx, FaultHandle};

use crate::probe::ProbeConfig;
use crate::report::{Event, FaultInfo, Report, default_report_dir};
use crate::slo::Slo;
use crate::{Error, Result};

/// Where a failover test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetChoice {
    /// The embedded local cluster.
    #[default]
    Local,
    /// Chosen at run time from `CHAOS_TARGET` (`local`, the default).
    Env,
}

/// Settings of one failover test; the macro builds it from its arguments.
#[derive(Debug, Clone)]
#[must_use]
pub struct TestSpec {
    name: String,
    slo: Slo,
    target: TargetChoice,
    timeout: Duration,
    probe: ProbeConfig,
    writers: u32,
    interval: Duration,
    nodes: usize,
    warmup: Duration,
}

impl TestSpec {
    /// A spec with the defaults: RTO ≤ 10 s, RPO = 0, local target, 120 s
    /// timeout, 2 writers every 10 ms, 3 nodes.
    pub fn new(name: impl Into<String>) -> Self {
        TestSpec {
            name: name.into(),
            slo: Slo::default(),
            target: TargetChoice::Local,
            timeout: Duration::from_secs(120),
            probe: ProbeConfig::default(),
            writers: 2,
            interval: Duration::from_millis(10),
            nodes: 3,
            warmup: Duration::from_secs(1),
        }
    }

    /// How long the probe writes before the body starts, so the measurement has
    /// a baseline (default 1 s).
    pub fn warmup(mut self, d: Duration) -> Self {
        self.warmup = d;
        self
    }

    /// Longest acceptable RTO.
    pub fn max_rto(mut self, d: Duration) -> Self {
        self.slo.max_rto = d;
        self
    }

    /// Acknowledged writes that may be lost.
    pub fn max_lost_writes(mut self, n: u64) -> Self {
        self.slo = self.slo.max_lost_writes(n);
        self
    }

    /// Time window of writes that may be lost.
    pub fn max_lost_window(mut self, d: Duration) -> Self {
        self.slo = self.slo.max_lost_window(d);
        self
    }

    /// Choose the target from `CHAOS_TARGET` at run time.
    pub fn target_from_env(mut self) -> Self {
        self.target = TargetChoice::Env;
        self
    }

    /// Deadline for the body and the recovery that follows it.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Number of probe writers.
    pub fn writers(mut self, n: u32) -> Self {
        self.writers = n;
        self
    }

    /// Pacing interval of each probe writer.
    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d;
        self
    }

    /// Nodes of the local cluster.
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// The test's name (module path and function).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What a test body may return: `()` or `Result<(), E>` with `E: Debug`.
#[diagnostic::on_unimplemented(
    message = "a #[failover_test] function must return `()` or `Result<(), E>` with `E: Debug`, not `{Self}`",
    label = "this return type is not supported"
)]
pub trait TestResult {
    /// `Err` with the error's description when the body failed.
    fn into_result(self) -> Result<(), String>;
}

impl TestResult for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Debug> TestResult for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// Why a failover test failed.
pub enum TestFailure {
    /// Set-up failed (cluster, probe); nothing was measured.
    Setup(Error),
    /// The body returned `Err`.
    Body {
        /// The error, formatted with `Debug`.
        error: String,
        /// The report, if verification could still run.
        report: Option<Box<Report>>,
    },
    /// The body panicked; the payload is re-raised by [`run_test`].
    Panic {
        /// The panic payload.
        payload: Box<dyn Any + Send>,
        /// The report, if verification could still run.
        report: Option<Box<Report>>,
    },
    /// The body (or the recovery after it) outlived the test's timeout.
    Timeout {
        /// The deadline.
        timeout: Duration,
        /// The report, if verification could still run.
        report: Option<Box<Report>>,
    },
    /// Everything ran, and the SLO was violated.
    Slo(Box<Report>),
    /// The body passed, but healing or verification failed.
    Teardown(Vec<Error>),
}

impl fmt::Debug for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestFailure::Setup(e) => write!(f, "failover test set-up failed: {e}"),
            TestFailure::Body { error, .. } => write!(f, "test body returned an error: {error}"),
            TestFailure::Panic { payload, .. } => {
                write!(f, "test body panicked: {}", panic_message(payload.as_ref()))
            }
            TestFailure::Timeout { timeout, .. } => write!(
                f,
                "test timed out after {} (the `timeout` argument); every fault was healed",
                crate::slo::fmt_duration(*timeout)
            ),
            TestFailure::Slo(report) => write!(
                f,
                "failover SLO violated:\n  - {}\n\n{report}",
                report.violations.join("\n  - ")
            ),
            TestFailure::Teardown(errors) => {
                write!(f, "teardown failed:")?;
                for e in errors {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into())
}

/// Runs a failover test and panics unless it passed. A panic of the body is
/// re-raised as it was, after healing and teardown.
pub fn run_test<R, F>(spec: TestSpec, body: F)
where
    R: TestResult + Send,
    F: for<'a> FnOnce(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
{
    match run(spec, body) {
        Ok(_) => {}
        Err(TestFailure::Panic { payload, .. }) => std::panic::resume_unwind(payload),
        Err(failure) => panic!("{failure}"),
    }
}

/// Runs a failover test: set-up → probe → body (under `catch_unwind` and the
/// deadline) → wait for recovery → heal every fault → verify → teardown →
/// reports (JSON and JUnit XML in `$CHAOS_REPORT_DIR`) → SLO check.
///
/// # Errors
/// A [`TestFailure`] saying what went wrong first; later teardown problems are
/// logged, never hiding it.
pub fn run<R, F>(spec: TestSpec, body: F) -> Result<Report, TestFailure>
where
    R: TestResult + Send,
    F: for<'a> FnOnce(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
{
    let runtime = match &*shared::RUNTIME {
        Ok(rt) => rt,
        Err(e) => {
            return Err(TestFailure::Setup(Error::ClusterState(format!(
                "cannot build the test runtime: {e}"
            ))));
        }
    };
    runtime.block_on(run_async(spec, body))
}

enum BodyOutcome {
    Passed,
    Failed(String),
    Panicked(Box<dyn Any + Send>),
    TimedOut,
}

async fn run_async<R, F>(spec: TestSpec, body: F) -> Result<Report, TestFailure>
where
    R: TestResult + Send,
    F: for<'a> FnOnce(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
{
    let started = Instant::now();
    let _serial = shared::serial().await;
    check_target(spec.target).map_err(TestFailure::Setup)?;
    let cluster = shared::healthy_cluster(spec.nodes)
        .await
        .map_err(TestFailure::Setup)?;
    let rw_dsn = cluster.rw_dsn();
    let probe = spec
        .probe
        .clone()
        .writers(spec.writers)
        .interval(spec.interval)
        .start(&rw_dsn)
        .await
        .map_err(TestFailure::Setup)?;
    let mut ctx = FailoverCtx::new(cluster.clone(), probe.counters_handle(), spec.timeout);
    let mut events = vec![Event::new("probe started", SystemTime::now(), None)];
    tokio::time::sleep(spec.warmup).await;
    let body_start = Instant::now();
    let deadline = body_start + spec.timeout;

    // The body, under catch_unwind and the deadline.
    let outcome = {
        let fut = AssertUnwindSafe(body(&mut ctx)).catch_unwind();
        match tokio::time::timeout_at(deadline.into(), fut).await {
            Err(_) => BodyOutcome::TimedOut,
            Ok(Err(payload)) => BodyOutcome::Panicked(payload),
            Ok(Ok(r)) => match r.into_result() {
                Ok(()) => BodyOutcome::Passed,
                Err(e) => BodyOutcome::Failed(e),
            },
        }
    };

    // Recovery, still under the deadline (a timed-out body gets no more time).
    let mut outcome = outcome;
    if matches!(outcome, BodyOutcome::Passed)
        && tokio::time::timeout_at(deadline.into(), wait_recovered_or_timeout(&ctx))
            .await
            .is_err()
    {
        outcome = BodyOutcome::TimedOut;
    }

    // Teardown: always.
    let mut teardown_errors = ctx.heal_all().await;
    ctx.stop_workloads();
    let history = probe.stop().await;
    events.extend(ctx.take_events());
    let (fault_info, fault_at) = ctx.first_fault().unwrap_or_else(|| {
        (
            FaultInfo {
                kind: "none".into(),
                mode: "-".into(),
                node: None,
                injected_at: history.wall(body_start),
            },
            body_start,
        )
    });
    drop(ctx);

    let verified = crate::scenario::verify_and_report(
        spec.name.clone(),
        &cluster,
        &history,
        (fault_info, fault_at),
        spec.slo,
        events,
    )
    .await;
    let report = match verified {
        Ok(mut report) => {
            match &outcome {
                BodyOutcome::Passed => {}
                BodyOutcome::Failed(e) => report
                    .violations
                    .push(format!("test body returned an error: {e}")),
                BodyOutcome::Panicked(p) => report
                    .violations
                    .push(format!("test body panicked: {}", panic_message(p.as_ref()))),
                BodyOutcome::TimedOut => report.violations.push(format!(
                    "test timed out after {}",
                    crate::slo::fmt_duration(spec.timeout)
                )),
            }
            for e in &teardown_errors {
                report.violations.push(format!("teardown: {e}"));
            }
            write_reports(&report, started.elapsed());
            Some(Box::new(report))
        }
        Err(e) => {
            teardown_errors.push(e);
            None
        }
    };
    for e in &teardown_errors {
        tracing::error!(error = %e, test = %spec.name, "failover test teardown problem");
    }

    match outcome {
        BodyOutcome::Panicked(payload) => Err(TestFailure::Panic { payload, report }),
        BodyOutcome::Failed(error) => Err(TestFailure::Body { error, report }),
        BodyOutcome::TimedOut => Err(TestFailure::Timeout {
            timeout: spec.timeout,
            report,
        }),
        BodyOutcome::Passed if !teardown_errors.is_empty() => {
            Err(TestFailure::Teardown(teardown_errors))
        }
        BodyOutcome::Passed => match report {
            Some(r) if r.passed() => Ok(*r),
            Some(r) => Err(TestFailure::Slo(r)),
            None => Err(TestFailure::Teardown(Vec::new())),
        },
    }
}

async fn wait_recovered_or_timeout(ctx: &FailoverCtx) {
    if let Err(e) = ctx.wait_recovered().await {
        tracing::warn!(error = %e, "no recovery after the fault");
    }
}

fn check_target(choice: TargetChoice) -> Result<()> {
    match (choice, std::env::var("CHAOS_TARGET")) {
        (TargetChoice::Local, _) | (TargetChoice::Env, Err(_)) => Ok(()),
        (TargetChoice::Env, Ok(v)) => check_target_value(&v),
    }
}

/// Validates a `CHAOS_TARGET` value for `target = "env"` tests.
///
/// # Errors
/// [`Error::Config`] for a target this version cannot run.
pub fn check_target_value(value: &str) -> Result<()> {
    match value {
        "" | "local" => Ok(()),
        other => Err(Error::Config {
            field: "CHAOS_TARGET",
            expected: "`local` (the only target available in this version)",
            found: other.to_string(),
        }),
    }
}

fn write_reports(report: &Report, elapsed: Duration) {
    let dir = default_report_dir();
    if let Err(e) = report.write_json_to(&dir) {
        tracing::error!(error = %e, "could not write the JSON report");
    }
    if let Err(e) = report.write_junit_to(&dir, elapsed) {
        tracing::error!(error = %e, "could not write the JUnit report");
    }
}
