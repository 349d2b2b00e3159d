//! Reading a CNPG `Cluster`'s own record: its topology in the library's
//! neutral roles, the RTO phase marks of a failover or switchover, and the
//! finer promotion marks in the new primary's PostgreSQL log.
//!
//! Everything here is pure: the target feeds it what it watched (statuses,
//! Events, pod log lines, the time the `-rw` endpoints switched) and gets
//! [`Event`]s back for its event stream.
//!
//! # Phase marks
//!
//! [`phase_marks`] ends the phases of [`Phase`] from the cluster's record:
//!
//! | phase ends | when | from |
//! |---|---|---|
//! | `detection` | the operator starts the failover | `targetPrimaryTimestamp` of a `targetPrimary: "pending"` status, else the `FailingOver` Event, else the first status seen with phase "Failing over"/"Switchover in progress"; for a switchover (no pending state) the moment the target is set |
//! | `election` | the new primary is chosen | `targetPrimaryTimestamp` of the first status naming a new pod, else the `FailoverTarget`/`Switchover` Event |
//! | `promotion` | the new pod runs as primary | `currentPrimaryTimestamp` of the first status whose `currentPrimary` is the new pod (`promotion = currentPrimaryTimestamp − targetPrimaryTimestamp`) |
//! | `routing` | the `-rw` Service points at it | given by the caller |
//!
//! Marks never go back in time: a mark earlier than the one before it (Event
//! times are truncated to the second) is moved up to it. Extra marks, not
//! phase ends: [`PRIMARY_FAILING`] (`currentPrimaryFailingSinceTimestamp`, the
//! start of a `failoverDelay`) and [`FAILOVER_DEFERRED`] (a
//! `PrimaryStatusCheckFailed` Event).
//!
//! # Promotion marks from the log
//!
//! [`promotion_log_marks`] reads the new primary's log (CNPG's JSON lines, or
//! plain PostgreSQL lines) and marks, in order: [`PROMOTE_REQUESTED`] (`received
//! promote request`), [`WAL_RECOVERY_ENDED`] (`redo done at …` / `redo is not
//! required`), [`TIMELINE_SELECTED`] (`selected new timeline ID: N`),
//! [`ARCHIVE_RECOVERY_COMPLETE`] (`archive recovery complete`) and
//! [`READY_FOR_CONNECTIONS`] (`database system is ready to accept
//! connections`) — the seed's hand-made table, measured. PostgreSQL must log in
//! English (`lc_messages` `C` or `en_*`, CNPG's default).

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Event as KubeEvent;
use k8s_openapi::jiff;

use super::crd::{
    Cluster, ClusterStatus, FailoverQuorumStatus, PENDING_FAILOVER_MARKER, event_reason, phase,
};
use crate::cluster::pglog::{self, log_mark};
use crate::cluster::{Member, Role, Topology};
use crate::timeline::{Event, EventKind, Phase, PromotionStep, Timestamp};

/// The port PostgreSQL listens on in a CNPG instance pod.
pub const POSTGRES_PORT: u16 = 5432;

/// Extra mark: the operator found the primary failing
/// (`currentPrimaryFailingSinceTimestamp`); with a `failoverDelay` the
/// failover starts that many seconds later.
pub const PRIMARY_FAILING: &str = crate::timeline::CNPG_PRIMARY_FAILING;
/// Extra mark: a `PrimaryStatusCheckFailed` Event — the primary is Ready to
/// the kubelet but failed the operator's status check, so the failover waits
/// until Kubernetes marks it not Ready.
pub const FAILOVER_DEFERRED: &str = crate::timeline::CNPG_FAILOVER_DEFERRED;
/// Log mark: PostgreSQL received the promote request.
pub const PROMOTE_REQUESTED: &str = PromotionStep::PromoteRequested.name();
/// Log mark: WAL replay finished (`redo done at …`, or `redo is not required`).
pub const WAL_RECOVERY_ENDED: &str = PromotionStep::WalRecoveryEnded.name();
/// Log mark: the new timeline was chosen (`selected new timeline ID: N`).
pub const TIMELINE_SELECTED: &str = PromotionStep::TimelineSelected.name();
/// Log mark: archive recovery complete (the end-of-recovery checkpoint or
/// record follows).
pub const ARCHIVE_RECOVERY_COMPLETE: &str = PromotionStep::ArchiveRecoveryComplete.name();
/// Log mark: the promoted server accepts connections (and so writes).
pub const READY_FOR_CONNECTIONS: &str = PromotionStep::ReadyForConnections.name();

/// Parses a time as CNPG and Kubernetes write it: RFC 3339 with any
/// precision and offset (`2026-08-21T10:00:07.904417Z`), or PostgreSQL's
/// `log_time` in UTC (`2026-08-21 10:00:06.123 UTC`).
pub fn parse_time(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    let rfc3339 = match text.strip_suffix(" UTC") {
        Some(t) => format!("{}Z", t.replacen(' ', "T", 1)),
        None => text.to_string(),
    };
    jiff::Timestamp::from_str(&rfc3339).ok().map(from_jiff)
}

fn from_jiff(t: jiff::Timestamp) -> Timestamp {
    let micros = t.as_microsecond();
    let d = Duration::from_micros(micros.unsigned_abs());
    Timestamp::from(if micros >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    })
}

/// The time of a Kubernetes Event: its latest occurrence (`eventTime`, else
/// `lastTimestamp`, else `firstTimestamp`, else its creation).
pub fn event_time(e: &KubeEvent) -> Option<Timestamp> {
    e.event_time
        .as_ref()
        .map(|t| from_jiff(t.0))
        .or_else(|| e.last_timestamp.as_ref().map(|t| from_jiff(t.0)))
        .or_else(|| e.first_timestamp.as_ref().map(|t| from_jiff(t.0)))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| from_jiff(t.0))
        })
}

/// The cluster's topology in the library's roles, from its `status` (never
/// from the role label, which is absent or `unhealthy` mid-failover).
///
/// - Members are `status.instanceNames` plus any instance named in
///   `instancesStatus` or `instancesReportedState`, sorted by name; `state` is
///   the `instancesStatus` key listing the member (`healthy`, `replicating`,
///   `failed`, …) or `missing`, with `, target primary` on the instance chosen
///   but not yet promoted.
/// - The primary is `status.currentPrimary`, and only while it is `healthy`
///   and no failover away from it is under way (`targetPrimary` `pending`, or
///   phase "Failing over" towards another pod): a deleted or failing primary
///   is [`Role::Down`], so that
///   a failover reads as "primary lost" then "new primary observed".
/// - Other `healthy` members are [`Role::SyncStandby`] when the
///   `FailoverQuorum` (if given) lists them, or, without it, when the spec
///   asks for synchronous replication (every healthy standby is then a
///   quorum candidate); else [`Role::Replica`]. `replicating` members (running,
///   not Ready: catching up) are replicas; `failed` and `missing` ones are down.
/// - The primary's timeline is `status.timelineID`; a standby's the one it
///   last reported. Hosts are the reported pod IPs (the pod name when
///   unknown), port [`POSTGRES_PORT`].
pub fn topology(cluster: &Cluster, quorum: Option<&FailoverQuorumStatus>) -> Topology {
    let Some(status) = &cluster.status else {
        return Topology::default();
    };
    let synchronous = cluster.spec.synchronous().is_some_and(|s| s.number > 0)
        || cluster.spec.max_sync_replicas.is_some_and(|n| n > 0);
    let quorum_names: Option<BTreeSet<&str>> = quorum
        .filter(|q| !q.standby_names.is_empty())
        .map(|q| q.standby_names.iter().map(String::as_str).collect());
    // A failover away from `currentPrimary` is under way (once the target has
    // promoted, `currentPrimary` names it and it serves).
    let failing_over = status.is_electing()
        || (status.phase.as_deref() == Some(phase::FAILING_OVER)
            && status.target_primary != status.current_primary);

    let mut names: BTreeSet<&str> = status.instance_names.iter().map(String::as_str).collect();
    names.extend(
        status
            .instances_status
            .values()
            .flatten()
            .map(String::as_str),
    );
    names.extend(status.instances_reported_state.keys().map(String::as_str));

    let members = names
        .into_iter()
        .map(|name| {
            let pod_status = status
                .instances_status
                .iter()
                .find(|(_, pods)| pods.iter().any(|p| p == name))
                .map(|(k, _)| k.as_str())
                .unwrap_or("missing");
            let reported = status.instances_reported_state.get(name);
            let is_current = status.current_primary.as_deref() == Some(name);
            let healthy = pod_status == "healthy";
            let role = if is_current {
                if healthy && !failing_over {
                    Role::Primary
                } else {
                    Role::Down
                }
            } else {
                match pod_status {
                    "healthy" => {
                        let sync = match &quorum_names {
                            Some(q) => q.contains(name),
                            None => synchronous,
                        };
                        if sync {
                            Role::SyncStandby
                        } else {
                            Role::Replica
                        }
                    }
                    "replicating" => Role::Replica,
                    _ => Role::Down,
                }
            };
            let timeline = if role == Role::Primary {
                status.timeline_id.or(reported.and_then(|r| r.time_line_id))
            } else if role == Role::Down {
                None
            } else {
                reported.and_then(|r| r.time_line_id)
            };
            let target =
                status.is_changing_primary() && status.target_primary.as_deref() == Some(name);
            Member {
                name: name.to_string(),
                role,
                state: if target {
                    format!("{pod_status}, target primary")
                } else {
                    pod_status.to_string()
                },
                host: reported
                    .and_then(|r| r.ip.clone())
                    .unwrap_or_else(|| name.to_string()),
                port: POSTGRES_PORT,
                timeline: timeline.and_then(|t| u32::try_from(t).ok()),
                lag: None,
            }
        })
        .collect();
    Topology { members }
}

/// A `Cluster` status and when it was observed (by a watch or a poll).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedStatus {
    /// When the status was read.
    pub at: Timestamp,
    /// The status.
    pub status: ClusterStatus,
}

impl ObservedStatus {
    /// A status observed at `at`.
    pub fn new(at: impl Into<Timestamp>, status: ClusterStatus) -> Self {
        ObservedStatus {
            at: at.into(),
            status,
        }
    }
}

/// The RTO phase marks of one change of primary, from the cluster's own
/// record (see the [module docs](self) for which field ends which phase).
///
/// - `since`: the fault's time; status timestamps and Events before it (minus
///   one second, as Event times are truncated to the second) belong to an
///   earlier change and are ignored.
/// - `observed`: the statuses seen, oldest first; the first one's
///   `currentPrimary` is the old primary.
/// - `events`: the Kubernetes Events of the `Cluster` (any order).
/// - `endpoints_switched`: when the `-rw` Service's endpoints came to point at
///   the new primary, if they did.
///
/// Returns events named [`Phase::end_event`] (detail: the new primary's pod)
/// plus the extra marks [`PRIMARY_FAILING`] and [`FAILOVER_DEFERRED`], sorted
/// by time. Phases whose end is not in the record are left out.
pub fn phase_marks(
    since: Timestamp,
    observed: &[ObservedStatus],
    events: &[KubeEvent],
    endpoints_switched: Option<Timestamp>,
) -> Vec<Event> {
    let slack = since
        .system_time()
        .checked_sub(Duration::from_secs(1))
        .map(Timestamp::from)
        .unwrap_or(since);
    let ts = |t: &Option<String>| t.as_deref().and_then(parse_time).filter(|t| *t >= since);
    let old_primary = observed
        .first()
        .and_then(|o| o.status.current_primary.clone());
    let is_new =
        |name: &str| name != PENDING_FAILOVER_MARKER && Some(name) != old_primary.as_deref();

    let mut cluster_events: Vec<(Timestamp, &KubeEvent)> = events
        .iter()
        .filter(|e| {
            e.involved_object
                .kind
                .as_deref()
                .is_none_or(|k| k == "Cluster")
        })
        .filter_map(|e| event_time(e).map(|t| (t, e)))
        .filter(|(t, _)| *t >= slack)
        .collect();
    cluster_events.sort_by_key(|(t, _)| *t);
    let first_event = |reason: &str| {
        cluster_events
            .iter()
            .find(|(_, e)| e.reason.as_deref() == Some(reason))
            .map(|(t, e)| (*t, *e))
    };

    // The new primary: the first target naming a new pod, else the first new
    // current primary, else the pod the FailoverTarget/Switchover Event names.
    let elected = observed.iter().find_map(|o| {
        let t = o.status.target_primary.as_deref()?;
        is_new(t).then(|| (t.to_string(), o))
    });
    let promoted = observed.iter().find_map(|o| {
        let c = o.status.current_primary.as_deref()?;
        is_new(c).then(|| (c.to_string(), o))
    });
    let target_event = first_event(event_reason::FAILOVER_TARGET)
        .or_else(|| first_event(event_reason::SWITCHOVER));
    let new_primary: Option<String> = elected
        .as_ref()
        .map(|(n, _)| n.clone())
        .or_else(|| promoted.as_ref().map(|(n, _)| n.clone()))
        .or_else(|| target_event.and_then(|(_, e)| pod_named_in(e)));

    let mut marks: Vec<Event> = Vec::new();
    let mut extra: Vec<Event> = Vec::new();

    if let Some(t) = observed
        .iter()
        .find_map(|o| ts(&o.status.current_primary_failing_since_timestamp))
    {
        extra.push(Event::new(
            EventKind::CnpgPrimaryFailing,
            t,
            old_primary.clone(),
        ));
    }
    if let Some((t, e)) = first_event(event_reason::PRIMARY_STATUS_CHECK_FAILED) {
        extra.push(Event::new(
            EventKind::CnpgFailoverDeferred,
            t,
            e.message.clone(),
        ));
    }

    // Detection.
    let pending = observed
        .iter()
        .filter(|o| o.status.is_electing())
        .find_map(|o| ts(&o.status.target_primary_timestamp));
    let failing_over_event = first_event(event_reason::FAILING_OVER).map(|(t, _)| t);
    let phase_seen = observed
        .iter()
        .find(|o| {
            o.at >= since
                && (o.status.is_electing()
                    || matches!(
                        o.status.phase.as_deref(),
                        Some(phase::FAILING_OVER | phase::SWITCHOVER)
                    ))
        })
        .map(|o| o.at);
    let election_at = elected
        .as_ref()
        .and_then(|(_, o)| ts(&o.status.target_primary_timestamp).or(Some(o.at)))
        .or_else(|| target_event.map(|(t, _)| t));
    // Seeing the phase, or the target being set, bounds detection from above;
    // a switchover has no pending state: it is detected when asked for.
    let upper_bound = match (phase_seen, election_at.filter(|_| new_primary.is_some())) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let detection_at = pending.or(failing_over_event).or(upper_bound);
    let detail = || new_primary.clone();
    if let Some(t) = detection_at {
        marks.push(Event::new(
            EventKind::PhaseEnded(Phase::Detection),
            t,
            detail(),
        ));
    }
    if let (Some(t), Some(_)) = (election_at, &new_primary) {
        marks.push(Event::new(
            EventKind::PhaseEnded(Phase::Election),
            t,
            detail(),
        ));
    }
    if let Some((_, o)) = &promoted {
        let t = ts(&o.status.current_primary_timestamp).unwrap_or(o.at);
        marks.push(Event::new(
            EventKind::PhaseEnded(Phase::Promotion),
            t,
            detail(),
        ));
    }
    if let (Some(t), Some(_)) = (endpoints_switched, &new_primary) {
        marks.push(Event::new(
            EventKind::PhaseEnded(Phase::Routing),
            t,
            detail(),
        ));
    }
    // Never back in time (Event times are truncated to the second).
    for i in 1..marks.len() {
        if marks[i].at < marks[i - 1].at {
            marks[i].at = marks[i - 1].at;
        }
    }
    marks.extend(extra);
    marks.sort_by_key(|e| e.at);
    marks
}

/// The pod a `FailoverTarget` ("Failing over from X to Y") or `Switchover`
/// ("Initiating switchover to Y to upgrade X") Event names as new primary.
fn pod_named_in(e: &KubeEvent) -> Option<String> {
    let message = e.message.as_deref()?;
    let (_, rest) = message.split_once(" to ")?;
    rest.split_whitespace().next().map(str::to_string)
}

/// The seconds a promotion took by the cluster's own record:
/// `currentPrimaryTimestamp − targetPrimaryTimestamp`, when `currentPrimary`
/// has caught up with `targetPrimary`.
pub fn promotion_duration(status: &ClusterStatus) -> Option<Duration> {
    if status.current_primary.is_none() || status.current_primary != status.target_primary {
        return None;
    }
    let current = parse_time(status.current_primary_timestamp.as_deref()?)?;
    let target = parse_time(status.target_primary_timestamp.as_deref()?)?;
    current
        .system_time()
        .duration_since(target.system_time())
        .ok()
}

/// The finer promotion marks in the new primary's log (see the [module
/// docs](self)): each mark once, its first occurrence at or after `since`,
/// detail the PostgreSQL message. Lines may be CNPG's JSON (timed by the
/// record's `log_time` when in UTC, else by `ts`), with or without the
/// timestamp `kubectl logs --timestamps` puts in front, or plain PostgreSQL
/// lines starting with `YYYY-MM-DD HH:MM:SS.mmm UTC` (or a numeric offset
/// such as `+02`). Other lines are skipped.
pub fn promotion_log_marks<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    since: Option<Timestamp>,
) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for line in lines {
        let Some((at, message)) = parse_log_line(line) else {
            continue;
        };
        if since.is_some_and(|s| at < s) {
            continue;
        }
        let Some(step) = log_mark(&message) else {
            continue;
        };
        let kind = EventKind::PromotionStep(step);
        if out.iter().any(|e| e.kind == kind) {
            continue;
        }
        out.push(Event::new(kind, at, Some(message)));
    }
    out.sort_by_key(|e| e.at);
    out
}

/// The time and PostgreSQL message of one log line, if it carries one.
fn parse_log_line(line: &str) -> Option<(Timestamp, String)> {
    let line = line.trim();
    if let Some(start) = line.find('{')
        && let Ok(json) = serde_json::from_str::<serde_json::Value>(&line[start..])
    {
        let record = json.get("record")?;
        let message = record.get("message")?.as_str()?.to_string();
        let at = record
            .get("log_time")
            .and_then(|t| t.as_str())
            .and_then(parse_time)
            .or_else(|| json.get("ts").and_then(json_time))
            .or_else(|| line[..start].split_whitespace().next().and_then(parse_time))?;
        return Some((at, message));
    }
    // Plain PostgreSQL: `2026-08-21 10:00:06.123 UTC [27] LOG:  message`.
    let plain = pglog::parse_plain_line(line)?;
    Some((plain.at()?, plain.message.to_string()))
}

/// `ts` as CNPG writes it: an RFC 3339 string, or (older releases) seconds
/// since the epoch as a number.
fn json_time(v: &serde_json::Value) -> Option<Timestamp> {
    match v {
        serde_json::Value::String(s) => parse_time(s),
        serde_json::Value::Number(n) => {
            let secs = n.as_f64()?;
            (secs.is_finite() && secs >= 0.0)
                .then(|| Timestamp::from(UNIX_EPOCH + Duration::from_secs_f64(secs)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
