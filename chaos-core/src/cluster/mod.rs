//! Clusters that faults are injected into, behind one seam: the [`Target`] trait.
//!
//! The probe, the verification, the reports and the test harness know a cluster
//! only through [`Target`]: its kind, its read-write endpoint, its
//! [`Topology`] in neutral roles, whether it is healthy, how to repair it between
//! tests, how to sweep what a killed run left behind, and a stream of its own
//! events. Two targets ship: [`local::LocalCluster`], an embedded
//! Patroni cluster the library boots, and [`external::ExternalCluster`], any
//! PostgreSQL cluster given by DSN.

#[cfg(feature = "cnpg")]
pub mod cnpg;
pub mod external;
pub mod local;
pub(crate) mod pglog;
pub mod reconfigure;
mod topology;

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use reconfigure::{Reconfigure, Setting};
pub use topology::{Member, Role, Topology};

use crate::Result;
use crate::timeline::Event;

/// A PostgreSQL cluster the library can measure. Implement the required
/// methods; the others have defaults that work for any cluster.
///
/// Methods return boxed futures so that targets can be chosen at run time
/// (`Arc<dyn Target>`).
pub trait Target: Any + Send + Sync + fmt::Debug {
    /// A short name of the kind of target, e.g. `local` or `external`.
    fn kind(&self) -> &'static str;

    /// The read-write endpoint clients use. It may carry a password: pass it
    /// through [`crate::dsn::redact`] before printing it.
    fn rw_dsn(&self) -> String;

    /// Number of database nodes, as far as the target knows.
    fn node_count(&self) -> usize;

    /// The cluster's current roles.
    ///
    /// # Errors
    /// When the cluster cannot be inspected at all.
    fn topology(&self) -> BoxFuture<'_, Result<Topology>>;

    /// Waits until the cluster is healthy — a primary that accepts writes and,
    /// where the cluster replicates synchronously, a synchronous standby that
    /// streams — and returns the topology then.
    ///
    /// # Errors
    /// [`crate::Error::Timeout`] saying what was missing.
    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<Topology>>;

    /// Brings the cluster back to full health after an earlier experiment
    /// (default: [`wait_healthy`](Self::wait_healthy)).
    ///
    /// # Errors
    /// When the cluster cannot be made healthy within `timeout`.
    fn repair(&self, timeout: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.wait_healthy(timeout).await.map(|_| ()) })
    }

    /// Removes what an earlier, killed run left behind; returns what was swept
    /// (default: nothing to sweep).
    ///
    /// # Errors
    /// When leftovers were found but could not be removed.
    fn sweep(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Where the target's own configuration contradicts `slo`, in words, for
    /// the report's warnings (the CNPG target reads its `Cluster` spec: see
    /// `cluster::cnpg::advisor`). Empty by default.
    fn advise<'a>(&'a self, slo: &'a crate::slo::Slo) -> BoxFuture<'a, Vec<String>> {
        let _ = slo;
        Box::pin(async { Vec::new() })
    }

    /// What the target's configuration cost a finished run, from the
    /// report's measured phases: one [`Finding`](crate::report::Finding) per
    /// setting, measured ones with their cost, checklist ones (as
    /// [`advise`](Self::advise) gives them) not measured. The report ranks
    /// them, lists them in place of `advise`'s warnings and names the
    /// costliest in its summary. Empty by default: `advise`'s warnings stay.
    fn advise_run<'a>(
        &'a self,
        slo: &'a crate::slo::Slo,
        report: &'a crate::report::Report,
    ) -> BoxFuture<'a, Vec<crate::report::Finding>> {
        let _ = (slo, report);
        Box::pin(async { Vec::new() })
    }

    /// What runs the cluster, for the report's target info: component →
    /// version or setting (the local cluster: `patroni`, `postgresql`,
    /// `synchronous_mode`, `ttl`). Empty by default.
    fn software(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::new()
    }

    /// The target's configuration, if an experiment may change it between
    /// runs ([`ConfigExperiment`](crate::runs::ConfigExperiment)); `None`
    /// (the default) when it may not.
    fn reconfigure(&self) -> Option<&dyn Reconfigure> {
        None
    }

    /// A single-host DSN that always reaches the current primary — a proxy or
    /// a service in front of the cluster — for drivers without multi-host
    /// DSNs (sqlx). `None` (the default) when the target has none.
    fn router_dsn(&self) -> Option<String> {
        None
    }

    /// The current primary's own single-host DSN, if the target knows one.
    ///
    /// # Errors
    /// When the topology cannot be read.
    fn primary_dsn(&self) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async { Ok(None) })
    }

    /// The target's own events (a new primary, a member going down or coming
    /// back), as they are observed. The default polls [`topology`](Self::topology)
    /// every 50 ms.
    fn events(self: Arc<Self>) -> BoxStream<'static, Event> {
        topology::poll_events(self, Duration::from_millis(50))
    }
}

impl dyn Target {
    /// The concrete target, if it is a `T`. Faults that only some targets can
    /// do use this to find theirs.
    pub fn downcast_ref<T: Target>(&self) -> Option<&T> {
        (self as &dyn Any).downcast_ref::<T>()
    }
}
