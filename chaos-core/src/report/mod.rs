//! Reports people and CI read: a human summary (`Display`) and a JSON file.

mod json;
pub mod junit;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::slo::{Slo, fmt_duration};
use crate::verify::{Measurement, WriteId};

pub use json::{default_report_dir, redact_dsn};

/// What was faulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    /// `local`, `cnpg`, …
    pub kind: String,
    /// The read-write endpoint, without password.
    pub rw_dsn: String,
    /// Number of database nodes.
    pub nodes: usize,
}

/// The fault that was injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultInfo {
    /// Kind of fault, e.g. `delete-primary`.
    pub kind: String,
    /// Details, e.g. `kill` or `graceful`.
    pub mode: String,
    /// The node it hit.
    pub node: Option<String>,
    /// Wall-clock time of injection.
    pub injected_at: SystemTime,
}

/// A moment in the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened, e.g. `fault injected`.
    pub name: String,
    /// Wall-clock time.
    pub at: SystemTime,
    /// Extra detail, e.g. the new leader's name.
    pub detail: Option<String>,
}

impl Event {
    /// A new event.
    pub fn new(name: impl Into<String>, at: SystemTime, detail: Option<String>) -> Self {
        Event {
            name: name.into(),
            at,
            detail,
        }
    }
}

/// The result of one failover scenario.
#[derive(Debug, Clone)]
pub struct Report {
    /// Scenario name (also the report's file name).
    pub scenario: String,
    /// The target.
    pub target: TargetInfo,
    /// The fault.
    pub fault: FaultInfo,
    /// The objectives.
    pub slo: Slo,
    /// The measurement.
    pub measurement: Measurement,
    /// Timeline of events, in order.
    pub events: Vec<Event>,
    /// SLO violations, in words; empty when passed.
    pub violations: Vec<String>,
}

impl Report {
    /// Builds a report, checking `measurement` against `slo`.
    pub fn new(
        scenario: impl Into<String>,
        target: TargetInfo,
        fault: FaultInfo,
        slo: Slo,
        measurement: Measurement,
        mut events: Vec<Event>,
    ) -> Self {
        events.sort_by_key(|e| e.at);
        let violations = slo.check(&measurement);
        Report {
            scenario: scenario.into(),
            target,
            fault,
            slo,
            measurement,
            events,
            violations,
        }
    }

    /// Whether every objective was met.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The measured RTO.
    pub fn rto(&self) -> Option<Duration> {
        self.measurement.rto
    }

    /// The acknowledged writes that were lost.
    pub fn lost(&self) -> &[WriteId] {
        &self.measurement.lost
    }

    /// Writes the JSON report to `dir/<scenario>.json` and returns its path.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when the file cannot be written.
    pub fn write_json_to(&self, dir: &Path) -> crate::Result<PathBuf> {
        json::write(self, dir)
    }

    /// Writes the JSON report to `$CHAOS_REPORT_DIR` (default
    /// `target/chaos-reports/` of the enclosing workspace).
    ///
    /// # Errors
    /// [`crate::Error::Io`] when the file cannot be written.
    pub fn write_json(&self) -> crate::Result<PathBuf> {
        json::write(self, &default_report_dir())
    }

    /// Writes the JUnit XML report to `dir/<scenario>.xml`; `elapsed` is the
    /// test's duration.
    ///
    /// # Errors
    /// [`crate::Error::Io`] when the file cannot be written.
    pub fn write_junit_to(&self, dir: &Path, elapsed: Duration) -> crate::Result<PathBuf> {
        junit::write(self, dir, elapsed)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json::to_value(self)
    }

    fn offset(&self, at: SystemTime) -> String {
        let base = self.fault.injected_at;
        match at.duration_since(base) {
            Ok(d) => format!("+{}", fmt_duration(d)),
            Err(e) => format!("-{}", fmt_duration(e.duration())),
        }
    }
}

fn opt(d: Option<Duration>) -> String {
    d.map(fmt_duration)
        .unwrap_or_else(|| "none (no recovery)".into())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.measurement;
        let w = &m.writes;
        let verdict = if self.passed() { "PASSED" } else { "FAILED" };
        writeln!(f, "chaos report: {} — {verdict}", self.scenario)?;
        writeln!(
            f,
            "  target      {} ({} nodes) {}",
            self.target.kind, self.target.nodes, self.target.rw_dsn
        )?;
        writeln!(
            f,
            "  fault       {} ({}){} at {}",
            self.fault.kind,
            self.fault.mode,
            self.fault
                .node
                .as_ref()
                .map(|n| format!(" on {n}"))
                .unwrap_or_default(),
            humantime::format_rfc3339_micros(self.fault.injected_at)
        )?;
        writeln!(
            f,
            "  RTO         {}  (max {})   write gap {}   resolution ±{} ms",
            opt(m.rto),
            fmt_duration(self.slo.max_rto),
            opt(m.write_gap),
            m.resolution.as_millis()
        )?;
        writeln!(
            f,
            "  writes      {} attempted, {} acknowledged, {} failed, {} indeterminate \
             ({} committed, {} not)",
            w.attempted,
            w.acknowledged,
            w.failed,
            w.indeterminate,
            w.indeterminate_found,
            w.indeterminate_missing
        )?;
        writeln!(
            f,
            "  RPO         {} acknowledged writes lost (max {}){}",
            w.lost,
            self.slo.max_lost_writes,
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
            if m.split_brain_writes == 0 {
                "none".to_string()
            } else {
                format!("{} writes on an old timeline", m.split_brain_writes)
            }
        )?;
        writeln!(f, "  timeline")?;
        for e in &self.events {
            writeln!(
                f,
                "    {:>10}  {}{}",
                self.offset(e.at),
                e.name,
                e.detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )?;
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
