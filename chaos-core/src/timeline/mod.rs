//! Wall-clock timestamps and the events of a run's timeline.

mod event;

#[cfg(feature = "cnpg")]
pub(crate) use event::{CNPG_FAILOVER_DEFERRED, CNPG_PRIMARY_FAILING};
pub use event::{Event, EventKind, Healing, PromotionStep};

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Formats a duration as seconds with millisecond precision, e.g. `4.912s`
/// (also [`crate::slo::fmt_duration`]: what the SLO, its violations and the
/// reports print durations with).
pub fn fmt_duration(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
}

/// A wall-clock time with microsecond precision, written as RFC 3339
/// (`2026-11-25T19:37:54.678125Z`) in reports. Truncated to microseconds when
/// made, so that a report written and read back is equal to the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(SystemTime);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// The time as a [`SystemTime`].
    pub fn system_time(self) -> SystemTime {
        self.0
    }

    /// Signed milliseconds from `origin` to `self` (negative before it).
    pub fn ms_since(self, origin: Timestamp) -> f64 {
        match self.0.duration_since(origin.0) {
            Ok(d) => ms(d),
            Err(e) => -ms(e.duration()),
        }
    }

    /// `self + d`.
    pub fn plus(self, d: Duration) -> Self {
        Self::from(self.0 + d)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let micros = |d: Duration| Duration::from_micros(d.as_micros() as u64);
        Timestamp(match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UNIX_EPOCH + micros(d),
            Err(e) => UNIX_EPOCH - micros(e.duration()),
        })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_micros(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text)
            .map(Timestamp::from)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time: {e}")))
    }
}

/// Milliseconds with microsecond precision, as the reports write durations.
pub fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// The inverse of [`ms`] for non-negative values.
pub fn from_ms(ms: f64) -> Duration {
    Duration::from_micros((ms.max(0.0) * 1000.0).round() as u64)
}

/// The phases an RTO is split into, in order. A target marks the **end** of a
/// phase with an [`EventKind::PhaseEnded`] event (named [`Phase::end_event`]
/// in reports) in its event stream (e.g.
/// the CNPG target ends `detection` when the operator reports "Failing over");
/// the report turns the marks into `phases[]`, each from the end of the one
/// before (the first from the fault) to its own end, the last
/// ([`Phase::FirstWrite`]) ending at the first acknowledged write, so that
/// they add up to the RTO. A phase whose mark is missing is folded into the
/// next one that has a mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Until the HA system notices the primary is gone.
    Detection,
    /// Until a new primary is chosen.
    Election,
    /// Until the chosen node runs as primary.
    Promotion,
    /// Until the service routes clients to it.
    Routing,
    /// Until the first write is acknowledged.
    FirstWrite,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 5] = [
        Phase::Detection,
        Phase::Election,
        Phase::Promotion,
        Phase::Routing,
        Phase::FirstWrite,
    ];

    /// The phase's name in reports: `detection`, `election`, `promotion`,
    /// `routing`, `first_write`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Detection => "detection",
            Phase::Election => "election",
            Phase::Promotion => "promotion",
            Phase::Routing => "routing",
            Phase::FirstWrite => "first_write",
        }
    }

    /// The name of the event that marks the end of this phase, e.g.
    /// `detection ended`.
    pub const fn end_event(self) -> &'static str {
        match self {
            Phase::Detection => "detection ended",
            Phase::Election => "election ended",
            Phase::Promotion => "promotion ended",
            Phase::Routing => "routing ended",
            Phase::FirstWrite => "first_write ended",
        }
    }

    /// The phase whose end `event_name` marks, if it marks one.
    pub fn ended_by(event_name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.end_event() == event_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_text() {
        let t = Timestamp::now();
        let text = serde_json::to_string(&t).expect("serialises");
        let back: Timestamp = serde_json::from_str(&text).expect("parses");
        assert_eq!(t, back);
        assert!(text.ends_with("Z\""), "{text}");
        let err = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }

    #[test]
    fn signed_offsets() {
        let a = Timestamp::now();
        let b = a.plus(Duration::from_micros(1500));
        assert_eq!(b.ms_since(a), 1.5);
        assert_eq!(a.ms_since(b), -1.5);
        assert_eq!(from_ms(1.5), Duration::from_micros(1500));
    }
}
