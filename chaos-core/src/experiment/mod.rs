//! The one experiment pipeline: probe → warm-up → body (faults) → recovery →
//! healing → verification → reports → SLO. [`Scenario`](crate::scenario::Scenario),
//! `#[failover_test]` and the `chaos` command line only configure an
//! [`Experiment`] and present its [`RunOutcome`].

mod body;
mod ctx;
mod progress;

use std::fmt;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

pub use body::{BodyError, BodyOutcome, TestResult};
pub use ctx::{FailoverCtx, FaultHandle, WorkloadHandle};
pub use progress::{Phase, Progress};
use progress::{ProgressFn, report_progress};

pub use crate::panics::panic_message;

use crate::cluster::Target;
use crate::dsn::redact;
use crate::probe::{ProbeConfig, WriteProbe};
use crate::report::{Draft, FailureKind, Report, TargetInfo, WorkloadDraft, default_report_dir};
use crate::slo::{Slo, fmt_duration};
use crate::timeline::{Event, EventKind};
use crate::verify::{Measurement, Window, read_back};
use crate::workload::Workload;
use crate::{Error, Result};

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The report; `None` only when the rows could not be read back.
    pub report: Option<Report>,
    /// How the body ended.
    pub body: BodyOutcome,
    /// Problems after the body: healing, verification, writing the reports.
    pub errors: Vec<Error>,
    /// The report files written.
    pub report_paths: Vec<PathBuf>,
}

impl RunOutcome {
    /// Whether the body passed, everything after it worked, and the SLO held.
    pub fn passed(&self) -> bool {
        matches!(self.body, BodyOutcome::Passed)
            && self.errors.is_empty()
            && self.report.as_ref().is_some_and(Report::passed)
    }
}

/// One failover experiment's settings. `Default` (via [`Experiment::new`]):
/// RTO ≤ 10 s, RPO = 0, 1 s warm-up, 120 s deadline for the body and the
/// recovery after it, 60 s recovery timeout, default probe (2 writers every
/// 10 ms), reports written to [`default_report_dir`], a one-line summary
/// printed.
#[derive(Clone)]
#[must_use]
pub struct Experiment {
    name: String,
    slo: Slo,
    warmup: Duration,
    timeout: Duration,
    recovery_timeout: Duration,
    settle: Duration,
    probe: ProbeConfig,
    report_dir: Option<PathBuf>,
    write_reports: bool,
    print_summary: bool,
    suite: Option<String>,
    progress: Option<ProgressFn>,
    workloads: Vec<Workload>,
    slo_on: Option<String>,
    seed: Option<u64>,
    write_junit: bool,
}

impl fmt::Debug for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Experiment")
            .field("name", &self.name)
            .field("slo", &self.slo)
            .field("warmup", &self.warmup)
            .field("timeout", &self.timeout)
            .field("recovery_timeout", &self.recovery_timeout)
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}

/// The default warm-up: how long the probe writes before the body starts.
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(1);
/// The default deadline for the body and the recovery after it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// The default time allowed for the service to come back after the body.
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);

impl Experiment {
    /// An experiment called `name` (the report's file name) with the defaults.
    pub fn new(name: impl Into<String>) -> Self {
        Experiment {
            name: name.into(),
            slo: Slo::default(),
            warmup: DEFAULT_WARMUP,
            timeout: DEFAULT_TIMEOUT,
            recovery_timeout: DEFAULT_RECOVERY_TIMEOUT,
            settle: Duration::from_millis(500),
            probe: ProbeConfig::default(),
            report_dir: None,
            write_reports: true,
            print_summary: true,
            suite: None,
            progress: None,
            workloads: Vec::new(),
            slo_on: None,
            seed: None,
            write_junit: true,
        }
    }

    /// The same experiment under another name (a run of a set: `name-run03`).
    pub fn renamed(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The run's seed, written in its report and handed to the body through
    /// [`FailoverCtx::seed`] (a set of runs gives each run one).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Without a JUnit file of its own (a run of a set: the set writes one
    /// with a test case per run).
    pub(crate) fn without_junit(mut self) -> Self {
        self.write_junit = false;
        self
    }

    /// The JUnit suite's name: the configured one, else the binary's.
    pub(crate) fn suite_name(&self) -> String {
        self.suite
            .clone()
            .unwrap_or_else(crate::report::junit::current_binary_name)
    }

    /// Whether reports are written.
    pub fn writes_reports(&self) -> bool {
        self.write_reports
    }

    /// Whether the summary line is printed.
    pub fn prints_summary(&self) -> bool {
        self.print_summary
    }

    /// Where the reports go: the configured directory or [`default_report_dir`].
    pub fn report_dir_or_default(&self) -> PathBuf {
        self.report_dir.clone().unwrap_or_else(default_report_dir)
    }

    /// A workload of the application's own that starts with the probe (before
    /// the warm-up) and is measured like it. Bodies can also start workloads
    /// with [`FailoverCtx::workload`].
    pub fn workload(mut self, workload: Workload) -> Self {
        self.workloads.push(workload);
        self
    }

    /// Asserts the SLO's RTO on the workload called `name` instead of the
    /// probe (lost writes count for both). A run with no workload of that name
    /// fails, saying so.
    pub fn slo_on(mut self, name: impl Into<String>) -> Self {
        self.slo_on = Some(name.into());
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The objectives.
    pub fn slo(mut self, slo: Slo) -> Self {
        self.slo = slo;
        self
    }

    /// The objectives in force.
    pub fn slo_ref(&self) -> &Slo {
        &self.slo
    }

    /// Mutable access to the objectives.
    pub fn slo_mut(&mut self) -> &mut Slo {
        &mut self.slo
    }

    /// How long the probe writes before the body starts (default 1 s).
    pub fn warmup(mut self, warmup: Duration) -> Self {
        self.warmup = warmup;
        self
    }

    /// Deadline for the body and the recovery after it (default 120 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long to wait after the body for the service to accept writes again
    /// (default 60 s).
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.recovery_timeout = timeout;
        self
    }

    /// How long the service is given to recover after the faults.
    pub fn recovery_timeout_ref(&self) -> Duration {
        self.recovery_timeout
    }

    /// The probe's settings.
    pub fn probe(mut self, probe: ProbeConfig) -> Self {
        self.probe = probe;
        self
    }

    /// Mutable access to the probe's settings.
    pub fn probe_mut(&mut self) -> &mut ProbeConfig {
        &mut self.probe
    }

    /// Where the JSON and JUnit reports go (default [`default_report_dir`]).
    pub fn report_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.report_dir = Some(dir.into());
        self
    }

    /// Whether to write the reports (default true).
    pub fn write_reports(mut self, write: bool) -> Self {
        self.write_reports = write;
        self
    }

    /// Whether to print the one-line summary to stderr when done (default true).
    pub fn print_summary(mut self, print: bool) -> Self {
        self.print_summary = print;
        self
    }

    /// The JUnit test suite's name (default: the running binary's name).
    pub fn suite(mut self, suite: impl Into<String>) -> Self {
        self.suite = Some(suite.into());
        self
    }

    /// A callback that sees the run's [`Progress`] about five times a second.
    pub fn progress(
        mut self,
        f: impl Fn(&Progress) + Send + Sync + std::panic::RefUnwindSafe + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// Runs the experiment on `target`: starts the probe, warms up, runs `body`
    /// (under `catch_unwind` and the deadline), waits for recovery from every
    /// fault, heals what is still injected, reads the rows back, measures,
    /// writes the reports and checks the SLO.
    ///
    /// # Errors
    /// Only set-up errors (the probe cannot start): nothing was measured.
    /// Everything later is in the [`RunOutcome`].
    pub async fn run<R, F>(&self, target: Arc<dyn Target>, body: F) -> Result<RunOutcome>
    where
        R: TestResult + Send,
        F: for<'a> FnOnce(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
    {
        let (mut run, probe) = self.start(target).await?;

        run.set_phase(Phase::WarmUp);
        tokio::time::sleep(self.warmup).await;
        let window_start = Instant::now();
        let deadline = window_start + self.timeout;

        run.set_phase(Phase::Faults);
        let mut body_outcome = self.run_body(&mut run.ctx, body, deadline).await;

        run.set_phase(Phase::Recovery);
        if matches!(body_outcome, BodyOutcome::Passed | BodyOutcome::Failed(_))
            && self.await_recovery(&mut run, deadline).await
        {
            body_outcome = BodyOutcome::TimedOut(self.timeout);
        }

        run.set_phase(Phase::Healing);
        let (history, window) = self.heal_and_stop(&mut run, probe, window_start).await;

        run.set_phase(Phase::Verifying);
        let report = self.verify(&mut run, &history, window).await;

        let mut outcome = RunOutcome {
            report,
            body: body_outcome,
            errors: std::mem::take(&mut run.errors),
            report_paths: Vec::new(),
        };
        self.finish(&mut outcome);
        run.set_phase(Phase::Done);
        Ok(outcome)
    }

    /// Checks the replication settings, asks the target's advice, starts the
    /// probe, the watch of the target's events, the progress reporter and
    /// the experiment's own workloads.
    async fn start(&self, target: Arc<dyn Target>) -> Result<(Running, WriteProbe)> {
        let started = Instant::now();
        let phase = Arc::new(Mutex::new(Phase::Starting));
        let primary = Arc::new(Mutex::new(None::<String>));

        let rw = target.rw_dsn();
        let warnings = self.replication_warnings(&rw).await;
        // The target's advice goes after these, replaced by what it finds
        // in the measured run (`advise_run`) when it finds anything.
        let advice_at = warnings.len();
        let advice = target.advise(&self.slo).await;
        let probe = self.probe.clone().start(&rw).await?;
        let run_id = probe.run_id().to_string();
        let events = vec![Event::now(EventKind::ProbeStarted, None)];

        // The target's own events, collected until verification.
        let seen = Arc::new(Mutex::new(Vec::<Event>::new()));
        let watcher = AbortOnDrop(tokio::spawn(watch_events(
            target.clone(),
            seen.clone(),
            primary.clone(),
        )));
        let reporter = self.progress.clone().map(|f| {
            AbortOnDrop(tokio::spawn(report_progress(
                f,
                started,
                phase.clone(),
                primary.clone(),
                probe.counters_handle(),
                target.clone(),
            )))
        });

        let mut ctx = FailoverCtx::new(
            target.clone(),
            probe.counters_handle(),
            self.recovery_timeout,
            self.seed,
        );
        // The experiment's own workloads warm up with the probe.
        for w in &self.workloads {
            ctx.workload(w.clone());
        }
        let running = Running {
            target,
            rw,
            run_id,
            started,
            phase,
            warnings,
            advice_at,
            advice,
            events,
            seen,
            watcher: Some(watcher),
            _reporter: reporter,
            ctx,
            errors: Vec::new(),
        };
        Ok((running, probe))
    }

    /// Runs the body under `catch_unwind` until `deadline`.
    async fn run_body<R, F>(&self, ctx: &mut FailoverCtx, body: F, deadline: Instant) -> BodyOutcome
    where
        R: TestResult + Send,
        F: for<'a> FnOnce(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
    {
        let fut = AssertUnwindSafe(body(ctx)).catch_unwind();
        match tokio::time::timeout_at(deadline.into(), fut).await {
            Err(_) => BodyOutcome::TimedOut(self.timeout),
            Ok(Err(payload)) => BodyOutcome::Panicked(payload),
            Ok(Ok(r)) => match r.into_result() {
                Ok(()) => BodyOutcome::Passed,
                Err(e) => BodyOutcome::Failed(e),
            },
        }
    }

    /// Waits, under `deadline`, for every series to recover from every
    /// fault; a fault without recovery gets a `no recovery` event. Returns
    /// whether the deadline passed.
    async fn await_recovery(&self, run: &mut Running, deadline: Instant) -> bool {
        let ctx = &run.ctx;
        let until = deadline.min(Instant::now() + self.recovery_timeout);
        let all = ctx.all_counters();
        for (i, span) in ctx.spans().iter().enumerate() {
            for counters in &all {
                match ctx::wait_recovered_since(counters, span.injected, until).await {
                    Ok(_) => {}
                    Err(_) if Instant::now() >= deadline => return true,
                    Err(_) => {
                        let info = &ctx.faults[i].info;
                        tracing::warn!(fault = %info.kind, "no recovery after the fault");
                        run.events.push(Event::now(
                            EventKind::NoRecovery,
                            Some(format!(
                                "{} gave no acknowledged write within {}",
                                info.kind,
                                fmt_duration(self.recovery_timeout)
                            )),
                        ));
                        return false;
                    }
                }
            }
        }
        false
    }

    /// Heals every fault (always), stops the tasks, lets the service settle,
    /// stops the probe and the workloads, and gathers every event. Returns
    /// the probe's history and the measured window.
    async fn heal_and_stop(
        &self,
        run: &mut Running,
        probe: WriteProbe,
        window_start: Instant,
    ) -> (crate::probe::History, Window) {
        run.errors.extend(run.ctx.heal_all().await);
        run.ctx.stop_tasks();
        tokio::time::sleep(self.settle).await;
        let window = Window {
            start: window_start,
            end: Instant::now(),
        };
        let history = probe.stop().await;
        run.ctx.stop_all_workloads().await;
        drop(run.watcher.take());
        run.events.extend(run.ctx.take_events());
        run.events.extend(std::mem::take(
            &mut *run.seen.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        (history, window)
    }

    /// Verifies the workloads, reads the probe's rows back, measures and
    /// makes the report with the target's findings; `None` (and the error
    /// kept) when the rows cannot be read back.
    async fn verify(
        &self,
        run: &mut Running,
        history: &crate::probe::History,
        window: Window,
    ) -> Option<Report> {
        let spans = run.ctx.spans();
        let faults: Vec<_> = run
            .ctx
            .faults
            .iter()
            .map(|f| (f.info.clone(), f.at, f.healed.map(|h| h.1), f.marked))
            .collect();
        let workloads = self.verify_workloads(&mut run.ctx, &spans, window).await;
        let found = match read_back(&run.rw, &history.run_id, Duration::from_secs(30)).await {
            Ok(found) => found,
            Err(e) => {
                run.errors.push(e);
                return None;
            }
        };
        let measurement = Measurement::compute(history, &spans, window, &found);
        let mut events = std::mem::take(&mut run.events);
        events.extend(routing_marks(history, &spans, &measurement, &events));
        let target = &run.target;
        let mut report = Report::from_draft(Draft {
            run_id: run.run_id.clone(),
            scenario: self.name.clone(),
            seed: self.seed,
            target: TargetInfo {
                kind: target.kind().to_string(),
                rw_dsn: redact(&run.rw),
                nodes: target.node_count(),
                software: target.software(),
            },
            started: run.started,
            slo: self.slo,
            history,
            window,
            faults,
            measurement: &measurement,
            events,
            warnings: std::mem::take(&mut run.warnings),
            workloads,
            slo_on: self.slo_on.clone(),
        });
        let findings = target.advise_run(&self.slo, &report).await;
        if findings.is_empty() {
            let advice = std::mem::take(&mut run.advice);
            report.warnings.splice(run.advice_at..run.advice_at, advice);
        } else {
            report.add_findings(findings, run.advice_at);
        }
        if let Some(first) = measurement.faults.iter().find_map(|f| f.recovered_at) {
            report.events.push(Event::new(
                EventKind::FirstWriteAfterFault,
                history.wall(first),
                None,
            ));
            report.events.sort_by_key(|e| e.at);
        }
        Some(report)
    }

    /// Adds the body's fate and later errors to the report, writes the reports
    /// and prints the summary line.
    fn finish(&self, outcome: &mut RunOutcome) {
        let Some(report) = outcome.report.as_mut() else {
            return;
        };
        match &outcome.body {
            BodyOutcome::Passed => {}
            BodyOutcome::Failed(e) => report.add_failure(
                FailureKind::Error,
                format!("test body returned an error: {e}"),
            ),
            BodyOutcome::Panicked(p) => report.add_failure(
                FailureKind::Panic,
                format!("test body panicked: {}", panic_message(p.as_ref())),
            ),
            BodyOutcome::TimedOut(t) => report.add_failure(
                FailureKind::Timeout,
                format!("test timed out after {}", fmt_duration(*t)),
            ),
        }
        for e in &outcome.errors {
            report.add_failure(FailureKind::Error, format!("teardown: {e}"));
        }
        if self.write_reports {
            let dir = self.report_dir.clone().unwrap_or_else(default_report_dir);
            let suite = self.suite_name();
            let mut written = vec![report.write_json_to(&dir)];
            if self.write_junit {
                written.push(report.write_junit_to(&dir, &suite));
            }
            match crate::report::picture::write_report_html(report, &dir) {
                Ok(pictures) => written.extend(pictures.map(Ok)),
                Err(e) => written.push(Err(e)),
            }
            for written in written {
                match written {
                    Ok(p) => outcome.report_paths.push(p),
                    Err(e) => {
                        report.add_failure(FailureKind::Error, e.to_string());
                        outcome.errors.push(e);
                    }
                }
            }
        }
        if self.print_summary {
            // Straight to the process's stderr, past the test harness's capture,
            // so that CI logs show the figures of passing tests too.
            let _ = writeln!(std::io::stderr().lock(), "{}", report.summary_line());
        }
    }

    /// Stops, verifies and measures every workload of the run.
    async fn verify_workloads(
        &self,
        ctx: &mut FailoverCtx,
        spans: &[crate::verify::FaultSpan],
        window: Window,
    ) -> Vec<WorkloadDraft> {
        let mut out = Vec::new();
        for slot in std::mem::take(&mut ctx.workloads) {
            let ctx::WorkloadSlot::Stopped(summary, verifier) = slot else {
                continue;
            };
            let history = summary.history();
            let (found, verified) = match &verifier {
                Some(v) => match crate::workload::verify(&summary, v).await {
                    Ok(found) => (found, Ok(true)),
                    Err(e) => (acknowledged_ids(&history), Err(e.to_string())),
                },
                None => (acknowledged_ids(&history), Ok(false)),
            };
            // Its gaps over its own active window: a workload stopped early
            // (or started late) was not out of service after (or before) it.
            let window = active_window(&history, window);
            // Without ids chosen beforehand a workload learns a write's
            // identity only from its reply: an indeterminate operation has
            // none to look for, and its outcome stays unknown.
            let measurement = Measurement::compute(&history, spans, window, &found);
            let measurement = if summary.ids_from_op && verifier.is_some() {
                measurement
            } else {
                measurement.with_indeterminate_unknown()
            };
            out.push(WorkloadDraft {
                summary,
                measurement,
                verified,
            });
        }
        out
    }

    /// Warnings where the cluster's configuration contradicts the SLO.
    async fn replication_warnings(&self, rw: &str) -> Vec<String> {
        if !self.slo.requires_zero_loss() {
            return Vec::new();
        }
        match crate::pg::primary_state(rw).await {
            Ok(s) if !s.sync_configured() => vec![
                "rpo = 0 is asserted, but the primary has no synchronous standby \
                 (synchronous_standby_names is empty): replication is asynchronous, so a \
                 failover can lose acknowledged writes"
                    .into(),
            ],
            Ok(s) if s.sync_streaming == 0 => vec![format!(
                "rpo = 0 is asserted, but no standby streams with sync_state sync or quorum \
                 (synchronous_standby_names = {:?}): until one does, commits wait, or — where \
                 the HA agent relaxes synchronous mode — a failover can lose acknowledged writes",
                s.synchronous_standby_names
            )],
            Ok(_) => Vec::new(),
            Err(e) => vec![format!(
                "could not check the synchronous replication settings: {e}"
            )],
        }
    }
}

/// The part of the run's measured `window` in which a series made attempts:
/// from its first attempt's start to its last attempt's end, within `window`.
fn active_window(history: &crate::probe::History, window: Window) -> Window {
    let first = history.attempts.iter().map(|a| a.started).min();
    let last = history.attempts.iter().map(|a| a.finished).max();
    match (first, last) {
        (Some(first), Some(last)) => Window {
            start: window.start.max(first).min(window.end),
            end: window.end.min(last).max(window.start),
        },
        _ => window,
    }
}

/// A `routing ended` mark for each recovered fault whose target marked none:
/// the moment the probe's connection that carried the first acknowledged
/// write after the fault was established (the client reached the new
/// primary). Nothing when that write went over a connection opened before the
/// fault.
fn routing_marks(
    history: &crate::probe::History,
    spans: &[crate::verify::FaultSpan],
    m: &Measurement,
    events: &[Event],
) -> Vec<Event> {
    use crate::timeline::{Phase, Timestamp};
    let mut out = Vec::new();
    for (span, outage) in spans.iter().zip(&m.faults) {
        let Some(recovered) = outage.recovered_at else {
            continue;
        };
        let (from, to) = (
            Timestamp::from(history.wall(span.injected)),
            Timestamp::from(history.wall(recovered)),
        );
        let marked = events
            .iter()
            .any(|e| e.kind == EventKind::PhaseEnded(Phase::Routing) && e.at >= from && e.at <= to);
        if marked {
            continue;
        }
        let first = history
            .attempts
            .iter()
            .find(|a| a.is_acknowledged() && a.finished == recovered);
        if let Some(a) = first
            && let Some(connected) = a.connected
            && connected >= span.injected
        {
            let server = match &a.outcome {
                crate::probe::Outcome::Acknowledged { server, .. } => server.as_str(),
                _ => "?",
            };
            out.push(Event::new(
                EventKind::PhaseEnded(Phase::Routing),
                history.wall(connected),
                Some(format!("probe writer {} connected to {server}", a.writer)),
            ));
        }
    }
    out
}

/// The `(writer, seq)` of every acknowledged attempt.
fn acknowledged_ids(history: &crate::probe::History) -> std::collections::HashSet<(u32, u64)> {
    history
        .attempts
        .iter()
        .filter(|a| a.is_acknowledged())
        .map(|a| (a.writer, a.seq))
        .collect()
}

/// A run under way: what its steps hand on to each other.
struct Running {
    target: Arc<dyn Target>,
    rw: String,
    run_id: String,
    started: Instant,
    phase: Arc<Mutex<Phase>>,
    /// Warnings so far (the replication settings').
    warnings: Vec<String>,
    /// Where the target's advice goes among the warnings.
    advice_at: usize,
    /// The target's advice before the run.
    advice: Vec<String>,
    /// The pipeline's events, then every event.
    events: Vec<Event>,
    /// The target's events, as the watcher collects them.
    seen: Arc<Mutex<Vec<Event>>>,
    watcher: Option<AbortOnDrop<()>>,
    _reporter: Option<AbortOnDrop<()>>,
    ctx: FailoverCtx,
    /// Problems after the body.
    errors: Vec<Error>,
}

impl Running {
    fn set_phase(&self, p: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }
}

/// Collects the target's events into `seen`, keeping `primary` up to date.
async fn watch_events(
    target: Arc<dyn Target>,
    seen: Arc<Mutex<Vec<Event>>>,
    primary: Arc<Mutex<Option<String>>>,
) {
    let mut stream = target.events();
    while let Some(e) = stream.next().await {
        let mut slot = primary.lock().unwrap_or_else(|p| p.into_inner());
        match &e.kind {
            EventKind::NewPrimary { node, .. } => *slot = Some(node.clone()),
            EventKind::PrimaryLost { .. } => *slot = None,
            _ => {}
        }
        drop(slot);
        seen.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }
}

/// A task that is aborted when its handle goes, so that a run dropped half-way
/// (a caller's timeout, Ctrl-C) leaves nothing running.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Attempt, History, Outcome};

    fn attempt(started: Instant, finished: Instant) -> Attempt {
        Attempt {
            writer: 1,
            seq: 1,
            started,
            finished,
            outcome: Outcome::Failed { sqlstate: None },
            connected: None,
        }
    }

    #[test]
    fn a_series_is_measured_over_its_own_active_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let window = Window {
            start: at(1_000),
            end: at(10_000),
        };
        let history = |attempts| History {
            run_id: "r".into(),
            interval: Duration::from_millis(10),
            origin: (t0, std::time::SystemTime::now()),
            attempts,
        };
        // Started late, stopped early: its own span.
        let h = history(vec![
            attempt(at(2_000), at(2_010)),
            attempt(at(5_000), at(5_005)),
        ]);
        assert_eq!(
            active_window(&h, window),
            Window {
                start: at(2_000),
                end: at(5_005)
            }
        );
        // Attempts beyond the window do not widen it.
        let h = history(vec![
            attempt(at(500), at(510)),
            attempt(at(9_990), at(12_000)),
        ]);
        assert_eq!(active_window(&h, window), window);
        // No attempt at all: the run's window.
        assert_eq!(active_window(&history(Vec::new()), window), window);
    }
}
