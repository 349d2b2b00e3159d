//! # chaos — prove PostgreSQL failover SLOs inside `cargo test`
//!
//! `chaos-core` boots (or connects to) a PostgreSQL high-availability cluster,
//! writes to it continuously with a [`probe::WriteProbe`] that timestamps every
//! commit, injects [`fault`]s, and then measures what users feel:
//!
//! * **RTO** — per fault, from the fault to the first acknowledged write that
//!   started after the outage it caused began, in milliseconds, with the
//!   measurement's resolution; the run's RTO is the worst fault's;
//! * **write gap** — the longest time without an acknowledged write over the
//!   whole measured window, whatever caused it;
//! * **RPO** — every acknowledged write that is missing afterwards, plus writes
//!   whose outcome the client could not know (indeterminate) and split-brain
//!   (an old primary acknowledging after the new one).
//!
//! Everything runs through one pipeline, [`Experiment`], over one seam,
//! [`cluster::Target`]: the embedded [`cluster::local::LocalCluster`] (etcd,
//! Patroni and PostgreSQL from the machine's packages; no Kubernetes) or any
//! cluster given by DSN, [`cluster::external::ExternalCluster`].
//!
//! ## 1. State the SLO next to a test
//!
//! ```no_run
//! use chaos_core::prelude::*;
//!
//! #[failover_test(max_rto = "10s", rpo = 0)]
//! async fn survives_primary_loss(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
//!     ctx.inject(DeletePrimary::kill()).await?;
//!     Ok(())
//! }
//! ```
//!
//! [`failover_test`] boots the shared local cluster (or, with `target = "env"`,
//! whatever `CHAOS_TARGET` names), starts the probe, runs the body, waits for
//! recovery, heals the faults, verifies every acknowledged write, writes JSON
//! and JUnit reports and fails the test on a violated SLO.
//!
//! ## 2. Or drive the steps yourself
//!
//! ```no_run
//! use std::time::Duration;
//! use chaos_core::prelude::*;
//!
//! # async fn demo() -> chaos_core::Result<()> {
//! let cluster = LocalCluster::builder().nodes(3).start().await?;
//! let report = Scenario::new("kill_primary")
//!     .slo(Slo::max_rto(Duration::from_secs(10)))
//!     .run(&cluster, DeletePrimary::kill())
//!     .await?;
//! println!("{report}");
//! assert!(report.passed(), "{report}");
//! # Ok(()) }
//! ```
//!
//! ## 3. Point it at your own cluster
//!
//! ```no_run
//! use std::time::Duration;
//! use chaos_core::prelude::*;
//!
//! # async fn demo() -> chaos_core::Result<()> {
//! let cluster = ExternalCluster::builder("postgresql://app@db-rw:5432/app")
//!     .fault_command(FaultKind::KillPrimary, "kubectl delete pod \"$CHAOS_PRIMARY\" --force", None)
//!     .build()?;
//! let report = Scenario::new("aks_failover")
//!     .slo(Slo::max_rto(Duration::from_secs(10)))
//!     .run(&cluster, DeletePrimary::kill())
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! ## 4. Compose faults
//!
//! Every [`fault::Fault`] returns a [`fault::FaultGuard`] that heals it with
//! `heal().await`, or on `Drop` as a fallback. Inside a failover test,
//! [`FailoverCtx::inject`] keeps the guard so that the fault is healed even
//! when the body panics or times out; [`fault::Shell`] makes a fault of any
//! command, and [`FailoverCtx::mark_fault`] records one the library did not
//! cause. Each fault gets its own record and RTO in the report.
//!
//! Faults of your own: [`guide::custom_faults`].
//!
//! ## 5. Measure your application, not just the probe
//!
//! A [`workload::Workload`] runs the application's own operation — its driver,
//! its pool, its retries — beside the probe and measures it the same way: its
//! own RTO, write gap and latencies, and, with a verification hook, its lost
//! writes. `#[failover_test(slo_on = "orders")]` asserts the SLO on it.
//!
//! ## 6. Repeat, compare, experiment
//!
//! [`runs::Runs`] runs a scenario N times on one target and judges the set
//! (RTO p50 / p95 / max, each phase's median, an SLO on a percentile with
//! [`slo::Slo::max_rto_p95`]); [`runs::compare()`] tells two reports or sets
//! apart with a bootstrap confidence interval; [`runs::ConfigExperiment`]
//! answers "did this setting change the RTO?" on the embedded cluster. Every
//! report is also drawn as a timeline picture ([`report::picture`]).
//!
//! Everything the library starts is cleaned up when the cluster is dropped, by a
//! watchdog if the test process dies, and by the next start otherwise.
//! Set `CHAOS_KEEP=1` to keep a cluster for debugging.

pub mod cluster;
pub mod dsn;
pub mod error;
pub mod experiment;
pub mod fault;
mod fault_kind;
pub mod guide;
pub mod harness;
#[cfg(test)]
mod layers;
mod panics;
pub mod pg;
pub mod probe;
pub mod report;
mod run_id;
pub mod runs;
pub mod scenario;
#[cfg(feature = "proptest")]
pub mod schedule;
mod seed;
pub mod slo;
pub mod timeline;
pub mod verify;
pub mod violation;
pub mod workload;

/// The PostgreSQL driver the library uses, for tests' own SQL.
pub use tokio_postgres;

pub use error::{Error, Result};
pub use experiment::{Experiment, FailoverCtx};
pub use run_id::new_run_id;

/// Turns `async fn name(ctx: &mut FailoverCtx)` into a test that measures a
/// failover against an SLO, on a target shared by the tests of the binary.
///
/// ```no_run
/// use chaos_core::prelude::*;
///
/// #[failover_test(max_rto = "10s", rpo = 0)]
/// async fn survives_primary_loss(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
///     ctx.inject(DeletePrimary::kill()).await?;
///     Ok(())
/// }
/// ```
///
/// Arguments, all optional:
///
/// | argument | meaning | default |
/// |---|---|---|
/// | `max_rto = "10s"` | longest acceptable RTO (humantime duration) | `"10s"` |
/// | `rpo = 0` | lost acknowledged writes allowed; `rpo = "2s"` allows a time window instead | `0` |
/// | `target = "local"` | `"local"`, or `"env"` to read `CHAOS_TARGET` (`local`, `external`) at run time | `"local"` |
/// | `timeout = "120s"` | deadline for the body and the recovery after it | `"120s"` |
/// | `writers = 2` | probe writers | `2` |
/// | `interval = "10ms"` | pacing of each writer | `"10ms"` |
/// | `nodes = 3` | nodes of the local cluster (2–9) | `3` |
/// | `slo_on = "orders"` | assert the RTO on the body's [`workload::Workload`] of that name instead of the probe | the probe |
/// | `repeat = 20` | run the body that many times on the shared target, healthy between runs, and judge the set ([`runs::Runs`]); the body reads its run's seed with [`FailoverCtx::seed`] | `1` |
/// | `max_rto_p95 = "10s"` | longest acceptable RTO at the 95th percentile of the runs; without `max_rto`, each run's cap becomes the larger of this and 60 s | none |
///
/// The body may return `()` or `Result<(), E>` with `E: Debug`. Run order (the
/// [`Experiment`] pipeline): set-up → probe → warm-up → body (under
/// `catch_unwind` and `timeout`) → wait for recovery → heal every fault still
/// injected → verify → JSON and JUnit reports in `$CHAOS_REPORT_DIR` → SLO
/// assertion; a one-line summary is printed, passed or not. A panic, error or
/// timeout in the body still heals and tears down, then fails the test with the
/// original cause. Tests of one binary share one cluster and run their failovers
/// one at a time, so `cargo test`'s parallel threads are fine.
#[doc(inline)]
pub use chaos_macros::failover_test;

#[doc(hidden)]
/// Used by code that `#[failover_test]` generates; not a public API.
pub mod __private {
    pub use crate::harness::{TestSpec, run_test};

    use crate::experiment::BodyError;

    /// Converts what a test body returned; fails to compile for unsupported types.
    pub fn body_result<R: crate::experiment::TestResult>(r: R) -> Result<(), BodyError> {
        r.into_result()
    }
}

/// The names most tests use.
pub mod prelude {
    pub use crate::cluster::external::ExternalCluster;
    pub use crate::cluster::local::LocalCluster;
    pub use crate::cluster::{Role, Target, Topology};
    pub use crate::experiment::{Experiment, FailoverCtx, FaultHandle, WorkloadHandle};
    pub use crate::failover_test;
    pub use crate::fault::{
        Bandwidth, DeletePrimary, Fault, FaultGuard, FaultKind, FreezePrimary, FreezeReplicas,
        Latency, PacketLoss, PartitionNetwork, PauseNode, Shell, StopDcs, Switchover, ThrottleDisk,
    };
    pub use crate::probe::{ProbeConfig, WriteProbe};
    pub use crate::report::Report;
    pub use crate::scenario::Scenario;
    pub use crate::slo::Slo;
    pub use crate::workload::{Workload, WorkloadError};
    pub use crate::{Error, Result};
}

/// The README's examples, compiled as doctests so they cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
