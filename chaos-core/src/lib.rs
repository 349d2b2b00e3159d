//! # chaos — prove PostgreSQL failover SLOs inside `cargo test`
//!
//! `chaos-core` boots (or connects to) a PostgreSQL high-availability cluster,
//! writes to it continuously with a [`probe::WriteProbe`] that timestamps every
//! acknowledged commit, injects a [`fault`], and then measures what users feel:
//!
//! * **RTO** — from the fault to the first acknowledged write that started after
//!   it, in milliseconds, with the measurement's resolution;
//! * **RPO** — every acknowledged write that is missing afterwards, plus writes
//!   whose outcome the client could not know (indeterminate) and split-brain
//!   (an old primary acknowledging after the new one).
//!
//! The default target is an embedded local cluster of real processes — etcd,
//! Patroni and PostgreSQL from the machine's packages — that needs no Kubernetes.
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
//! Everything the library starts is cleaned up when the cluster is dropped, by a
//! watchdog if the test process dies, and by the next start otherwise.
//! Set `CHAOS_KEEP=1` to keep a cluster for debugging.

pub mod error;
pub mod fault;
pub mod pg;
pub mod probe;
pub mod report;
mod run_id;
pub mod scenario;
pub mod slo;
pub mod target;
pub mod verify;

pub use error::{Error, Result};
pub use run_id::new_run_id;

/// The names most tests use.
pub mod prelude {
    pub use crate::fault::{DeletePrimary, Fault, FaultGuard, FreezePrimary};
    pub use crate::probe::{ProbeConfig, WriteProbe};
    pub use crate::report::Report;
    pub use crate::scenario::Scenario;
    pub use crate::slo::Slo;
    pub use crate::target::local::LocalCluster;
    pub use crate::{Error, Result};
}

/// The README's examples, compiled as doctests so they cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
