//! The context a `#[failover_test]` body works with.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use crate::fault::{Fault, FaultGuard, Healed};
use crate::probe::Counters;
use crate::report::{Event, FaultInfo};
use crate::cluster::Topology;
use crate::cluster::local::LocalCluster;
use crate::{Error, Result};

/// A fault guard with its type erased, so the context can keep guards of any
/// fault and heal them whatever happens to the test body.
trait ErasedGuard: Send + Sync {
    fn heal_boxed(self: Box<Self>) -> BoxFuture<'static, Result<Healed>>;
}

impl<G: FaultGuard + 'static> ErasedGuard for G {
    fn heal_boxed(self: Box<Self>) -> BoxFuture<'static, Result<Healed>> {
        Box::pin((*self).heal())
    }
}

struct Injected {
    info: FaultInfo,
    at: Instant,
    guard: Option<Box<dyn ErasedGuard>>,
}

/// Names a fault injected through [`FailoverCtx::inject`]. The context keeps the
/// guard, so the fault stays injected until [`FailoverCtx::heal`] or the end of
/// the test, where the harness heals it even if the body panicked or timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultHandle(usize);

/// What a failover test body can do: inject faults, wait for recovery, look at
/// the cluster, run SQL of its own, and watch the write probe.
pub struct FailoverCtx {
    cluster: LocalCluster,
    counters: Arc<Counters>,
    faults: Vec<Injected>,
    events: Vec<Event>,
    workloads: Vec<JoinHandle<()>>,
    recovery_timeout: Duration,
}

impl std::fmt::Debug for FailoverCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverCtx")
            .field("cluster", &self.cluster)
            .field("faults", &self.faults.len())
            .finish()
    }
}

impl FailoverCtx {
    pub(crate) fn new(
        cluster: LocalCluster,
        counters: Arc<Counters>,
        recovery_timeout: Duration,
    ) -> Self {
        FailoverCtx {
            cluster,
            counters,
            faults: Vec::new(),
            events: Vec::new(),
            workloads: Vec::new(),
            recovery_timeout,
        }
    }

    /// Injects `fault` now. The returned handle heals it early with
    /// [`heal`](Self::heal); otherwise the harness heals it after the body.
    ///
    /// # Errors
    /// When the fault cannot be injected (e.g. no primary to delete).
    pub async fn inject<F>(&mut self, fault: F) -> Result<FaultHandle>
    where
        F: Fault<LocalCluster>,
        F::Guard: 'static,
    {
        let guard = fault.inject(&self.cluster).await?;
        let info = guard.info().clone();
        self.events.push(Event::new(
            "fault injected",
            info.injected_at,
            info.node.clone(),
        ));
        self.faults.push(Injected {
            info,
            at: guard.injected_at(),
            guard: Some(Box::new(guard)),
        });
        Ok(FaultHandle(self.faults.len() - 1))
    }

    /// Heals one fault and waits until its victim is back in service.
    ///
    /// # Errors
    /// When healing fails, or the fault was healed already.
    pub async fn heal(&mut self, handle: FaultHandle) -> Result<()> {
        let guard = self
            .faults
            .get_mut(handle.0)
            .and_then(|f| f.guard.take())
            .ok_or_else(|| Error::ClusterState(format!("fault {handle:?} was already healed")))?;
        let healed = guard.heal_boxed().await?;
        self.events
            .push(Event::new(healed.event, healed.at, healed.detail));
        Ok(())
    }

    /// Heals every fault still injected; returns the errors of those that failed.
    pub(crate) async fn heal_all(&mut self) -> Vec<Error> {
        let mut errors = Vec::new();
        for i in 0..self.faults.len() {
            if self.faults[i].guard.is_some()
                && let Err(e) = self.heal(FaultHandle(i)).await
            {
                errors.push(e);
            }
        }
        errors
    }

    /// Waits until the service accepts writes again after the latest fault and
    /// returns how long after that fault it did. Without a fault it returns at once.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no write is acknowledged within the recovery timeout.
    pub async fn wait_recovered(&self) -> Result<Duration> {
        let Some(at) = self.faults.last().map(|f| f.at) else {
            return Ok(Duration::ZERO);
        };
        let deadline = at + self.recovery_timeout;
        while Instant::now() < deadline {
            if self.counters.recovered_since(at) {
                return Ok(at.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(Error::Timeout {
            what: "an acknowledged write after the fault".into(),
            waited: self.recovery_timeout,
            logs: String::new(),
        })
    }

    /// The cluster's current roles.
    ///
    /// # Errors
    /// When no node's HA agent answers.
    pub async fn topology(&self) -> Result<Topology> {
        self.cluster.topology().await
    }

    /// The read-write endpoint (no password).
    pub fn rw_dsn(&self) -> String {
        self.cluster.rw_dsn()
    }

    /// A new client on the read-write endpoint, for the test's own SQL.
    ///
    /// # Errors
    /// When no primary accepts the connection within 5 s.
    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        crate::pg::connect(&self.cluster.rw_dsn(), Duration::from_secs(5)).await
    }

    /// The write probe's live counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The local cluster, for anything the context does not cover.
    pub fn cluster(&self) -> &LocalCluster {
        &self.cluster
    }

    /// Runs a workload of the test's own beside the probe (for example a
    /// pgbench-like loop on [`client`](Self::client)); it is stopped at teardown.
    pub fn spawn_workload<W>(&mut self, workload: W)
    where
        W: Future<Output = ()> + Send + 'static,
    {
        self.workloads.push(tokio::spawn(workload));
    }

    /// Adds an event of the test's own to the report's timeline.
    pub fn event(&mut self, name: impl Into<String>, detail: Option<String>) {
        self.events
            .push(Event::new(name, SystemTime::now(), detail));
    }

    pub(crate) fn stop_workloads(&mut self) {
        for w in self.workloads.drain(..) {
            w.abort();
        }
    }

    /// The first injected fault (what the report measures from), if any.
    pub(crate) fn first_fault(&self) -> Option<(FaultInfo, Instant)> {
        self.faults.first().map(|f| (f.info.clone(), f.at))
    }

    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

impl Drop for FailoverCtx {
    fn drop(&mut self) {
        self.stop_workloads();
        // Guards still here heal through their own `Drop` fallback.
    }
}
