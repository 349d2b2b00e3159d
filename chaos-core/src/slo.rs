//! Service-level objectives for a failover and the check against them.

use std::time::Duration;

use serde::Serialize;

use crate::verify::Measurement;

/// What a failover must achieve. `Default`: RTO ≤ 10 s, RPO = 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Slo {
    /// Longest acceptable time from the fault to the first acknowledged write.
    pub max_rto: Duration,
    /// Acknowledged writes that may go missing (0 for RPO = 0).
    pub max_lost_writes: u64,
    /// If set, RPO as a time window instead: lost writes may span at most this.
    pub max_lost_window: Option<Duration>,
}

impl Default for Slo {
    fn default() -> Self {
        Slo {
            max_rto: Duration::from_secs(10),
            max_lost_writes: 0,
            max_lost_window: None,
        }
    }
}

impl Slo {
    /// An SLO with the given maximum RTO and RPO = 0.
    pub fn max_rto(max_rto: Duration) -> Self {
        Slo {
            max_rto,
            max_lost_writes: 0,
            max_lost_window: None,
        }
    }

    /// Allows `n` lost acknowledged writes.
    #[must_use]
    pub fn max_lost_writes(mut self, n: u64) -> Self {
        self.max_lost_writes = n;
        self
    }

    /// RPO as a time window: lost acknowledged writes may span at most `window`
    /// (see [`Measurement::lost_window`]); the count of lost writes is not limited.
    #[must_use]
    pub fn max_lost_window(mut self, window: Duration) -> Self {
        self.max_lost_writes = u64::MAX;
        self.max_lost_window = Some(window);
        self
    }

    /// Checks a measurement; each violation is explained in words.
    pub fn check(&self, m: &Measurement) -> Vec<String> {
        let mut violations = Vec::new();
        match m.rto {
            Some(rto) if rto > self.max_rto => violations.push(format!(
                "RTO {} exceeds max_rto {} (writes were impossible for longer than allowed)",
                fmt_duration(rto),
                fmt_duration(self.max_rto)
            )),
            Some(_) => {}
            None => violations.push(format!(
                "no write that started after the fault was acknowledged: the service did not \
                 recover (max_rto {})",
                fmt_duration(self.max_rto)
            )),
        }
        if m.writes.lost > self.max_lost_writes {
            let sample: Vec<String> = m
                .lost
                .iter()
                .take(5)
                .map(|(w, s)| format!("writer {w} seq {s}"))
                .collect();
            violations.push(format!(
                "{} acknowledged writes lost (allowed: {}), e.g. {}",
                m.writes.lost,
                self.max_lost_writes,
                sample.join(", ")
            ));
        }
        if let Some(window) = self.max_lost_window
            && m.lost_window > window
        {
            violations.push(format!(
                "lost writes span {} (allowed window: {}): {} acknowledged writes lost",
                fmt_duration(m.lost_window),
                fmt_duration(window),
                m.writes.lost
            ));
        }
        if m.split_brain_writes > 0 {
            violations.push(format!(
                "split-brain: {} writes acknowledged on an older timeline after the new \
                 primary had acknowledged writes (two primaries accepted writes)",
                m.split_brain_writes
            ));
        }
        violations
    }
}

/// Formats a duration as seconds with millisecond precision, e.g. `4.912s`.
pub fn fmt_duration(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
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
    use crate::verify::WriteCounts;

    fn measurement(rto: Option<u64>, lost: u64, split: u64) -> Measurement {
        Measurement {
            rto: rto.map(Duration::from_millis),
            first_ack_after_fault: None,
            write_gap: None,
            resolution: Duration::from_millis(12),
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
            v[0].contains("RTO 12.345s exceeds max_rto 10.000s"),
            "{}",
            v[0]
        );
        assert!(
            v[1].contains("2 acknowledged writes lost (allowed: 0)"),
            "{}",
            v[1]
        );
        assert!(v[2].contains("split-brain"), "{}", v[2]);
        let v = Slo::default().check(&measurement(None, 0, 0));
        assert!(v[0].contains("did not recover"), "{}", v[0]);
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
            v[0].contains("lost writes span 0.060s (allowed window: 0.050s)"),
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
