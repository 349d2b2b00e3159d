//! The report in words: the one-line summary and the multi-line text
//! (`Display`) the test harness and the command line print.

use std::fmt;
use std::time::Duration;

use super::{Report, WorkloadRecord};
use crate::slo::fmt_duration;
use crate::timeline::{Timestamp, from_ms};

impl Report {
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
