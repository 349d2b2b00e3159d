//! The events of a run's timeline: what happened ([`EventKind`], with its data
//! as fields), when, and an optional free-text detail.
//!
//! In reports an event is written as `{ "name", "at", "detail" }`: the kind's
//! name (`new primary observed`), the time, and the detail — the kind's own
//! fields in words (`node2 on timeline 3`) or the free detail. Reading a report
//! back gives the same kinds, so old reports and new ones read alike.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Phase, Timestamp};

/// A moment of a run: something the pipeline, a fault, the target or the test
/// itself saw happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireEvent", into = "WireEvent")]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub at: Timestamp,
    /// Free detail beside the kind's own fields, e.g. the fault injected or a
    /// PostgreSQL log message. Kinds with fields ([`EventKind::NewPrimary`],
    /// [`EventKind::PrimaryLost`], …) write those instead: see
    /// [`Event::detail_text`].
    pub detail: Option<String>,
}

impl Event {
    /// A new event.
    pub fn new(kind: EventKind, at: impl Into<Timestamp>, detail: Option<String>) -> Self {
        Event {
            kind,
            at: at.into(),
            detail,
        }
    }

    /// A new event happening now.
    pub fn now(kind: EventKind, detail: Option<String>) -> Self {
        Self::new(kind, Timestamp::now(), detail)
    }

    /// The event's name in reports, e.g. `new primary observed`.
    pub fn name(&self) -> &str {
        self.kind.name()
    }

    /// The detail as reports write it: the kind's fields in words (`node2 on
    /// timeline 3`) for kinds that have fields, else the free detail.
    pub fn detail_text(&self) -> Option<Cow<'_, str>> {
        self.kind
            .fields_text()
            .map(Cow::Owned)
            .or_else(|| self.detail.as_deref().map(Cow::Borrowed))
    }
}

/// What an [`Event`] says happened. Each kind has a fixed name in reports
/// ([`EventKind::name`]); kinds that carry data keep it as fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EventKind {
    /// `probe started`: the write probe runs.
    ProbeStarted,
    /// `workload started` (detail: the workload's name).
    WorkloadStarted,
    /// `fault injected` (detail: the fault and its victim).
    FaultInjected,
    /// `fault marked`: the test marked a fault of its own (detail: its name).
    FaultMarked,
    /// `fault end marked`: the end of a marked fault (detail: its name).
    FaultEndMarked,
    /// A fault was healed and its victim is back, named by how (`node
    /// rejoined`, `thawed`, …).
    FaultHealed(Healing),
    /// `no recovery`: a fault gave no acknowledged write in time.
    NoRecovery,
    /// `first write acknowledged after the fault`.
    FirstWriteAfterFault,
    /// `new primary observed`: a new primary, or the same one on a newer
    /// timeline (written `node2 on timeline 3`).
    NewPrimary {
        /// The new primary's name.
        node: String,
        /// Its timeline, when known.
        timeline: Option<u32>,
    },
    /// `primary lost`: no member serves as primary any more.
    PrimaryLost {
        /// The primary that was lost.
        node: String,
    },
    /// `member down`: a member stopped serving.
    MemberDown {
        /// The member.
        node: String,
    },
    /// `member back`: a member serves again.
    MemberBack {
        /// The member.
        node: String,
    },
    /// The end of an RTO phase (`detection ended`, …; see [`Phase`]).
    PhaseEnded(Phase),
    /// A step of a promotion in PostgreSQL's log (`promote requested`, …;
    /// detail: the message).
    PromotionStep(PromotionStep),
    /// `cnpg primary failing`: CNPG found the primary failing
    /// (`currentPrimaryFailingSinceTimestamp`, the start of a `failoverDelay`).
    CnpgPrimaryFailing,
    /// `cnpg failover deferred`: a `PrimaryStatusCheckFailed` Event — the
    /// failover waits until Kubernetes marks the primary not Ready.
    CnpgFailoverDeferred,
    /// `proxy routes to` the servers (written `node1, node2`), or `proxy
    /// routes nowhere` when there are none.
    ProxyRoutes {
        /// Where new connections go.
        servers: Vec<String>,
    },
    /// An event of the test's own ([`FailoverCtx::event`](crate::FailoverCtx::event)),
    /// or one this library does not know (read from a report).
    Mark(String),
}

const PROBE_STARTED: &str = "probe started";
const WORKLOAD_STARTED: &str = "workload started";
const FAULT_INJECTED: &str = "fault injected";
const FAULT_MARKED: &str = "fault marked";
const FAULT_END_MARKED: &str = "fault end marked";
const NO_RECOVERY: &str = "no recovery";
const FIRST_WRITE_AFTER_FAULT: &str = "first write acknowledged after the fault";
const NEW_PRIMARY: &str = "new primary observed";
const PRIMARY_LOST: &str = "primary lost";
const MEMBER_DOWN: &str = "member down";
const MEMBER_BACK: &str = "member back";
pub(crate) const CNPG_PRIMARY_FAILING: &str = "cnpg primary failing";
pub(crate) const CNPG_FAILOVER_DEFERRED: &str = "cnpg failover deferred";
const PROXY_ROUTES_TO: &str = "proxy routes to";
const PROXY_ROUTES_NOWHERE: &str = "proxy routes nowhere";

/// The kinds without data, for reading names back.
const PLAIN: [EventKind; 9] = [
    EventKind::ProbeStarted,
    EventKind::WorkloadStarted,
    EventKind::FaultInjected,
    EventKind::FaultMarked,
    EventKind::FaultEndMarked,
    EventKind::NoRecovery,
    EventKind::FirstWriteAfterFault,
    EventKind::CnpgPrimaryFailing,
    EventKind::CnpgFailoverDeferred,
];

impl EventKind {
    /// The kind's name in reports, e.g. `new primary observed`.
    pub fn name(&self) -> &str {
        match self {
            EventKind::ProbeStarted => PROBE_STARTED,
            EventKind::WorkloadStarted => WORKLOAD_STARTED,
            EventKind::FaultInjected => FAULT_INJECTED,
            EventKind::FaultMarked => FAULT_MARKED,
            EventKind::FaultEndMarked => FAULT_END_MARKED,
            EventKind::FaultHealed(h) => h.name(),
            EventKind::NoRecovery => NO_RECOVERY,
            EventKind::FirstWriteAfterFault => FIRST_WRITE_AFTER_FAULT,
            EventKind::NewPrimary { .. } => NEW_PRIMARY,
            EventKind::PrimaryLost { .. } => PRIMARY_LOST,
            EventKind::MemberDown { .. } => MEMBER_DOWN,
            EventKind::MemberBack { .. } => MEMBER_BACK,
            EventKind::PhaseEnded(p) => p.end_event(),
            EventKind::PromotionStep(s) => s.name(),
            EventKind::CnpgPrimaryFailing => CNPG_PRIMARY_FAILING,
            EventKind::CnpgFailoverDeferred => CNPG_FAILOVER_DEFERRED,
            EventKind::ProxyRoutes { servers } if servers.is_empty() => PROXY_ROUTES_NOWHERE,
            EventKind::ProxyRoutes { .. } => PROXY_ROUTES_TO,
            EventKind::Mark(name) => name,
        }
    }

    /// The kind's fields in words, for kinds that have fields.
    fn fields_text(&self) -> Option<String> {
        match self {
            EventKind::NewPrimary {
                node,
                timeline: Some(tl),
            } => Some(format!("{node} on timeline {tl}")),
            EventKind::NewPrimary { node, .. }
            | EventKind::PrimaryLost { node }
            | EventKind::MemberDown { node }
            | EventKind::MemberBack { node } => Some(node.clone()),
            EventKind::ProxyRoutes { servers } if !servers.is_empty() => Some(servers.join(", ")),
            _ => None,
        }
    }

    /// The kind a report's `name` and `detail` describe, and the free detail
    /// left beside it. A name this library does not know is a
    /// [`Mark`](EventKind::Mark); so is a known name whose detail does not
    /// read as its fields (the event is then written back unchanged).
    pub fn from_report(name: &str, detail: Option<String>) -> (EventKind, Option<String>) {
        let node = |d: &Option<String>| d.as_ref().filter(|d| !d.is_empty()).cloned();
        let structured = match name {
            NEW_PRIMARY => node(&detail).map(|d| match d.split_once(" on timeline ") {
                Some((n, tl)) if tl.parse::<u32>().is_ok() && !n.is_empty() => {
                    EventKind::NewPrimary {
                        node: n.to_string(),
                        timeline: tl.parse().ok(),
                    }
                }
                _ => EventKind::NewPrimary {
                    node: d,
                    timeline: None,
                },
            }),
            PRIMARY_LOST => node(&detail).map(|node| EventKind::PrimaryLost { node }),
            MEMBER_DOWN => node(&detail).map(|node| EventKind::MemberDown { node }),
            MEMBER_BACK => node(&detail).map(|node| EventKind::MemberBack { node }),
            PROXY_ROUTES_TO => node(&detail).map(|d| EventKind::ProxyRoutes {
                servers: d.split(", ").map(String::from).collect(),
            }),
            PROXY_ROUTES_NOWHERE if detail.is_none() => Some(EventKind::ProxyRoutes {
                servers: Vec::new(),
            }),
            _ => None,
        };
        if let Some(kind) = structured {
            // Written back, the fields give the same detail.
            if kind.fields_text() == detail {
                return (kind, None);
            }
            return (EventKind::Mark(name.to_string()), detail);
        }
        let kind = PLAIN
            .into_iter()
            .find(|k| k.name() == name)
            .or_else(|| {
                Phase::ALL
                    .into_iter()
                    .find(|p| p.end_event() == name)
                    .map(EventKind::PhaseEnded)
            })
            .or_else(|| {
                PromotionStep::ALL
                    .into_iter()
                    .find(|s| s.name() == name)
                    .map(EventKind::PromotionStep)
            })
            .or_else(|| {
                Healing::KNOWN
                    .into_iter()
                    .find(|h| h.name() == name)
                    .map(EventKind::FaultHealed)
            })
            .unwrap_or_else(|| EventKind::Mark(name.to_string()));
        (kind, detail)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a fault's victim came back, as [`Healed`](crate::fault::Healed) names
/// it. Built from a name with `"node rejoined".into()`: a name of the
/// library's own gives its variant, any other [`Healing::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Healing {
    /// `node rejoined`: a deleted or stopped node serves again.
    NodeRejoined,
    /// `network healed`: a partition was lifted.
    NetworkHealed,
    /// `DCS back`: the DCS serves again.
    DcsBack,
    /// `switched over`: a switchover is complete.
    SwitchedOver,
    /// `node resumed`: a paused node runs again.
    NodeResumed,
    /// `thawed`: a frozen node runs again.
    Thawed,
    /// `links restored`: degraded network links are whole again.
    LinksRestored,
    /// `disk throttle lifted`.
    DiskThrottleLifted,
    /// `chaos removed`: a Chaos Mesh experiment was deleted.
    ChaosRemoved,
    /// `unfenced`: a fenced CNPG instance was unfenced.
    Unfenced,
    /// `healed`: a shell fault's heal command ran.
    Healed,
    /// `fault released (no heal command)`: a shell fault with nothing to undo.
    Released,
    /// A name of a custom fault's own (`postgres restarted`). Read back from
    /// a report it is an [`EventKind::Mark`]: the report does not say it was
    /// a heal.
    Other(String),
}

impl Healing {
    /// The library's own kinds of healing.
    pub const KNOWN: [Healing; 12] = [
        Healing::NodeRejoined,
        Healing::NetworkHealed,
        Healing::DcsBack,
        Healing::SwitchedOver,
        Healing::NodeResumed,
        Healing::Thawed,
        Healing::LinksRestored,
        Healing::DiskThrottleLifted,
        Healing::ChaosRemoved,
        Healing::Unfenced,
        Healing::Healed,
        Healing::Released,
    ];

    /// The name in reports, e.g. `node rejoined`.
    pub fn name(&self) -> &str {
        match self {
            Healing::NodeRejoined => "node rejoined",
            Healing::NetworkHealed => "network healed",
            Healing::DcsBack => "DCS back",
            Healing::SwitchedOver => "switched over",
            Healing::NodeResumed => "node resumed",
            Healing::Thawed => "thawed",
            Healing::LinksRestored => "links restored",
            Healing::DiskThrottleLifted => "disk throttle lifted",
            Healing::ChaosRemoved => "chaos removed",
            Healing::Unfenced => "unfenced",
            Healing::Healed => "healed",
            Healing::Released => "fault released (no heal command)",
            Healing::Other(name) => name,
        }
    }
}

impl From<&str> for Healing {
    fn from(name: &str) -> Self {
        Healing::KNOWN
            .into_iter()
            .find(|h| h.name() == name)
            .unwrap_or_else(|| Healing::Other(name.to_string()))
    }
}

impl From<String> for Healing {
    fn from(name: String) -> Self {
        Healing::from(name.as_str())
    }
}

impl fmt::Display for Healing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A step of a promotion as PostgreSQL logs it, in order (PostgreSQL must log
/// in English).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PromotionStep {
    /// `promote requested`: PostgreSQL received the promote request.
    PromoteRequested,
    /// `wal recovery ended`: WAL replay finished (`redo done at …`, or `redo
    /// is not required`).
    WalRecoveryEnded,
    /// `timeline selected`: the new timeline was chosen (`selected new
    /// timeline ID: N`).
    TimelineSelected,
    /// `archive recovery complete` (the end-of-recovery checkpoint or record
    /// follows).
    ArchiveRecoveryComplete,
    /// `ready for connections`: the server accepts connections (and, promoted,
    /// writes).
    ReadyForConnections,
}

impl PromotionStep {
    /// Every step, in order.
    pub const ALL: [PromotionStep; 5] = [
        PromotionStep::PromoteRequested,
        PromotionStep::WalRecoveryEnded,
        PromotionStep::TimelineSelected,
        PromotionStep::ArchiveRecoveryComplete,
        PromotionStep::ReadyForConnections,
    ];

    /// The name in reports, e.g. `promote requested`.
    pub const fn name(self) -> &'static str {
        match self {
            PromotionStep::PromoteRequested => "promote requested",
            PromotionStep::WalRecoveryEnded => "wal recovery ended",
            PromotionStep::TimelineSelected => "timeline selected",
            PromotionStep::ArchiveRecoveryComplete => "archive recovery complete",
            PromotionStep::ReadyForConnections => "ready for connections",
        }
    }

    /// Whether the step shows that the server is being promoted (as opposed
    /// to starting up or recovering from a crash): only a promotion requests
    /// one, selects a new timeline or completes archive recovery.
    pub fn is_promotion_only(self) -> bool {
        matches!(
            self,
            PromotionStep::PromoteRequested
                | PromotionStep::TimelineSelected
                | PromotionStep::ArchiveRecoveryComplete
        )
    }
}

impl fmt::Display for PromotionStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An event as reports write it.
#[derive(Serialize, Deserialize)]
struct WireEvent {
    name: String,
    at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl From<Event> for WireEvent {
    fn from(e: Event) -> Self {
        let detail = e.detail_text().map(Cow::into_owned);
        WireEvent {
            name: e.kind.name().to_string(),
            at: e.at,
            detail,
        }
    }
}

impl From<WireEvent> for Event {
    fn from(w: WireEvent) -> Self {
        let (kind, detail) = EventKind::from_report(&w.name, w.detail);
        Event {
            kind,
            at: w.at,
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<(EventKind, Option<String>)> {
        let mut kinds = vec![
            (EventKind::ProbeStarted, None),
            (EventKind::WorkloadStarted, Some("orders".into())),
            (
                EventKind::FaultInjected,
                Some("delete-primary on node1".into()),
            ),
            (EventKind::FaultMarked, Some("unplug".into())),
            (EventKind::FaultEndMarked, Some("unplug".into())),
            (EventKind::NoRecovery, Some("no write".into())),
            (EventKind::FirstWriteAfterFault, None),
            (
                EventKind::NewPrimary {
                    node: "node2".into(),
                    timeline: Some(3),
                },
                None,
            ),
            (
                EventKind::NewPrimary {
                    node: "cluster-example-2".into(),
                    timeline: None,
                },
                None,
            ),
            (
                EventKind::PrimaryLost {
                    node: "node1".into(),
                },
                None,
            ),
            (
                EventKind::MemberDown {
                    node: "node1".into(),
                },
                None,
            ),
            (
                EventKind::MemberBack {
                    node: "node1".into(),
                },
                None,
            ),
            (EventKind::CnpgPrimaryFailing, Some("pod-1".into())),
            (EventKind::CnpgFailoverDeferred, Some("message".into())),
            (
                EventKind::ProxyRoutes {
                    servers: vec!["node2".into()],
                },
                None,
            ),
            (
                EventKind::ProxyRoutes {
                    servers: vec!["node1".into(), "node2".into()],
                },
                None,
            ),
            (EventKind::ProxyRoutes { servers: vec![] }, None),
            (EventKind::Mark("checkpoint".into()), Some("mine".into())),
            (EventKind::Mark("plain".into()), None),
        ];
        kinds.extend(
            Phase::ALL
                .into_iter()
                .map(|p| (EventKind::PhaseEnded(p), Some("node2".into()))),
        );
        kinds.extend(
            PromotionStep::ALL
                .into_iter()
                .map(|s| (EventKind::PromotionStep(s), Some("node2: message".into()))),
        );
        kinds.extend(
            Healing::KNOWN
                .into_iter()
                .map(|h| (EventKind::FaultHealed(h), Some("node1".into()))),
        );
        kinds
    }

    #[test]
    fn every_kind_round_trips_through_a_report() {
        let at = Timestamp::now();
        for (kind, detail) in every_kind() {
            let e = Event::new(kind, at, detail);
            let text = serde_json::to_string(&e).expect("serialises");
            let back: Event = serde_json::from_str(&text).expect("parses");
            assert_eq!(back, e, "{text}");
            let wire: serde_json::Value = serde_json::from_str(&text).expect("json");
            assert_eq!(wire["name"], e.name(), "{text}");
        }
    }

    #[test]
    fn reports_keep_the_names_and_details_of_old() {
        let at = "2026-11-25T19:37:54.678125Z";
        let read = |name: &str, detail: Option<&str>| {
            let mut v = serde_json::json!({ "name": name, "at": at });
            if let Some(d) = detail {
                v["detail"] = d.into();
            }
            let e: Event = serde_json::from_value(v.clone()).expect("reads");
            assert_eq!(serde_json::to_value(&e).expect("writes"), v);
            e.kind
        };
        assert_eq!(
            read("new primary observed", Some("node2 on timeline 4")),
            EventKind::NewPrimary {
                node: "node2".into(),
                timeline: Some(4)
            }
        );
        assert_eq!(
            read("primary lost", Some("node1")),
            EventKind::PrimaryLost {
                node: "node1".into()
            }
        );
        assert_eq!(
            read("routing ended", Some("probe writer 1 connected to node2")),
            EventKind::PhaseEnded(Phase::Routing)
        );
        assert_eq!(
            read("proxy routes to", Some("node1, node3")),
            EventKind::ProxyRoutes {
                servers: vec!["node1".into(), "node3".into()]
            }
        );
        assert_eq!(
            read("node rejoined", Some("node1")),
            EventKind::FaultHealed(Healing::NodeRejoined)
        );
        // Unknown names, and known ones whose detail is not their fields,
        // are marks written back unchanged.
        assert_eq!(
            read("postgres restarted", Some("node1 as Replica")),
            EventKind::Mark("postgres restarted".into())
        );
        assert_eq!(
            read("new primary observed", None),
            EventKind::Mark("new primary observed".into())
        );
        assert_eq!(
            read("member down", Some("node1 (after the window)")),
            EventKind::MemberDown {
                node: "node1 (after the window)".into()
            }
        );
    }

    #[test]
    fn a_custom_heal_reads_back_as_a_mark() {
        let e = Event::now(
            EventKind::FaultHealed("postgres restarted".into()),
            Some("node1".into()),
        );
        let back: Event = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back.kind, EventKind::Mark("postgres restarted".into()));
        assert_eq!(back.name(), e.name());
        assert_eq!(back.detail, e.detail);
        assert_eq!(Healing::from("thawed"), Healing::Thawed);
    }

    /// A report written by an earlier version reads back to typed kinds and
    /// writes its events back unchanged.
    #[test]
    fn an_existing_report_reads_back_to_kinds() {
        let text = include_str!("../../../tests/fixtures/local_failover.report.json");
        let json: serde_json::Value = serde_json::from_str(text).expect("fixture is JSON");
        let events: Vec<Event> =
            serde_json::from_value(json["events"].clone()).expect("events read");
        assert!(
            events.iter().all(|e| !matches!(e.kind, EventKind::Mark(_))),
            "{events:#?}"
        );
        assert!(events.contains(&Event::new(
            EventKind::NewPrimary {
                node: "node1".into(),
                timeline: Some(2)
            },
            events[17].at,
            None
        )));
        assert_eq!(
            serde_json::to_value(&events).expect("writes"),
            json["events"]
        );
    }
}
