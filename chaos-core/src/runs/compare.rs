//! `chaos compare A B`: the difference between two reports or two sets of
//! runs, in RTO and in each phase, with a bootstrap confidence interval and a
//! plain verdict.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::RunSet;
use super::stats::{bootstrap_median_difference, median};
use crate::report::Report;
use crate::slo::fmt_duration;
use crate::timeline::{Phase, from_ms};
use crate::{Error, Result};

/// The confidence level of every interval (95 %).
pub const CONFIDENCE: f64 = 0.95;
/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 4000;

/// One side of a comparison: the RTOs and phase durations of a report (one
/// run) or of a set of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// What the side is called in verdicts: `A`/`B`, a file name, `baseline`…
    pub label: String,
    /// The scenario measured.
    pub scenario: String,
    /// The settings that distinguish it (an experiment's `--set`s), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
    /// Every run's RTO in ms (runs without recovery are left out and counted
    /// in `unrecovered`).
    pub rto_ms: Vec<f64>,
    /// Runs that never recovered.
    pub unrecovered: usize,
    /// Every phase's durations, one per run that had it, in phase order.
    pub phases: Vec<PhaseSample>,
    /// Acknowledged writes lost over all runs.
    pub lost: u64,
    /// The coarsest measurement resolution of its runs: a difference smaller
    /// than this is not called a difference.
    #[serde(default)]
    pub resolution_ms: f64,
}

/// One phase's durations over a sample's runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseSample {
    /// The phase's name ([`Phase::name`]).
    pub name: String,
    /// Its duration in each run that had it.
    pub ms: Vec<f64>,
}

impl Sample {
    /// The sample of `reports`, called `label`.
    pub fn of_reports<'a>(
        label: impl Into<String>,
        reports: impl IntoIterator<Item = &'a Report>,
    ) -> Self {
        let reports: Vec<&Report> = reports.into_iter().collect();
        let phases = Phase::ALL
            .iter()
            .map(|p| PhaseSample {
                name: p.name().into(),
                ms: reports
                    .iter()
                    .filter_map(|r| r.phases.iter().find(|x| x.name == p.name()).map(|x| x.ms))
                    .collect(),
            })
            .filter(|p| !p.ms.is_empty())
            .collect();
        Sample {
            label: label.into(),
            scenario: reports
                .first()
                .map(|r| r.scenario.clone())
                .unwrap_or_default(),
            settings: Vec::new(),
            rto_ms: reports.iter().filter_map(|r| r.rto_ms).collect(),
            unrecovered: reports.iter().filter(|r| r.rto_ms.is_none()).count(),
            phases,
            lost: reports.iter().map(|r| r.writes.lost).sum(),
            resolution_ms: reports.iter().map(|r| r.resolution_ms).fold(0.0, f64::max),
        }
    }

    /// The sample of a set of runs.
    pub fn of_set(label: impl Into<String>, set: &RunSet) -> Self {
        let mut s = Sample::of_reports(label, &set.runs);
        s.scenario = set.scenario.clone();
        s.settings = set.settings.clone();
        s
    }

    /// Reads a report (`chaos run`'s JSON) or a set of runs (`*.runs.json`)
    /// from `path`, labelled with its file name.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Config`] when it
    /// is neither a report nor a set, saying what was expected.
    pub fn read(path: &Path) -> Result<Self> {
        let label = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        const EXPECTED: &str = "the JSON of a report (written by `chaos run`, a test or a \
                                Scenario) or of a set of runs (`*.runs.json`, written with --repeat)";
        let bad = |reason: String| Error::BadInput {
            path: path.to_path_buf(),
            reason,
            expected: EXPECTED,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e})")))?;
        if value.get("kind").and_then(|k| k.as_str()) == Some(super::RUN_SET_KIND) {
            let set: RunSet = serde_json::from_value(value)
                .map_err(|e| bad(format!("an unreadable set of runs ({e})")))?;
            Ok(Sample::of_set(label, &set))
        } else {
            let report: Report = serde_json::from_value(value)
                .map_err(|e| bad(format!("neither a report nor a set of runs ({e})")))?;
            Ok(Sample::of_reports(label, [&report]))
        }
    }

    /// The median RTO in ms.
    pub fn median_rto_ms(&self) -> Option<f64> {
        median(&self.rto_ms)
    }
}

/// What a comparison concludes about one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// B's median is lower and the interval excludes zero.
    Faster,
    /// B's median is higher and the interval excludes zero.
    Slower,
    /// The interval includes zero.
    NoDetectableDifference,
    /// Too few runs for an interval (fewer than two on a side).
    TooFewRuns,
}

/// The difference in one metric (the RTO or a phase), B − A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// `rto` or a phase's name.
    pub metric: String,
    /// A's median.
    pub median_a_ms: f64,
    /// B's median.
    pub median_b_ms: f64,
    /// `median_b_ms - median_a_ms`: negative when B is faster.
    pub diff_ms: f64,
    /// The interval's lower end (bootstrap of the median difference); `None`
    /// with fewer than two runs on a side.
    pub ci_low_ms: Option<f64>,
    /// The interval's upper end.
    pub ci_high_ms: Option<f64>,
    /// What it means.
    pub verdict: Verdict,
    /// The verdict in words, e.g. "B is faster by 1.8 s ± 0.4 s".
    pub text: String,
}

/// The comparison of two samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The first side (the baseline).
    pub a: Sample,
    /// The second side (the change).
    pub b: Sample,
    /// The confidence level of the intervals.
    pub confidence: f64,
    /// Bootstrap resamples per interval.
    pub resamples: usize,
    /// The bootstrap's seed (the same seed gives the same intervals).
    pub seed: u64,
    /// The RTO's difference.
    pub rto: Option<Difference>,
    /// Each phase both sides have.
    pub phases: Vec<Difference>,
    /// Differences in lost writes or recovery, which a faster RTO does not
    /// excuse.
    pub notes: Vec<String>,
}

impl Comparison {
    /// Compares `b` against `a` with [`CONFIDENCE`], [`RESAMPLES`] and `seed`.
    pub fn new(a: Sample, b: Sample, seed: u64) -> Self {
        let floor = a.resolution_ms.max(b.resolution_ms);
        let rto = difference("rto", &a.label, &b.label, &a.rto_ms, &b.rto_ms, seed, floor);
        let phases = a
            .phases
            .iter()
            .filter_map(|pa| {
                let pb = b.phases.iter().find(|p| p.name == pa.name)?;
                difference(&pa.name, &a.label, &b.label, &pa.ms, &pb.ms, seed, floor)
            })
            .collect();
        let mut notes = Vec::new();
        if a.lost != b.lost {
            notes.push(format!(
                "acknowledged writes lost: {} in {} vs {} in {}",
                a.lost, a.label, b.lost, b.label
            ));
        }
        for s in [&a, &b] {
            if s.unrecovered > 0 {
                notes.push(format!(
                    "{}: {} run(s) never recovered and are left out of the RTO",
                    s.label, s.unrecovered
                ));
            }
        }
        Comparison {
            a,
            b,
            confidence: CONFIDENCE,
            resamples: RESAMPLES,
            seed,
            rto,
            phases,
            notes,
        }
    }

    /// The RTO verdict in words (or why there is none).
    pub fn headline(&self) -> String {
        match &self.rto {
            Some(d) => d.text.clone(),
            None => format!(
                "no RTO to compare: {} has {} recovered run(s), {} has {}",
                self.a.label,
                self.a.rto_ms.len(),
                self.b.label,
                self.b.rto_ms.len()
            ),
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.headline())?;
        let line = |f: &mut fmt::Formatter<'_>, d: &Difference| {
            let ci = match (d.ci_low_ms, d.ci_high_ms) {
                (Some(lo), Some(hi)) => format!("  [{} … {}]", signed(lo), signed(hi)),
                _ => String::new(),
            };
            writeln!(
                f,
                "  {:<12} {:>9} → {:>9}  {:>10}{ci}",
                d.metric,
                fmt_duration(from_ms(d.median_a_ms)),
                fmt_duration(from_ms(d.median_b_ms)),
                signed(d.diff_ms),
            )
        };
        writeln!(
            f,
            "  {:<12} {:>9}   {:>9}  {:>10}  {:.0} % interval of the median difference",
            "median",
            self.a.label_short(),
            self.b.label_short(),
            "B − A",
            self.confidence * 100.0
        )?;
        if let Some(d) = &self.rto {
            line(f, d)?;
        }
        for d in &self.phases {
            line(f, d)?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

impl Sample {
    fn label_short(&self) -> String {
        let n = self.label.chars().count();
        if n <= 9 {
            self.label.clone()
        } else {
            format!("{}…", self.label.chars().take(8).collect::<String>())
        }
    }
}

/// `+1.2s` / `-350ms`.
fn signed(ms: f64) -> String {
    let sign = if ms < 0.0 { "-" } else { "+" };
    format!("{sign}{}", fmt_duration(from_ms(ms.abs())))
}

/// The difference of the medians of `b` and `a` with its interval and
/// verdict; a difference within `floor` (the measurement's resolution) is not
/// called one.
fn difference(
    metric: &str,
    label_a: &str,
    label_b: &str,
    a: &[f64],
    b: &[f64],
    seed: u64,
    floor: f64,
) -> Option<Difference> {
    let (ma, mb) = (median(a)?, median(b)?);
    let diff = mb - ma;
    let what = if metric == "rto" {
        "RTO".to_string()
    } else {
        format!("{metric} phase")
    };
    if a.len() < 2 || b.len() < 2 {
        return Some(Difference {
            metric: metric.into(),
            median_a_ms: ma,
            median_b_ms: mb,
            diff_ms: diff,
            ci_low_ms: None,
            ci_high_ms: None,
            verdict: Verdict::TooFewRuns,
            text: format!(
                "{label_b}'s {what} differs from {label_a}'s by {} — {} and {} run(s): too few to \
                 tell a change from noise; repeat each at least twice (--repeat 10 for a useful \
                 interval)",
                signed(diff),
                a.len(),
                b.len()
            ),
        });
    }
    let (lo, hi) = bootstrap_median_difference(a, b, CONFIDENCE, RESAMPLES, seed)?;
    let half = ((hi - lo) / 2.0).abs();
    let amount = |d: f64| {
        format!(
            "{} ± {}",
            fmt_duration(from_ms(d.abs())),
            fmt_duration(from_ms(half))
        )
    };
    let (verdict, text) = if (lo > 0.0 || hi < 0.0) && diff.abs() <= floor {
        (
            Verdict::NoDetectableDifference,
            format!(
                "no detectable difference in {what}: {label_b} − {label_a} = {}, within the \
                 measurement's resolution (±{})",
                signed(diff),
                fmt_duration(from_ms(floor))
            ),
        )
    } else if lo > 0.0 {
        (
            Verdict::Slower,
            format!("{label_b} is slower by {} ({what})", amount(diff)),
        )
    } else if hi < 0.0 {
        (
            Verdict::Faster,
            format!("{label_b} is faster by {} ({what})", amount(diff)),
        )
    } else {
        (
            Verdict::NoDetectableDifference,
            format!(
                "no detectable difference in {what}: {label_b} − {label_a} = {} (interval {} … {})",
                signed(diff),
                signed(lo),
                signed(hi)
            ),
        )
    };
    Some(Difference {
        metric: metric.into(),
        median_a_ms: ma,
        median_b_ms: mb,
        diff_ms: diff,
        ci_low_ms: Some(lo),
        ci_high_ms: Some(hi),
        verdict,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(label: &str, rto: &[f64], detection: &[f64]) -> Sample {
        Sample {
            label: label.into(),
            scenario: "kill".into(),
            settings: Vec::new(),
            rto_ms: rto.to_vec(),
            unrecovered: 0,
            phases: vec![PhaseSample {
                name: "detection".into(),
                ms: detection.to_vec(),
            }],
            lost: 0,
            resolution_ms: 12.0,
        }
    }

    /// Ten runs around `centre` with a known spread of ±300 ms.
    fn runs(centre: f64) -> Vec<f64> {
        (0..10)
            .map(|i| centre + f64::from(i * 67 % 600) - 300.0)
            .collect()
    }

    #[test]
    fn a_known_improvement_is_found_with_its_size() {
        let a = sample("A", &runs(15_000.0), &runs(9_000.0));
        let b = sample("B", &runs(13_200.0), &runs(9_000.0));
        let c = Comparison::new(a, b, 42);
        let rto = c.rto.as_ref().expect("rto");
        assert_eq!(rto.verdict, Verdict::Faster, "{c}");
        assert!((rto.diff_ms + 1800.0).abs() < 1e-6, "{}", rto.diff_ms);
        let (lo, hi) = (rto.ci_low_ms.expect("lo"), rto.ci_high_ms.expect("hi"));
        assert!((lo..=hi).contains(&-1800.0) && hi < 0.0, "{lo} … {hi}");
        assert!(
            rto.text.starts_with("B is faster by 1.800s ± "),
            "{}",
            rto.text
        );
        // The phase that did not change shows no detectable difference.
        assert_eq!(c.phases[0].verdict, Verdict::NoDetectableDifference, "{c}");
        assert!(c.to_string().contains("detection"), "{c}");
    }

    #[test]
    fn a_slower_variant_and_identical_samples() {
        let c = Comparison::new(
            sample("A", &runs(5_000.0), &[]),
            sample("B", &runs(12_000.0), &[]),
            1,
        );
        assert_eq!(c.rto.as_ref().map(|d| d.verdict), Some(Verdict::Slower));
        assert!(
            c.headline().starts_with("B is slower by 7.000s ± "),
            "{}",
            c.headline()
        );
        let same = Comparison::new(
            sample("A", &runs(5_000.0), &[]),
            sample("B", &runs(5_000.0), &[]),
            1,
        );
        let d = same.rto.expect("rto");
        assert_eq!(d.verdict, Verdict::NoDetectableDifference);
        assert!(
            d.text.starts_with("no detectable difference in RTO"),
            "{}",
            d.text
        );
    }

    #[test]
    fn a_shift_below_the_resolution_is_no_difference() {
        // Tight samples 5 ms apart: the interval excludes zero, but 5 ms is
        // below the 12 ms the runs could resolve.
        let a: Vec<f64> = (0..10).map(|i| 5_000.0 + f64::from(i) * 0.1).collect();
        let b: Vec<f64> = a.iter().map(|x| x - 5.0).collect();
        let c = Comparison::new(sample("A", &a, &[]), sample("B", &b, &[]), 1);
        let d = c.rto.expect("rto");
        assert_eq!(d.verdict, Verdict::NoDetectableDifference, "{}", d.text);
        assert!(
            d.text
                .contains("within the measurement's resolution (±0.012s)"),
            "{}",
            d.text
        );
    }

    #[test]
    fn one_run_each_is_too_few_for_a_verdict() {
        let c = Comparison::new(
            sample("A", &[15_000.0], &[]),
            sample("B", &[14_000.0], &[]),
            1,
        );
        let d = c.rto.expect("rto");
        assert_eq!(d.verdict, Verdict::TooFewRuns);
        assert_eq!(d.diff_ms, -1000.0);
        assert!(
            d.ci_low_ms.is_none() && d.text.contains("too few"),
            "{}",
            d.text
        );
    }

    #[test]
    fn lost_writes_and_unrecovered_runs_are_noted() {
        let mut b = sample("B", &runs(4_000.0), &[]);
        b.lost = 12;
        b.unrecovered = 1;
        let c = Comparison::new(sample("A", &runs(5_000.0), &[]), b, 3);
        assert!(
            c.notes.iter().any(|n| n.contains("0 in A vs 12 in B")),
            "{:?}",
            c.notes
        );
        assert!(
            c.notes.iter().any(|n| n.contains("never recovered")),
            "{:?}",
            c.notes
        );
    }

    #[test]
    fn reading_something_else_says_what_was_expected() {
        let dir = std::env::temp_dir().join(format!("chaos-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("x.json");
        std::fs::write(&path, "{\"hello\": 1}").expect("write");
        let e = Sample::read(&path).expect_err("not a report").to_string();
        assert!(
            e.contains("x.json") && e.contains("expected the JSON of a report"),
            "{e}"
        );
        std::fs::write(&path, "not json").expect("write");
        let e = Sample::read(&path).expect_err("not json").to_string();
        assert!(e.contains("not JSON"), "{e}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
