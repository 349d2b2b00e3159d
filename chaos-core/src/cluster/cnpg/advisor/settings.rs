//! The settings of a CNPG `Cluster` the advisor reads, as they are in
//! effect: the spec's values, else the CRD's, PostgreSQL's or the
//! operator's defaults, and the paths that name them.

use std::time::Duration;

use crate::cluster::cnpg::crd::{ClusterSpec, ProbeTimings};

/// The fields the advisor names, as paths in the Cluster.
pub mod field {
    /// `spec.postgresql.synchronous`.
    pub const SYNCHRONOUS: &str = "spec.postgresql.synchronous";
    /// `spec.postgresql.synchronous.dataDurability`.
    pub const DATA_DURABILITY: &str = "spec.postgresql.synchronous.dataDurability";
    /// `spec.postgresql.synchronous.number`.
    pub const SYNCHRONOUS_NUMBER: &str = "spec.postgresql.synchronous.number";
    /// `spec.minSyncReplicas`.
    pub const MIN_SYNC_REPLICAS: &str = "spec.minSyncReplicas";
    /// `spec.instances`.
    pub const INSTANCES: &str = "spec.instances";
    /// `spec.primaryLease.leaseDurationSeconds`.
    pub const LEASE_DURATION: &str = "spec.primaryLease.leaseDurationSeconds";
    /// `spec.primaryLease.releasedLeaseDurationSeconds`.
    pub const RELEASED_LEASE_DURATION: &str = "spec.primaryLease.releasedLeaseDurationSeconds";
    /// `spec.primaryLease.renewDeadlineSeconds`.
    pub const RENEW_DEADLINE: &str = "spec.primaryLease.renewDeadlineSeconds";
    /// `spec.failoverDelay`.
    pub const FAILOVER_DELAY: &str = "spec.failoverDelay";
    /// `spec.switchoverDelay`.
    pub const SWITCHOVER_DELAY: &str = "spec.switchoverDelay";
    /// `spec.probes.liveness`.
    pub const LIVENESS_PROBE: &str = "spec.probes.liveness";
    /// `spec.livenessProbeTimeout`.
    pub const LIVENESS_PROBE_TIMEOUT: &str = "spec.livenessProbeTimeout";
    /// `spec.probes.startup`.
    pub const STARTUP_PROBE: &str = "spec.probes.startup";
    /// `spec.probes.readiness`.
    pub const READINESS_PROBE: &str = "spec.probes.readiness";
    /// `spec.postgresql.parameters.checkpoint_timeout`.
    pub const CHECKPOINT_TIMEOUT: &str = "spec.postgresql.parameters.checkpoint_timeout";
    /// `spec.postgresql.parameters.wal_receiver_timeout`.
    pub const WAL_RECEIVER_TIMEOUT: &str = "spec.postgresql.parameters.wal_receiver_timeout";
    /// `spec.walStorage`.
    pub const WAL_STORAGE: &str = "spec.walStorage";
    /// `spec.smartShutdownTimeout`.
    pub const SMART_SHUTDOWN_TIMEOUT: &str = "spec.smartShutdownTimeout";
    /// `spec.stopDelay`.
    pub const STOP_DELAY: &str = "spec.stopDelay";
    /// `spec.primaryUpdateMethod`.
    pub const PRIMARY_UPDATE_METHOD: &str = "spec.primaryUpdateMethod";
}

/// The checkpoint interval above which the advisor warns (the seed's
/// recommendation).
pub const CHECKPOINT_TIMEOUT_ADVISED: Duration = Duration::from_secs(60);

/// CNPG's default `livenessProbeTimeout`, in seconds.
pub const DEFAULT_LIVENESS_PROBE_TIMEOUT: i64 = 30;

/// The operator's built-in `primaryLease` (CNPG 1.30), in seconds: lease
/// duration, released lease duration, renew deadline, retry period.
pub const DEFAULT_PRIMARY_LEASE: (i32, i32, i32, i32) = (15, 1, 10, 2);

/// The primary lease in effect: the spec's values, else the operator's
/// built-in ones ([`DEFAULT_PRIMARY_LEASE`]).
pub(super) struct Lease {
    /// `leaseDurationSeconds`.
    pub(super) duration: i32,
    /// `releasedLeaseDurationSeconds`.
    pub(super) released: i32,
    /// `renewDeadlineSeconds`.
    pub(super) renew_deadline: i32,
    /// `retryPeriodSeconds`.
    pub(super) retry: i32,
    /// Whether the spec sets `primaryLease` (else the operator's version
    /// decides whether there is one).
    pub(super) explicit: bool,
    /// Whether it sets `leaseDurationSeconds`.
    duration_set: bool,
}

impl Lease {
    pub(super) fn of(spec: &ClusterSpec) -> Self {
        let (duration, released, renew_deadline, retry) = DEFAULT_PRIMARY_LEASE;
        let l = spec.primary_lease.as_ref();
        Lease {
            duration: l.and_then(|l| l.lease_duration_seconds).unwrap_or(duration),
            released: l
                .and_then(|l| l.released_lease_duration_seconds)
                .unwrap_or(released),
            renew_deadline: l
                .and_then(|l| l.renew_deadline_seconds)
                .unwrap_or(renew_deadline),
            retry: l.and_then(|l| l.retry_period_seconds).unwrap_or(retry),
            explicit: l.is_some(),
            duration_set: l.and_then(|l| l.lease_duration_seconds).is_some(),
        }
    }

    /// `leaseDurationSeconds` as a finding shows it: the spec's value, or
    /// the operator's default, said to be one.
    pub(super) fn value(&self) -> String {
        if self.duration_set {
            self.duration.to_string()
        } else {
            format!("{} (default, CNPG 1.30+)", self.duration)
        }
    }
}

/// The liveness budget in effect: `probes.liveness` when it sets a timing,
/// else `livenessProbeTimeout` (default 30 s).
pub(super) struct Liveness {
    pub(super) field: &'static str,
    pub(super) value: String,
    /// Seconds until a hung primary fails it.
    pub(super) worst: i64,
    /// Seconds between probes.
    pub(super) period: i64,
}

impl Liveness {
    pub(super) fn of(spec: &ClusterSpec) -> Self {
        let liveness = spec.probes.as_ref().and_then(|p| p.liveness.as_ref());
        match liveness {
            Some(l) if has_timing(&l.timings) => Liveness {
                field: field::LIVENESS_PROBE,
                value: timings_text(&l.timings),
                worst: l.timings.worst_case_seconds(),
                period: i64::from(l.timings.period_seconds.unwrap_or(10)),
            },
            _ => {
                let (value, worst) = match spec.liveness_probe_timeout {
                    Some(t) => (t.to_string(), i64::from(t)),
                    None => (
                        format!("{DEFAULT_LIVENESS_PROBE_TIMEOUT} (default)"),
                        DEFAULT_LIVENESS_PROBE_TIMEOUT,
                    ),
                };
                Liveness {
                    field: field::LIVENESS_PROBE_TIMEOUT,
                    value,
                    worst,
                    period: 1,
                }
            }
        }
    }
}

/// `checkpoint_timeout` and its text (PostgreSQL's 5min when absent);
/// `None` when it does not parse.
pub(super) fn checkpoint_timeout(spec: &ClusterSpec) -> Option<(Duration, String)> {
    match spec.parameter("checkpoint_timeout") {
        Some(text) => parse_pg_duration(text).map(|d| (d, text.to_string())),
        None => Some((
            Duration::from_secs(300),
            "5min (PostgreSQL default)".to_string(),
        )),
    }
}

/// `wal_receiver_timeout` and its text (PostgreSQL's 60s when absent);
/// `None` when it does not parse or is 0 (no timeout).
pub(super) fn wal_receiver_timeout(spec: &ClusterSpec) -> Option<(Duration, String)> {
    match spec.parameter("wal_receiver_timeout") {
        Some(text) => {
            // A bare number is in milliseconds for this parameter.
            let d = if text.trim().chars().all(|c| c.is_ascii_digit()) {
                text.trim().parse::<u64>().ok().map(Duration::from_millis)
            } else {
                parse_pg_duration(text)
            };
            d.filter(|d| !d.is_zero()).map(|d| (d, text.to_string()))
        }
        None => Some((
            Duration::from_secs(60),
            "60s (PostgreSQL default)".to_string(),
        )),
    }
}

pub(super) fn secs(n: i32) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

pub(super) fn secs64(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

pub(super) fn value_or_default(value: Option<i32>, default: i32) -> String {
    match value {
        Some(v) => v.to_string(),
        None => format!("{default} (default)"),
    }
}

pub(super) fn has_timing(t: &ProbeTimings) -> bool {
    t.initial_delay_seconds.is_some() || t.period_seconds.is_some() || t.failure_threshold.is_some()
}

pub(super) fn timings_text(t: &ProbeTimings) -> String {
    let mut parts = Vec::new();
    if let Some(v) = t.initial_delay_seconds {
        parts.push(format!("initialDelaySeconds: {v}"));
    }
    if let Some(v) = t.period_seconds {
        parts.push(format!("periodSeconds: {v}"));
    }
    if let Some(v) = t.timeout_seconds {
        parts.push(format!("timeoutSeconds: {v}"));
    }
    if let Some(v) = t.failure_threshold {
        parts.push(format!("failureThreshold: {v}"));
    }
    format!("{{{}}}", parts.join(", "))
}

/// Parses a PostgreSQL time setting: a number with an optional unit (`us`,
/// `ms`, `s`, `min`, `h`, `d`); a bare number is in seconds (the unit of
/// `checkpoint_timeout`).
pub fn parse_pg_duration(text: &str) -> Option<Duration> {
    let text = text.trim().trim_matches('\'');
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "us" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    let secs = n * factor;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}
