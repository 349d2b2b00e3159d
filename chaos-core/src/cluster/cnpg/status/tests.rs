//! Reading CNPG's record, on the shared fixtures.

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
