//! What went wrong in a set of runs outside the runs' reports.

use std::time::Duration;

use crate::Error;
use crate::experiment::BodyError;
use crate::slo::fmt_duration;

/// A problem of a set of runs that its reports do not show: a body's error,
/// panic or timeout, a run without a report, a target that did not come back,
/// a file of the set that could not be written. Each names its run (counted
/// from 1) where it has one; its message is what the command line and the
/// test's failure print.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunSetError {
    /// The target did not become healthy before run `run`: the set stops.
    #[error("before run {run}: the target did not become healthy: {source}")]
    Unhealthy {
        /// The run that could not start.
        run: usize,
        /// What [`Target::repair`](crate::cluster::Target::repair) said.
        #[source]
        source: Error,
    },

    /// Run `run` failed outside its body (a fault that did not heal, a
    /// report that could not be written).
    #[error("run {run}: {source}")]
    Run {
        /// The run.
        run: usize,
        /// Its error.
        #[source]
        source: Error,
    },

    /// The body of run `run` returned an error.
    #[error("run {run}: the body returned an error: {source}")]
    BodyFailed {
        /// The run.
        run: usize,
        /// The body's error (its [`BodyError::downcast_ref`] finds the
        /// library's own [`Error`] when the body returned one).
        #[source]
        source: BodyError,
    },

    /// The body of run `run` panicked.
    #[error("run {run}: the body panicked: {message}")]
    BodyPanicked {
        /// The run.
        run: usize,
        /// The panic's message.
        message: String,
    },

    /// Run `run` did not finish in time.
    #[error("run {run}: timed out after {}", fmt_duration(*.after))]
    TimedOut {
        /// The run.
        run: usize,
        /// How long it was given.
        after: Duration,
    },

    /// Run `run` made no report.
    #[error("run {run}: no report (the rows could not be read back)")]
    NoReport {
        /// The run.
        run: usize,
    },

    /// The set could not start: no runtime, no target, a rule of its SLO
    /// broken (what `#[failover_test(repeat = ..)]` reports).
    #[error("failover test set-up failed: {0}")]
    Setup(#[source] Error),

    /// A file of the whole set (its JSON, HTML or JUnit XML) could not be
    /// written, or the set could not be prepared.
    #[error(transparent)]
    Set(#[from] Error),
}

impl RunSetError {
    /// The run the problem belongs to, counted from 1; `None` for the set's
    /// own.
    pub fn run(&self) -> Option<usize> {
        match self {
            RunSetError::Unhealthy { run, .. }
            | RunSetError::Run { run, .. }
            | RunSetError::BodyFailed { run, .. }
            | RunSetError::BodyPanicked { run, .. }
            | RunSetError::TimedOut { run, .. }
            | RunSetError::NoReport { run } => Some(*run),
            RunSetError::Set(_) | RunSetError::Setup(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_target_that_did_not_come_back_keeps_the_repair_timeout() {
        let e = RunSetError::Unhealthy {
            run: 3,
            source: Error::Timeout {
                what: "the local cluster to become healthy again".into(),
                waited: Duration::from_secs(60),
                logs: String::new(),
            },
        };
        assert_eq!(e.run(), Some(3));
        let timeout = e
            .source()
            .and_then(|s| s.downcast_ref::<Error>())
            .expect("the repair's error is the source");
        assert!(matches!(timeout, Error::Timeout { .. }), "{timeout:?}");
        assert_eq!(
            e.to_string(),
            "before run 3: the target did not become healthy: timed out after 60s waiting \
             for the local cluster to become healthy again"
        );
    }

    #[test]
    fn a_body_that_timed_out_reads_as_before() {
        let e = RunSetError::TimedOut {
            run: 2,
            after: Duration::from_secs(90),
        };
        assert!(e.to_string().starts_with("run 2: timed out after "), "{e}");
        assert!(e.source().is_none());
    }
}
