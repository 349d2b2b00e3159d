//! The harness behind `#[failover_test]`: picks the shared target, runs the
//! [`Experiment`] pipeline with the test's body, and turns the outcome into a
//! passing or failing test.
//!
//! [`run`] returns the outcome; [`run_test`] panics unless the test passed.
//! Both are synchronous and must not be called from inside an async runtime
//! (they drive a runtime shared by all failover tests of the binary).

mod shared;

use std::any::Any;
use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;

pub use crate::experiment::{FailoverCtx, FaultHandle, TestResult};

use crate::error::ExperimentError;
use crate::experiment::{BodyOutcome, Experiment, panic_message};
use crate::report::Report;
use crate::runs::{RunSet, RunSetError, Runs};
use crate::slo::fmt_duration;
use crate::{Error, Result};

/// Where a failover test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetChoice {
    /// The embedded local cluster.
    #[default]
    Local,
    /// Chosen at run time from `CHAOS_TARGET`: `local` (the default) or
    /// `external` (see [`ExternalCluster::from_env`](crate::cluster::external::ExternalCluster::from_env)).
    Env,
}

/// Settings of one failover test; the macro builds it from its arguments.
/// The defaults are [`Experiment`]'s, plus the local target with 3 nodes.
#[derive(Debug, Clone)]
#[must_use]
pub struct TestSpec {
    experiment: Experiment,
    target: TargetChoice,
    nodes: usize,
    repeat: usize,
    rto_stated: bool,
}

impl TestSpec {
    /// A spec with the defaults: RTO ≤ 10 s, RPO = 0, local target with 3
    /// nodes, 120 s timeout, 2 writers every 10 ms, 1 s warm-up.
    pub fn new(name: impl Into<String>) -> Self {
        TestSpec {
            experiment: Experiment::new(name),
            target: TargetChoice::Local,
            nodes: 3,
            repeat: 1,
            rto_stated: false,
        }
    }

    /// Runs the body this many times on the shared target (healthy between
    /// runs) and judges the set: every run's objectives, and
    /// [`max_rto_p95`](Self::max_rto_p95) when stated.
    pub fn repeat(mut self, n: usize) -> Self {
        self.repeat = n.max(1);
        self
    }

    /// The RTO's 95th percentile over the runs. Without an explicit
    /// [`max_rto`](Self::max_rto), each run's cap becomes the larger of this
    /// and the recovery timeout (60 s), so that single slow runs are judged by
    /// the percentile.
    pub fn max_rto_p95(mut self, d: Duration) -> Self {
        self.experiment.slo_mut().max_rto_p95 = Some(d);
        self
    }

    /// How long the probe writes before the body starts.
    pub fn warmup(mut self, d: Duration) -> Self {
        self.experiment = self.experiment.warmup(d);
        self
    }

    /// Longest acceptable RTO.
    pub fn max_rto(mut self, d: Duration) -> Self {
        self.experiment.slo_mut().max_rto = d;
        self.rto_stated = true;
        self
    }

    /// RPO as a count of acknowledged writes that may be lost.
    pub fn max_lost_writes(mut self, n: u64) -> Self {
        let slo = self.experiment.slo_mut();
        *slo = slo.max_lost_writes(n);
        self
    }

    /// RPO as a time window of writes that may be lost.
    pub fn max_lost_window(mut self, d: Duration) -> Self {
        let slo = self.experiment.slo_mut();
        *slo = slo.max_lost_window(d);
        self
    }

    /// Choose the target from `CHAOS_TARGET` at run time.
    pub fn target_from_env(mut self) -> Self {
        self.target = TargetChoice::Env;
        self
    }

    /// Deadline for the body and the recovery that follows it.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.experiment = self.experiment.timeout(d);
        self
    }

    /// Number of probe writers.
    pub fn writers(mut self, n: u32) -> Self {
        let p = self.experiment.probe_mut();
        *p = p.clone().writers(n);
        self
    }

    /// Pacing interval of each probe writer.
    pub fn interval(mut self, d: Duration) -> Self {
        let p = self.experiment.probe_mut();
        *p = p.clone().interval(d);
        self
    }

    /// Asserts the SLO's RTO on the workload called `name` (see
    /// [`Experiment::slo_on`]).
    pub fn slo_on(mut self, name: impl Into<String>) -> Self {
        self.experiment = self.experiment.slo_on(name);
        self
    }

    /// Nodes of the local cluster.
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// Adjusts the underlying [`Experiment`] (report directory, recovery
    /// timeout, …).
    pub fn configure(mut self, f: impl FnOnce(Experiment) -> Experiment) -> Self {
        self.experiment = f(self.experiment);
        self
    }

    /// The test's name (module path and function).
    pub fn name(&self) -> &str {
        self.experiment.name()
    }
}

/// Why a failover test failed.
pub enum TestFailure {
    /// Set-up failed (target, probe); nothing was measured.
    Setup(Error),
    /// The body returned `Err`.
    Body {
        /// The error: its `Debug` text, and the error itself when it is this
        /// crate's [`Error`] or a [`BodyError`](crate::experiment::BodyError).
        error: crate::experiment::BodyError,
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
    /// The body passed, but healing, verification or writing the reports failed.
    Teardown {
        /// What went wrong.
        errors: Vec<Error>,
        /// The report, if there is one.
        report: Option<Box<Report>>,
    },
}

impl TestFailure {
    /// The report, whatever the failure, if one was made.
    pub fn report(&self) -> Option<&Report> {
        match self {
            TestFailure::Setup(_) => None,
            TestFailure::Slo(r) => Some(r),
            TestFailure::Body { report, .. }
            | TestFailure::Panic { report, .. }
            | TestFailure::Timeout { report, .. }
            | TestFailure::Teardown { report, .. } => report.as_deref(),
        }
    }
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
                fmt_duration(*timeout)
            ),
            TestFailure::Slo(report) => write!(
                f,
                "failover SLO violated:\n  - {}\n\n{report}",
                report.violations.join("\n  - ")
            ),
            TestFailure::Teardown { errors, report } => {
                write!(f, "teardown failed:")?;
                for e in errors {
                    write!(f, "\n  - {e}")?;
                }
                if let Some(r) = report {
                    write!(f, "\n\n{r}")?;
                }
                Ok(())
            }
        }
    }
}

/// Runs a failover test and panics unless it passed. A panic of the body is
/// re-raised as it was, after healing and teardown.
pub fn run_test<R, F>(spec: TestSpec, body: F)
where
    R: TestResult + Send,
    F: for<'a> Fn(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
{
    if spec.repeat > 1 || spec.experiment.slo_ref().max_rto_p95.is_some() {
        if let Err(failure) = run_set(spec, body) {
            panic!("{failure}");
        }
        return;
    }
    match run(spec, body) {
        Ok(_) => {}
        Err(TestFailure::Panic { payload, .. }) => std::panic::resume_unwind(payload),
        Err(failure) => panic!("{failure}"),
    }
}

/// Runs a failover test on the shared target: the [`Experiment`] pipeline with
/// `body`, then the verdict.
///
/// # Errors
/// A [`TestFailure`] saying what went wrong first; later problems are in its
/// report, never hiding it.
pub fn run<R, F>(spec: TestSpec, body: F) -> Result<Report, TestFailure>
where
    R: TestResult + Send,
    F: for<'a> FnOnce(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
{
    let runtime = match &*shared::RUNTIME {
        Ok(rt) => rt,
        Err(e) => {
            // The shared runtime's error stays where it is; a copy of it
            // (kind and message) is this test's.
            let source = std::io::Error::new(e.kind(), e.to_string());
            return Err(TestFailure::Setup(
                ExperimentError::Runtime { source }.into(),
            ));
        }
    };
    runtime.block_on(async move {
        let _serial = shared::serial().await;
        let which = resolve(spec.target, spec.nodes).map_err(TestFailure::Setup)?;
        let target = shared::healthy_target(which)
            .await
            .map_err(TestFailure::Setup)?;
        let outcome = spec
            .experiment
            .run(target, body)
            .await
            .map_err(TestFailure::Setup)?;
        let report = outcome.report.map(Box::new);
        match outcome.body {
            BodyOutcome::Panicked(payload) => Err(TestFailure::Panic { payload, report }),
            BodyOutcome::Failed(error) => Err(TestFailure::Body { error, report }),
            BodyOutcome::TimedOut(timeout) => Err(TestFailure::Timeout { timeout, report }),
            BodyOutcome::Passed if !outcome.errors.is_empty() => Err(TestFailure::Teardown {
                errors: outcome.errors,
                report,
            }),
            BodyOutcome::Passed => match report {
                Some(r) if r.passed() => Ok(*r),
                Some(r) => Err(TestFailure::Slo(r)),
                None => Err(TestFailure::Teardown {
                    errors: Vec::new(),
                    report: None,
                }),
            },
        }
    })
}

/// Runs a failover test's body [`TestSpec::repeat`] times on the shared
/// target (see [`Runs`]), printing "run i of N" as it goes, then the set's
/// verdict.
///
/// # Errors
/// [`SetFailure`] with the set (when any run was made) and what failed.
pub fn run_set<R, F>(mut spec: TestSpec, body: F) -> Result<RunSet, SetFailure>
where
    R: TestResult + Send,
    F: for<'a> Fn(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
{
    let runtime = match &*shared::RUNTIME {
        Ok(rt) => rt,
        Err(e) => {
            let source = std::io::Error::new(e.kind(), e.to_string());
            return Err(SetFailure {
                set: None,
                errors: vec![RunSetError::Setup(
                    ExperimentError::Runtime { source }.into(),
                )],
            });
        }
    };
    if let Some(p95) = spec.experiment.slo_ref().max_rto_p95 {
        let recovery = spec.experiment.recovery_timeout_ref();
        match spec
            .experiment
            .slo_ref()
            .with_p95(p95, spec.rto_stated, recovery)
        {
            Ok(slo) => *spec.experiment.slo_mut() = slo,
            Err(e) => {
                return Err(SetFailure {
                    set: None,
                    errors: vec![RunSetError::Set(e)],
                });
            }
        }
    }
    let name = spec.experiment.name().to_string();
    let started = name.clone();
    let runs = Runs::new(spec.experiment.clone())
        .repeat(spec.repeat)
        .on_start(move |i, n| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "chaos: {started}: run {i} of {n}…"
            );
        })
        .on_done(move |i, n, out| {
            use std::io::Write as _;
            let line = match &out.report {
                Some(r) => r.summary_line(),
                None => format!("chaos: {name}: run {i} of {n} made no report"),
            };
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        });
    runtime.block_on(async move {
        let _serial = shared::serial().await;
        let setup = |e: Error| SetFailure {
            set: None,
            errors: vec![RunSetError::Setup(e)],
        };
        let which = resolve(spec.target, spec.nodes).map_err(setup)?;
        let target = shared::healthy_target(which).await.map_err(setup)?;
        let outcome = runs.run(target, body).await.map_err(setup)?;
        if outcome.passed() {
            Ok(outcome.set)
        } else {
            Err(SetFailure {
                errors: outcome.errors,
                set: Some(Box::new(outcome.set)),
            })
        }
    })
}

/// Why a repeated failover test failed.
pub struct SetFailure {
    /// The set, when any run was made.
    pub set: Option<Box<RunSet>>,
    /// Failures outside the set's SLO (set-up, a body's error, a timeout).
    pub errors: Vec<RunSetError>,
}

impl fmt::Debug for SetFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for SetFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "repeated failover test failed:")?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        if let Some(set) = &self.set {
            for v in &set.violations {
                write!(f, "\n  - {v}")?;
            }
            write!(f, "\n\n{}", set.summary_line())?;
        }
        Ok(())
    }
}

fn resolve(choice: TargetChoice, nodes: usize) -> Result<shared::Resolved> {
    match choice {
        TargetChoice::Local => Ok(shared::Resolved::Local(nodes)),
        TargetChoice::Env => match std::env::var("CHAOS_TARGET") {
            Err(_) => Ok(shared::Resolved::Local(nodes)),
            Ok(v) => check_target_value(&v).map(|t| match t {
                EnvTarget::Local => shared::Resolved::Local(nodes),
                EnvTarget::External => shared::Resolved::External,
                #[cfg(feature = "cnpg")]
                EnvTarget::Cnpg => shared::Resolved::Cnpg,
            }),
        },
    }
}

/// The target a `CHAOS_TARGET` value selects for `target = "env"` tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvTarget {
    /// `local` (or unset): the embedded cluster.
    Local,
    /// `external`: the cluster at `CHAOS_RW_DSN`.
    External,
    /// `cnpg`: the CloudNativePG cluster the `CHAOS_CNPG_*` variables name.
    #[cfg(feature = "cnpg")]
    Cnpg,
}

/// Validates a `CHAOS_TARGET` value for `target = "env"` tests.
///
/// # Errors
/// [`Error::Config`] for a target this build cannot run.
pub fn check_target_value(value: &str) -> Result<EnvTarget> {
    match value.trim() {
        "" | "local" => Ok(EnvTarget::Local),
        "external" => Ok(EnvTarget::External),
        #[cfg(feature = "cnpg")]
        "cnpg" => Ok(EnvTarget::Cnpg),
        other => Err(Error::Config {
            field: "CHAOS_TARGET",
            expected: if cfg!(feature = "cnpg") {
                "`local` (the default), `external` (with CHAOS_RW_DSN) or `cnpg` (with \
                 CHAOS_CNPG_NAMESPACE and CHAOS_CNPG_CLUSTER)"
            } else {
                "`local` (the default) or `external` (with CHAOS_RW_DSN); `cnpg` needs \
                 chaos-core's feature `cnpg`"
            },
            found: other.to_string(),
        }),
    }
}
