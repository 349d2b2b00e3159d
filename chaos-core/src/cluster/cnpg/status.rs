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
use crate::timeline::{Event, EventKind, Phase, Timestamp};

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
pub use crate::cluster::pglog::{
    ARCHIVE_RECOVERY_COMPLETE, PROMOTE_REQUESTED, READY_FOR_CONNECTIONS, TIMELINE_SELECTED,
    WAL_RECOVERY_ENDED,
};

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
mod tests {
    use super::*;
    use crate::cluster::cnpg::crd::FailoverQuorum;
    use std::path::PathBuf;

    /// The shared fixtures, `../../shared/reference/fixtures` from this crate.
    fn fixtures_dir() -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/fixtures");
        assert!(
            dir.join("README.md").is_file(),
            "CNPG fixtures not found at {}: these tests need ../shared/reference/fixtures \
             next to the workspace (the project's shared reference directory)",
            dir.display()
        );
        dir
    }

    fn fixture(name: &str) -> String {
        let path = fixtures_dir().join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
    }

    fn cluster(name: &str) -> Cluster {
        serde_json::from_str(&fixture(name))
            .unwrap_or_else(|e| panic!("fixture {name} is not a Cluster: {e}"))
    }

    fn status(name: &str) -> ClusterStatus {
        cluster(name).status.expect("fixture has a status")
    }

    fn events() -> Vec<KubeEvent> {
        #[derive(serde::Deserialize)]
        struct List {
            items: Vec<KubeEvent>,
        }
        let list: List = serde_json::from_str(&fixture("cnpg_events_failover.json"))
            .expect("fixture is an Event list");
        list.items
    }

    fn t(text: &str) -> Timestamp {
        parse_time(text).expect("valid time")
    }

    fn names(marks: &[Event]) -> Vec<(&str, String, Option<&str>)> {
        marks
            .iter()
            .map(|e| (e.name(), e.at.to_string(), e.detail.as_deref()))
            .collect()
    }

    const HEALTHY: &str = "cnpg_cluster_01_healthy.json";
    const PENDING: &str = "cnpg_cluster_02_failover_pending.json";
    const ELECTED: &str = "cnpg_cluster_03_failover_target_elected.json";
    const PROMOTED: &str = "cnpg_cluster_04_failover_promoted_old_primary_rejoining.json";
    const HEALTHY_AFTER: &str = "cnpg_cluster_05_healthy_after_failover.json";
    const DELAY: &str = "cnpg_cluster_06_failover_delay_waiting.json";
    const SWITCHOVER: &str = "cnpg_cluster_07_switchover_in_progress.json";

    #[test]
    fn parses_cnpg_and_postgres_times() {
        assert_eq!(
            t("2026-08-21T10:00:07.904417Z").to_string(),
            "2026-08-21T10:00:07.904417Z"
        );
        assert_eq!(
            t("2026-08-21 10:00:06.123 UTC").to_string(),
            "2026-08-21T10:00:06.123000Z"
        );
        assert_eq!(
            t("2026-08-21T12:00:06.5+02:00").to_string(),
            "2026-08-21T10:00:06.500000Z"
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn every_cluster_fixture_parses() {
        for name in [
            HEALTHY,
            PENDING,
            ELECTED,
            PROMOTED,
            HEALTHY_AFTER,
            DELAY,
            SWITCHOVER,
        ] {
            let c = cluster(name);
            assert_eq!(c.spec.instances, 3, "{name}");
            let s = c.status.expect("status");
            assert_eq!(s.instance_names.len(), 3, "{name}");
            assert!(s.current_primary.is_some(), "{name}");
        }
        let q: FailoverQuorum =
            serde_json::from_str(&fixture("cnpg_failoverquorum.json")).expect("FailoverQuorum");
        let qs = q.status.expect("status");
        assert_eq!(qs.standby_number, Some(1));
        assert_eq!(qs.primary.as_deref(), Some("cluster-example-1"));
    }

    fn roles(topo: &Topology) -> Vec<(&str, Role, Option<u32>)> {
        topo.members
            .iter()
            .map(|m| (m.name.as_str(), m.role, m.timeline))
            .collect()
    }

    #[test]
    fn topology_of_a_healthy_cluster() {
        let c = cluster(HEALTHY);
        let topo = topology(&c, None);
        // No synchronous replication in the fixture's spec: plain replicas.
        assert_eq!(
            roles(&topo),
            vec![
                ("cluster-example-1", Role::Primary, Some(1)),
                ("cluster-example-2", Role::Replica, Some(1)),
                ("cluster-example-3", Role::Replica, Some(1)),
            ]
        );
        assert_eq!(topo.members[0].host, "10.244.1.12");
        assert_eq!(topo.members[0].port, 5432);
        assert_eq!(topo.members[0].state, "healthy");
        assert!(!topo.is_healthy(3), "no synchronous standby");

        let q: FailoverQuorum =
            serde_json::from_str(&fixture("cnpg_failoverquorum.json")).expect("FailoverQuorum");
        let topo = topology(&c, q.status.as_ref());
        assert_eq!(topo.sync_standbys().count(), 2);
        assert!(topo.is_healthy(3));
    }

    #[test]
    fn topology_with_synchronous_spec_and_no_quorum() {
        let mut c = cluster(HEALTHY);
        c.spec.postgresql = Some(
            serde_json::from_value(serde_json::json!({
                "synchronous": {"method": "any", "number": 1, "dataDurability": "required"}
            }))
            .expect("postgresql"),
        );
        let topo = topology(&c, None);
        assert_eq!(topo.sync_standbys().count(), 2);
        assert!(topo.is_healthy(3));
    }

    #[test]
    fn topology_through_a_failover() {
        // Pending: the old primary is gone, nobody is primary.
        let pending = topology(&cluster(PENDING), None);
        assert_eq!(pending.primary_name(), None);
        assert_eq!(
            roles(&pending),
            vec![
                ("cluster-example-1", Role::Down, None),
                ("cluster-example-2", Role::Replica, Some(1)),
                ("cluster-example-3", Role::Replica, Some(1)),
            ]
        );
        assert_eq!(pending.members[0].state, "missing");
        assert_eq!(pending.members[0].host, "cluster-example-1");

        // Elected: the target is named but not promoted.
        let elected = topology(&cluster(ELECTED), None);
        assert_eq!(elected.primary_name(), None);
        assert_eq!(elected.members[1].state, "healthy, target primary");

        // Promoted: -2 is primary on timeline 2; -1 rejoins as a replica
        // (it has not reported yet, so no timeline).
        let promoted = topology(&cluster(PROMOTED), None);
        assert_eq!(promoted.primary_name(), Some("cluster-example-2"));
        assert_eq!(promoted.timeline(), Some(2));
        assert_eq!(
            roles(&promoted),
            vec![
                ("cluster-example-1", Role::Replica, None),
                ("cluster-example-2", Role::Primary, Some(2)),
                ("cluster-example-3", Role::Replica, Some(2)),
            ]
        );

        // Promoted while the operator has not yet left "Failing over": the
        // new primary serves.
        let mut lagging = cluster(PROMOTED);
        if let Some(s) = lagging.status.as_mut() {
            s.phase = Some(phase::FAILING_OVER.into());
        }
        assert_eq!(
            topology(&lagging, None).primary_name(),
            Some("cluster-example-2")
        );

        let after = topology(&cluster(HEALTHY_AFTER), None);
        assert_eq!(after.primary_name(), Some("cluster-example-2"));
        assert_eq!(after.down().count(), 0);

        // The neutral change events tell the same story.
        let before = topology(&cluster(HEALTHY), None);
        assert_eq!(
            pending.changes_since(&before),
            vec![
                EventKind::PrimaryLost {
                    node: "cluster-example-1".into()
                },
                EventKind::MemberDown {
                    node: "cluster-example-1".into()
                },
            ]
        );
        assert_eq!(
            promoted.changes_since(&elected)[0],
            EventKind::NewPrimary {
                node: "cluster-example-2".into(),
                timeline: Some(2)
            }
        );
    }

    #[test]
    fn topology_while_failover_delay_runs_and_in_switchover() {
        // failoverDelay: the primary is failing (not Ready: "replicating"),
        // not yet failed over.
        let delay = topology(&cluster(DELAY), None);
        assert_eq!(delay.primary_name(), None);
        assert_eq!(delay.members[0].role, Role::Down);
        assert_eq!(delay.members[0].state, "replicating");

        // Switchover in progress: the old primary still serves.
        let sw = topology(&cluster(SWITCHOVER), None);
        assert_eq!(sw.primary_name(), Some("cluster-example-1"));
        assert_eq!(sw.members[2].state, "healthy, target primary");
    }

    #[test]
    fn topology_without_status_is_empty() {
        let mut c = cluster(HEALTHY);
        c.status = None;
        assert_eq!(topology(&c, None), Topology::default());
    }

    fn failover_observations() -> Vec<ObservedStatus> {
        vec![
            ObservedStatus::new(t("2026-08-21T09:59:59.900000Z"), status(HEALTHY)),
            ObservedStatus::new(t("2026-08-21T10:00:01.000000Z"), status(PENDING)),
            ObservedStatus::new(t("2026-08-21T10:00:06.000000Z"), status(ELECTED)),
            ObservedStatus::new(t("2026-08-21T10:00:08.000000Z"), status(PROMOTED)),
            ObservedStatus::new(t("2026-08-21T10:00:42.000000Z"), status(HEALTHY_AFTER)),
        ]
    }

    const FAULT: &str = "2026-08-21T10:00:00.000000Z";

    #[test]
    fn phase_marks_of_a_failover() {
        let marks = phase_marks(
            t(FAULT),
            &failover_observations(),
            &events()[..2],
            Some(t("2026-08-21T10:00:09.250000Z")),
        );
        let new = Some("cluster-example-2");
        assert_eq!(
            names(&marks),
            vec![
                ("detection ended", "2026-08-21T10:00:00.512034Z".into(), new),
                ("election ended", "2026-08-21T10:00:05.733120Z".into(), new),
                ("promotion ended", "2026-08-21T10:00:07.904417Z".into(), new),
                ("routing ended", "2026-08-21T10:00:09.250000Z".into(), new),
            ]
        );
        // Promotion by the cluster's own record: 2.171297 s.
        assert_eq!(
            promotion_duration(&status(PROMOTED)),
            Some(Duration::from_micros(2_171_297))
        );
        assert_eq!(
            promotion_duration(&status(ELECTED)),
            None,
            "not promoted yet"
        );
    }

    #[test]
    fn phase_marks_fall_back_to_events_when_states_were_missed() {
        // A slow poll saw only healthy, then promoted: detection and election
        // come from the FailingOver and FailoverTarget Events.
        let observed = vec![
            ObservedStatus::new(t("2026-08-21T09:59:59.900000Z"), status(HEALTHY)),
            ObservedStatus::new(t("2026-08-21T10:00:08.000000Z"), status(PROMOTED)),
        ];
        let marks = phase_marks(t(FAULT), &observed, &events(), None);
        let new = Some("cluster-example-2");
        assert_eq!(
            names(&marks)[..2],
            [
                (
                    "detection ended",
                    "2026-08-21T10:00:00.000000Z".to_string(),
                    new
                ),
                // PROMOTED still carries the election's targetPrimaryTimestamp.
                (
                    "election ended",
                    "2026-08-21T10:00:05.733120Z".to_string(),
                    new
                ),
            ]
        );
        assert_eq!(marks[2].kind, EventKind::PhaseEnded(Phase::Promotion));
        assert!(
            marks
                .iter()
                .all(|e| e.kind != EventKind::PhaseEnded(Phase::Routing))
        );

        // Only Events: the new primary comes from the FailoverTarget message.
        let only_healthy = &observed[..1];
        let marks = phase_marks(t(FAULT), only_healthy, &events()[..2], None);
        assert_eq!(
            names(&marks),
            vec![
                ("detection ended", "2026-08-21T10:00:00.000000Z".into(), new),
                ("election ended", "2026-08-21T10:00:05.000000Z".into(), new),
            ]
        );
    }

    #[test]
    fn phase_marks_ignore_what_happened_before_the_fault() {
        // The healthy-after-failover status carries the earlier failover's
        // timestamps; a fault after it sees no phase end at all.
        let later = t("2026-08-21T10:30:00.000000Z");
        let observed = vec![ObservedStatus::new(later, status(HEALTHY_AFTER))];
        assert!(phase_marks(later, &observed, &events()[..2], None).is_empty());
    }

    #[test]
    fn phase_marks_while_failover_delay_runs() {
        let observed = vec![
            ObservedStatus::new(t("2026-08-21T09:59:59.900000Z"), status(HEALTHY)),
            ObservedStatus::new(t("2026-08-21T10:00:01.000000Z"), status(DELAY)),
        ];
        let marks = phase_marks(t(FAULT), &observed, &[], None);
        assert_eq!(
            names(&marks),
            vec![(
                PRIMARY_FAILING,
                "2026-08-21T10:00:00.401223Z".into(),
                Some("cluster-example-1")
            )]
        );
    }

    #[test]
    fn phase_marks_note_a_deferred_failover() {
        let at = t("2026-08-21T11:59:59.000000Z");
        let observed = vec![ObservedStatus::new(at, status(HEALTHY))];
        let marks = phase_marks(at, &observed, &events(), None);
        assert_eq!(marks.len(), 3, "{marks:?}");
        assert_eq!(marks[0].kind, EventKind::CnpgFailoverDeferred);
        assert!(
            marks[0]
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("is Ready but"))
        );
        // The Switchover Event an hour later names its target.
        assert_eq!(marks[1].kind, EventKind::PhaseEnded(Phase::Detection));
        assert_eq!(marks[1].detail.as_deref(), Some("cluster-example-3"));
        assert_eq!(marks[2].kind, EventKind::PhaseEnded(Phase::Election));
        assert_eq!(marks[2].at, t("2026-08-21T13:00:00Z"));
    }

    #[test]
    fn phase_marks_of_a_switchover() {
        let asked = t("2026-08-21T10:59:59.990000Z");
        let mut promoted = status(SWITCHOVER);
        promoted.current_primary = Some("cluster-example-3".into());
        promoted.current_primary_timestamp = Some("2026-08-21T11:00:04.250001Z".into());
        promoted.timeline_id = Some(2);
        let observed = vec![
            ObservedStatus::new(t("2026-08-21T10:59:59.000000Z"), status(HEALTHY)),
            ObservedStatus::new(t("2026-08-21T11:00:00.500000Z"), status(SWITCHOVER)),
            ObservedStatus::new(t("2026-08-21T11:00:05.000000Z"), promoted.clone()),
        ];
        let marks = phase_marks(asked, &observed, &[], None);
        let new = Some("cluster-example-3");
        assert_eq!(
            names(&marks),
            vec![
                ("detection ended", "2026-08-21T11:00:00.000123Z".into(), new),
                ("election ended", "2026-08-21T11:00:00.000123Z".into(), new),
                ("promotion ended", "2026-08-21T11:00:04.250001Z".into(), new),
            ]
        );
        assert_eq!(
            promotion_duration(&promoted),
            Some(Duration::from_micros(4_249_878))
        );
    }

    #[test]
    fn marks_never_go_back_in_time() {
        // An Event truncated to the second must not put election before
        // detection: here detection comes from a precise pending timestamp
        // and election only from a truncated Event.
        let observed = vec![
            ObservedStatus::new(t("2026-08-21T09:59:59.900000Z"), status(HEALTHY)),
            ObservedStatus::new(t("2026-08-21T10:00:01.000000Z"), status(PENDING)),
        ];
        let mut evs = events();
        evs[1].last_timestamp = evs[0].last_timestamp.clone();
        evs[1].first_timestamp = evs[0].first_timestamp.clone();
        let marks = phase_marks(t(FAULT), &observed, &evs[..2], None);
        assert_eq!(marks[0].kind, EventKind::PhaseEnded(Phase::Detection));
        assert_eq!(marks[1].kind, EventKind::PhaseEnded(Phase::Election));
        assert_eq!(marks[1].at, marks[0].at);
    }

    const LOG: &str = r#"{"level":"info","ts":"2026-08-21T10:00:05.801234567Z","logger":"instance-manager","msg":"Promoting instance","logging_pod":"cluster-example-2"}
{"level":"info","ts":"2026-08-21T10:00:05.812000001Z","logger":"postgres","msg":"record","logging_pod":"cluster-example-2","record":{"log_time":"2026-08-21 10:00:05.811 UTC","process_id":"27","error_severity":"LOG","sql_state_code":"00000","message":"received promote request","backend_type":"startup","query_id":"0"}}
{"level":"info","ts":"2026-08-21T10:00:07.402000001Z","logger":"postgres","msg":"record","logging_pod":"cluster-example-2","record":{"log_time":"2026-08-21 10:00:07.401 UTC","process_id":"27","error_severity":"LOG","sql_state_code":"00000","message":"redo done at 0/5000060 system usage: CPU: user: 0.00 s, system: 0.01 s, elapsed: 1.59 s","backend_type":"startup","query_id":"0"}}
{"level":"info","ts":"2026-08-21T10:00:07.520000001Z","logger":"postgres","msg":"record","logging_pod":"cluster-example-2","record":{"log_time":"2026-08-21 10:00:07.519 UTC","process_id":"27","error_severity":"LOG","sql_state_code":"00000","message":"selected new timeline ID: 2","backend_type":"startup","query_id":"0"}}
not json at all
{"level":"info","ts":"2026-08-21T10:00:07.600000001Z","logger":"postgres","msg":"record","logging_pod":"cluster-example-2","record":{"log_time":"2026-08-21 10:00:07.599 UTC","process_id":"27","error_severity":"LOG","sql_state_code":"00000","message":"archive recovery complete","backend_type":"startup","query_id":"0"}}
{"level":"info","ts":"2026-08-21T10:00:07.890000001Z","logger":"postgres","msg":"record","logging_pod":"cluster-example-2","record":{"log_time":"2026-08-21 10:00:07.889 UTC","process_id":"25","error_severity":"LOG","sql_state_code":"00000","message":"database system is ready to accept connections","backend_type":"postmaster","query_id":"0"}}
{"level":"info","ts":"2026-08-21T10:00:09.000000001Z","logger":"postgres","msg":"record","logging_pod":"cluster-example-2","record":{"log_time":"2026-08-21 10:00:08.999 UTC","process_id":"25","error_severity":"LOG","sql_state_code":"00000","message":"database system is ready to accept connections","backend_type":"postmaster","query_id":"0"}}"#;

    #[test]
    fn promotion_marks_from_cnpg_json_log() {
        let marks = promotion_log_marks(LOG.lines(), Some(t(FAULT)));
        assert_eq!(
            marks
                .iter()
                .map(|e| (e.name(), e.at.to_string()))
                .collect::<Vec<_>>(),
            vec![
                (PROMOTE_REQUESTED, "2026-08-21T10:00:05.811000Z".to_string()),
                (
                    WAL_RECOVERY_ENDED,
                    "2026-08-21T10:00:07.401000Z".to_string()
                ),
                (TIMELINE_SELECTED, "2026-08-21T10:00:07.519000Z".to_string()),
                (
                    ARCHIVE_RECOVERY_COMPLETE,
                    "2026-08-21T10:00:07.599000Z".to_string()
                ),
                (
                    READY_FOR_CONNECTIONS,
                    "2026-08-21T10:00:07.889000Z".to_string()
                ),
            ]
        );
        assert_eq!(
            marks[2].detail.as_deref(),
            Some("selected new timeline ID: 2")
        );
        // Lines before `since` are ignored.
        let late = promotion_log_marks(LOG.lines(), Some(t("2026-08-21T10:00:07.500000Z")));
        assert_eq!(late[0].name(), TIMELINE_SELECTED);
    }

    #[test]
    fn promotion_marks_from_other_log_shapes() {
        // `kubectl logs --timestamps`, a non-UTC log_time (timed by `ts`),
        // an old numeric `ts`, and plain PostgreSQL text.
        let lines = [
            r#"2026-08-21T10:00:07.402Z {"ts":"2026-08-21T12:00:07.402+02:00","logger":"postgres","msg":"record","record":{"log_time":"2026-08-21 12:00:07.401 CEST","message":"redo is not required"}}"#,
            r#"{"ts":1787306407.5,"logger":"postgres","msg":"record","record":{"message":"selected new timeline ID: 7"}}"#,
            "2026-08-21 10:00:07.889 UTC [25] LOG:  database system is ready to accept connections",
            "2026-08-21 10:00:07.900 UTC [25] LOG:  checkpoint starting: force",
        ];
        let marks = promotion_log_marks(lines, None);
        assert_eq!(
            marks
                .iter()
                .map(|e| (e.name(), e.at.to_string()))
                .collect::<Vec<_>>(),
            vec![
                (
                    WAL_RECOVERY_ENDED,
                    "2026-08-21T10:00:07.402000Z".to_string()
                ),
                (TIMELINE_SELECTED, "2026-08-21T10:00:07.500000Z".to_string()),
                (
                    READY_FOR_CONNECTIONS,
                    "2026-08-21T10:00:07.889000Z".to_string()
                ),
            ]
        );
    }
}
