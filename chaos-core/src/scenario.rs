//! One fault, measured: a thin front-end over [`Experiment`] for programs that
//! drive the steps themselves.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::Target;
use crate::error::ExperimentError;
use crate::experiment::{BodyError, BodyOutcome, Experiment, panic_message};
use crate::fault::Fault;
use crate::probe::ProbeConfig;
use crate::report::Report;
use crate::slo::Slo;
use crate::{Error, Result};

/// One failover experiment with a single fault. The defaults are
/// [`Experiment`]'s: 1 s warm-up, RTO ≤ 10 s, RPO = 0, default probe, the
/// fault held until the service recovers.
#[derive(Debug, Clone)]
#[must_use]
pub struct Scenario {
    experiment: Experiment,
    hold: Option<Duration>,
}

impl Scenario {
    /// A scenario called `name` (used for the report files).
    pub fn new(name: impl Into<String>) -> Self {
        Scenario {
            experiment: Experiment::new(name),
            hold: None,
        }
    }

    /// The objectives to check.
    pub fn slo(mut self, slo: Slo) -> Self {
        self.experiment = self.experiment.slo(slo);
        self
    }

    /// How long the probe writes before the fault (default 1 s).
    pub fn warmup(mut self, warmup: Duration) -> Self {
        self.experiment = self.experiment.warmup(warmup);
        self
    }

    /// Keep the fault for exactly `hold`, then heal it, instead of healing once
    /// the service has recovered (for faults the cluster cannot route around,
    /// such as a short freeze).
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = Some(hold);
        self
    }

    /// How long to wait for an acknowledged write after the fault (default 60 s).
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.experiment = self.experiment.recovery_timeout(timeout);
        self
    }

    /// The probe's settings.
    pub fn probe(mut self, probe: ProbeConfig) -> Self {
        self.experiment = self.experiment.probe(probe);
        self
    }

    /// Whether to write the JSON and JUnit reports (default true).
    pub fn write_report(mut self, write: bool) -> Self {
        self.experiment = self.experiment.write_reports(write);
        self
    }

    /// Adjusts the underlying [`Experiment`] (report directory, progress, …).
    pub fn configure(mut self, f: impl FnOnce(Experiment) -> Experiment) -> Self {
        self.experiment = f(self.experiment);
        self
    }

    /// Runs the scenario against `target` (any [`Target`]). The fault is healed
    /// before this returns, on success or error.
    ///
    /// # Errors
    /// When the probe cannot start, the fault cannot be injected or healed, or the
    /// rows cannot be read back. An SLO violation is *not* an error: check
    /// [`Report::passed`].
    pub async fn run<T, F>(self, target: &T, fault: F) -> Result<Report>
    where
        T: Target + Clone,
        F: Fault<dyn Target> + Send + 'static,
    {
        self.run_on(Arc::new(target.clone()), fault).await
    }

    /// [`run`](Self::run) on a target chosen at run time.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_on<F>(self, target: Arc<dyn Target>, fault: F) -> Result<Report>
    where
        F: Fault<dyn Target> + Send + 'static,
    {
        let hold = self.hold;
        let outcome = self
            .experiment
            .run(target, move |ctx| {
                Box::pin(async move {
                    let result = async {
                        let handle = ctx.inject(fault).await?;
                        if let Some(hold) = hold {
                            tokio::time::sleep(hold).await;
                            ctx.heal(handle).await?;
                        }
                        Ok::<(), Error>(())
                    }
                    .await;
                    // The report records the failure (so its files do not say
                    // "passed"); the typed error is returned by `run_on`.
                    result.map_err(BodyError::new)
                })
            })
            .await?;
        let mut errors = outcome.errors.into_iter();
        match (outcome.report, outcome.body, errors.next()) {
            (_, BodyOutcome::Failed(e), _) => match e.downcast::<Error>() {
                Ok(e) => Err(e),
                Err(e) => Err(ExperimentError::Body {
                    source: Box::new(e),
                }
                .into()),
            },
            (_, BodyOutcome::Panicked(p), _) => Err(Error::Panicked {
                what: "the scenario".into(),
                message: panic_message(p.as_ref()),
            }),
            (_, BodyOutcome::TimedOut(t), _) => Err(Error::Timeout {
                what: "the fault and the recovery after it".into(),
                waited: t,
                logs: String::new(),
            }),
            (_, _, Some(e)) => Err(e),
            (Some(report), _, None) => Ok(report),
            (None, _, None) => Err(ExperimentError::NoReport.into()),
        }
    }
}
