//! Why writes kept failing after a new primary was promoted: the HA system
//! did its part, yet the probe or a workload could not write.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{AttemptOutcome, HistoryEntry};
use crate::probe::IndeterminateReason;
use crate::slo::fmt_duration;
use crate::timeline::{Event, EventKind, Phase, Timestamp, from_ms};

/// Longer than this between a promotion and the first acknowledged write
/// after it is not routing any more: something kept the writes from the new
/// primary (on a healthy failover here the first write follows in 2–51 ms).
pub const STALL_MS: f64 = 2000.0;

/// A series (the probe, or a workload) whose writes kept failing after a new
/// primary had been promoted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailingAfterPromotion {
    /// `probe`, or `workload <name>`.
    pub series: String,
    /// The promoted node, as the target named it.
    pub promoted: String,
    /// When it was promoted, ms after the report's origin.
    pub promoted_ms: f64,
    /// How long writes kept failing after it; `None`: until the run's end.
    pub failing_ms: Option<f64>,
    /// Attempts started in that time that were not acknowledged.
    pub attempts: u64,
    /// The most frequent cause among them.
    pub cause: String,
    /// How many of them had it.
    pub cause_count: u64,
}

impl fmt::Display for FailingAfterPromotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how_long = match self.failing_ms {
            Some(ms) => format!("for {}", fmt_duration(from_ms(ms))),
            None => "until the end of the run".into(),
        };
        write!(
            f,
            "{}: writes kept failing {how_long} after {} was promoted (+{}): {} attempts, \
             most often ({}×) {}",
            self.series,
            self.promoted,
            fmt_duration(from_ms(self.promoted_ms.max(0.0))),
            self.attempts,
            self.cause_count,
            self.cause
        )
    }
}

/// The first promotion after `origin` among `events`: its offset in ms and
/// the node's name (the `promotion ended` mark, else `new primary observed`).
fn promotion(events: &[Event], origin: Timestamp) -> Option<(f64, String)> {
    let pick = |promotion: bool| {
        events
            .iter()
            .filter(|e| e.at >= origin)
            .filter_map(|e| match &e.kind {
                EventKind::PhaseEnded(Phase::Promotion) if promotion => {
                    Some((e.at, e.detail.as_deref()))
                }
                EventKind::NewPrimary { node, .. } if !promotion => Some((e.at, Some(node))),
                _ => None,
            })
            .min_by_key(|(at, _)| *at)
    };
    let (at, node) = pick(true).or_else(|| pick(false))?;
    let node = node.unwrap_or("a new primary").to_string();
    Some((at.ms_since(origin), node))
}

/// What went wrong with one attempt, in words that group alike attempts.
fn cause(h: &HistoryEntry) -> String {
    let took = h.finished_ms - h.started_ms;
    match (h.outcome, h.sqlstate.as_deref(), &h.error, h.reason) {
        (AttemptOutcome::Failed, Some("25006"), ..) => "the server is read-only (25006): the \
             endpoint still reaches a standby or the demoted primary"
            .into(),
        (AttemptOutcome::Failed, Some("57P03"), ..) => {
            "cannot connect now (57P03): the server is starting up or shutting down".into()
        }
        (AttemptOutcome::Failed, Some(code), ..) => format!("refused with SQLSTATE {code}"),
        (_, _, Some(error), _) => error.chars().take(160).collect(),
        (AttemptOutcome::Failed, None, None, _) if took >= 1000.0 => format!(
            "no connection within {:.1} s: a host accepted TCP and never answered (a paused or \
             frozen server holds a client that tries hosts in turn)",
            (took / 100.0).round() / 10.0
        ),
        (AttemptOutcome::Failed, None, None, _) => {
            "could not connect: refused or reset, or no host accepted writes".into()
        }
        (_, _, None, Some(IndeterminateReason::Deadline)) => format!(
            "no reply to the commit within {:.1} s",
            (took / 100.0).round() / 10.0
        ),
        (_, _, None, Some(IndeterminateReason::ServerWarning)) => {
            "the server warned during the commit".into()
        }
        (_, _, None, _) => "the connection was lost during the commit".into(),
    }
}

/// Whether `history` (of `series`) kept failing longer than [`STALL_MS`]
/// after the first promotion among `events`, and why.
pub(crate) fn failing_after_promotion(
    series: &str,
    events: &[Event],
    origin: Timestamp,
    history: &[HistoryEntry],
) -> Option<FailingAfterPromotion> {
    let (promoted_ms, promoted) = promotion(events, origin)?;
    let recovered = history
        .iter()
        .filter(|h| h.outcome == AttemptOutcome::Acknowledged && h.started_ms >= promoted_ms)
        .map(|h| h.finished_ms)
        .min_by(f64::total_cmp);
    let end = recovered.unwrap_or_else(|| {
        history
            .iter()
            .map(|h| h.finished_ms)
            .fold(promoted_ms, f64::max)
    });
    if end - promoted_ms <= STALL_MS {
        return None;
    }
    let failed: Vec<&HistoryEntry> = history
        .iter()
        .filter(|h| h.outcome != AttemptOutcome::Acknowledged)
        .filter(|h| h.started_ms >= promoted_ms && h.started_ms < end)
        .collect();
    let mut causes: BTreeMap<String, u64> = BTreeMap::new();
    for h in &failed {
        *causes.entry(cause(h)).or_default() += 1;
    }
    let (cause, cause_count) = causes.into_iter().max_by_key(|(_, n)| *n)?;
    Some(FailingAfterPromotion {
        series: series.to_string(),
        promoted,
        promoted_ms,
        failing_ms: recovered.map(|r| r - promoted_ms),
        attempts: failed.len() as u64,
        cause,
        cause_count,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn entry(start: f64, took: f64, outcome: AttemptOutcome) -> HistoryEntry {
        HistoryEntry {
            writer: 1,
            seq: start as u64,
            started_ms: start,
            finished_ms: start + took,
            outcome,
            server: None,
            timeline: None,
            sqlstate: None,
            reason: None,
            identity: None,
            error: None,
        }
    }

    fn promoted_at(origin: Timestamp, ms: u64) -> Vec<Event> {
        vec![Event::new(
            EventKind::PhaseEnded(Phase::Promotion),
            origin.plus(Duration::from_millis(ms)),
            Some("node3".into()),
        )]
    }

    #[test]
    fn writes_that_hang_on_a_host_after_the_promotion_are_explained() {
        let origin = Timestamp::now();
        let events = promoted_at(origin, 7000);
        // Connection attempts that each time out after 2 s, from before the
        // promotion until the run's end.
        let history: Vec<HistoryEntry> = (0..30)
            .map(|i| {
                entry(
                    1000.0 + f64::from(i) * 2010.0,
                    2000.0,
                    AttemptOutcome::Failed,
                )
            })
            .collect();
        let f = failing_after_promotion("probe", &events, origin, &history).expect("a stall");
        assert_eq!(f.promoted, "node3");
        assert_eq!(f.failing_ms, None, "never recovered");
        assert_eq!(f.attempts, 27, "{f:?}");
        assert_eq!(f.cause_count, 27);
        assert!(
            f.cause.starts_with("no connection within 2.0 s"),
            "{}",
            f.cause
        );
        let text = f.to_string();
        assert!(
            text.starts_with(
                "probe: writes kept failing until the end of the run after node3 \
                 was promoted (+7.000s): 27 attempts"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_read_only_endpoint_is_named_and_a_quick_recovery_is_not_a_stall() {
        let origin = Timestamp::now();
        let events = promoted_at(origin, 5000);
        let mut history: Vec<HistoryEntry> = (0..40)
            .map(|i| {
                let mut e = entry(5000.0 + f64::from(i) * 100.0, 2.0, AttemptOutcome::Failed);
                e.sqlstate = Some("25006".into());
                e
            })
            .collect();
        history.push(entry(9000.0, 3.0, AttemptOutcome::Acknowledged));
        let f = failing_after_promotion("workload orders", &events, origin, &history).unwrap();
        assert_eq!(f.failing_ms, Some(4003.0));
        assert!(f.cause.contains("read-only (25006)"), "{}", f.cause);
        // Recovered 50 ms after the promotion: routing, not a stall.
        let quick = [entry(5050.0, 2.0, AttemptOutcome::Acknowledged)];
        assert_eq!(
            failing_after_promotion("probe", &events, origin, &quick),
            None
        );
        // No promotion, nothing to say.
        assert_eq!(
            failing_after_promotion("probe", &[], origin, &history),
            None
        );
    }
}
