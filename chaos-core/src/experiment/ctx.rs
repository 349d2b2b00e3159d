//! The context a failover test body (or a scenario) works with.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tokio::task::JoinHandle;

use crate::cluster::{Target, Topology};
use crate::error::ExperimentError;
use crate::fault::{AnyGuard, Fault, FaultGuard, FaultInfo};
use crate::probe::Counters;
use crate::timeline::{Event, EventKind, Timestamp};
use crate::verify::FaultSpan;
use crate::workload::{RunningWorkload, VerifyFn, Workload, WorkloadSummary};
use crate::{Error, Result};

pub(crate) struct Injected {
    pub(crate) info: FaultInfo,
    pub(crate) at: Instant,
    guard: Option<AnyGuard>,
    pub(crate) healed: Option<(Instant, Timestamp)>,
    pub(crate) marked: bool,
}

/// Names a fault injected with [`FailoverCtx::inject`] or marked with
/// [`FailoverCtx::mark_fault`]. The context keeps the guard, so the fault stays
/// injected until [`FailoverCtx::heal`] or the end of the run, where the
/// pipeline heals it even if the body panicked or timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultHandle(usize);

/// Names a workload started with [`FailoverCtx::workload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadHandle(usize);

/// A workload of the run: running, or stopped with its summary.
pub(crate) enum WorkloadSlot {
    Running(RunningWorkload),
    Stopped(WorkloadSummary, Option<VerifyFn>),
}

/// What a failover test body can do: inject or mark faults, wait for recovery,
/// look at the cluster, run SQL and workloads of its own, and watch the write
/// probe.
pub struct FailoverCtx {
    target: Arc<dyn Target>,
    counters: Arc<Counters>,
    pub(crate) faults: Vec<Injected>,
    pub(crate) workloads: Vec<WorkloadSlot>,
    events: Vec<Event>,
    tasks: Vec<JoinHandle<()>>,
    recovery_timeout: Duration,
    seed: u64,
}

impl std::fmt::Debug for FailoverCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverCtx")
            .field("target", &self.target)
            .field("faults", &self.faults.len())
            .finish()
    }
}

impl FailoverCtx {
    pub(crate) fn new(
        target: Arc<dyn Target>,
        counters: Arc<Counters>,
        recovery_timeout: Duration,
        seed: Option<u64>,
    ) -> Self {
        FailoverCtx {
            seed: seed.unwrap_or_else(crate::seed::base_seed),
            target,
            counters,
            faults: Vec::new(),
            workloads: Vec::new(),
            events: Vec::new(),
            tasks: Vec::new(),
            recovery_timeout,
        }
    }

    /// This run's seed, for bodies that choose something at random (a
    /// victim, a delay): the same seed replays the same choices. In a set of
    /// runs each run has its own (in its report and the set's `seeds`);
    /// otherwise it is `CHAOS_SEED` or fresh.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Injects `fault` now. The returned handle heals it early with
    /// [`heal`](Self::heal); otherwise the pipeline heals it after the body.
    ///
    /// # Errors
    /// When the fault cannot be injected (e.g. no primary to delete), or the
    /// target cannot do it ([`Error::Unsupported`]).
    //
    // Boxed so that test bodies (futures checked for `Send` under a
    // higher-ranked lifetime) do not have to prove `Send` for each fault's own
    // future type, which the compiler cannot do for `Fault<dyn Target>`.
    pub fn inject<'a, F>(&'a mut self, fault: F) -> BoxFuture<'a, Result<FaultHandle>>
    where
        F: Fault<dyn Target> + Send + 'a,
    {
        Box::pin(async move {
            let guard = fault.inject(&*self.target).await?;
            let info = guard.info().clone();
            self.events.push(Event::new(
                EventKind::FaultInjected,
                info.injected_at,
                Some(describe(&info)),
            ));
            self.faults.push(Injected {
                info,
                at: guard.injected_at(),
                guard: Some(AnyGuard::new(guard)),
                healed: None,
                marked: false,
            });
            Ok(FaultHandle(self.faults.len() - 1))
        })
    }

    /// Marks that a fault the library did not inject is in effect now (a
    /// process stopped by hand, a switch pulled by a script): it gets its own
    /// record and RTO in the report. Mark it once the fault has taken hold —
    /// a write acknowledged between the mark and the fault would count as
    /// recovery — and mark its end with [`mark_healed`](Self::mark_healed).
    pub fn mark_fault(&mut self, name: impl Into<String>) -> FaultHandle {
        let info = FaultInfo {
            kind: name.into(),
            mode: "marked".into(),
            victim: None,
            injected_at: Timestamp::now(),
        };
        self.events.push(Event::new(
            EventKind::FaultMarked,
            info.injected_at,
            Some(info.kind.clone()),
        ));
        self.faults.push(Injected {
            info,
            at: Instant::now(),
            guard: None,
            healed: None,
            marked: true,
        });
        FaultHandle(self.faults.len() - 1)
    }

    /// Marks the end of a fault marked with [`mark_fault`](Self::mark_fault).
    ///
    /// # Errors
    /// [`ExperimentError::FaultNotOpen`] for a handle that is not a marked fault, or one
    /// whose end was marked already.
    pub fn mark_healed(&mut self, handle: FaultHandle) -> Result<()> {
        let f = self
            .faults
            .get_mut(handle.0)
            .filter(|f| f.marked && f.healed.is_none())
            .ok_or(ExperimentError::FaultNotOpen { index: handle.0 })?;
        let at = Timestamp::now();
        f.healed = Some((Instant::now(), at));
        let name = f.info.kind.clone();
        self.events
            .push(Event::new(EventKind::FaultEndMarked, at, Some(name)));
        Ok(())
    }

    /// Heals one injected fault and waits until its victim is back in service.
    ///
    /// # Errors
    /// When healing fails, or the fault was healed already.
    pub async fn heal(&mut self, handle: FaultHandle) -> Result<()> {
        let f = self.faults.get_mut(handle.0);
        let guard = f
            .and_then(|f| f.guard.take())
            .ok_or(ExperimentError::FaultHealed { index: handle.0 })?;
        let healed = guard.heal().await?;
        self.faults[handle.0].healed = Some((Instant::now(), healed.at));
        self.events.push(Event::new(
            EventKind::FaultHealed(healed.event),
            healed.at,
            healed.detail,
        ));
        Ok(())
    }

    /// Heals every fault still injected and closes marked faults still open;
    /// returns the errors of those that failed.
    pub(crate) async fn heal_all(&mut self) -> Vec<Error> {
        let mut errors = Vec::new();
        for i in 0..self.faults.len() {
            if self.faults[i].guard.is_some() {
                if let Err(e) = self.heal(FaultHandle(i)).await {
                    errors.push(e);
                }
            } else if self.faults[i].marked && self.faults[i].healed.is_none() {
                let _ = self.mark_healed(FaultHandle(i));
            }
        }
        errors
    }

    /// Starts the application's own [`Workload`] now, measured like the probe:
    /// its attempts, RTO, write gap and (with a verification hook) lost writes
    /// are in the report. It runs until [`stop_workload`](Self::stop_workload)
    /// or until the run has recovered and healed.
    pub fn workload(&mut self, workload: Workload) -> WorkloadHandle {
        self.events.push(Event::now(
            EventKind::WorkloadStarted,
            Some(workload.name().to_string()),
        ));
        self.workloads.push(WorkloadSlot::Running(workload.start()));
        WorkloadHandle(self.workloads.len() - 1)
    }

    /// Stops a workload cleanly (each worker finishes its operation in flight)
    /// and returns what it did; the run still measures and verifies it.
    ///
    /// # Errors
    /// [`ExperimentError::WorkloadStopped`] when the workload was stopped already.
    pub async fn stop_workload(&mut self, handle: WorkloadHandle) -> Result<WorkloadSummary> {
        let slot = self
            .workloads
            .get_mut(handle.0)
            .ok_or(ExperimentError::NoWorkload { index: handle.0 })?;
        let placeholder = WorkloadSlot::Stopped(WorkloadSummary::empty(), None);
        match std::mem::replace(slot, placeholder) {
            WorkloadSlot::Running(run) => {
                let verifier = run.verifier();
                let summary = run.stop().await;
                *slot_mut(&mut self.workloads, handle.0) =
                    WorkloadSlot::Stopped(summary.clone(), verifier);
                Ok(summary)
            }
            stopped @ WorkloadSlot::Stopped(..) => {
                *slot_mut(&mut self.workloads, handle.0) = stopped;
                Err(ExperimentError::WorkloadStopped { index: handle.0 }.into())
            }
        }
    }

    /// Live counters of a running workload.
    pub fn workload_counters(&self, handle: WorkloadHandle) -> Option<&Counters> {
        match self.workloads.get(handle.0)? {
            WorkloadSlot::Running(r) => Some(&r.counters),
            WorkloadSlot::Stopped(..) => None,
        }
    }

    /// Stops every workload still running.
    pub(crate) async fn stop_all_workloads(&mut self) {
        for i in 0..self.workloads.len() {
            if matches!(self.workloads[i], WorkloadSlot::Running(_)) {
                let _ = self.stop_workload(WorkloadHandle(i)).await;
            }
        }
    }

    /// Counters of the probe and of every running workload.
    pub(crate) fn all_counters(&self) -> Vec<Arc<Counters>> {
        std::iter::once(self.counters.clone())
            .chain(self.workloads.iter().filter_map(|w| match w {
                WorkloadSlot::Running(r) => Some(r.counters.clone()),
                WorkloadSlot::Stopped(..) => None,
            }))
            .collect()
    }

    /// Waits until the service accepts writes again after the latest fault and
    /// returns how long after that fault the recovery was confirmed: an
    /// acknowledged write that started after the last failed one, and then
    /// half a second without a failure (a second, when the fault caused no
    /// failure at all). The figure therefore exceeds the fault's RTO by up to
    /// that confirmation; the report's `rto_ms` is the precise one. Without a
    /// fault it returns at once.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no write is acknowledged within the recovery timeout.
    pub async fn wait_recovered(&self) -> Result<Duration> {
        let Some(at) = self.faults.last().map(|f| f.at) else {
            return Ok(Duration::ZERO);
        };
        wait_recovered_since(&self.counters, at, at + self.recovery_timeout).await
    }

    /// The cluster's current roles.
    ///
    /// # Errors
    /// When the target cannot be inspected.
    pub async fn topology(&self) -> Result<Topology> {
        self.target.topology().await
    }

    /// The read-write endpoint (may carry a password: see [`crate::dsn::redact`]).
    pub fn rw_dsn(&self) -> String {
        self.target.rw_dsn()
    }

    /// A new client on the read-write endpoint, for the test's own SQL.
    ///
    /// # Errors
    /// When no primary accepts the connection within 5 s.
    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        crate::pg::connect(&self.target.rw_dsn(), Duration::from_secs(5)).await
    }

    /// The write probe's live counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The target under test.
    pub fn target(&self) -> &Arc<dyn Target> {
        &self.target
    }

    /// The target as its concrete type, e.g.
    /// `ctx.target_as::<LocalCluster>()`, for what the context does not cover.
    pub fn target_as<T: Target>(&self) -> Option<&T> {
        self.target.downcast_ref::<T>()
    }

    /// Runs a task of the test's own beside the probe that is not measured
    /// (use [`workload`](Self::workload) for one that is); it is aborted at
    /// teardown.
    pub fn spawn_task<W>(&mut self, task: W)
    where
        W: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push(tokio::spawn(task));
    }

    /// Adds an event of the test's own to the report's timeline (an
    /// [`EventKind::Mark`] called `name`).
    pub fn event(&mut self, name: impl Into<String>, detail: Option<String>) {
        self.events
            .push(Event::now(EventKind::Mark(name.into()), detail));
    }

    pub(crate) fn stop_tasks(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub(crate) fn spans(&self) -> Vec<FaultSpan> {
        self.faults
            .iter()
            .map(|f| FaultSpan {
                injected: f.at,
                healed: f.healed.map(|h| h.0),
                degrades: f.info.degrades(),
            })
            .collect()
    }
}

impl Drop for FailoverCtx {
    fn drop(&mut self) {
        self.stop_tasks();
        // Guards still here heal through their own `Drop` fallback.
    }
}

fn describe(info: &FaultInfo) -> String {
    match &info.victim {
        Some(v) => format!("{} on {v}", info.kind),
        None => info.kind.clone(),
    }
}

/// Waits until `counters` show recovery from a fault at `at`, until `deadline`.
pub(crate) async fn wait_recovered_since(
    counters: &Counters,
    at: Instant,
    deadline: Instant,
) -> Result<Duration> {
    loop {
        if counters.recovered_since(at) {
            return Ok(at.elapsed());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: "an acknowledged write after the fault".into(),
                waited: deadline.saturating_duration_since(at),
                logs: String::new(),
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn slot_mut(slots: &mut [WorkloadSlot], i: usize) -> &mut WorkloadSlot {
    &mut slots[i]
}
