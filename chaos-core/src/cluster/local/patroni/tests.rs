//! Requests written and answers read as Patroni writes and reads them: the
//! answers were captured with curl from local clusters of Patroni 3.1.2
//! (strict synchronous mode) and 4.1.5 (quorum commit).

use serde_json::json;

use super::*;

const CLUSTER_3_1: &str = r#"{"members": [{"name": "node1", "role": "leader", "state": "running", "api_url": "http://127.0.0.11:46745/patroni", "host": "127.0.0.11", "port": 43397, "timeline": 1}, {"name": "node2", "role": "replica", "state": "streaming", "api_url": "http://127.0.0.12:36199/patroni", "host": "127.0.0.12", "port": 45919, "timeline": 1, "lag": 0}, {"name": "node3", "role": "sync_standby", "state": "streaming", "api_url": "http://127.0.0.13:38605/patroni", "host": "127.0.0.13", "port": 46675, "timeline": 1, "lag": 0}]}"#;

/// During a switchover: the old leader stops, its lag unknown.
const CLUSTER_3_1_SWITCHING: &str = r#"{"members": [{"name": "node1", "role": "replica", "state": "stopping", "api_url": "http://127.0.0.11:46745/patroni", "host": "127.0.0.11", "port": 43397, "lag": "unknown"}, {"name": "node2", "role": "replica", "state": "running", "api_url": "http://127.0.0.12:36199/patroni", "host": "127.0.0.12", "port": 45919, "timeline": 1, "lag": 0}, {"name": "node3", "role": "leader", "state": "running", "api_url": "http://127.0.0.13:38605/patroni", "host": "127.0.0.13", "port": 46675, "timeline": 1}]}"#;

const CLUSTER_4_1_QUORUM: &str = r#"{"members": [{"name": "node1", "role": "quorum_standby", "state": "streaming", "api_url": "http://127.0.0.11:46137/patroni", "host": "127.0.0.11", "port": 38343, "timeline": 1, "receive_lag": 0, "receive_lsn": "0/1744940", "replay_lag": 0, "replay_lsn": "0/1744940", "lag": 0, "lsn": "0/1744940"}, {"name": "node2", "role": "quorum_standby", "state": "streaming", "api_url": "http://127.0.0.12:33641/patroni", "host": "127.0.0.12", "port": 38415, "timeline": 1, "receive_lag": 0, "receive_lsn": "0/1744940", "replay_lag": 0, "replay_lsn": "0/1744940", "lag": 0, "lsn": "0/1744940"}, {"name": "node3", "role": "leader", "state": "running", "api_url": "http://127.0.0.13:43005/patroni", "host": "127.0.0.13", "port": 33573, "timeline": 1}], "scope": "chaos-ada849cc6f4ff801"}"#;

const CLUSTER_4_1_STOPPED: &str = r#"{"members": [{"name": "node1", "role": "leader", "state": "running", "api_url": "http://127.0.0.11:46137/patroni", "host": "127.0.0.11", "port": 38343, "timeline": 1}, {"name": "node3", "role": "replica", "state": "stopped", "api_url": "http://127.0.0.13:43005/patroni", "host": "127.0.0.13", "port": 33573, "receive_lsn": "unknown", "receive_lag": "unknown", "replay_lsn": "unknown", "replay_lag": "unknown", "lsn": "unknown", "lag": "unknown"}], "scope": "chaos-ada849cc6f4ff801"}"#;

const CONFIG_3_1: &str = r#"{"loop_wait": 1, "maximum_lag_on_failover": 16777216, "postgresql": {"parameters": {"fsync": "on", "hot_standby": "on", "log_filename": "postgresql.log", "log_line_prefix": "%m [%p] ", "log_timezone": "UTC", "logging_collector": "on", "max_connections": 100, "max_wal_senders": 10, "shared_buffers": "32MB", "synchronous_commit": "on", "wal_keep_size": "256MB", "wal_level": "replica", "wal_log_hints": "on", "wal_receiver_timeout": "5s", "wal_retrieve_retry_interval": "500ms", "wal_sender_timeout": "5s"}, "use_pg_rewind": true, "use_slots": false}, "primary_start_timeout": 0, "retry_timeout": 2, "synchronous_mode": true, "synchronous_mode_strict": true, "synchronous_node_count": 1, "ttl": 5}"#;

const CONFIG_4_1_QUORUM: &str = r#"{"loop_wait": 1, "maximum_lag_on_failover": 16777216, "postgresql": {"parameters": {"fsync": "on", "hot_standby": "on", "log_filename": "postgresql.log", "log_line_prefix": "%m [%p] ", "log_timezone": "UTC", "logging_collector": "on", "max_connections": 100, "max_wal_senders": 10, "shared_buffers": "32MB", "synchronous_commit": "on", "wal_keep_size": "256MB", "wal_level": "replica", "wal_log_hints": "on", "wal_receiver_timeout": "5s", "wal_retrieve_retry_interval": "500ms", "wal_sender_timeout": "5s"}, "use_pg_rewind": true, "use_slots": false}, "primary_start_timeout": 0, "retry_timeout": 3, "synchronous_mode": "quorum", "synchronous_mode_strict": true, "synchronous_node_count": 1, "ttl": 20}"#;

const PATRONI_3_1_LEADER: &str = r#"{"state": "running", "postmaster_start_time": "2026-12-06 19:07:15.913163+00:00", "role": "master", "server_version": 150018, "xlog": {"location": 24398224}, "timeline": 1, "replication": [{"usename": "replicator", "application_name": "node3", "client_addr": "127.0.0.1", "state": "streaming", "sync_state": "sync", "sync_priority": 1}, {"usename": "replicator", "application_name": "node2", "client_addr": "127.0.0.1", "state": "streaming", "sync_state": "async", "sync_priority": 0}], "dcs_last_seen": 1796584039, "database_system_identifier": "7716208252279972979", "patroni": {"version": "3.1.2", "scope": "chaos-a92591d4b34ff800"}}"#;

const PATRONI_4_1_LEADER: &str = r#"{"state": "running", "postmaster_start_time": "2026-12-06 19:07:35.406765+00:00", "role": "primary", "server_version": 150018, "xlog": {"location": 24398144}, "timeline": 1, "replication": [{"usename": "replicator", "application_name": "node1", "client_addr": "127.0.0.1", "state": "streaming", "sync_state": "quorum", "sync_priority": 1}, {"usename": "replicator", "application_name": "node2", "client_addr": "127.0.0.1", "state": "streaming", "sync_state": "quorum", "sync_priority": 1}], "dcs_last_seen": 1796584057, "database_system_identifier": "7716208252279972979", "patroni": {"version": "4.1.5", "scope": "chaos-ada849cc6f4ff801", "name": "node3"}}"#;

const PATRONI_4_1_REPLICA: &str = r#"{"state": "running", "postmaster_start_time": "2026-12-06 19:07:36.293553+00:00", "role": "replica", "server_version": 150018, "xlog": {"received_location": 24398144, "replayed_location": 24398144, "replayed_timestamp": "2026-12-06 19:07:37.156044+00:00", "paused": false}, "quorum_standby": true, "timeline": 1, "replication_state": "streaming", "dcs_last_seen": 1796584057, "database_system_identifier": "7716208252279972979", "patroni": {"version": "4.1.5", "scope": "chaos-ada849cc6f4ff801", "name": "node1"}}"#;

/// Parses `text` as `T`, writes it back and parses that again: what is read
/// survives the round trip.
fn round_trip<T>(text: &str) -> T
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let parsed: T = serde_json::from_str(text).expect("parses");
    let again: T =
        serde_json::from_str(&serde_json::to_string(&parsed).expect("writes")).expect("re-parses");
    assert_eq!(again, parsed);
    parsed
}

#[test]
fn the_cluster_reads_as_patroni_3_writes_it() {
    let c: ClusterInfo = round_trip(CLUSTER_3_1);
    let roles: Vec<(&str, MemberRole, &str)> = c
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.role, m.state.as_str()))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("node1", MemberRole::Leader, "running"),
            ("node2", MemberRole::Replica, "streaming"),
            ("node3", MemberRole::SyncStandby, "streaming"),
        ]
    );
    assert!(c.members.iter().all(ClusterMember::is_serving));
    assert_eq!(c.members[0].lag, None, "the leader has no lag");
    assert_eq!(c.members[1].lag, Some(0));
    assert_eq!(
        (c.members[2].host.as_str(), c.members[2].port),
        ("127.0.0.13", 46675)
    );
    assert_eq!(
        c.members[2].api_url.as_deref(),
        Some("http://127.0.0.13:38605/patroni")
    );
    assert_eq!(c.leader_timeline(), Some(1));
    assert_eq!(c.scope, None, "Patroni 3 does not name the scope");

    let c: ClusterInfo = round_trip(CLUSTER_3_1_SWITCHING);
    assert_eq!(c.members[0].lag, None, "\"unknown\" is no lag");
    assert_eq!(c.members[0].timeline, None);
    assert!(!c.members[0].is_serving(), "stopping");
    assert!(c.members[1].is_serving(), "running");
}

#[test]
fn the_cluster_reads_as_patroni_4_writes_it_with_quorum_commit() {
    let c: ClusterInfo = round_trip(CLUSTER_4_1_QUORUM);
    assert_eq!(c.members[0].role, MemberRole::QuorumStandby);
    assert_eq!(c.members[1].role, MemberRole::QuorumStandby);
    assert_eq!(c.members[2].role, MemberRole::Leader);
    assert_eq!(c.scope.as_deref(), Some("chaos-ada849cc6f4ff801"));

    let c: ClusterInfo = round_trip(CLUSTER_4_1_STOPPED);
    assert_eq!(c.members.len(), 2, "a member whose key expired is missing");
    assert_eq!((c.members[1].lag, c.members[1].is_serving()), (None, false));
}

#[test]
fn leader_roles_of_every_version_are_the_leader() {
    for (text, role) in [
        ("leader", MemberRole::Leader),
        ("master", MemberRole::Leader),
        ("primary", MemberRole::Leader),
        ("standby_leader", MemberRole::StandbyLeader),
        ("sync_standby", MemberRole::SyncStandby),
        ("quorum_standby", MemberRole::QuorumStandby),
        ("replica", MemberRole::Replica),
        ("uninitialized", MemberRole::Other),
    ] {
        let parsed: MemberRole = serde_json::from_value(json!(text)).expect("parses");
        assert_eq!(parsed, role, "{text}");
    }
    // The newest timeline among the leaders a view names (several during
    // a split brain), 0 for a leader whose timeline is unknown.
    let view = |members: serde_json::Value| -> ClusterInfo {
        serde_json::from_value(json!({ "members": members })).expect("parses")
    };
    let c = view(json!([
        { "name": "a", "role": "leader", "state": "running", "timeline": 2 },
        { "name": "b", "role": "master", "state": "running", "timeline": 3 },
        { "name": "c", "role": "replica", "state": "running", "timeline": 4 },
    ]));
    assert_eq!(c.leader_timeline(), Some(3));
    let c = view(json!([{ "name": "a", "role": "leader", "state": "starting" }]));
    assert_eq!(c.leader_timeline(), Some(0));
    let c = view(json!([{ "name": "a", "role": "replica", "state": "running" }]));
    assert_eq!(c.leader_timeline(), None);
}

#[test]
fn the_dynamic_configuration_reads_every_setting_an_experiment_may_change() {
    let c: DynamicConfig = round_trip(CONFIG_3_1);
    assert_eq!(c.setting("ttl").and_then(Scalar::as_i64), Some(5));
    assert_eq!(c.setting("loop_wait").and_then(Scalar::as_u64), Some(1));
    assert_eq!(c.setting("retry_timeout").and_then(Scalar::as_i64), Some(2));
    assert_eq!(c.setting("synchronous_mode"), Some(&Scalar::Bool(true)));
    assert_eq!(
        c.setting("maximum_lag_on_failover").map(Scalar::to_string),
        Some("16777216".into())
    );
    assert_eq!(c.setting("failsafe_mode"), None, "not in the DCS");
    assert_eq!(c.setting("slots"), None, "not a setting read");
    assert_eq!(
        c.parameter("wal_sender_timeout").map(Scalar::to_string),
        Some("5s".into())
    );
    assert_eq!(
        c.parameter("max_connections").map(Scalar::to_string),
        Some("100".into())
    );
    assert_eq!(c.parameter("checkpoint_timeout"), None);
    assert_eq!(c.postgresql.use_pg_rewind, Some(true));

    let c: DynamicConfig = round_trip(CONFIG_4_1_QUORUM);
    assert_eq!(c.setting("synchronous_mode"), Some(&Scalar::from("quorum")));
    assert_eq!(c.setting("ttl").and_then(Scalar::as_i64), Some(20));

    // Each of the settings an experiment may change is read where Patroni
    // keeps it; a removed parameter (null) reads as unset.
    let mut all = serde_json::Map::new();
    for (i, name) in super::super::PATRONI_SETTINGS.iter().enumerate() {
        all.insert((*name).to_string(), json!(i + 1));
    }
    all.insert(
        "postgresql".into(),
        json!({ "parameters": { "gone": null } }),
    );
    let c: DynamicConfig = serde_json::from_value(serde_json::Value::Object(all)).expect("parses");
    for (i, name) in super::super::PATRONI_SETTINGS.iter().enumerate() {
        assert_eq!(
            c.setting(name).and_then(Scalar::as_u64),
            Some(i as u64 + 1),
            "{name}"
        );
    }
    assert_eq!(c.parameter("gone"), None);
}

#[test]
fn node_status_reads_as_every_version_writes_it() {
    let s: NodeStatus = round_trip(PATRONI_3_1_LEADER);
    assert_eq!(s.role, Some(MemberRole::Leader), "master");
    assert_eq!(s.state.as_deref(), Some("running"));
    assert_eq!((s.server_version, s.timeline), (Some(150018), Some(1)));
    assert_eq!(
        s.patroni.as_ref().map(|p| p.version.as_str()),
        Some("3.1.2")
    );
    let s: NodeStatus = round_trip(PATRONI_4_1_LEADER);
    assert_eq!(s.role, Some(MemberRole::Leader), "primary");
    assert_eq!(
        s.patroni.as_ref().map(|p| p.version.as_str()),
        Some("4.1.5")
    );
    let s: NodeStatus = round_trip(PATRONI_4_1_REPLICA);
    assert_eq!(s.role, Some(MemberRole::Replica));
    // What a node answers while it starts, before PostgreSQL runs.
    let s: NodeStatus = round_trip(
        r#"{"state": "stopped", "role": "uninitialized", "dcs_last_seen": 1796584057, "patroni": {"version": "3.1.2", "scope": "s"}}"#,
    );
    assert_eq!(
        (s.role, s.timeline, s.state.as_deref()),
        (Some(MemberRole::Other), None, Some("stopped"))
    );
}

#[test]
fn requests_are_written_as_patroni_reads_them() {
    assert_eq!(
        body(&SwitchoverRequest {
            leader: "node1",
            candidate: "node3"
        }),
        json!({ "leader": "node1", "candidate": "node3" })
    );
    assert_eq!(
        body(&ReinitializeRequest { force: true }),
        json!({ "force": true })
    );
    assert_eq!(body(&RestartRequest {}), json!({}));
}

/// A request body as JSON.
fn body<T: Serialize>(b: &T) -> serde_json::Value {
    serde_json::to_value(b).expect("writes")
}

#[test]
fn a_config_patch_sets_removes_and_leaves_alone() {
    assert_eq!(
        serde_json::to_value(ConfigPatch::loop_wait(3)).expect("writes"),
        json!({ "loop_wait": 3 }),
        "no postgresql section when no parameter changes"
    );
    let mut patch = ConfigPatch::default();
    patch.set("ttl", Some(Scalar::typed("20")));
    patch.set("synchronous_mode", Some(Scalar::typed("quorum")));
    patch.set("failsafe_mode", Some(Scalar::typed("true")));
    patch.set("retry_timeout", None);
    patch.set_parameter("checkpoint_timeout", Some("1min".into()));
    patch.set_parameter("wal_sender_timeout", None);
    assert_eq!(
        serde_json::to_value(&patch).expect("writes"),
        json!({
            "ttl": 20,
            "synchronous_mode": "quorum",
            "failsafe_mode": true,
            "retry_timeout": null,
            "postgresql": { "parameters": {
                "checkpoint_timeout": "1min",
                "wal_sender_timeout": null,
            }},
        })
    );
    // Patroni answers a patch with the whole new configuration, which reads
    // back with the patch applied.
    let mut config: DynamicConfig = serde_json::from_str(CONFIG_3_1).expect("parses");
    config.ttl = Some(Scalar::typed("20"));
    let again: DynamicConfig =
        serde_json::from_value(serde_json::to_value(&config).expect("writes")).expect("parses");
    assert_eq!(again.setting("ttl").and_then(Scalar::as_i64), Some(20));
}

#[test]
fn scalars_print_as_settings_are_written() {
    assert_eq!(Scalar::typed("5"), Scalar::Number(5.into()));
    assert_eq!(Scalar::typed("-1"), Scalar::Number((-1).into()));
    assert_eq!(Scalar::typed("false"), Scalar::Bool(false));
    assert_eq!(Scalar::typed("1min"), Scalar::Text("1min".into()));
    for text in ["5", "false", "1min", "quorum"] {
        assert_eq!(Scalar::typed(text).to_string(), text);
    }
    let half: Scalar = serde_json::from_str("0.9").expect("parses");
    assert_eq!((half.to_string(), half.as_i64()), ("0.9".to_string(), None));
}

#[test]
fn replies_tell_success_by_status() {
    let ok = Reply {
        status: 200,
        body: "Successfully switched over to \"node3\"".into(),
    };
    let refused = Reply {
        status: 412,
        body: "candidate name does not match with sync_standby".into(),
    };
    assert!(ok.is_success() && !refused.is_success());
}

#[test]
fn urls_and_timeouts_are_per_node_and_per_endpoint() {
    let api = Patroni::new()
        .expect("a client")
        .node("http://127.0.0.11:8008");
    assert_eq!(api.url("/cluster"), "http://127.0.0.11:8008/cluster");
    assert_eq!(api.limit(CLUSTER_TIMEOUT), Duration::from_millis(700));
    let api = api.timeout(Duration::from_secs(2));
    assert_eq!(api.limit(RESTART_TIMEOUT), Duration::from_secs(2));
}
