//! Where a run is, for a progress display: [`Phase`], [`Progress`] and the
//! task that hands them to the callback.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::Target;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Starting the probe.
    Starting,
    /// The probe writes before any fault.
    WarmUp,
    /// The body runs: faults are injected.
    Faults,
    /// Waiting for the service to accept writes again.
    Recovery,
    /// Healing the faults still injected.
    Healing,
    /// Reading the rows back and measuring.
    Verifying,
    /// Finished.
    Done,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Starting => "starting",
            Phase::WarmUp => "warm-up",
            Phase::Faults => "faults",
            Phase::Recovery => "recovery",
            Phase::Healing => "healing",
            Phase::Verifying => "verifying",
            Phase::Done => "done",
        })
    }
}

/// A live view of a run, handed to the [`Experiment::progress`](crate::Experiment::progress) callback about
/// five times a second.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Where the run is.
    pub phase: Phase,
    /// Since the run started.
    pub elapsed: Duration,
    /// Write attempts so far.
    pub attempted: u64,
    /// Acknowledged so far.
    pub acknowledged: u64,
    /// Failed so far.
    pub failed: u64,
    /// Indeterminate so far.
    pub indeterminate: u64,
    /// The primary, as last observed.
    pub primary: Option<String>,
}

pub(super) type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync + std::panic::RefUnwindSafe>;

/// Hands the run's [`Progress`] to `f` about five times a second.
pub(super) async fn report_progress(
    f: ProgressFn,
    started: Instant,
    phase: Arc<Mutex<Phase>>,
    primary: Arc<Mutex<Option<String>>>,
    counters: Arc<crate::probe::Counters>,
    target: Arc<dyn Target>,
) {
    // The primary as known at the start; the event stream updates it.
    if let Ok(t) = target.topology().await
        && let Some(p) = t.primary_name()
    {
        let mut slot = primary.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(p.to_string());
        }
    }
    loop {
        let (attempted, acknowledged, failed, indeterminate) = counters.snapshot();
        let p = Progress {
            phase: *phase.lock().unwrap_or_else(|e| e.into_inner()),
            elapsed: started.elapsed(),
            attempted,
            acknowledged,
            failed,
            indeterminate,
            primary: primary.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        };
        f(&p);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
