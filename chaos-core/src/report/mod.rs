//! Reports people and CI read: a typed JSON document ([`Report`], which
//! round-trips through serde), its human summary (`Display`), and JUnit XML.

pub mod diagnose;
pub mod finding;
pub(crate) mod json;
pub mod junit;
pub mod picture;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::fault::FaultInfo;
use crate::probe::{History, IndeterminateReason, Outcome};
use crate::slo::{Rpo, Slo, Violation, fmt_duration};
use crate::timeline::{Event, EventKind, Phase, Timestamp, from_ms, ms};
use crate::verify::{Measurement, Window, WriteCounts, WriteId};

pub use finding::Finding;
pub use json::{default_report_dir, file_stem};

/// The version of the report's JSON shape; raised when a field changes meaning
/// or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// What was measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// `local`, `external`, …
    pub kind: String,
    /// The read-write endpoint, without password.
    pub rw_dsn: String,
    /// Number of database nodes.
    pub nodes: usize,
    /// What runs the cluster, as far as the target knows: component name →
    /// version or setting (`patroni` → `3.1.2`, `synchronous_mode` →
    /// `strict`, …; see [`Target::software`](crate::cluster::Target::software)).
    /// Absent from reports written before it existed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub software: std::collections::BTreeMap<String, String>,
}

/// One fault of the run: injected by the library, or marked by the test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Kind of fault, e.g. `delete-primary`, or the name given to a mark.
    pub kind: String,
    /// Details, e.g. `kill`, or the shell command.
    pub mode: String,
    /// The node(s) it hit, if known.
    pub victim: Option<String>,
    /// When it was in effect.
    pub injected_at: Timestamp,
    /// When it was healed (or its end marked), if it was.
    pub healed_at: Option<Timestamp>,
    /// Whether the test marked it ([`FailoverCtx::mark_fault`](crate::FailoverCtx::mark_fault))
    /// rather than the library injecting it.
    pub marked: bool,
    /// Its own RTO: injection to the first acknowledged write that started after
    /// the outage it caused began. `None`: no recovery.
    pub rto_ms: Option<f64>,
    /// Where that RTO went, from the target's phase marks (see
    /// [`Phase`]); empty when the target marked none or there was no recovery.
    #[serde(default)]
    pub phases: Vec<PhaseRecord>,
    /// A degrading fault's effect on commit latency (throttle, packet loss,
    /// bandwidth, latency). Its `rto_ms` is then that of an outage it caused
    /// (writes failed or got no reply), from the outage's start; with
    /// `outage` false every write went through and `rto_ms` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowdown: Option<SlowdownRecord>,
}

/// Commit latency of acknowledged writes over a stretch of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyRecord {
    /// Writes started in the stretch and acknowledged.
    pub count: usize,
    /// Median, in ms.
    pub p50_ms: f64,
    /// 99th percentile, in ms.
    pub p99_ms: f64,
}

impl From<crate::verify::Latency> for LatencyRecord {
    fn from(l: crate::verify::Latency) -> Self {
        LatencyRecord {
            count: l.count,
            p50_ms: ms(l.p50),
            p99_ms: ms(l.p99),
        }
    }
}

/// What a degrading fault did: latency before, during and after it, and
/// whether it caused an outage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlowdownRecord {
    /// Whether writes failed or got no reply (an outage, with an RTO), rather
    /// than only slowing down.
    pub outage: bool,
    /// Before the fault (from the end of the warm-up).
    pub before: LatencyRecord,
    /// While it was in effect.
    pub during: LatencyRecord,
    /// After it was healed; absent when it was not.
    pub after: Option<LatencyRecord>,
    /// Median during / median before.
    pub factor: f64,
    /// When the outage it caused began (the last acknowledgement before
    /// writes failed), ms after the report's origin: its RTO runs from there.
    #[serde(default)]
    pub outage_start_ms: Option<f64>,
    /// The longest stretch without an acknowledged write while it was in
    /// effect, in ms.
    pub longest_gap_ms: f64,
}

impl SlowdownRecord {
    /// `slowdown ×93.0 (commit p50 2.7 → 250.7 ms, p99 4.1 → 376.0 ms), longest gap 376 ms`.
    pub fn describe(&self) -> String {
        let after = self
            .after
            .map(|a| format!(" → {:.1}", a.p50_ms))
            .unwrap_or_default();
        format!(
            "slowdown ×{:.1} (commit p50 {:.1} → {:.1}{after} ms, p99 {:.1} → {:.1} ms), longest gap {:.0} ms{}",
            self.factor,
            self.before.p50_ms,
            self.during.p50_ms,
            self.before.p99_ms,
            self.during.p99_ms,
            self.longest_gap_ms,
            if self.outage { "" } else { ", no outage" }
        )
    }
}

/// One phase of an RTO: `detection`, `election`, `promotion`, `routing` or
/// `first_write`, in that order; a fault's phases add up to its RTO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// The phase's name ([`Phase::name`]).
    pub name: String,
    /// How long it lasted.
    pub ms: f64,
    /// When it began (the fault's injection, or the end of the phase before).
    pub at: Timestamp,
}

/// The phases of one fault's RTO from the phase-end marks among `events`
/// (sorted by time): each phase runs from the end of the one before (the
/// first from `injected`) to its mark; a phase without a mark, or whose mark
/// is out of order or after the recovery, is folded into the next;
/// `first_write` ends the RTO. Empty without any mark.
pub(crate) fn phases_of(events: &[Event], injected: Timestamp, rto_ms: f64) -> Vec<PhaseRecord> {
    let end = injected.plus(from_ms(rto_ms));
    let mut out = Vec::new();
    let mut start = injected;
    let mut spent = 0.0;
    for phase in Phase::ALL {
        if phase == Phase::FirstWrite {
            break;
        }
        let mark = events
            .iter()
            .find(|e| e.kind == EventKind::PhaseEnded(phase) && e.at >= start && e.at <= end);
        if let Some(e) = mark {
            let len = e.at.ms_since(start);
            out.push(PhaseRecord {
                name: phase.name().into(),
                ms: len,
                at: start,
            });
            spent += len;
            start = e.at;
        }
    }
    if out.is_empty() {
        return out;
    }
    out.push(PhaseRecord {
        name: Phase::FirstWrite.name().into(),
        // The remainder, so that the phases add up to the RTO exactly.
        ms: (rto_ms - spent).max(0.0),
        at: start,
    });
    out
}

/// How an attempt ended, in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Committed and acknowledged.
    Acknowledged,
    /// Certainly not committed.
    Failed,
    /// Unknown.
    Indeterminate,
}

/// One write attempt of the probe, times in ms relative to the report's origin
/// (the first fault's injection; the measured window's start without a fault).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The writer.
    pub writer: u32,
    /// Its sequence number.
    pub seq: u64,
    /// When the attempt started.
    pub started_ms: f64,
    /// When its outcome was known.
    pub finished_ms: f64,
    /// What became of it.
    pub outcome: AttemptOutcome,
    /// `address:port` of the server that acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// That server's timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// SQLSTATE of a failure, if the server sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    /// Why an indeterminate attempt is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<IndeterminateReason>,
    /// The identity a workload gave its acknowledged write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The application's error, for a workload's failed or indeterminate attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An error message of a workload and how often it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    /// The application's error.
    pub message: String,
    /// How many attempts ended with it.
    pub count: u64,
}

/// What one of the application's workloads saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadRecord {
    /// The workload's name.
    pub name: String,
    /// Whether the SLO's RTO is asserted on it (rather than on the probe).
    pub slo: bool,
    /// Whether its acknowledged writes were checked after recovery.
    pub verified: bool,
    /// Its worst RTO over the faults.
    pub rto_ms: Option<f64>,
    /// Its RTO per fault, in the order of `faults`.
    pub fault_rto_ms: Vec<Option<f64>>,
    /// Its longest time without an acknowledged operation.
    pub write_gap_ms: Option<f64>,
    /// Median latency of acknowledged operations.
    pub median_latency_ms: f64,
    /// 99th percentile latency of acknowledged operations.
    pub p99_latency_ms: f64,
    /// Attempts by outcome (`lost` only when verified).
    pub writes: WriteCounts,
    /// Identities of the acknowledged writes that are missing.
    pub lost: Vec<String>,
    /// Its errors, most frequent first.
    pub errors: Vec<ErrorCount>,
    /// Panics of its operation.
    pub panics: Vec<String>,
    /// Every attempt, times relative to the report's origin.
    pub history: Vec<HistoryEntry>,
}

/// A workload's results, as the pipeline hands them over.
pub(crate) struct WorkloadDraft {
    pub summary: crate::workload::WorkloadSummary,
    pub measurement: Measurement,
    /// `Ok(true)` verified, `Ok(false)` no hook, `Err` the hook failed.
    pub verified: Result<bool, String>,
}

/// The objectives, as written in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloRecord {
    /// Longest acceptable RTO.
    pub max_rto_ms: f64,
    /// Lost acknowledged writes allowed (when RPO is a count).
    pub max_lost_writes: Option<u64>,
    /// Time window of lost writes allowed (when RPO is a window).
    pub max_lost_window_ms: Option<f64>,
    /// Longest acceptable RTO at the 95th percentile of a set of runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rto_p95_ms: Option<f64>,
}

impl From<Slo> for SloRecord {
    fn from(slo: Slo) -> Self {
        let (writes, window) = match slo.rpo {
            Rpo::MaxLostWrites(n) => (Some(n), None),
            Rpo::MaxLostWindow(w) => (None, Some(ms(w))),
        };
        SloRecord {
            max_rto_ms: ms(slo.max_rto),
            max_lost_writes: writes,
            max_lost_window_ms: window,
            max_rto_p95_ms: slo.max_rto_p95.map(ms),
        }
    }
}

impl SloRecord {
    /// The SLO again.
    pub fn to_slo(&self) -> Slo {
        let mut slo = Slo::max_rto(from_ms(self.max_rto_ms));
        slo.max_rto_p95 = self.max_rto_p95_ms.map(from_ms);
        match (self.max_lost_window_ms, self.max_lost_writes) {
            (Some(w), _) => slo.max_lost_window(from_ms(w)),
            (None, n) => slo.max_lost_writes(n.unwrap_or(0)),
        }
    }
}

/// A lost acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostWrite {
    /// The writer.
    pub writer: u32,
    /// Its sequence number.
    pub seq: u64,
}

/// Why a run failed, by cause (JUnit's failure type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The SLO was violated.
    Slo,
    /// The test body panicked.
    Panic,
    /// The body or the recovery after it outlived the deadline.
    Timeout,
    /// The body returned an error, or healing failed.
    Error,
}

impl FailureKind {
    /// The lower-case name, as in JSON and JUnit.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Slo => "slo",
            FailureKind::Panic => "panic",
            FailureKind::Timeout => "timeout",
            FailureKind::Error => "error",
        }
    }
}

/// The result of one failover experiment: the document written as
/// `<scenario>.json`, read back by tools (and by `serde_json::from_str`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Report {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The run's id (also in every probe row).
    pub run_id: String,
    /// The scenario's or test's name.
    pub scenario: String,
    /// The run's seed, when it was one of a set of runs (bodies read it with
    /// [`FailoverCtx::seed`](crate::FailoverCtx::seed)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// What was measured.
    pub target: TargetInfo,
    /// When the probe started.
    pub started_at: Timestamp,
    /// Time zero of every `*_ms` offset below: the first fault's injection, or
    /// the start of the measured window when there was no fault.
    pub origin: Timestamp,
    /// How long the run took, probe start to report.
    pub duration_ms: f64,
    /// Start of the measured window (end of the warm-up), relative to `origin`.
    pub window_start_ms: f64,
    /// End of the measured window (the probe stopped), relative to `origin`.
    pub window_end_ms: f64,
    /// The first fault, if any (also in `faults`).
    pub fault: Option<FaultRecord>,
    /// Every fault, in order.
    pub faults: Vec<FaultRecord>,
    /// The objectives.
    pub slo: SloRecord,
    /// The worst RTO of the faults; absent without a fault or without recovery.
    pub rto_ms: Option<f64>,
    /// The longest time without an acknowledged write over the window.
    pub write_gap_ms: Option<f64>,
    /// When that gap began, relative to `origin`.
    pub write_gap_start_ms: Option<f64>,
    /// The longest gap that no fault explains.
    pub unexplained_gap_ms: Option<f64>,
    /// How precisely RTO and gaps are known.
    pub resolution_ms: f64,
    /// Median commit latency of acknowledged writes.
    pub median_latency_ms: f64,
    /// Time spanned by lost writes.
    pub lost_window_ms: f64,
    /// Write attempts by outcome.
    pub writes: WriteCounts,
    /// Every lost acknowledged write.
    pub lost: Vec<LostWrite>,
    /// Whether two primaries acknowledged writes.
    pub split_brain: bool,
    /// Acknowledgements on an older timeline after a newer one had acknowledged.
    pub split_brain_writes: u64,
    /// Where the RTO went: the phases of the fault whose RTO is `rto_ms`, in
    /// order (`detection`, `election`, `promotion`, `routing`,
    /// `first_write`), adding up to it; empty when the target marked none.
    #[serde(default)]
    pub phases: Vec<PhaseRecord>,
    /// The timeline of the run.
    pub events: Vec<Event>,
    /// Configuration that contradicts the SLO, and other things to know.
    pub warnings: Vec<String>,
    /// What the target's settings cost this run, the costliest first, then
    /// those not measured (see [`Finding`]); also the first `warnings`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// Every write attempt of the probe.
    pub history: Vec<HistoryEntry>,
    /// The application's workloads.
    #[serde(default)]
    pub workloads: Vec<WorkloadRecord>,
    /// The probe or workloads whose writes kept failing after a new primary
    /// had been promoted, and why (also in `warnings`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_after_promotion: Vec<diagnose::FailingAfterPromotion>,
    /// Whether every objective was met and the run completed.
    pub passed: bool,
    /// Why not, by cause.
    pub failure: Option<FailureKind>,
    /// Violations and failures, in words.
    pub violations: Vec<String>,
}

/// What the pipeline hands over to make a report.
pub(crate) struct Draft<'a> {
    pub run_id: String,
    pub scenario: String,
    pub seed: Option<u64>,
    pub target: TargetInfo,
    pub started: Instant,
    pub slo: Slo,
    pub history: &'a History,
    pub window: Window,
    /// Each fault's info, monotonic injection time, heal time, and whether marked.
    pub faults: Vec<(FaultInfo, Instant, Option<Timestamp>, bool)>,
    pub measurement: &'a Measurement,
    pub events: Vec<Event>,
    pub warnings: Vec<String>,
    pub workloads: Vec<WorkloadDraft>,
    pub slo_on: Option<String>,
}

impl Report {
    /// Builds the report, checking the measurement against the SLO.
    pub(crate) fn from_draft(d: Draft<'_>) -> Self {
        let m = d.measurement;
        let origin_mono = d.faults.first().map_or(d.window.start, |f| f.1);
        let origin = Timestamp::from(d.history.wall(origin_mono));
        let rel = |t: Instant| -> f64 {
            if t >= origin_mono {
                ms(t - origin_mono)
            } else {
                -ms(origin_mono - t)
            }
        };
        let faults: Vec<FaultRecord> = d
            .faults
            .iter()
            .zip(&m.faults)
            .map(|((info, _, healed, marked), outage)| FaultRecord {
                kind: info.kind.clone(),
                mode: info.mode.clone(),
                victim: info.victim.clone(),
                injected_at: info.injected_at,
                healed_at: *healed,
                marked: *marked,
                rto_ms: outage.rto.map(ms),
                phases: Vec::new(),
                slowdown: outage.slowdown.map(|s| SlowdownRecord {
                    outage: outage.outage,
                    before: s.before.into(),
                    during: s.during.into(),
                    after: s.after.map(Into::into),
                    factor: s.factor,
                    outage_start_ms: outage.outage.then(|| rel(outage.outage_start)),
                    longest_gap_ms: ms(s.longest_gap),
                }),
            })
            .collect();
        let mut history: Vec<HistoryEntry> = d
            .history
            .attempts
            .iter()
            .map(|a| {
                let (outcome, server, timeline, sqlstate, reason) = match &a.outcome {
                    Outcome::Acknowledged { server, timeline } => (
                        AttemptOutcome::Acknowledged,
                        Some(server.clone()),
                        Some(*timeline),
                        None,
                        None,
                    ),
                    Outcome::Failed { sqlstate } => {
                        (AttemptOutcome::Failed, None, None, sqlstate.clone(), None)
                    }
                    Outcome::Indeterminate { reason } => (
                        AttemptOutcome::Indeterminate,
                        None,
                        None,
                        None,
                        Some(*reason),
                    ),
                };
                HistoryEntry {
                    writer: a.writer,
                    seq: a.seq,
                    started_ms: rel(a.started),
                    finished_ms: rel(a.finished),
                    outcome,
                    server,
                    timeline,
                    sqlstate,
                    reason,
                    identity: None,
                    error: None,
                }
            })
            .collect();
        history.sort_by(|a, b| {
            a.started_ms
                .total_cmp(&b.started_ms)
                .then(a.writer.cmp(&b.writer))
        });
        let mut events = d.events;
        events.sort_by_key(|e| e.at);
        let mut faults = faults;
        for (f, outage) in faults.iter_mut().zip(&m.faults) {
            // A degrading fault's RTO runs from the outage's start.
            let from = if f.slowdown.is_some() {
                Timestamp::from(d.history.wall(outage.outage_start))
            } else {
                f.injected_at
            };
            if let Some(rto) = f.rto_ms {
                f.phases = phases_of(&events, from, rto);
            }
        }
        // The report's phases: those of the fault whose RTO is the report's.
        let phases = faults
            .iter()
            .filter(|f| f.rto_ms.is_some() && f.rto_ms == m.rto.map(ms))
            .map(|f| f.phases.clone())
            .next()
            .unwrap_or_default();
        let mut warnings = d.warnings;
        for f in &faults {
            if let Some(s) = f.slowdown.filter(|s| !s.outage)
                && s.longest_gap_ms > ms(d.slo.max_rto)
            {
                warnings.push(format!(
                    "under {} no write was acknowledged for {} (longer than max_rto {}), \
                     although none failed: every write went through, slower (p99 {:.0} ms); \
                     a client whose deadline is shorter saw an outage",
                    f.kind,
                    fmt_duration(from_ms(s.longest_gap_ms)),
                    fmt_duration(d.slo.max_rto),
                    s.during.p99_ms
                ));
            }
        }
        if faults.is_empty() {
            warnings.push(
                "no fault was injected or marked: RTO is absent, and the longest write gap \
                 is held to max_rto"
                    .into(),
            );
        }
        // RTO on the probe or the workload named by `slo_on`; lost writes on
        // the probe and on every verified workload.
        let mut violations = Vec::new();
        match &d.slo_on {
            None => violations.extend(d.slo.check_rto(m)),
            Some(name) => match d.workloads.iter().find(|w| &w.summary.name == name) {
                Some(w) => {
                    violations.extend(d.slo.check_rto(&w.measurement).into_iter().map(|v| {
                        Violation::Workload {
                            name: name.clone(),
                            violation: Box::new(v),
                            lost_ids: Vec::new(),
                        }
                    }))
                }
                None => violations.push(Violation::NoSuchWorkload { name: name.clone() }),
            },
        }
        violations.extend(d.slo.check_rpo(m));
        let mut workloads = Vec::new();
        for w in &d.workloads {
            let name = &w.summary.name;
            let record = workload_record(w, d.slo_on.as_deref() == Some(name), &rel);
            match &w.verified {
                // Lost writes named by the application's identities (order
                // ids), which mean more to its team than writer and seq.
                Ok(true) => {
                    for v in d.slo.check_rpo(&w.measurement) {
                        let lost_ids = match v {
                            Violation::SplitBrain { .. } => Vec::new(),
                            _ => record.lost.clone(),
                        };
                        violations.push(Violation::Workload {
                            name: name.clone(),
                            violation: Box::new(v),
                            lost_ids,
                        });
                    }
                }
                Ok(false) => warnings.push(format!(
                    "workload {name} has no verification hook: its lost writes are not counted"
                )),
                Err(e) => violations.push(Violation::WorkloadVerification {
                    name: name.clone(),
                    error: e.clone(),
                }),
            }
            for p in &w.summary.panics {
                violations.push(Violation::WorkloadPanicked {
                    name: name.clone(),
                    message: p.clone(),
                });
            }
            workloads.push(record);
        }
        let failing_after_promotion: Vec<_> = std::iter::once(("probe".to_string(), &history))
            .chain(
                workloads
                    .iter()
                    .map(|w| (format!("workload {}", w.name), &w.history)),
            )
            .filter_map(|(series, h)| {
                diagnose::failing_after_promotion(&series, &events, origin, h)
            })
            .collect();
        warnings.extend(failing_after_promotion.iter().map(ToString::to_string));
        Report {
            schema_version: SCHEMA_VERSION,
            run_id: d.run_id,
            scenario: d.scenario,
            seed: d.seed,
            target: d.target,
            started_at: Timestamp::from(d.history.wall(d.started)),
            origin,
            duration_ms: ms(d.started.elapsed()),
            window_start_ms: rel(d.window.start),
            window_end_ms: rel(d.window.end),
            fault: faults.first().cloned(),
            faults,
            slo: d.slo.into(),
            rto_ms: m.rto.map(ms),
            write_gap_ms: m.write_gap.map(|g| ms(g.length)),
            write_gap_start_ms: m.write_gap.map(|g| rel(g.start)),
            unexplained_gap_ms: m.unexplained_gap.map(|g| ms(g.length)),
            resolution_ms: ms(m.resolution),
            median_latency_ms: ms(m.median_latency),
            lost_window_ms: ms(m.lost_window),
            writes: m.writes,
            lost: m
                .lost
                .iter()
                .map(|&(writer, seq)| LostWrite { writer, seq })
                .collect(),
            split_brain: m.split_brain_writes > 0,
            split_brain_writes: m.split_brain_writes,
            phases,
            events,
            warnings,
            findings: Vec::new(),
            history,
            workloads,
            failing_after_promotion,
            passed: violations.is_empty(),
            failure: (!violations.is_empty()).then_some(FailureKind::Slo),
            violations: violations.iter().map(ToString::to_string).collect(),
        }
    }

    /// Records a failure that is not an SLO violation (a panic, a timeout, an
    /// error), which takes precedence as the failure's cause.
    pub fn add_failure(&mut self, kind: FailureKind, text: impl Into<String>) {
        self.violations.push(text.into());
        self.passed = false;
        if matches!(self.failure, None | Some(FailureKind::Slo)) {
            self.failure = Some(kind);
        }
    }

    /// Records what the target's settings cost this run: ranks `findings`
    /// ([`finding::rank`]), keeps them, and puts their text at `at` among
    /// the warnings (capped at their number), preceded by a note when none
    /// was measured.
    pub fn add_findings(&mut self, mut findings: Vec<Finding>, at: usize) {
        if findings.is_empty() {
            return;
        }
        finding::rank(&mut findings);
        let mut text: Vec<String> = Vec::new();
        if !findings.iter().any(Finding::is_measured) {
            text.push(finding::NOT_MEASURED_NOTE.to_string());
        }
        text.extend(findings.iter().map(ToString::to_string));
        let at = at.min(self.warnings.len());
        self.warnings.splice(at..at, text);
        self.findings = findings;
    }

    /// The costliest measured finding, as the summary names it: `RTO
    /// dominated by …` when it cost at least half the RTO, else `largest
    /// RTO cost …`.
    pub fn dominant_finding(&self) -> Option<String> {
        let top = self.findings.first().filter(|f| f.is_measured())?;
        let cost = top.cost_ms?;
        let words = match self.rto_ms {
            Some(rto) if cost * 2.0 >= rto => "RTO dominated by",
            _ => "largest RTO cost",
        };
        Some(format!("{words} {}", top.headline()))
    }

    /// Whether every objective was met.
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// The measured RTO (the worst fault's).
    pub fn rto(&self) -> Option<Duration> {
        self.rto_ms.map(from_ms)
    }

    /// The longest write gap.
    pub fn write_gap(&self) -> Option<Duration> {
        self.write_gap_ms.map(from_ms)
    }

    /// The acknowledged writes that were lost.
    pub fn lost_ids(&self) -> Vec<WriteId> {
        self.lost.iter().map(|l| (l.writer, l.seq)).collect()
    }

    /// Writes the JSON report to `dir/<scenario>.json` and returns its path.
    ///
    /// # Errors
    /// [`crate::Error::ReportWrite`] naming the file when it cannot be written.
    pub fn write_json_to(&self, dir: &Path) -> crate::Result<PathBuf> {
        json::write(self, dir)
    }

    /// Reads a report written by [`write_json_to`](Self::write_json_to).
    ///
    /// # Errors
    /// [`crate::Error::Io`] or [`crate::Error::Json`].
    pub fn read_json(path: &Path) -> crate::Result<Self> {
        json::read(path)
    }

    /// Writes the JUnit XML report to `dir/<scenario>.xml` with `suite` as the
    /// test suite's name.
    ///
    /// # Errors
    /// [`crate::Error::ReportWrite`] naming the file when it cannot be written.
    pub fn write_junit_to(&self, dir: &Path, suite: &str) -> crate::Result<PathBuf> {
        junit::write(self, dir, suite)
    }

    /// One line with the figures, for logs: `chaos: ` and [`summary`](Self::summary).
    pub fn summary_line(&self) -> String {
        format!("chaos: {}", self.summary())
    }

    /// The scenario, verdict, RTO, write gap and losses in one line, without
    /// the `chaos: ` of [`summary_line`](Self::summary_line) (for lines that
    /// have a prefix of their own, such as a set's `run 3:`).
    pub fn summary(&self) -> String {
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let rto = self.rto_text(" (no fault)");
        let slowdowns: String = self
            .faults
            .iter()
            .filter_map(|f| {
                f.slowdown
                    .map(|s| format!("; {}: {}", f.kind, s.describe()))
            })
            .chain(self.dominant_finding().map(|d| format!("; {d}")))
            .chain(self.failing_after_promotion.iter().map(|f| {
                format!(
                    "; {} kept failing {} after the promotion: {}",
                    f.series,
                    f.failing_ms
                        .map_or_else(|| "to the end".into(), |ms| fmt_duration(from_ms(ms))),
                    f.cause
                )
            }))
            .collect();
        let max = fmt_duration(from_ms(self.slo.max_rto_ms));
        let figures = |w: &WorkloadRecord| {
            format!(
                "RTO {}{}, write gap {}, {}",
                match (w.rto_ms, self.faults.is_empty()) {
                    (Some(r), _) => fmt_duration(from_ms(r)),
                    (None, true) => "n/a (no fault)".into(),
                    (None, false) => "none (no recovery)".into(),
                },
                if w.slo {
                    format!(" (max {max})")
                } else {
                    String::new()
                },
                w.write_gap_ms
                    .map_or_else(|| "none".into(), |g| fmt_duration(from_ms(g))),
                if w.verified {
                    format!("{} lost", w.lost.len())
                } else {
                    "losses not verified".into()
                }
            )
        };
        let workloads: String = self
            .workloads
            .iter()
            .filter(|w| !w.slo)
            .map(|w| format!("; workload {}: {}", w.name, figures(w)))
            .collect();
        let probe = format!(
            "RTO {rto}{}, write gap {}, {} acknowledged writes lost, {} indeterminate",
            if self.workloads.iter().any(|w| w.slo) {
                String::new()
            } else {
                format!(" (max {max})")
            },
            opt(self.write_gap()),
            self.writes.lost,
            self.writes.indeterminate
        );
        // The series the RTO was judged on comes first, by name.
        match self.workloads.iter().find(|w| w.slo) {
            Some(w) => format!(
                "{} {verdict} — SLO judged on workload {}: {}; probe: {probe}{slowdowns}{workloads}",
                self.scenario,
                w.name,
                figures(w)
            ),
            None => format!(
                "{} {verdict} — {probe}{slowdowns}{workloads}",
                self.scenario
            ),
        }
    }

    /// Whether every fault was a slowdown that caused no outage.
    pub fn only_slowdowns(&self) -> bool {
        !self.faults.is_empty()
            && self
                .faults
                .iter()
                .all(|f| f.slowdown.is_some_and(|s| !s.outage))
    }

    /// The RTO as the summaries print it: the figure, or why there is none.
    fn rto_text(&self, no_fault: &str) -> String {
        match self.rto() {
            Some(r) => fmt_duration(r),
            None if self.faults.is_empty() => format!("n/a{no_fault}"),
            None if self.only_slowdowns() => "none (no outage, a slowdown)".into(),
            None => "none (no recovery)".into(),
        }
    }

    fn offset(&self, at: Timestamp) -> String {
        let v = at.ms_since(self.origin);
        let d = fmt_duration(from_ms(v.abs()));
        if v < 0.0 {
            format!("-{d}")
        } else {
            format!("+{d}")
        }
    }
}

fn workload_record(w: &WorkloadDraft, slo: bool, rel: &dyn Fn(Instant) -> f64) -> WorkloadRecord {
    use crate::workload::WorkloadError;
    let m = &w.measurement;
    let mut latencies: Vec<Duration> = w
        .summary
        .attempts
        .iter()
        .filter(|a| a.result.is_ok())
        .map(|a| a.finished - a.started)
        .collect();
    latencies.sort_unstable();
    let p99 = latencies
        .get((latencies.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or_default();
    let lost: std::collections::HashSet<(u32, u64)> = m.lost.iter().copied().collect();
    let verified = matches!(w.verified, Ok(true));
    let mut writes = m.writes;
    if !verified {
        writes.lost = 0;
    }
    WorkloadRecord {
        name: w.summary.name.clone(),
        slo,
        verified,
        rto_ms: m.rto.map(ms),
        fault_rto_ms: m.faults.iter().map(|f| f.rto.map(ms)).collect(),
        write_gap_ms: m.write_gap.map(|g| ms(g.length)),
        median_latency_ms: ms(m.median_latency),
        p99_latency_ms: ms(p99),
        writes,
        lost: w
            .summary
            .attempts
            .iter()
            .filter(|a| verified && lost.contains(&(a.worker, a.seq)))
            .filter(|a| a.result.is_ok())
            .filter_map(|a| a.identity().map(str::to_string))
            .collect(),
        errors: w
            .summary
            .errors()
            .into_iter()
            .map(|(message, count)| ErrorCount { message, count })
            .collect(),
        panics: w.summary.panics.clone(),
        history: w
            .summary
            .attempts
            .iter()
            .map(|a| {
                let (outcome, error) = match &a.result {
                    Ok(_) => (AttemptOutcome::Acknowledged, None),
                    Err(WorkloadError::Failed(e)) => (AttemptOutcome::Failed, Some(e.clone())),
                    Err(WorkloadError::Indeterminate(e)) => {
                        (AttemptOutcome::Indeterminate, Some(e.clone()))
                    }
                };
                let identity = a.identity().map(str::to_string);
                HistoryEntry {
                    writer: a.worker,
                    seq: a.seq,
                    started_ms: rel(a.started),
                    finished_ms: rel(a.finished),
                    outcome,
                    server: None,
                    timeline: None,
                    sqlstate: None,
                    reason: None,
                    identity,
                    error,
                }
            })
            .collect(),
    }
}

fn opt(d: Option<Duration>) -> String {
    d.map(fmt_duration)
        .unwrap_or_else(|| "none (no recovery)".into())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.writes;
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        writeln!(f, "chaos report: {} — {verdict}", self.scenario)?;
        let software: String = self
            .target
            .software
            .iter()
            .map(|(k, v)| format!(", {k} {v}"))
            .collect();
        writeln!(
            f,
            "  target      {} ({} nodes{software}) {}",
            self.target.kind, self.target.nodes, self.target.rw_dsn
        )?;
        if self.faults.is_empty() {
            writeln!(f, "  fault       none injected or marked")?;
        }
        for (i, x) in self.faults.iter().enumerate() {
            writeln!(
                f,
                "  {}{} ({}){} at {}{}{}",
                if i == 0 {
                    "fault       "
                } else {
                    "            "
                },
                x.kind,
                x.mode,
                x.victim
                    .as_ref()
                    .map(|n| format!(" on {n}"))
                    .unwrap_or_default(),
                x.injected_at,
                if x.marked { " [marked]" } else { "" },
                match x.rto_ms {
                    Some(r) if self.faults.len() > 1 =>
                        format!("  RTO {}", fmt_duration(from_ms(r))),
                    None if x.slowdown.is_some_and(|s| !s.outage) => String::new(),
                    None if self.faults.len() > 1 => "  RTO none (no recovery)".into(),
                    _ => String::new(),
                }
            )?;
            if let Some(s) = x.slowdown {
                writeln!(f, "              {}", s.describe())?;
            }
        }
        let rto = self.rto_text("");
        writeln!(
            f,
            "  RTO         {rto}  (max {})   write gap {}   resolution ±{} ms",
            fmt_duration(from_ms(self.slo.max_rto_ms)),
            opt(self.write_gap()),
            self.resolution_ms.round()
        )?;
        if !self.phases.is_empty() {
            let parts: Vec<String> = self
                .phases
                .iter()
                .map(|p| format!("{} {}", p.name, fmt_duration(from_ms(p.ms))))
                .collect();
            writeln!(f, "  phases      {}", parts.join(" → "))?;
        }
        writeln!(
            f,
            "  writes      {} attempted, {} acknowledged, {} failed, {} indeterminate ({})",
            w.attempted,
            w.acknowledged,
            w.failed,
            w.indeterminate,
            w.indeterminate_outcomes()
        )?;
        let allowed = match (self.slo.max_lost_writes, self.slo.max_lost_window_ms) {
            (_, Some(win)) => format!("window {}", fmt_duration(from_ms(win))),
            (n, None) => n.unwrap_or(0).to_string(),
        };
        writeln!(
            f,
            "  RPO         {} acknowledged writes lost (max {allowed}){}",
            w.lost,
            if w.failed_but_present > 0 {
                format!(
                    "; {} writes reported failed were committed",
                    w.failed_but_present
                )
            } else {
                String::new()
            }
        )?;
        writeln!(
            f,
            "  split-brain {}",
            if self.split_brain_writes == 0 {
                "none".to_string()
            } else {
                format!("{} writes on an old timeline", self.split_brain_writes)
            }
        )?;
        for w in &self.workloads {
            writeln!(
                f,
                "  workload    {}{}: RTO {}   write gap {}   latency p50 {:.1} ms p99 {:.1} ms   \
                 {} attempted, {} acknowledged, {} failed, {} indeterminate, {}",
                w.name,
                if w.slo { " [SLO]" } else { "" },
                w.rto_ms
                    .map_or_else(|| "none".into(), |r| fmt_duration(from_ms(r))),
                w.write_gap_ms
                    .map_or_else(|| "none".into(), |g| fmt_duration(from_ms(g))),
                w.median_latency_ms,
                w.p99_latency_ms,
                w.writes.attempted,
                w.writes.acknowledged,
                w.writes.failed,
                w.writes.indeterminate,
                if w.verified {
                    format!("{} lost", w.lost.len())
                } else {
                    "losses not verified".into()
                }
            )?;
            if let Some(e) = w.errors.first() {
                writeln!(
                    f,
                    "              most frequent error ({}×): {}",
                    e.count, e.message
                )?;
            }
        }
        writeln!(f, "  timeline")?;
        for e in &self.events {
            writeln!(
                f,
                "    {:>10}  {}{}",
                self.offset(e.at),
                e.name(),
                e.detail_text()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )?;
        }
        for warning in &self.warnings {
            writeln!(f, "  warning     {warning}")?;
        }
        if self.violations.is_empty() {
            write!(f, "  violations  none")
        } else {
            writeln!(f, "  violations")?;
            let lines: Vec<String> = self
                .violations
                .iter()
                .map(|v| format!("    - {v}"))
                .collect();
            write!(f, "{}", lines.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::{Instant, SystemTime};

    use super::*;
    use crate::probe::{Attempt, History};
    use crate::verify::{FaultSpan, Measurement, Window};

    fn ms_(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A run with one kill at 100 ms, failures until 600 ms, one lost write.
    fn sample() -> Report {
        sample_with(|_| Vec::new())
    }

    /// [`sample`] with extra events, made from the wall time of an offset
    /// from the fault's injection.
    fn sample_with(extra: impl Fn(&dyn Fn(u64) -> Timestamp) -> Vec<Event>) -> Report {
        let t0 = Instant::now();
        let mut attempts = Vec::new();
        for i in 0..100u64 {
            let outcome = match i {
                10..60 => Outcome::Failed {
                    sqlstate: Some("57P01".into()),
                },
                60 => Outcome::Indeterminate {
                    reason: IndeterminateReason::ConnectionLost,
                },
                _ => Outcome::Acknowledged {
                    server: "127.0.0.11:5432".into(),
                    timeline: if i < 10 { 1 } else { 2 },
                },
            };
            attempts.push(Attempt {
                writer: 1,
                seq: i + 1,
                started: t0 + ms_(i * 10),
                finished: t0 + ms_(i * 10 + 1),
                outcome,
                connected: None,
            });
        }
        let history = History {
            run_id: "r1".into(),
            interval: ms_(10),
            origin: (t0, SystemTime::now()),
            attempts,
        };
        let mut found: HashSet<WriteId> = history
            .attempts
            .iter()
            .filter(|a| a.is_acknowledged())
            .map(|a| (a.writer, a.seq))
            .collect();
        found.remove(&(1, 5));
        let spans = [FaultSpan {
            injected: t0 + ms_(100),
            healed: Some(t0 + ms_(800)),
            degrades: false,
        }];
        let window = Window {
            start: t0,
            end: t0 + ms_(1000),
        };
        let m = Measurement::compute(&history, &spans, window, &found);
        let info = FaultInfo {
            kind: "delete-primary".into(),
            mode: "kill".into(),
            victim: Some("node1".into()),
            injected_at: Timestamp::from(history.wall(t0 + ms_(100))),
        };
        Report::from_draft(Draft {
            run_id: "r1".into(),
            scenario: "unit::sample".into(),
            seed: None,
            target: TargetInfo {
                kind: "local".into(),
                rw_dsn: "postgresql://postgres@127.0.0.11:5432/postgres".into(),
                nodes: 3,
                software: [("patroni".to_string(), "3.1.2".to_string())].into(),
            },
            started: t0,
            slo: Slo::max_rto(Duration::from_secs(1)),
            history: &history,
            window,
            faults: vec![(info, t0 + ms_(100), Some(Timestamp::now()), false)],
            measurement: &m,
            events: {
                let at = |after: u64| Timestamp::from(history.wall(t0 + ms_(100 + after)));
                let mut events = vec![Event::now(EventKind::ProbeStarted, None)];
                events.extend(extra(&at));
                events
            },
            warnings: vec!["a warning".into()],
            workloads: Vec::new(),
            slo_on: None,
        })
    }

    #[test]
    fn phases_follow_the_marks_and_add_up_to_the_rto() {
        let mark = |p: Phase, at: Timestamp| {
            Event::new(EventKind::PhaseEnded(p), at, Some("node2".into()))
        };
        let report = sample_with(|at| {
            vec![
                mark(Phase::Detection, at(200)),
                // No election mark: election is folded into promotion.
                mark(Phase::Promotion, at(300)),
                mark(Phase::Routing, at(350)),
                // After the recovery: ignored.
                mark(Phase::Detection, at(5000)),
            ]
        });
        let rto = report.rto_ms.expect("recovered");
        let names: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["detection", "promotion", "routing", "first_write"]);
        let ms: Vec<f64> = report.phases.iter().map(|p| p.ms).collect();
        assert_eq!(&ms[..3], &[200.0, 100.0, 50.0]);
        let sum: f64 = ms.iter().sum();
        assert!((sum - rto).abs() < 1e-6, "{sum} vs {rto}");
        assert_eq!(report.phases[0].at, report.faults[0].injected_at);
        assert_eq!(report.faults[0].phases, report.phases);
        assert!(
            report.to_string().contains("phases      detection 0.200s"),
            "{report}"
        );
        let back: Report = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(back.phases, report.phases);
    }

    #[test]
    fn without_marks_there_are_no_phases() {
        let report = sample();
        assert!(report.phases.is_empty());
        assert!(!report.to_string().contains("phases"));
        // Reports written before phases existed still read.
        let mut json = serde_json::to_value(&report).unwrap();
        json.as_object_mut().unwrap().remove("phases");
        let back: Report = serde_json::from_value(json).unwrap();
        assert!(back.phases.is_empty());
    }

    #[test]
    fn the_report_round_trips_through_json() {
        let report = sample();
        let text = serde_json::to_string_pretty(&report).expect("serialises");
        let back: Report = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, report);
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
        assert_eq!(json["history"][0]["outcome"], "acknowledged");
        assert_eq!(
            json["history"][0]["started_ms"], -100.0,
            "relative to the fault"
        );
        assert_eq!(json["history"][10]["sqlstate"], "57P01");
        assert_eq!(json["lost"][0]["writer"], 1);
        assert_eq!(json["lost"][0]["seq"], 5);
        // Failures and one indeterminate until 600 ms; acknowledged again at 611 ms.
        assert_eq!(json["faults"][0]["rto_ms"], 511.0);
        assert_eq!(json["failure"], "slo", "one write lost: {text}");
    }

    #[test]
    fn junit_carries_each_workloads_figures_and_the_series_judged() {
        let mut report = sample();
        report.workloads.push(WorkloadRecord {
            name: "orders".into(),
            slo: true,
            verified: true,
            rto_ms: Some(5742.0),
            fault_rto_ms: vec![Some(5742.0)],
            write_gap_ms: Some(5750.5),
            median_latency_ms: 2.0,
            p99_latency_ms: 9.0,
            writes: WriteCounts {
                attempted: 10,
                acknowledged: 7,
                indeterminate: 1,
                ..WriteCounts::default()
            },
            lost: vec!["42".into()],
            errors: Vec::new(),
            panics: Vec::new(),
            history: Vec::new(),
        });
        let xml = junit::to_xml(&report, "suite").expect("xml");
        for (name, value) in [
            ("workload_orders_rto_ms", "5742.000"),
            ("workload_orders_write_gap_ms", "5750.500"),
            ("workload_orders_acknowledged_writes", "7"),
            ("workload_orders_indeterminate_writes", "1"),
            ("workload_orders_lost_writes", "1"),
            ("slo_on", "orders"),
        ] {
            let prop = format!(r#"<property name="{name}" value="{value}"/>"#);
            assert!(xml.contains(&prop), "{prop} missing from {xml}");
        }
        // The summary names the series the SLO was judged on, first.
        let summary = report.summary();
        assert!(
            summary.contains(" — SLO judged on workload orders: RTO 5.742s (max "),
            "{summary}"
        );
        assert!(
            summary.contains("write gap 5.750s, 1 lost; probe: RTO "),
            "{summary}"
        );
    }

    #[test]
    fn a_slowdown_without_outage_is_said_in_the_summary_junit_and_json() {
        let mut report = sample();
        let lat = |p50_ms, p99_ms| LatencyRecord {
            count: 100,
            p50_ms,
            p99_ms,
        };
        report.rto_ms = None;
        report.faults[0].rto_ms = None;
        report.faults[0].kind = "throttle-primary-disk".into();
        report.faults[0].slowdown = Some(SlowdownRecord {
            outage: false,
            before: lat(2.7, 4.0),
            during: lat(250.7, 376.0),
            after: Some(lat(3.9, 6.0)),
            factor: 250.7 / 2.7,
            outage_start_ms: None,
            longest_gap_ms: 376.0,
        });
        let summary = report.summary();
        assert!(
            summary.contains("RTO none (no outage, a slowdown)"),
            "{summary}"
        );
        assert!(
            summary.contains(
                "throttle-primary-disk: slowdown ×92.9 (commit p50 2.7 → 250.7 → 3.9 ms, \
                 p99 4.0 → 376.0 ms), longest gap 376 ms, no outage"
            ),
            "{summary}"
        );
        let xml = junit::to_xml(&report, "suite").expect("xml");
        for (name, value) in [
            ("slowdown_factor", "92.85"),
            ("outage", "false"),
            ("latency_during_p99_ms", "376.000"),
            ("latency_after_p50_ms", "3.900"),
        ] {
            let prop = format!(r#"<property name="{name}" value="{value}"/>"#);
            assert!(xml.contains(&prop), "{prop} missing from {xml}");
        }
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.faults[0].slowdown, report.faults[0].slowdown);
        // Older reports have no `slowdown` and read as before.
        let old = json.replace(r#","slowdown":"#, r#","x_slowdown":"#);
        let back: Report = serde_json::from_str(&old).unwrap();
        assert_eq!(back.faults[0].slowdown, None);
    }

    #[test]
    fn failures_other_than_the_slo_name_their_cause() {
        let mut report = sample();
        report.add_failure(FailureKind::Panic, "test body panicked: boom");
        assert_eq!(report.failure, Some(FailureKind::Panic));
        assert!(!report.passed());
        let xml = junit::to_xml(&report, "suite").expect("xml");
        assert!(xml.contains("<testsuites"), "{xml}");
        assert!(xml.contains(r#"<testsuite name="suite""#), "{xml}");
        assert!(xml.contains(r#"type="panic""#), "{xml}");
        assert!(
            xml.contains(r#"<property name="lost_writes" value="1"/>"#),
            "{xml}"
        );
        assert!(
            report.summary_line().contains("FAILED"),
            "{}",
            report.summary_line()
        );
    }
}
