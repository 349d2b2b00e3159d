//! What a target's configuration cost a run: [`Finding`]s, measured ones
//! ranked by the time they cost, checklist ones after them.
//!
//! A target produces them after the run, from the measured phases
//! ([`Target::advise_run`](crate::cluster::Target::advise_run)); the report
//! keeps them in `findings`, lists them first among its warnings, and its
//! summary line names the costliest.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::timeline::Phase;

/// One setting of the target and what it cost this run's RTO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The setting, e.g. `spec.primaryLease.leaseDurationSeconds`.
    pub setting: String,
    /// Its value in the run, e.g. `15` or `15 (default)`.
    pub value: String,
    /// The RTO phases it governs, in order.
    pub phases: Vec<Phase>,
    /// The time it cost this run, estimated from the measured phases, in ms;
    /// `None`: not measured (a deviation from a checklist).
    pub cost_ms: Option<f64>,
    /// How long the phases it governs lasted in this run, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases_ms: Option<f64>,
    /// Why, in words.
    pub reason: String,
    /// What to change.
    pub fix: String,
    /// A value to try, e.g. `5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested: Option<String>,
    /// The `chaos experiment --set NAME=VALUE` settings that try it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variant: Vec<String>,
}

impl Finding {
    /// Whether the cost was measured in this run.
    pub fn is_measured(&self) -> bool {
        self.cost_ms.is_some()
    }

    /// The governed phases' names joined by `+`, e.g. `detection+election`.
    pub fn phase_names(&self) -> String {
        self.phases
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// `spec.failoverDelay=30: ~30.0 s of 31.2 s detection; try 0` for a
    /// measured finding, `spec.failoverDelay=30` otherwise.
    pub fn headline(&self) -> String {
        let mut out = format!("{}={}", self.setting, self.value);
        if let Some(cost) = self.cost_ms {
            out.push_str(&format!(": ~{:.1} s", cost / 1000.0));
            if let Some(of) = self.phases_ms {
                out.push_str(&format!(" of {:.1} s {}", of / 1000.0, self.phase_names()));
            }
        }
        if let Some(s) = &self.suggested {
            out.push_str(&format!("; try {s}"));
        }
        out
    }

    /// The command line that tries the suggestion, if there is one:
    /// `chaos experiment --set A=1 --set B=2`.
    pub fn experiment(&self) -> Option<String> {
        (!self.variant.is_empty()).then(|| {
            let sets: Vec<String> = self.variant.iter().map(|v| format!("--set {v}")).collect();
            format!("chaos experiment {}", sets.join(" "))
        })
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_measured() {
            write!(f, "not measured: ")?;
        }
        write!(f, "{}: {}. Fix: {}", self.headline(), self.reason, self.fix)?;
        if let Some(cmd) = self.experiment() {
            write!(f, ". Try: {cmd}")?;
        }
        Ok(())
    }
}

/// Sorts `findings`: measured ones by cost, the costliest first, then the
/// unmeasured ones in the order given.
pub fn rank(findings: &mut [Finding]) {
    findings.sort_by(|a, b| match (a.cost_ms, b.cost_ms) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

/// The note a report carries when findings came but none was measured.
pub const NOT_MEASURED_NOTE: &str = "no RTO phase was measured in this run (the target marked \
     no phase end): the configuration findings below are a checklist, not measured";

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(setting: &str, cost_ms: Option<f64>) -> Finding {
        Finding {
            setting: setting.into(),
            value: "15".into(),
            phases: vec![Phase::Detection, Phase::Election],
            cost_ms,
            phases_ms: cost_ms.map(|c| c + 2700.0),
            reason: "r".into(),
            fix: "f".into(),
            suggested: Some("5".into()),
            variant: vec!["a=5".into(), "b=3".into()],
        }
    }

    #[test]
    fn ranked_by_cost_then_unmeasured() {
        let mut f = vec![
            finding("checklist", None),
            finding("small", Some(100.0)),
            finding("big", Some(15_000.0)),
            finding("checklist-2", None),
        ];
        rank(&mut f);
        let order: Vec<&str> = f.iter().map(|f| f.setting.as_str()).collect();
        assert_eq!(order, ["big", "small", "checklist", "checklist-2"]);
    }

    /// A report of a kill with an RTO of `rto_ms` and one warning.
    fn report(rto_ms: f64) -> crate::report::Report {
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "run_id": "r1", "scenario": "unit::kill",
            "target": { "kind": "cnpg", "rw_dsn": "postgresql://x", "nodes": 3 },
            "started_at": "2026-11-27T09:59:58Z", "origin": "2026-11-27T10:00:00Z",
            "duration_ms": 30000.0, "window_start_ms": -1000.0, "window_end_ms": 29000.0,
            "fault": null, "faults": [],
            "slo": { "max_rto_ms": 10000.0, "max_lost_writes": 0, "max_lost_window_ms": null },
            "rto_ms": rto_ms, "write_gap_ms": rto_ms, "write_gap_start_ms": 0.0,
            "unexplained_gap_ms": null, "resolution_ms": 10.0, "median_latency_ms": 2.0,
            "lost_window_ms": 0.0,
            "writes": { "attempted": 100, "acknowledged": 90, "failed": 10, "indeterminate": 0,
                        "lost": 0, "indeterminate_found": 0, "indeterminate_missing": 0,
                        "failed_but_present": 0 },
            "lost": [], "split_brain": false, "split_brain_writes": 0, "phases": [],
            "events": [], "warnings": ["replication"], "history": [],
            "passed": false, "failure": "slo", "violations": []
        }))
        .expect("a report")
    }

    #[test]
    fn the_report_ranks_lists_and_names_the_costliest() {
        let mut r = report(17_700.0);
        r.add_findings(
            vec![
                finding("checklist", None),
                finding("spec.primaryLease.leaseDurationSeconds", Some(15_000.0)),
                finding("spec.failoverDelay", Some(500.0)),
            ],
            1,
        );
        let order: Vec<&str> = r.findings.iter().map(|f| f.setting.as_str()).collect();
        assert_eq!(
            order,
            [
                "spec.primaryLease.leaseDurationSeconds",
                "spec.failoverDelay",
                "checklist"
            ]
        );
        // After the warnings that came before them, in rank order.
        assert_eq!(r.warnings[0], "replication");
        assert!(
            r.warnings[1].starts_with("spec.primaryLease"),
            "{:?}",
            r.warnings
        );
        assert!(
            r.warnings[3].starts_with("not measured: checklist"),
            "{:?}",
            r.warnings
        );
        let summary = r.summary_line();
        assert!(
            summary.contains(
                "; RTO dominated by spec.primaryLease.leaseDurationSeconds=15: ~15.0 s of \
                 17.7 s detection+election; try 5"
            ),
            "{summary}"
        );
        // Under half the RTO it is the largest cost, not a dominant one.
        r.rto_ms = Some(40_000.0);
        assert!(
            r.summary_line()
                .contains("; largest RTO cost spec.primaryLease"),
            "{}",
            r.summary_line()
        );
        let back: crate::report::Report =
            serde_json::from_str(&serde_json::to_string(&r).expect("json")).expect("back");
        assert_eq!(back.findings, r.findings);
    }

    #[test]
    fn a_checklist_alone_is_said_to_be_one_and_named_by_no_summary() {
        let mut r = report(5_000.0);
        r.add_findings(vec![finding("spec.walStorage", None)], 0);
        assert_eq!(r.warnings[0], NOT_MEASURED_NOTE);
        assert!(
            r.warnings[1].starts_with("not measured: "),
            "{:?}",
            r.warnings
        );
        assert_eq!(r.warnings[2], "replication");
        assert_eq!(r.dominant_finding(), None);
        assert!(!r.summary_line().contains("RTO dominated"));
        // Nothing to add: nothing changes.
        let mut empty = report(5_000.0);
        empty.add_findings(Vec::new(), 0);
        assert_eq!(empty.warnings, ["replication"]);
    }

    #[test]
    fn headline_and_text() {
        let f = finding("spec.primaryLease.leaseDurationSeconds", Some(15_000.0));
        assert_eq!(
            f.headline(),
            "spec.primaryLease.leaseDurationSeconds=15: ~15.0 s of 17.7 s detection+election; try 5"
        );
        assert_eq!(
            f.experiment().as_deref(),
            Some("chaos experiment --set a=5 --set b=3")
        );
        assert!(
            f.to_string()
                .ends_with("Try: chaos experiment --set a=5 --set b=3")
        );
        let unmeasured = finding("spec.walStorage", None);
        assert!(
            unmeasured
                .to_string()
                .starts_with("not measured: spec.walStorage=15; try 5: r.")
        );
        // Round trip, with the phases by name.
        let json = serde_json::to_value(&f).expect("json");
        assert_eq!(json["phases"], serde_json::json!(["detection", "election"]));
        assert_eq!(serde_json::from_value::<Finding>(json).expect("back"), f);
    }
}
