//! Measured findings: each phase of a finished run attributed to the
//! Cluster settings that govern it, with the time each cost in this run.
//!
//! | setting | governs | cost in a run |
//! |---|---|---|
//! | `primaryLease.leaseDurationSeconds` | detection+election after a kill or a cut-off primary (it keeps its lease) | the lease, when detection+election lasted at least the lease less one retry period (the last renewal's age) |
//! | `primaryLease.releasedLeaseDurationSeconds` | detection+election after a graceful stop or a switchover (the lease is released) | the released lease, when above 1 s and waited for |
//! | `failoverDelay` | detection | from `cnpg primary failing` to the end of detection, at most the delay; without that mark the delay, when detection lasted as long |
//! | liveness probe | detection of a hung or cut-off primary | its worst case, when detection lasted at least that less one period |
//! | `wal_receiver_timeout` | election after a hung or cut-off primary (the standbys' WAL receivers must be down first) | the timeout, when election lasted at least that less a tenth |
//! | `smartShutdownTimeout` | detection of a graceful stop | the timeout, when detection lasted as long |
//! | `switchoverDelay` | the old primary's stop in a switchover (inside promotion) | from the election to `promote requested` in the new primary's log, at most the delay; without the log the whole promotion (an upper bound) |
//! | `checkpoint_timeout` | promotion (WAL replay) | `promote requested` → `wal recovery ended` in the new primary's log; without the log the whole promotion (an upper bound; not for a switchover) |
//! | readiness probe | routing | the routing phase, at most one probe period, when it lasted 1 s or more |
//!
//! A cost is at most the phases it governs lasted. Settings waited for at
//! the same time (a lease and a `failoverDelay`) are each charged in full:
//! the ranking shows which one to shorten first. `first_write` is the
//! client's reconnect: no Cluster setting governs it. A phase without a
//! mark of its own is folded into the next one by the report; a rule counts
//! only the phases it governs, so folding makes it underestimate — the
//! whole-promotion fallbacks are upper bounds and say so in their reason.
//! Costs under [`MIN_COST`] are left out.

use std::collections::BTreeMap;
use std::time::Duration;

use super::settings::{
    Lease, Liveness, checkpoint_timeout, has_timing, secs, secs64, timings_text, value_or_default,
    wal_receiver_timeout,
};
use super::{Advice, advise, field};
use crate::cluster::cnpg::crd::{
    ClusterSpec, DEFAULT_SMART_SHUTDOWN_TIMEOUT, DEFAULT_SWITCHOVER_DELAY,
};
use crate::report::{FaultRecord, Finding, Report};
use crate::slo::Slo;
use crate::timeline::{Event, EventKind, Phase, PromotionStep, Timestamp, from_ms, ms};

/// Measured costs below this are left out: no setting to tune there.
pub const MIN_COST: Duration = Duration::from_millis(100);

/// What the Cluster's settings cost the run `report` describes: the
/// measured findings (see the [module docs](self)), the costliest first,
/// then the checklist ([`advise`]) for the fields not measured, marked as
/// such. Without any measured phase, only the checklist.
pub fn advise_run(spec: &ClusterSpec, slo: &Slo, report: &Report) -> Vec<Finding> {
    let mut by_setting: BTreeMap<String, Finding> = BTreeMap::new();
    for run in runs_of(report) {
        for f in measure(spec, &run) {
            let costlier = by_setting
                .get(&f.setting)
                .is_none_or(|old| old.cost_ms < f.cost_ms);
            if costlier {
                by_setting.insert(f.setting.clone(), f);
            }
        }
    }
    let mut out: Vec<Finding> = by_setting.into_values().collect();
    crate::report::finding::rank(&mut out);
    let measured: Vec<String> = out.iter().map(|f| f.setting.clone()).collect();
    out.extend(
        advise(spec, slo)
            .into_iter()
            .filter(|a| !measured.contains(&a.field))
            .map(unmeasured),
    );
    out
}

/// A checklist [`Advice`] as a finding not measured.
fn unmeasured(a: Advice) -> Finding {
    Finding {
        phases: a.phases(),
        setting: a.field,
        value: a.value,
        cost_ms: None,
        phases_ms: None,
        reason: a.cost,
        fix: a.fix,
        suggested: None,
        variant: Vec::new(),
    }
}

/// How a fault stopped the primary, which decides the settings it waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Killed (no shutdown): it keeps its lease until it expires.
    Kill,
    /// Stopped gracefully: smart shutdown, lease released.
    Graceful,
    /// A switchover: a graceful stop within `switchoverDelay`.
    Switchover,
    /// Alive but hung or cut off: probes and timeouts must notice.
    Unreachable,
    /// Anything else.
    Other,
}

impl Stop {
    /// From a report's fault record (`delete-primary`/`kill`, `kill-primary`,
    /// `switchover`, `isolate-primary`, …).
    fn of(f: &FaultRecord) -> Self {
        match (f.kind.as_str(), f.mode.as_str()) {
            ("delete-primary", "kill") | ("kill-primary", _) => Stop::Kill,
            ("delete-primary", "graceful") | ("stop-primary", _) => Stop::Graceful,
            ("switchover", _) => Stop::Switchover,
            (
                "isolate-primary"
                | "partition-primary-from-replicas"
                | "freeze-primary"
                | "pause-primary"
                | "pause-node",
                _,
            ) => Stop::Unreachable,
            _ => Stop::Other,
        }
    }

    /// How a finding's reason names it.
    fn words(self) -> &'static str {
        match self {
            Stop::Kill => "a killed primary",
            Stop::Graceful => "a primary stopped gracefully",
            Stop::Switchover => "a switchover",
            Stop::Unreachable => "a hung or cut-off primary",
            Stop::Other => "the fault",
        }
    }
}

/// One fault's measured RTO: its phases and the marks within it.
struct Run<'a> {
    stop: Stop,
    /// Each phase's start and length, in order.
    phases: Vec<(Phase, Timestamp, Duration)>,
    /// The injection.
    start: Timestamp,
    /// The first acknowledged write after it.
    end: Timestamp,
    events: &'a [Event],
}

/// The faults of `report` with an RTO split into phases.
fn runs_of(report: &Report) -> Vec<Run<'_>> {
    report
        .faults
        .iter()
        .filter_map(|f| {
            let rto = from_ms(f.rto_ms?);
            let phases: Vec<(Phase, Timestamp, Duration)> = f
                .phases
                .iter()
                .filter_map(|p| {
                    let phase = Phase::ALL.into_iter().find(|x| x.name() == p.name)?;
                    Some((phase, p.at, from_ms(p.ms)))
                })
                .collect();
            let start = phases.first().map(|p| p.1)?;
            Some(Run {
                stop: Stop::of(f),
                phases,
                start,
                end: start.plus(rto),
                events: &report.events,
            })
        })
        .collect()
}

impl Run<'_> {
    /// How long the `governed` phases lasted together.
    fn span(&self, governed: &[Phase]) -> Duration {
        self.phases
            .iter()
            .filter(|(p, _, _)| governed.contains(p))
            .map(|(_, _, d)| *d)
            .sum()
    }

    /// When `phase` ended, if it has a record.
    fn end_of(&self, phase: Phase) -> Option<Timestamp> {
        self.phases
            .iter()
            .find(|(p, _, _)| *p == phase)
            .map(|(_, at, d)| at.plus(*d))
    }

    /// The first event of `kind` within the RTO.
    fn mark(&self, kind: &EventKind) -> Option<Timestamp> {
        self.events
            .iter()
            .filter(|e| e.kind == *kind && e.at >= self.start && e.at <= self.end)
            .map(|e| e.at)
            .min()
    }

    /// `to − from`, when both are known and in order.
    fn between(from: Option<Timestamp>, to: Option<Timestamp>) -> Option<Duration> {
        to?.system_time().duration_since(from?.system_time()).ok()
    }
}

/// The promotion's first log mark.
const PROMOTE_REQUESTED: EventKind = EventKind::PromotionStep(PromotionStep::PromoteRequested);
/// The end of WAL replay in the promotion's log.
const WAL_RECOVERY_ENDED: EventKind = EventKind::PromotionStep(PromotionStep::WalRecoveryEnded);

/// A measured finding under construction.
struct Measured {
    setting: &'static str,
    value: String,
    phases: Vec<Phase>,
    cost: Duration,
    of: Duration,
    reason: String,
    fix: String,
    suggested: Option<&'static str>,
    variant: Vec<String>,
}

impl Measured {
    fn into_finding(self) -> Finding {
        Finding {
            setting: self.setting.into(),
            value: self.value,
            phases: self.phases,
            cost_ms: Some(ms(self.cost)),
            phases_ms: Some(ms(self.of)),
            reason: self.reason,
            fix: self.fix,
            suggested: self.suggested.map(Into::into),
            variant: self.variant,
        }
    }
}

/// Every rule's finding for one run, those that cost at least [`MIN_COST`].
fn measure(spec: &ClusterSpec, run: &Run<'_>) -> Vec<Finding> {
    [
        lease(spec, run),
        failover_delay(spec, run),
        liveness(spec, run),
        wal_receiver(spec, run),
        smart_shutdown(spec, run),
        switchover_delay(spec, run),
        checkpoint(spec, run),
        readiness(spec, run),
    ]
    .into_iter()
    .flatten()
    .filter(|m| m.cost >= MIN_COST)
    .map(Measured::into_finding)
    .collect()
}

/// `wait` is attributed when the phases lasted at least `wait − slack`.
fn waited(span: Duration, wait: Duration, slack: Duration) -> Option<Duration> {
    (!wait.is_zero() && span >= wait.saturating_sub(slack)).then(|| span.min(wait))
}

fn s(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The primary lease: held by a killed or cut-off primary until it expires,
/// released by a graceful one.
fn lease(spec: &ClusterSpec, run: &Run<'_>) -> Option<Measured> {
    let lease = Lease::of(spec);
    let governed = vec![Phase::Detection, Phase::Election];
    let span = run.span(&governed);
    match run.stop {
        Stop::Kill | Stop::Unreachable | Stop::Other => {
            let wait = secs(lease.duration);
            let cost = waited(span, wait, secs(lease.retry))?;
            let mut variant = Vec::new();
            let suggested = (lease.duration > 5).then(|| {
                variant.push(format!("{}=5", field::LEASE_DURATION));
                if lease.renew_deadline >= 5 {
                    variant.push(format!("{}=3", field::RENEW_DEADLINE));
                }
                "5"
            });
            Some(Measured {
                setting: field::LEASE_DURATION,
                value: lease.value(),
                phases: governed,
                cost,
                of: span,
                reason: format!(
                    "{} keeps the primary lease: a new primary can take it only when it \
                     expires, up to {} s after the last renewal (every {} s); \
                     detection+election took {}",
                    run.stop.words(),
                    lease.duration,
                    lease.retry,
                    s(span)
                ),
                fix: "a shorter lease, e.g. leaseDurationSeconds: 5 with renewDeadlineSeconds: 3 \
                      (it must stay below the lease): a primary that cannot renew steps down \
                      sooner too"
                    .into(),
                suggested,
                variant,
            })
        }
        Stop::Graceful | Stop::Switchover if lease.released > 1 => {
            let wait = secs(lease.released);
            let cost = waited(span, wait, Duration::from_secs(1))?;
            Some(Measured {
                setting: field::RELEASED_LEASE_DURATION,
                value: lease.released.to_string(),
                phases: governed,
                cost,
                of: span,
                reason: format!(
                    "{} releases the lease with a TTL of {} s, waited for before a new primary \
                     takes it; detection+election took {}",
                    run.stop.words(),
                    lease.released,
                    s(span)
                ),
                fix: "releasedLeaseDurationSeconds: 1 (the default)".into(),
                suggested: Some("1"),
                variant: vec![format!("{}=1", field::RELEASED_LEASE_DURATION)],
            })
        }
        Stop::Graceful | Stop::Switchover => None,
    }
}

/// `failoverDelay`: the operator waits after finding the primary failing.
fn failover_delay(spec: &ClusterSpec, run: &Run<'_>) -> Option<Measured> {
    let delay = spec.failover_delay_or_default();
    if delay <= 0 || run.stop == Stop::Switchover {
        return None;
    }
    let governed = vec![Phase::Detection];
    let span = run.span(&governed);
    let wait = secs(delay);
    let (cost, how) = match Run::between(
        run.mark(&EventKind::CnpgPrimaryFailing),
        run.end_of(Phase::Detection),
    ) {
        Some(d) => (
            d.min(wait),
            "from the primary found failing to the failover's start",
        ),
        None => (
            waited(span, wait, Duration::from_secs(1))?,
            "detection lasted as long",
        ),
    };
    Some(Measured {
        setting: field::FAILOVER_DELAY,
        value: delay.to_string(),
        phases: governed,
        cost,
        of: span,
        reason: format!(
            "the operator waited up to {delay} s after finding the primary failing before it \
             failed over ({how}: {})",
            s(cost)
        ),
        fix: "failoverDelay: 0 (the default)".into(),
        suggested: Some("0"),
        variant: vec![format!("{}=0", field::FAILOVER_DELAY)],
    })
}

/// The liveness probe: a hung primary is noticed when it fails.
fn liveness(spec: &ClusterSpec, run: &Run<'_>) -> Option<Measured> {
    if run.stop != Stop::Unreachable {
        return None;
    }
    let l = Liveness::of(spec);
    let governed = vec![Phase::Detection];
    let span = run.span(&governed);
    let cost = waited(span, secs64(l.worst), secs64(l.period))?;
    let (suggested, variant) = if l.field == field::LIVENESS_PROBE_TIMEOUT {
        (
            (l.worst > 3).then_some("3"),
            if l.worst > 3 {
                vec![format!("{}=3", field::LIVENESS_PROBE_TIMEOUT)]
            } else {
                Vec::new()
            },
        )
    } else {
        (
            Some("{periodSeconds: 1, failureThreshold: 3}"),
            vec![
                format!("{}.periodSeconds=1", field::LIVENESS_PROBE),
                format!("{}.failureThreshold=3", field::LIVENESS_PROBE),
            ],
        )
    };
    Some(Measured {
        setting: l.field,
        value: l.value,
        phases: governed,
        cost,
        of: span,
        reason: format!(
            "{} is noticed when it fails its liveness probe, up to {} s; detection took {}",
            run.stop.words(),
            l.worst,
            s(span)
        ),
        fix: "a liveness budget well under half the RTO, e.g. livenessProbeTimeout: 3".into(),
        suggested,
        variant,
    })
}

/// `wal_receiver_timeout`: the standbys must notice a hung primary before
/// the operator elects one of them.
fn wal_receiver(spec: &ClusterSpec, run: &Run<'_>) -> Option<Measured> {
    if run.stop != Stop::Unreachable {
        return None;
    }
    let (timeout, text) = wal_receiver_timeout(spec)?;
    let governed = vec![Phase::Election];
    let span = run.span(&governed);
    let slack = (timeout / 10).max(Duration::from_secs(1));
    let cost = waited(span, timeout, slack)?;
    let shorter = timeout > Duration::from_secs(5);
    Some(Measured {
        setting: field::WAL_RECEIVER_TIMEOUT,
        value: text,
        phases: governed,
        cost,
        of: span,
        reason: format!(
            "the standbys kept their WAL receivers connected to {} until wal_receiver_timeout \
             ended them, and the operator elects a new primary only once they are down; \
             election took {}",
            run.stop.words(),
            s(span)
        ),
        fix: "wal_receiver_timeout of a few seconds (and wal_sender_timeout alike), e.g. 5s: \
              shorter ones risk dropping standbys on a slow network"
            .into(),
        suggested: shorter.then_some("5s"),
        variant: if shorter {
            vec![format!("{}=5s", field::WAL_RECEIVER_TIMEOUT)]
        } else {
            Vec::new()
        },
    })
}

/// `smartShutdownTimeout`: a graceful stop first waits for clients.
fn smart_shutdown(spec: &ClusterSpec, run: &Run<'_>) -> Option<Measured> {
    if run.stop != Stop::Graceful {
        return None;
    }
    let smart = spec.smart_shutdown_timeout_or_default();
    let governed = vec![Phase::Detection];
    let span = run.span(&governed);
    let cost = waited(span, secs(smart), Duration::from_secs(1))?;
    Some(Measured {
        setting: field::SMART_SHUTDOWN_TIMEOUT,
        value: value_or_default(spec.smart_shutdown_timeout, DEFAULT_SMART_SHUTDOWN_TIMEOUT),
        phases: governed,
        cost,
        of: span,
        reason: format!(
            "{} waits up to {smart} s for its clients to disconnect before the fast shutdown \
             that lets the failover start; detection took {}",
            run.stop.words(),
            s(span)
        ),
        fix: "smartShutdownTimeout: 0..5 (go to a fast shutdown at once)".into(),
        suggested: (smart > 2).then_some("2"),
        variant: if smart > 2 {
            vec![format!("{}=2", field::SMART_SHUTDOWN_TIMEOUT)]
        } else {
            Vec::new()
        },
    })
}

/// `switchoverDelay`: the old primary's stop in a switchover.
fn switchover_delay(spec: &ClusterSpec, run: &Run<'_>) -> Option<Measured> {
    if run.stop != Stop::Switchover {
        return None;
    }
    let delay = spec.switchover_delay_or_default();
    let governed = vec![Phase::Promotion];
    let span = run.span(&governed);
    let (stop, how) = match Run::between(run.end_of(Phase::Election), run.mark(&PROMOTE_REQUESTED))
    {
        Some(d) => (d, "until the new primary was asked to promote"),
        None => (
            span,
            "the whole promotion, no log to split it: an upper bound",
        ),
    };
    Some(Measured {
        setting: field::SWITCHOVER_DELAY,
        value: value_or_default(spec.switchover_delay, DEFAULT_SWITCHOVER_DELAY),
        phases: governed,
        cost: stop.min(secs(delay)),
        of: span,
        reason: format!(
            "the old primary stopped gracefully, archiving its last WAL, for {} ({how}); \
             switchoverDelay caps that stop at {delay} s",
            s(stop)
        ),
        fix: "switchoverDelay a few seconds above what the primary needs to archive its last \
              WAL; a shorter one cuts the stop short and may leave WAL unarchived"
            .into(),
        suggested: None,
        variant: Vec::new(),
    })
}

/// Checkpoint settings: the WAL a promotion replays.
fn checkpoint(spec: &ClusterSpec, run: &Run<'_>) -> Option<Measured> {
    let (interval, text) = checkpoint_timeout(spec)?;
    let governed = vec![Phase::Promotion];
    let span = run.span(&governed);
    let (cost, how) =
        match Run::between(run.mark(&PROMOTE_REQUESTED), run.mark(&WAL_RECOVERY_ENDED)) {
            Some(d) => (
                d.min(span),
                "WAL replay at promotion, from the new primary's log",
            ),
            // A switchover's promotion holds the old primary's stop too.
            None if run.stop == Stop::Switchover => return None,
            None => (
                span,
                "the whole promotion, no log to split it: an upper bound",
            ),
        };
    let longer = interval > super::CHECKPOINT_TIMEOUT_ADVISED;
    Some(Measured {
        setting: field::CHECKPOINT_TIMEOUT,
        value: text,
        phases: governed,
        cost,
        of: span,
        reason: format!(
            "promotion ends its recovery by replaying the WAL its standby had not applied, \
             more the longer checkpoints are apart ({how}: {})",
            s(cost)
        ),
        fix: if longer {
            "checkpoint_timeout: 1min with checkpoint_completion_target: 0.9; a separate \
             walStorage volume"
                .into()
        } else {
            "checkpoints are already frequent: a faster or separate WAL volume (walStorage), \
             or less replication lag"
                .into()
        },
        suggested: longer.then_some("1min"),
        variant: if longer {
            vec![
                format!("{}=1min", field::CHECKPOINT_TIMEOUT),
                "spec.postgresql.parameters.checkpoint_completion_target=0.9".into(),
            ]
        } else {
            Vec::new()
        },
    })
}

/// The readiness probe: the `-rw` Service selects the new primary once it
/// is Ready.
fn readiness(spec: &ClusterSpec, run: &Run<'_>) -> Option<Measured> {
    let governed = vec![Phase::Routing];
    let span = run.span(&governed);
    if span < Duration::from_secs(1) {
        return None;
    }
    let probe = spec
        .probes
        .as_ref()
        .and_then(|p| p.readiness.as_ref())
        .filter(|r| has_timing(&r.timings));
    let (value, period) = match probe {
        Some(r) => (
            timings_text(&r.timings),
            i64::from(r.timings.period_seconds.unwrap_or(10)),
        ),
        None => ("{periodSeconds: 10} (Kubernetes default)".to_string(), 10),
    };
    let cost = span.min(secs64(period));
    Some(Measured {
        setting: field::READINESS_PROBE,
        value,
        phases: governed,
        cost,
        of: span,
        reason: format!(
            "the -rw Service points at the new primary once it is labelled primary and \
             passes its readiness probe, every {period} s; routing took {}",
            s(span)
        ),
        fix: "probes.readiness: {periodSeconds: 1..2, failureThreshold: 3}".into(),
        suggested: (period > 1).then_some("{periodSeconds: 1}"),
        variant: if period > 1 {
            vec![format!("{}.periodSeconds=1", field::READINESS_PROBE)]
        } else {
            Vec::new()
        },
    })
}

#[cfg(test)]
mod tests;
