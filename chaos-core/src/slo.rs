//! Service-level objectives for a failover and the check against them.

use std::time::Duration;

pub use crate::timeline::fmt_duration;
use crate::verify::Measurement;
pub use crate::violation::Violation;

/// How much data may be lost: the RPO, as a count of acknowledged writes or as
/// a time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpo {
    /// At most this many acknowledged writes may go missing (0: RPO = 0).
    MaxLostWrites(u64),
    /// Lost acknowledged writes may span at most this much time (see
    /// [`Measurement::lost_window`]); their number is not limited.
    MaxLostWindow(Duration),
}

/// What a failover must achieve. `Default`: RTO ≤ 10 s, RPO = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slo {
    /// Longest acceptable time from a fault to the first acknowledged write —
    /// and, for a run without any fault, the longest acceptable write gap.
    pub max_rto: Duration,
    /// How much data may be lost.
    pub rpo: Rpo,
    /// Longest acceptable RTO at the 95th percentile of a set of runs
    /// ([`Runs`](crate::runs::Runs)): with it, `max_rto` is each run's hard
    /// cap and this the objective for the set.
    pub max_rto_p95: Option<Duration>,
}

impl Default for Slo {
    fn default() -> Self {
        Slo {
            max_rto: Duration::from_secs(10),
            rpo: Rpo::MaxLostWrites(0),
            max_rto_p95: None,
        }
    }
}

impl Slo {
    /// An SLO with the given maximum RTO and RPO = 0.
    pub fn max_rto(max_rto: Duration) -> Self {
        Slo {
            max_rto,
            ..Slo::default()
        }
    }

    /// RPO as a count: allows `n` lost acknowledged writes (replaces any window).
    #[must_use]
    pub fn max_lost_writes(mut self, n: u64) -> Self {
        self.rpo = Rpo::MaxLostWrites(n);
        self
    }

    /// RPO as a time window: lost acknowledged writes may span at most `window`
    /// (replaces any count; see [`Measurement::lost_window`]).
    #[must_use]
    pub fn max_lost_window(mut self, window: Duration) -> Self {
        self.rpo = Rpo::MaxLostWindow(window);
        self
    }

    /// States the RTO on the 95th percentile of a set of runs (nearest rank:
    /// with 20 runs, the 19th fastest). `max_rto` stays each run's hard cap.
    #[must_use]
    pub fn max_rto_p95(mut self, p95: Duration) -> Self {
        self.max_rto_p95 = Some(p95);
        self
    }

    /// `max_rto_p95` with the rules every front-end applies, in one place: a
    /// percentile above a `max_rto` that was stated is refused (that
    /// `max_rto` caps every run, so the percentile could never be reached);
    /// without a stated `max_rto`, each run's cap becomes the larger of the
    /// percentile and `recovery_timeout`, so that one slow run is judged by
    /// the percentile rather than failed on its own.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a percentile above a stated `max_rto`.
    pub fn with_p95(
        mut self,
        p95: Duration,
        max_rto_stated: bool,
        recovery_timeout: Duration,
    ) -> crate::Result<Self> {
        if max_rto_stated && p95 > self.max_rto {
            return Err(crate::Error::Config {
                field: "max_rto_p95",
                expected: "a percentile at or below max_rto, which caps every run: lower \
                           max_rto_p95 or raise max_rto",
                found: format!(
                    "max_rto_p95 {} with max_rto {}",
                    fmt_duration(p95),
                    fmt_duration(self.max_rto)
                ),
            });
        }
        self.max_rto_p95 = Some(p95);
        if !max_rto_stated {
            self.max_rto = p95.max(recovery_timeout);
        }
        Ok(self)
    }

    /// Whether this SLO asks for RPO = 0 (no acknowledged write may be lost).
    pub fn requires_zero_loss(&self) -> bool {
        matches!(
            self.rpo,
            Rpo::MaxLostWrites(0) | Rpo::MaxLostWindow(Duration::ZERO)
        )
    }

    /// Checks a measurement; each [`Violation`] says in words what broke.
    pub fn check(&self, m: &Measurement) -> Vec<Violation> {
        let mut v = self.check_rto(m);
        v.extend(self.check_rpo(m));
        v
    }

    /// The availability half: RTO per fault, and write gaps against `max_rto`.
    pub fn check_rto(&self, m: &Measurement) -> Vec<Violation> {
        let mut violations = Vec::new();
        let max_rto = self.max_rto;
        if m.faults.is_empty() {
            if let Some(gap) = m.write_gap
                && gap.length > max_rto
            {
                violations.push(Violation::WriteGap {
                    gap: gap.length,
                    max_rto,
                });
            }
        } else {
            for (i, f) in m.faults.iter().enumerate() {
                let fault = (m.faults.len() > 1).then_some(i + 1);
                match f.rto {
                    Some(rto) if rto > max_rto => violations.push(Violation::Rto {
                        rto,
                        max_rto,
                        fault,
                    }),
                    Some(_) => {}
                    // A degrading fault under which every write went through,
                    // only slower: a slowdown, not an outage.
                    None if !f.outage => {}
                    None => violations.push(Violation::NoRecovery { max_rto, fault }),
                }
            }
            if let Some(gap) = m.unexplained_gap
                && gap.length > max_rto
            {
                violations.push(Violation::UnexplainedGap {
                    gap: gap.length,
                    max_rto,
                });
            }
        }
        violations
    }

    /// The durability half: lost acknowledged writes against the RPO, and
    /// split-brain.
    pub fn check_rpo(&self, m: &Measurement) -> Vec<Violation> {
        let mut violations = Vec::new();
        match self.rpo {
            Rpo::MaxLostWrites(n) if m.writes.lost > n => {
                violations.push(Violation::LostWrites {
                    lost: m.writes.lost,
                    allowed: n,
                    sample: m.lost.iter().take(5).copied().collect(),
                });
            }
            Rpo::MaxLostWindow(window) if m.lost_window > window => {
                violations.push(Violation::LostWindow {
                    window: m.lost_window,
                    allowed: window,
                    lost: m.writes.lost,
                });
            }
            _ => {}
        }
        if m.split_brain_writes > 0 {
            violations.push(Violation::SplitBrain {
                writes: m.split_brain_writes,
            });
        }
        violations
    }
}

/// Parses a humantime duration such as `"10s"`, `"1500ms"` or `"2m 30s"`.
///
/// # Errors
/// [`crate::Error::Config`] saying what was expected.
pub fn parse_duration(field: &'static str, text: &str) -> crate::Result<Duration> {
    humantime::parse_duration(text.trim()).map_err(|_| crate::Error::Config {
        field,
        expected: "a duration such as \"10s\", \"1500ms\" or \"2m\"",
        found: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{FaultOutage, Gap, WriteCounts};

    fn measurement(rto: Option<u64>, lost: u64, split: u64) -> Measurement {
        let now = std::time::Instant::now();
        Measurement {
            faults: vec![FaultOutage {
                rto: rto.map(Duration::from_millis),
                outage: true,
                slowdown: None,
                outage_start: now,
                recovered_at: None,
            }],
            rto: rto.map(Duration::from_millis),
            write_gap: None,
            unexplained_gap: None,
            resolution: Duration::from_millis(12),
            median_latency: Duration::from_millis(2),
            writes: WriteCounts {
                lost,
                ..WriteCounts::default()
            },
            lost: (0..lost).map(|s| (1, s)).collect(),
            lost_window: Duration::from_millis(lost * 10),
            split_brain_writes: split,
        }
    }

    #[test]
    fn passes_within_bounds() {
        assert!(
            Slo::default()
                .check(&measurement(Some(9_999), 0, 0))
                .is_empty()
        );
    }

    #[test]
    fn explains_each_violation() {
        let v = Slo::default().check(&measurement(Some(12_345), 2, 1));
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(
            v[0].to_string()
                .contains("RTO 12.345s exceeds max_rto 10.000s"),
            "{}",
            v[0]
        );
        assert!(
            v[1].to_string()
                .contains("2 acknowledged writes lost (allowed: 0)"),
            "{}",
            v[1]
        );
        assert_eq!(v[2], Violation::SplitBrain { writes: 1 });
        let v = Slo::default().check(&measurement(None, 0, 0));
        assert!(v[0].to_string().contains("did not recover"), "{}", v[0]);
    }

    #[test]
    fn lost_writes_may_be_allowed() {
        let slo = Slo::max_rto(Duration::from_secs(30)).max_lost_writes(3);
        assert!(slo.check(&measurement(Some(1), 3, 0)).is_empty());
    }

    #[test]
    fn rpo_may_be_a_time_window() {
        let slo = Slo::default().max_lost_window(Duration::from_millis(50));
        assert!(
            slo.check(&measurement(Some(1), 5, 0)).is_empty(),
            "50 ms of loss is allowed"
        );
        let v = slo.check(&measurement(Some(1), 6, 0));
        assert!(
            v[0].to_string()
                .contains("lost writes span 0.060s (allowed window: 0.050s)"),
            "{v:?}"
        );
    }

    #[test]
    fn the_rpo_forms_replace_each_other_explicitly() {
        let slo = Slo::default().max_lost_window(Duration::from_secs(2));
        assert_eq!(slo.rpo, Rpo::MaxLostWindow(Duration::from_secs(2)));
        assert!(!slo.requires_zero_loss());
        let slo = slo.max_lost_writes(0);
        assert_eq!(slo.rpo, Rpo::MaxLostWrites(0));
        assert!(slo.requires_zero_loss());
    }

    #[test]
    fn without_a_fault_the_write_gap_is_held_to_max_rto() {
        let mut m = measurement(None, 0, 0);
        m.faults.clear();
        m.write_gap = Some(Gap {
            start: std::time::Instant::now(),
            length: Duration::from_millis(2_004),
        });
        m.unexplained_gap = m.write_gap;
        let v = Slo::max_rto(Duration::from_secs(1)).check(&m);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].to_string()
                .contains("write gap 2.004s exceeds max_rto 1.000s"),
            "{v:?}"
        );
        assert!(
            v[0].to_string().contains("no fault was injected or marked"),
            "{v:?}"
        );
        assert!(Slo::max_rto(Duration::from_secs(3)).check(&m).is_empty());
    }

    #[test]
    fn an_unexplained_gap_beside_a_fault_is_a_violation() {
        let mut m = measurement(Some(500), 0, 0);
        m.unexplained_gap = Some(Gap {
            start: std::time::Instant::now(),
            length: Duration::from_secs(3),
        });
        let v = Slo::max_rto(Duration::from_secs(2)).check(&m);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].to_string()
                .contains("no injected or marked fault explains it"),
            "{v:?}"
        );
    }

    #[test]
    fn parses_durations_with_clear_errors() {
        assert_eq!(
            parse_duration("max_rto", "10s").ok(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_duration("max_rto", "1500ms").ok(),
            Some(Duration::from_millis(1500))
        );
        let err = parse_duration("max_rto", "ten seconds")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_rto") && err.contains("\"10s\""), "{err}");
    }
}

#[cfg(test)]
mod p95_tests {
    use super::*;

    #[test]
    fn a_percentile_is_capped_by_a_stated_max_rto_and_caps_runs_otherwise() {
        let s = |n| Duration::from_secs(n);
        let e = Slo::max_rto(s(5)).with_p95(s(10), true, s(60)).unwrap_err();
        assert!(
            e.to_string()
                .contains("max_rto_p95 10.000s with max_rto 5.000s"),
            "{e}"
        );
        let ok = Slo::max_rto(s(30)).with_p95(s(10), true, s(60)).unwrap();
        assert_eq!((ok.max_rto, ok.max_rto_p95), (s(30), Some(s(10))));
        // Not stated: each run may take up to the recovery timeout.
        let free = Slo::max_rto(s(10)).with_p95(s(10), false, s(60)).unwrap();
        assert_eq!(free.max_rto, s(60));
        let long = Slo::max_rto(s(10)).with_p95(s(90), false, s(60)).unwrap();
        assert_eq!(long.max_rto, s(90));
    }
}
