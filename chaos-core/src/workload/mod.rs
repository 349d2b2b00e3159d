//! The application's own workload, measured like the probe.
//!
//! A [`Workload`] runs the application's operation — through its own driver,
//! pool, retries and transactions — paced or as fast as it goes, and the
//! library keeps the books the probe keeps: every attempt timed and
//! classified (acknowledged, failed, indeterminate, with the application's
//! error), an identity for each acknowledged write chosen by the application
//! (the order id it got back), and, after recovery, a verification hook that
//! says which of those identities exist, so that the application's lost writes
//! count toward RPO. Each workload gets its own RTO, write gap and latencies in
//! the report, and the SLO can be asserted on it
//! ([`Experiment::slo_on`](crate::Experiment::slo_on), `slo_on = "orders"`).
//!
//! ```no_run
//! use std::collections::HashSet;
//! use chaos_core::prelude::*;
//! use chaos_core::workload::{Workload, WorkloadError};
//!
//! #[failover_test(max_rto = "10s", slo_on = "orders")]
//! async fn orders_survive(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
//!     let dsn = ctx.rw_dsn();
//!     let (check_dsn, setup) = (dsn.clone(), ctx.client().await?);
//!     setup.batch_execute("CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY)").await?;
//!     let orders = Workload::new("orders", move |_op| {
//!         let dsn = dsn.clone();
//!         async move {
//!             let client = chaos_core::pg::connect(&dsn, std::time::Duration::from_secs(2)).await?;
//!             let row = client.query_one("INSERT INTO orders DEFAULT VALUES RETURNING id", &[]).await?;
//!             Ok(Some(row.get::<_, i64>(0).to_string()))
//!         }
//!     })
//!     .verify(move |ids| {
//!         let dsn = check_dsn.clone();
//!         async move {
//!             let client = chaos_core::pg::connect(&dsn, std::time::Duration::from_secs(5)).await?;
//!             let ids: Vec<i64> = ids.iter().filter_map(|i| i.parse().ok()).collect();
//!             let rows = client.query("SELECT id FROM orders WHERE id = ANY($1)", &[&ids]).await?;
//!             Ok(rows.iter().map(|r| r.get::<_, i64>(0).to_string()).collect::<HashSet<_>>())
//!         }
//!     });
//!     ctx.workload(orders);
//!     ctx.inject(DeletePrimary::kill()).await?;
//!     Ok(())
//! }
//! ```

mod drivers;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::pg::{self, Failure};
use crate::probe::{Attempt, Counters, History, IndeterminateReason, Outcome};

/// Why an operation of a workload did not succeed, as the library counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadError {
    /// The operation certainly did not take effect (the server said no, the
    /// pool could not connect).
    Failed(String),
    /// Nobody knows whether it took effect (connection lost mid-commit, a
    /// timeout while waiting for the reply).
    Indeterminate(String),
}

impl WorkloadError {
    /// A definite failure, with the application's error.
    pub fn failed(e: impl fmt::Display) -> Self {
        WorkloadError::Failed(e.to_string())
    }

    /// An unknown outcome, with the application's error.
    pub fn indeterminate(e: impl fmt::Display) -> Self {
        WorkloadError::Indeterminate(e.to_string())
    }

    /// The application's error, in words.
    pub fn message(&self) -> &str {
        match self {
            WorkloadError::Failed(m) | WorkloadError::Indeterminate(m) => m,
        }
    }
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadError::Failed(m) => write!(f, "failed: {m}"),
            WorkloadError::Indeterminate(m) => write!(f, "indeterminate: {m}"),
        }
    }
}

impl std::error::Error for WorkloadError {}

/// Classified by SQLSTATE and connection state, like the probe's writes: an
/// error the server sent is a failure; no reply is indeterminate.
impl From<tokio_postgres::Error> for WorkloadError {
    fn from(e: tokio_postgres::Error) -> Self {
        let text = crate::error::describe(&e);
        match pg::classify(&e) {
            Failure::Definite => WorkloadError::Failed(text),
            Failure::Indeterminate => WorkloadError::Indeterminate(text),
        }
    }
}

/// A library error inside an operation (e.g. [`pg::connect`] failing): the
/// operation did not get as far as the server.
impl From<crate::Error> for WorkloadError {
    fn from(e: crate::Error) -> Self {
        WorkloadError::Failed(e.to_string())
    }
}

/// What one call of the operation is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    /// Which of the workload's concurrent workers calls it (from 1).
    pub worker: u32,
    /// The worker's sequence number (from 1).
    pub seq: u64,
    /// A number of this run of the workload, unique across runs.
    pub run: u64,
}

impl Op {
    /// An identity for what this operation writes, chosen before it runs and
    /// unique across runs and processes: `<run>-<worker>-<seq>`, e.g.
    /// `0193c4a1f2e80a3c07-1-42`. Write it with the row (an order's
    /// client-generated key, an idempotency key) and turn on
    /// [`Workload::ids_from_op`]: the library then knows the identity of every
    /// attempt, also of those whose outcome is unknown, and the verification
    /// hook tells which of them committed.
    pub fn id(&self) -> String {
        format!("{:016x}-{}-{}", self.run, self.worker, self.seq)
    }
}

type OpFn =
    Arc<dyn Fn(Op) -> BoxFuture<'static, Result<Option<String>, WorkloadError>> + Send + Sync>;
pub(crate) type VerifyFn = Arc<
    dyn Fn(Vec<String>) -> BoxFuture<'static, Result<HashSet<String>, WorkloadError>> + Send + Sync,
>;

/// The application's own operation, run beside the probe and measured like it.
///
/// The operation returns `Ok(Some(identity))` for an acknowledged write whose
/// survival is to be checked (e.g. the id of the order it created),
/// `Ok(None)` for an acknowledged operation with nothing to check (a read),
/// or a [`WorkloadError`]. `Default` pacing: one operation every 10 ms per
/// worker, one worker, a 5 s deadline per operation.
#[derive(Clone)]
#[must_use]
pub struct Workload {
    pub(crate) name: String,
    op: OpFn,
    verify: Option<VerifyFn>,
    pacing: Option<Duration>,
    concurrency: u32,
    op_timeout: Duration,
    ids_from_op: bool,
}

// The operation and the hook are only called under `catch_unwind` or after
// it, and a `Workload` holds no state of its own a panic could leave broken:
// settings that carry one (`TestSpec`, `Experiment`) stay usable in
// `catch_unwind` closures.
impl std::panic::UnwindSafe for Workload {}
impl std::panic::RefUnwindSafe for Workload {}

impl fmt::Debug for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workload")
            .field("name", &self.name)
            .field("pacing", &self.pacing)
            .field("concurrency", &self.concurrency)
            .field("verified", &self.verify.is_some())
            .finish_non_exhaustive()
    }
}

impl Workload {
    /// A workload called `name` running `op`.
    pub fn new<F, Fut>(name: impl Into<String>, op: F) -> Self
    where
        F: Fn(Op) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<String>, WorkloadError>> + Send + 'static,
    {
        Workload {
            name: name.into(),
            op: Arc::new(move |o| Box::pin(op(o))),
            verify: None,
            pacing: Some(Duration::from_millis(10)),
            concurrency: 1,
            op_timeout: Duration::from_secs(5),
            ids_from_op: false,
        }
    }

    /// Every operation writes [`Op::id`] as the identity of what it creates
    /// (default off: an identity is known only from a successful reply). Then
    /// every attempt has an identity, the verification hook is asked about
    /// all of them, and indeterminate operations are reported as committed
    /// (`indeterminate_found`) or not (`indeterminate_missing`) rather than
    /// unknown, and failed ones found anyway as `failed_but_present` — as the
    /// probe's writes are. An operation that returns `Ok(Some(id))` still
    /// names its acknowledged write by that `id`.
    pub fn ids_from_op(mut self) -> Self {
        self.ids_from_op = true;
        self
    }

    /// One operation per `interval` per worker (default 10 ms).
    pub fn paced(mut self, interval: Duration) -> Self {
        self.pacing = Some(interval);
        self
    }

    /// As fast as the operation goes: the next starts when the last ended.
    pub fn unpaced(mut self) -> Self {
        self.pacing = None;
        self
    }

    /// Workers running the operation side by side (default 1).
    pub fn concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers.max(1);
        self
    }

    /// Client-side deadline of one operation; past it the operation is
    /// indeterminate (default 5 s).
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// The verification hook: given the identities of the acknowledged writes,
    /// return those that exist after recovery. The others are lost and count
    /// toward RPO. Without it, the workload's losses are unknown (the report
    /// says so).
    pub fn verify<F, Fut>(mut self, verify: F) -> Self
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HashSet<String>, WorkloadError>> + Send + 'static,
    {
        self.verify = Some(Arc::new(move |ids| Box::pin(verify(ids))));
        self
    }

    /// The workload's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts the workers now.
    pub(crate) fn start(self) -> RunningWorkload {
        let origin = (Instant::now(), SystemTime::now());
        let run = u64::from_str_radix(&crate::run_id::new_run_id(), 16).unwrap_or_default();
        let ids_from_op = self.ids_from_op;
        let counters = Arc::new(Counters::new(origin.0));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let workers = (1..=self.concurrency)
            .map(|w| {
                tokio::spawn(worker(
                    (w, run, ids_from_op),
                    self.op.clone(),
                    self.pacing,
                    self.op_timeout,
                    stop.clone(),
                    counters.clone(),
                    shared.clone(),
                ))
            })
            .collect();
        RunningWorkload {
            spec: self,
            origin,
            counters,
            stop,
            shared,
            workers,
        }
    }
}

/// One attempt of a workload, with what the application said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadAttempt {
    /// The worker.
    pub worker: u32,
    /// Its sequence number.
    pub seq: u64,
    /// Monotonic start.
    pub started: Instant,
    /// Monotonic end.
    pub finished: Instant,
    /// What became of it.
    pub result: Result<Option<String>, WorkloadError>,
    /// The identity chosen before it ran ([`Workload::ids_from_op`]): known
    /// whatever became of it.
    pub id: Option<String>,
}

impl WorkloadAttempt {
    /// The identity to look for: the reply's, else the one chosen before.
    pub fn identity(&self) -> Option<&str> {
        match &self.result {
            Ok(Some(id)) => Some(id),
            _ => self.id.as_deref(),
        }
    }
}

#[derive(Default)]
struct Shared {
    attempts: Mutex<Vec<WorkloadAttempt>>,
    panics: Mutex<Vec<String>>,
}

async fn worker(
    (id, run, ids_from_op): (u32, u64, bool),
    op: OpFn,
    pacing: Option<Duration>,
    op_timeout: Duration,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    shared: Arc<Shared>,
) {
    let mut ticker = pacing.map(|p| {
        let mut t = tokio::time::interval(p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut seq = 0;
    while !stop.load(Ordering::SeqCst) {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        seq += 1;
        let started = Instant::now();
        counters.attempted.fetch_add(1, Ordering::Relaxed);
        let this = Op {
            worker: id,
            seq,
            run,
        };
        let call = AssertUnwindSafe(op(this)).catch_unwind();
        let result = match tokio::time::timeout(op_timeout, call).await {
            Err(_) => Err(WorkloadError::Indeterminate(format!(
                "no result within the operation deadline ({op_timeout:?})"
            ))),
            Ok(Err(payload)) => {
                let msg = crate::panics::panic_message(payload.as_ref());
                shared
                    .panics
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("worker {id} seq {seq}: {msg}"));
                Err(WorkloadError::Indeterminate(format!(
                    "the operation panicked: {msg}"
                )))
            }
            Ok(Ok(r)) => r,
        };
        let counter = match &result {
            Ok(_) => &counters.acknowledged,
            Err(WorkloadError::Failed(_)) => &counters.failed,
            Err(WorkloadError::Indeterminate(_)) => &counters.indeterminate,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        counters.record(started, result.is_ok());
        shared
            .attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(WorkloadAttempt {
                worker: id,
                seq,
                started,
                finished: Instant::now(),
                result,
                id: ids_from_op.then(|| this.id()),
            });
    }
}

/// A workload whose workers run.
pub(crate) struct RunningWorkload {
    pub(crate) spec: Workload,
    origin: (Instant, SystemTime),
    pub(crate) counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// What a workload did, returned when it is stopped.
#[derive(Debug, Clone)]
pub struct WorkloadSummary {
    /// The workload's name.
    pub name: String,
    /// Every attempt, in start order.
    pub attempts: Vec<WorkloadAttempt>,
    /// Panics of the operation, in words.
    pub panics: Vec<String>,
    /// Pacing (zero when unpaced).
    pub pacing: Duration,
    /// A monotonic instant and its wall-clock time.
    pub origin: (Instant, SystemTime),
    /// Whether every attempt has an identity ([`Workload::ids_from_op`]).
    pub ids_from_op: bool,
}

impl WorkloadSummary {
    pub(crate) fn empty() -> Self {
        WorkloadSummary {
            name: String::new(),
            attempts: Vec::new(),
            panics: Vec::new(),
            pacing: Duration::ZERO,
            origin: (Instant::now(), SystemTime::now()),
            ids_from_op: false,
        }
    }

    /// Attempts acknowledged.
    pub fn acknowledged(&self) -> usize {
        self.attempts.iter().filter(|a| a.result.is_ok()).count()
    }

    /// Identities of the acknowledged writes.
    pub fn identities(&self) -> Vec<String> {
        self.attempts
            .iter()
            .filter_map(|a| a.result.as_ref().ok().cloned().flatten())
            .collect()
    }

    /// Identities to verify: every attempt's with [`Workload::ids_from_op`],
    /// else the acknowledged writes'.
    fn identities_to_check(&self) -> Vec<String> {
        if !self.ids_from_op {
            return self.identities();
        }
        self.attempts
            .iter()
            .filter_map(|a| a.identity().map(str::to_string))
            .collect()
    }

    /// The attempts as a probe-like history, for the shared measurement.
    pub(crate) fn history(&self) -> History {
        History {
            run_id: self.name.clone(),
            interval: self.pacing,
            origin: self.origin,
            attempts: self
                .attempts
                .iter()
                .map(|a| Attempt {
                    writer: a.worker,
                    seq: a.seq,
                    started: a.started,
                    finished: a.finished,
                    outcome: match &a.result {
                        Ok(_) => Outcome::Acknowledged {
                            server: String::new(),
                            timeline: 0,
                        },
                        Err(WorkloadError::Failed(_)) => Outcome::Failed { sqlstate: None },
                        Err(WorkloadError::Indeterminate(_)) => Outcome::Indeterminate {
                            reason: IndeterminateReason::ConnectionLost,
                        },
                    },
                    connected: None,
                })
                .collect(),
        }
    }

    /// Distinct error messages with their counts, most frequent first.
    pub fn errors(&self) -> Vec<(String, u64)> {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for a in &self.attempts {
            if let Err(e) = &a.result {
                *counts.entry(e.message()).or_default() += 1;
            }
        }
        let mut v: Vec<(String, u64)> = counts
            .into_iter()
            .map(|(m, n)| (m.to_string(), n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

impl RunningWorkload {
    /// Asks the workers to stop after their operation in flight, waits for
    /// them (up to the operation deadline plus a second; a worker still busy
    /// then is aborted), and returns what they did.
    pub(crate) async fn stop(mut self) -> WorkloadSummary {
        self.stop.store(true, Ordering::SeqCst);
        let grace = self.spec.op_timeout + Duration::from_secs(1);
        for w in std::mem::take(&mut self.workers) {
            let abort = w.abort_handle();
            if tokio::time::timeout(grace, w).await.is_err() {
                abort.abort();
                tracing::warn!(workload = %self.spec.name, "a worker did not stop in time; aborted");
            }
        }
        let mut attempts = std::mem::take(
            &mut *self
                .shared
                .attempts
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        attempts.sort_by_key(|a| (a.started, a.worker));
        WorkloadSummary {
            name: self.spec.name.clone(),
            attempts,
            panics: std::mem::take(
                &mut *self.shared.panics.lock().unwrap_or_else(|p| p.into_inner()),
            ),
            pacing: self.spec.pacing.unwrap_or_default(),
            origin: self.origin,
            ids_from_op: self.spec.ids_from_op,
        }
    }

    /// The verification hook, if any.
    pub(crate) fn verifier(&self) -> Option<VerifyFn> {
        self.spec.verify.clone()
    }
}

impl Drop for RunningWorkload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in &self.workers {
            w.abort();
        }
    }
}

/// Runs the verification hook on the identities to check and returns the
/// set of `(worker, seq)` found, for the shared measurement.
pub(crate) async fn verify(
    summary: &WorkloadSummary,
    verifier: &VerifyFn,
) -> Result<HashSet<(u32, u64)>, WorkloadError> {
    let found = verifier(summary.identities_to_check()).await?;
    Ok(summary
        .attempts
        .iter()
        .filter(|a| match (a.identity(), &a.result) {
            (Some(id), _) => found.contains(id),
            (None, Ok(None)) => true,
            (None, _) => false,
        })
        .map(|a| (a.worker, a.seq))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::verify::{Measurement, Window};

    /// With ids chosen before each operation, the verification hook is asked
    /// about every attempt, and unknown outcomes become found or missing —
    /// checked here against the "table" the operation wrote to.
    #[tokio::test]
    async fn ids_from_op_make_every_outcome_checkable() {
        let table: Arc<Mutex<HashSet<String>>> = Arc::default();
        let (writes, reads) = (table.clone(), table.clone());
        let workload = Workload::new("keyed", move |op| {
            let table = writes.clone();
            async move {
                // Seq 3, 6, …: committed, reply lost. 4, 8, …: never arrived.
                // 5, 10, …: refused after all. Others acknowledged.
                let commit = op.seq % 4 != 0;
                if commit {
                    table.lock().unwrap().insert(op.id());
                }
                match op.seq {
                    s if s % 3 == 0 || s % 4 == 0 => Err(WorkloadError::indeterminate("reset")),
                    s if s % 5 == 0 => Err(WorkloadError::failed("refused")),
                    _ => Ok(None),
                }
            }
        })
        .paced(Duration::from_millis(1))
        .ids_from_op()
        .verify(move |keys| {
            let table = reads.clone();
            async move {
                let t = table.lock().unwrap();
                Ok(keys.into_iter().filter(|k| t.contains(k)).collect())
            }
        });
        let start = Instant::now();
        let running = workload.start();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let verifier = running.verifier().unwrap();
        let summary = running.stop().await;
        let n = summary.attempts.len() as u64;
        assert!(n >= 20, "{n} attempts");
        let ids: HashSet<String> = summary
            .attempts
            .iter()
            .filter_map(|a| a.id.clone())
            .collect();
        assert_eq!(ids.len() as u64, n, "one distinct id per attempt");
        let found = verify(&summary, &verifier).await.unwrap();
        let window = Window {
            start,
            end: Instant::now(),
        };
        let m = Measurement::compute(&summary.history(), &[], window, &found);
        let seqs =
            |f: &dyn Fn(u64) -> bool| summary.attempts.iter().filter(|a| f(a.seq)).count() as u64;
        let w = m.writes;
        assert_eq!(w.lost, 0);
        assert_eq!(w.indeterminate_found, seqs(&|s| s % 3 == 0 && s % 4 != 0));
        assert_eq!(w.indeterminate_missing, seqs(&|s| s % 4 == 0));
        assert_eq!(
            w.failed_but_present,
            seqs(&|s| s % 5 == 0 && s % 3 != 0 && s % 4 != 0)
        );
        assert!(
            w.indeterminate_found > 0 && w.indeterminate_missing > 0 && w.failed_but_present > 0
        );
    }
}
