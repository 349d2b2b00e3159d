//! Errors of the experiment's own machinery: its context's handles, its
//! runtime, its report.

/// The experiment's own machinery was misused or broke.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// [`FailoverCtx::mark_healed`](crate::FailoverCtx::mark_healed) of a
    /// handle that is not a marked fault, or one whose end was marked already.
    #[error("FaultHandle({index}) is not a marked fault whose end is still open")]
    FaultNotOpen {
        /// The handle's index.
        index: usize,
    },

    /// [`FailoverCtx::heal`](crate::FailoverCtx::heal) of a fault healed
    /// already.
    #[error("fault FaultHandle({index}) was already healed")]
    FaultHealed {
        /// The handle's index.
        index: usize,
    },

    /// A workload handle this context did not give out.
    #[error("no workload WorkloadHandle({index})")]
    NoWorkload {
        /// The handle's index.
        index: usize,
    },

    /// [`FailoverCtx::stop_workload`](crate::FailoverCtx::stop_workload) of a
    /// workload stopped already.
    #[error("workload WorkloadHandle({index}) was stopped already")]
    WorkloadStopped {
        /// The handle's index.
        index: usize,
    },

    /// A scenario's body failed with an error that is not the library's own.
    #[error("the scenario's body failed: {source}")]
    Body {
        /// The body's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The run produced no report (its rows could not be read back).
    #[error("no report was produced")]
    NoReport,

    /// The test's Tokio runtime could not be built.
    #[error("could not build the test runtime: {source}")]
    Runtime {
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}
