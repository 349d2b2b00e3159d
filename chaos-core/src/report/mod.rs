//! Reports people and CI read: a typed JSON document ([`Report`], which
//! round-trips through serde), its human summary (`Display`), and JUnit XML.

mod build;
pub mod diagnose;
pub mod finding;
pub(crate) mod json;
pub mod junit;
pub mod picture;
mod text;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::probe::IndeterminateReason;
use crate::slo::{Rpo, Slo};
use crate::timeline::{Event, Timestamp, from_ms, ms};
use crate::verify::{WriteCounts, WriteId};

pub(crate) use build::{Draft, WorkloadDraft};
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
    /// [`Phase`](crate::timeline::Phase)); empty when the target marked none or there was no recovery.
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
    /// The phase's name ([`Phase::name`](crate::timeline::Phase::name)).
    pub name: String,
    /// How long it lasted.
    pub ms: f64,
    /// When it began (the fault's injection, or the end of the phase before).
    pub at: Timestamp,
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

impl Report {
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
    /// [`crate::Error::Io`] or [`crate::Error::JsonRead`].
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
}

#[cfg(test)]
mod tests;
