//! Repeated runs, comparisons and configuration experiments.
//!
//! One failover says little about an SLO: [`Runs`] runs the same scenario N
//! times on one target (healed and healthy between runs) and summarises the
//! set as a [`RunSet`] — RTO p50 / p95 / max, each phase's median, lost writes
//! over all runs, every run's seed — checked against an SLO that may be stated
//! on a percentile ([`Slo::max_rto_p95`](crate::slo::Slo::max_rto_p95)).
//! [`compare()`] tells whether two reports or sets differ, with a bootstrap
//! confidence interval, and [`ConfigExperiment`] answers "did this setting
//! change the RTO?" on the embedded cluster.
//!
//! ```no_run
//! use std::time::Duration;
//! use chaos_core::prelude::*;
//! use chaos_core::runs::Runs;
//!
//! # async fn demo() -> chaos_core::Result<()> {
//! let cluster = std::sync::Arc::new(LocalCluster::builder().nodes(3).start().await?);
//! let slo = Slo::max_rto(Duration::from_secs(30)).max_rto_p95(Duration::from_secs(10));
//! let outcome = Runs::new(Experiment::new("kill_primary").slo(slo))
//!     .repeat(10)
//!     .run(cluster, |ctx| {
//!         Box::pin(async move { ctx.inject(DeletePrimary::kill()).await.map(|_| ()) })
//!     })
//!     .await?;
//! let set = &outcome.set;
//! println!("{}", set.summary_line());
//! assert!(outcome.passed(), "{}", set.violations.join("; "));
//! # Ok(()) }
//! ```

pub mod compare;
mod config;
mod error;
pub mod junit;
pub mod picture;
pub mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use compare::{Comparison, Difference, Sample, Verdict};
pub use config::{ConfigExperiment, ExperimentResult, PATRONI_SETTINGS, Setting};
pub use error::RunSetError;
pub use stats::Distribution;

pub use crate::seed::{base_seed, run_seed};

use crate::cluster::Target;
use crate::experiment::{Experiment, FailoverCtx, RunOutcome, TestResult};
use crate::report::json::{file_stem, write_file};
use crate::report::{Report, SloRecord, TargetInfo};
use crate::slo::fmt_duration;
use crate::timeline::{Phase, from_ms};
use crate::{Error, Result};

/// The `kind` of a set-of-runs JSON file, which tells it from a report.
pub const RUN_SET_KIND: &str = "chaos-run-set";

/// A set of runs of one scenario, as written to `<scenario>.runs.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSet {
    /// Always [`RUN_SET_KIND`].
    pub kind: String,
    /// [`SCHEMA_VERSION`](crate::report::SCHEMA_VERSION) of the writer.
    pub schema_version: u32,
    /// The scenario each run measured.
    pub scenario: String,
    /// What the set is called in comparisons (`baseline`, `variant`), if not
    /// its file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The settings the runs ran with (an experiment's `name=value`s).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
    /// The target.
    pub target: Option<TargetInfo>,
    /// The objectives (with `max_rto_p95_ms` when stated on a percentile).
    pub slo: SloRecord,
    /// The seed the runs' seeds were drawn from (`CHAOS_SEED` replays it).
    pub seed: u64,
    /// The figures over all runs.
    pub stats: RunStats,
    /// Whether every run passed and the percentile objective held.
    pub passed: bool,
    /// What failed, in words.
    pub violations: Vec<String>,
    /// Every run's report, in order.
    pub runs: Vec<Report>,
}

/// The figures of a set of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    /// Runs made.
    pub runs: usize,
    /// Runs with an RTO (that recovered).
    pub recovered: usize,
    /// The RTO over the recovered runs: min, p50, p95, max, mean.
    pub rto: Option<Distribution>,
    /// Each phase's median over the runs that had it, in phase order.
    pub phases: Vec<PhaseStat>,
    /// Acknowledged writes lost, over all runs.
    pub lost_total: u64,
    /// Indeterminate writes, over all runs.
    pub indeterminate_total: u64,
    /// Runs with split-brain writes.
    pub split_brain_runs: usize,
    /// Runs that failed their own objectives.
    pub failed_runs: usize,
    /// Every run's seed, in order.
    pub seeds: Vec<u64>,
}

/// One phase over a set of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseStat {
    /// The phase's name ([`Phase::name`]).
    pub name: String,
    /// Its median duration.
    pub median_ms: f64,
    /// Runs that had it.
    pub runs: usize,
}

impl RunStats {
    /// The figures of `reports`.
    pub fn of(reports: &[Report]) -> Self {
        let rtos: Vec<f64> = reports.iter().filter_map(|r| r.rto_ms).collect();
        let phases = Phase::ALL
            .iter()
            .filter_map(|p| {
                let v: Vec<f64> = reports
                    .iter()
                    .filter_map(|r| r.phases.iter().find(|x| x.name == p.name()).map(|x| x.ms))
                    .collect();
                Some(PhaseStat {
                    name: p.name().into(),
                    median_ms: stats::median(&v)?,
                    runs: v.len(),
                })
            })
            .collect();
        RunStats {
            runs: reports.len(),
            recovered: rtos.len(),
            rto: Distribution::of(&rtos),
            phases,
            lost_total: reports.iter().map(|r| r.writes.lost).sum(),
            indeterminate_total: reports.iter().map(|r| r.writes.indeterminate).sum(),
            split_brain_runs: reports.iter().filter(|r| r.split_brain).count(),
            failed_runs: reports.iter().filter(|r| !r.passed).count(),
            seeds: reports.iter().filter_map(|r| r.seed).collect(),
        }
    }
}

impl RunSet {
    /// The set of `runs` of `scenario`, checked against `slo`: every run must
    /// pass its own objectives, and the RTO's p95 must be within
    /// `max_rto_p95` when stated.
    pub fn new(scenario: impl Into<String>, slo: SloRecord, seed: u64, runs: Vec<Report>) -> Self {
        let stats = RunStats::of(&runs);
        let mut violations = Vec::new();
        for (i, r) in runs.iter().enumerate() {
            for v in &r.violations {
                violations.push(format!("run {} of {}: {v}", i + 1, runs.len()));
            }
        }
        if let Some(bound) = slo.max_rto_p95_ms {
            match &stats.rto {
                Some(d) if d.p95_ms > bound => violations.push(format!(
                    "RTO p95 {} exceeds max_rto_p95 {} over {} recovered run(s) (p50 {}, max {})",
                    fmt_duration(from_ms(d.p95_ms)),
                    fmt_duration(from_ms(bound)),
                    d.n,
                    fmt_duration(from_ms(d.p50_ms)),
                    fmt_duration(from_ms(d.max_ms)),
                )),
                Some(_) => {}
                None => violations.push(format!(
                    "no run recovered: no RTO p95 to hold to max_rto_p95 {}",
                    fmt_duration(from_ms(bound))
                )),
            }
        }
        if runs.is_empty() {
            violations.push("no run was made".into());
        }
        RunSet {
            kind: RUN_SET_KIND.into(),
            schema_version: crate::report::SCHEMA_VERSION,
            scenario: scenario.into(),
            label: None,
            settings: Vec::new(),
            target: runs.first().map(|r| r.target.clone()),
            slo,
            seed,
            stats,
            passed: violations.is_empty(),
            violations,
            runs,
        }
    }

    /// One line with the figures, for logs: `chaos: ` and [`summary`](Self::summary).
    pub fn summary_line(&self) -> String {
        format!("chaos: {}", self.summary())
    }

    /// The set's name, verdict, RTO percentiles, recoveries, losses, phase
    /// medians and seed in one line, without the `chaos: ` prefix.
    pub fn summary(&self) -> String {
        let verdict = if self.passed { "PASSED" } else { "FAILED" };
        let d = |v: f64| fmt_duration(from_ms(v));
        let rto = match &self.stats.rto {
            Some(r) => format!(
                "RTO p50 {} p95 {} max {}",
                d(r.p50_ms),
                d(r.p95_ms),
                d(r.max_ms)
            ),
            None => "no RTO".into(),
        };
        let slo = match self.slo.max_rto_p95_ms {
            Some(p95) => format!("max_rto_p95 {}, max_rto {}", d(p95), d(self.slo.max_rto_ms)),
            None => format!("max_rto {}", d(self.slo.max_rto_ms)),
        };
        let phases = if self.stats.phases.is_empty() {
            String::new()
        } else {
            format!(
                "; phase medians {}",
                self.stats
                    .phases
                    .iter()
                    .map(|p| format!("{} {}", p.name, d(p.median_ms)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "{} ×{} {verdict} — {rto} ({slo}), {} of {} recovered, {} acknowledged writes lost, {} indeterminate{phases}; seed {}",
            self.scenario,
            self.stats.runs,
            self.stats.recovered,
            self.stats.runs,
            self.stats.lost_total,
            self.stats.indeterminate_total,
            self.seed
        )
    }

    /// Writes the set to `dir/<scenario>.runs.json` and returns its path.
    ///
    /// # Errors
    /// [`Error::ReportWrite`] naming the file when it cannot be written.
    pub fn write_json_to(&self, dir: &Path) -> Result<PathBuf> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::json_write(format!("the set of runs {}", self.scenario), e))?;
        write_file(
            dir,
            &format!("{}.runs.json", file_stem(&self.scenario)),
            text.as_bytes(),
        )
    }

    /// Writes the set's JUnit XML (a test case per run and one for the set)
    /// to `dir/<scenario>.runs.xml` and returns its path.
    ///
    /// # Errors
    /// [`Error::ReportWrite`] naming the file when it cannot be written.
    pub fn write_junit_to(&self, dir: &Path, suite: &str) -> Result<PathBuf> {
        let xml = junit::set_to_xml(self, suite)?;
        write_file(
            dir,
            &format!("{}.runs.xml", file_stem(&self.scenario)),
            xml.as_bytes(),
        )
    }

    /// Reads a set written by [`write_json_to`](Self::write_json_to).
    ///
    /// # Errors
    /// [`Error::Io`] when unreadable; [`Error::JsonRead`] when not a set.
    pub fn read_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading the set of runs {}", path.display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::json_read(format!("the set of runs {}", path.display()), e))
    }
}

type RunCallback = Arc<dyn Fn(usize, usize, &RunOutcome) + Send + Sync>;
type StartCallback = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// The same scenario N times on one target. Between runs the target is
/// repaired and waited for until healthy (every node back, replicas
/// streaming), so that each run starts from the same state.
#[derive(Clone)]
#[must_use]
pub struct Runs {
    experiment: Experiment,
    repeat: usize,
    seed: Option<u64>,
    healthy_timeout: Duration,
    on_start: Option<StartCallback>,
    on_done: Option<RunCallback>,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs")
            .field("experiment", &self.experiment)
            .field("repeat", &self.repeat)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// What [`Runs::run`] produced.
#[derive(Debug)]
pub struct RunSetOutcome {
    /// The set, with every run's report.
    pub set: RunSet,
    /// Problems outside the runs' reports (a body's error or panic, a run
    /// without a report, a target that did not come back), by run.
    pub errors: Vec<RunSetError>,
    /// Files written: every run's JSON, the set's JSON and HTML.
    pub report_paths: Vec<PathBuf>,
}

impl RunSetOutcome {
    /// Whether every run passed, nothing else went wrong and the set's SLO held.
    pub fn passed(&self) -> bool {
        self.set.passed && self.errors.is_empty()
    }
}

impl Runs {
    /// `experiment` once; set the count with [`repeat`](Self::repeat). Each
    /// run's report is named `<scenario>-run<i>` (`kill-run03`).
    pub fn new(experiment: Experiment) -> Self {
        Runs {
            experiment,
            repeat: 1,
            seed: None,
            healthy_timeout: Duration::from_secs(120),
            on_start: None,
            on_done: None,
        }
    }

    /// How many runs (at least 1).
    pub fn repeat(mut self, n: usize) -> Self {
        self.repeat = n.max(1);
        self
    }

    /// The set's seed (default: `CHAOS_SEED`, else fresh). Run `i` gets
    /// [`run_seed`]`(seed, i)`, which bodies read with [`FailoverCtx::seed`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How long to wait for the target to be healthy between runs (default 120 s).
    pub fn healthy_timeout(mut self, timeout: Duration) -> Self {
        self.healthy_timeout = timeout;
        self
    }

    /// Called before run `i` (1-based) of `n` starts.
    pub fn on_start(mut self, f: impl Fn(usize, usize) + Send + Sync + 'static) -> Self {
        self.on_start = Some(Arc::new(f));
        self
    }

    /// Called after run `i` (1-based) of `n` with its outcome.
    pub fn on_done(
        mut self,
        f: impl Fn(usize, usize, &RunOutcome) + Send + Sync + 'static,
    ) -> Self {
        self.on_done = Some(Arc::new(f));
        self
    }

    /// The experiment each run uses.
    pub fn experiment(&self) -> &Experiment {
        &self.experiment
    }

    /// Runs the scenario `repeat` times on `target` with `body`, then writes
    /// the set's JSON and HTML beside the runs' reports (unless the
    /// experiment writes no reports) and prints its summary line.
    ///
    /// # Errors
    /// Only when the target cannot be made healthy before the first run.
    pub async fn run<R, F>(&self, target: Arc<dyn Target>, body: F) -> Result<RunSetOutcome>
    where
        R: TestResult + Send,
        F: for<'a> Fn(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
    {
        let mut outcome = self.run_only(target, &body, 0, self.repeat).await?;
        self.finish(&mut outcome);
        Ok(outcome)
    }

    /// The runs, without writing the set: runs numbered `first + 1 ..=
    /// first + count` of the set (for interleaved experiments).
    pub(crate) async fn run_only<R, F>(
        &self,
        target: Arc<dyn Target>,
        body: &F,
        first: usize,
        count: usize,
    ) -> Result<RunSetOutcome>
    where
        R: TestResult + Send,
        F: for<'a> Fn(&'a mut FailoverCtx) -> BoxFuture<'a, R>,
    {
        let base = self.seed.unwrap_or_else(base_seed);
        let total = first + count;
        let mut reports = Vec::new();
        let mut errors = Vec::new();
        let mut paths = Vec::new();
        for i in first..total {
            if let Err(e) = target.repair(self.healthy_timeout).await {
                if i == first {
                    return Err(e);
                }
                errors.push(RunSetError::Unhealthy {
                    run: i + 1,
                    source: e,
                });
                break;
            }
            if let Some(f) = &self.on_start {
                f(i + 1, self.repeat.max(total));
            }
            let seed = run_seed(base, i);
            let experiment = self
                .experiment
                .clone()
                .renamed(format!("{}-run{:02}", self.experiment.name(), i + 1))
                .with_seed(seed)
                .without_junit()
                .print_summary(false);
            let mut out = experiment.run(target.clone(), body).await?;
            if let Some(f) = &self.on_done {
                f(i + 1, self.repeat.max(total), &out);
            }
            let body_failed = !matches!(out.body, crate::experiment::BodyOutcome::Passed);
            errors.extend(run_errors(i + 1, &mut out));
            paths.extend(out.report_paths.iter().cloned());
            if let Some(r) = out.report {
                reports.push(r);
            }
            if body_failed {
                // A body that errs, panics or times out would do so again:
                // the set stops here and says why.
                break;
            }
        }
        let slo = SloRecord::from(*self.experiment.slo_ref());
        let set = RunSet::new(self.experiment.name(), slo, base, reports);
        Ok(RunSetOutcome {
            set,
            errors,
            report_paths: paths,
        })
    }

    /// Writes the set's JSON and HTML and prints its summary line.
    pub(crate) fn finish(&self, outcome: &mut RunSetOutcome) {
        if self.experiment.writes_reports() {
            let dir = self.experiment.report_dir_or_default();
            match outcome.set.write_json_to(&dir) {
                Ok(p) => outcome.report_paths.push(p),
                Err(e) => outcome.errors.push(e.into()),
            }
            match crate::runs::picture::write_set_html(&outcome.set, &dir) {
                Ok(p) => outcome.report_paths.push(p),
                Err(e) => outcome.errors.push(e.into()),
            }
            match outcome
                .set
                .write_junit_to(&dir, &self.experiment.suite_name())
            {
                Ok(p) => outcome.report_paths.push(p),
                Err(e) => outcome.errors.push(e.into()),
            }
        }
        if self.experiment.prints_summary() {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr().lock(), "{}", outcome.set.summary_line());
        }
    }
}

/// What went wrong in run `run` outside its report's SLO check (its errors
/// and its body's outcome are taken out of `out`).
fn run_errors(run: usize, out: &mut RunOutcome) -> Vec<RunSetError> {
    use crate::experiment::BodyOutcome;
    let mut v: Vec<RunSetError> = std::mem::take(&mut out.errors)
        .into_iter()
        .map(|source| RunSetError::Run { run, source })
        .collect();
    match std::mem::replace(&mut out.body, BodyOutcome::Passed) {
        BodyOutcome::Passed => {}
        BodyOutcome::Failed(source) => v.push(RunSetError::BodyFailed { run, source }),
        BodyOutcome::Panicked(p) => v.push(RunSetError::BodyPanicked {
            run,
            message: crate::experiment::panic_message(p.as_ref()),
        }),
        BodyOutcome::TimedOut(after) => v.push(RunSetError::TimedOut { run, after }),
    }
    if out.report.is_none() {
        v.push(RunSetError::NoReport { run });
    }
    v
}

/// Compares two samples (see [`compare::Comparison`]).
pub fn compare(a: Sample, b: Sample, seed: u64) -> Comparison {
    Comparison::new(a, b, seed)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::SloRecord;

    /// A report of a run with `rto_ms` (none: no recovery), `lost` lost
    /// writes and a detection phase of `detection_ms`.
    pub(crate) fn report(rto_ms: Option<f64>, lost: u64, detection_ms: f64, seed: u64) -> Report {
        let phases = match rto_ms {
            Some(r) => serde_json::json!([
                { "name": "detection", "ms": detection_ms, "at": "2026-11-27T10:00:00Z" },
                { "name": "first_write", "ms": r - detection_ms, "at": "2026-11-27T10:00:05Z" }
            ]),
            None => serde_json::json!([]),
        };
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "run_id": format!("r{seed}"), "scenario": "unit::kill",
            "seed": seed,
            "target": { "kind": "local", "rw_dsn": "postgresql://x", "nodes": 3 },
            "started_at": "2026-11-27T09:59:58Z", "origin": "2026-11-27T10:00:00Z",
            "duration_ms": 9000.0, "window_start_ms": -1000.0, "window_end_ms": 8000.0,
            "fault": null, "faults": [],
            "slo": { "max_rto_ms": 30000.0, "max_lost_writes": 0, "max_lost_window_ms": null },
            "rto_ms": rto_ms, "write_gap_ms": rto_ms, "write_gap_start_ms": 0.0,
            "unexplained_gap_ms": null, "resolution_ms": 10.0, "median_latency_ms": 2.0,
            "lost_window_ms": 0.0,
            "writes": { "attempted": 100, "acknowledged": 90, "failed": 10, "indeterminate": 1,
                        "lost": lost, "indeterminate_found": 0, "indeterminate_missing": 1, "failed_but_present": 0 },
            "lost": [], "split_brain": false, "split_brain_writes": 0, "phases": phases,
            "events": [], "warnings": [], "history": [],
            "passed": lost == 0 && rto_ms.is_some(), "failure": null,
            "violations": if lost == 0 { vec![] } else { vec![format!("{lost} acknowledged writes lost (allowed: 0)")] }
        }))
        .expect("a report")
    }

    fn slo(p95_ms: Option<f64>) -> SloRecord {
        SloRecord {
            max_rto_ms: 30_000.0,
            max_lost_writes: Some(0),
            max_lost_window_ms: None,
            max_rto_p95_ms: p95_ms,
        }
    }

    #[test]
    fn percentiles_and_phase_medians_of_a_known_set() {
        // RTOs 5.1 s … 7.0 s, the worst 12 s: p50 6.0 s, p95 = 19th of 20.
        let mut runs: Vec<Report> = (0..19u32)
            .map(|i| {
                report(
                    Some(5_100.0 + 100.0 * f64::from(i)),
                    0,
                    3_000.0 + f64::from(i),
                    i.into(),
                )
            })
            .collect();
        runs.push(report(Some(12_000.0), 0, 4_000.0, 19));
        let set = RunSet::new("unit::kill", slo(Some(7_000.0)), 7, runs);
        let rto = set.stats.rto.as_ref().expect("rto");
        assert_eq!(
            (rto.n, rto.p50_ms, rto.p95_ms, rto.max_ms),
            (20, 6_050.0, 6_900.0, 12_000.0)
        );
        assert_eq!(set.stats.phases[0].name, "detection");
        assert_eq!(set.stats.phases[0].median_ms, 3_009.5);
        assert_eq!(set.stats.seeds, (0..20).collect::<Vec<u64>>());
        // One slow run in 20 does not break a p95 objective of 7 s…
        assert!(set.passed, "{:?}", set.violations);
        assert!(
            set.summary_line().contains("p95 6.900s"),
            "{}",
            set.summary_line()
        );
        // …a p95 objective of 6.5 s does, saying so.
        let strict = RunSet::new("unit::kill", slo(Some(6_500.0)), 7, set.runs.clone());
        assert!(!strict.passed);
        assert!(
            strict.violations[0].contains("RTO p95 6.900s exceeds max_rto_p95 6.500s"),
            "{:?}",
            strict.violations
        );
        // JUnit: a case per run and one for the set, failing on the percentile.
        let xml = junit::set_to_xml(&strict, "suite").expect("xml");
        assert_eq!(xml.matches("<testcase ").count(), 21, "{xml}");
        assert!(xml.contains("name=\"kill (set of 20)\""), "{xml}");
        assert!(
            xml.contains("RTO p95 6.900s exceeds max_rto_p95 6.500s"),
            "{xml}"
        );
        assert!(
            xml.contains("name=\"rto_p95_ms\" value=\"6900.000\""),
            "{xml}"
        );
    }

    #[test]
    fn a_run_that_lost_writes_fails_the_set_and_counts_in_the_total() {
        let runs = vec![
            report(Some(5_000.0), 0, 3_000.0, 1),
            report(Some(5_500.0), 3, 3_100.0, 2),
            report(None, 0, 0.0, 3),
        ];
        let set = RunSet::new("unit::kill", slo(None), 9, runs);
        assert!(!set.passed);
        assert_eq!(
            (set.stats.lost_total, set.stats.recovered, set.stats.runs),
            (3, 2, 3)
        );
        assert!(
            set.violations
                .iter()
                .any(|v| v.starts_with("run 2 of 3: 3 acknowledged writes lost")),
            "{:?}",
            set.violations
        );
        // Written and read back as a set, and told from a report.
        let dir = std::env::temp_dir().join(format!("chaos-runset-{}", std::process::id()));
        let path = set.write_json_to(&dir).expect("written");
        assert!(path.ends_with("unit__kill.runs.json"));
        assert_eq!(RunSet::read_json(&path).expect("read"), set);
        let sample = Sample::read(&path).expect("a sample");
        assert_eq!(
            (sample.rto_ms.len(), sample.unrecovered, sample.lost),
            (2, 1, 3)
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn run_seeds_are_distinct_and_replayable() {
        let seeds: std::collections::HashSet<u64> = (0..1000).map(|i| run_seed(42, i)).collect();
        assert_eq!(seeds.len(), 1000);
        assert_eq!(run_seed(42, 3), run_seed(42, 3));
        assert_ne!(run_seed(42, 3), run_seed(43, 3));
    }
}
