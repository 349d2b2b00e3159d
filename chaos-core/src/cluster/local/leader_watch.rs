//! The Patroni leader key, watched in etcd: the `detection ended` and
//! `election ended` marks of the local cluster's failovers.
//!
//! Patroni holds the key `/chaos/<scope>/leader` (value: the leader's member
//! name) under a lease of `ttl` seconds that the leader refreshes every
//! `loop_wait`. When the leader is lost the lease runs out and etcd deletes
//! the key: the HA system has noticed, **detection ended**. The member that
//! wins the race writes its name into the key: **election ended**. A
//! switchover hands the key over without a delete (election only).
//!
//! The key is watched through etcd's v3 JSON gateway (`POST /v3/watch`, a
//! streaming body of one JSON object per line, keys and values in base64),
//! from the revision of a first read on, so that nothing between the read and
//! the watch is missed. Marks are stamped with this machine's clock when the
//! watch delivers them. When etcd is unreachable (or killed by a fault) the
//! stream carries no marks and tries again; it never ends on its own.

use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::BoxStream;
use serde_json::{Value, json};

use crate::timeline::{Event, Phase, Timestamp};

/// Patroni's `namespace` in the nodes' configuration (see `config.rs`).
pub(crate) const NAMESPACE: &str = "/chaos/";

/// The leader key of the cluster `scope`.
pub(crate) fn leader_key(scope: &str) -> String {
    format!("{NAMESPACE}{scope}/leader")
}

/// One change of the watched key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyChange {
    /// The key was written (`value`), at `revision`.
    Put { value: String, revision: i64 },
    /// The key was deleted or its lease expired; `prev` is the value it had.
    Delete { prev: Option<String>, revision: i64 },
}

impl KeyChange {
    fn revision(&self) -> i64 {
        match self {
            KeyChange::Put { revision, .. } | KeyChange::Delete { revision, .. } => *revision,
        }
    }
}

/// One line of a watch's response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WatchLine {
    /// The key's changes, in order.
    pub changes: Vec<KeyChange>,
    /// etcd ended the watch (`canceled`, or an `error` object instead of a
    /// result): it must be opened again.
    pub ended: bool,
    /// The watch was cancelled because its start revision was compacted
    /// away: the key must be read afresh.
    pub compacted: bool,
}

/// Parses one line of `POST /v3/watch` output: `{"result": {...}}` with
/// `events` (a PUT has no `type`, a delete has `"type": "DELETE"`; values in
/// base64), or `{"error": {...}}`. `None` for what is not JSON.
pub(crate) fn parse_watch_line(line: &str) -> Option<WatchLine> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    let mut out = WatchLine::default();
    if v.get("error").is_some() {
        out.ended = true;
        return Some(out);
    }
    let result = v.get("result")?;
    let int = |v: &Value| -> Option<i64> {
        match v {
            Value::String(s) => s.parse().ok(),
            other => other.as_i64(),
        }
    };
    if result.get("canceled").and_then(Value::as_bool) == Some(true) {
        out.ended = true;
        out.compacted = result
            .get("compact_revision")
            .and_then(int)
            .is_some_and(|r| r > 0);
    }
    let value_of = |kv: &Value| -> Option<String> {
        let bytes = base64_decode(kv.get("value")?.as_str()?)?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    for e in result
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(kv) = e.get("kv") else { continue };
        let revision = kv.get("mod_revision").and_then(int).unwrap_or(0);
        let change = match e.get("type").and_then(Value::as_str) {
            Some("DELETE") => KeyChange::Delete {
                prev: e.get("prev_kv").and_then(value_of),
                revision,
            },
            None | Some("PUT") => KeyChange::Put {
                value: value_of(kv).unwrap_or_default(),
                revision,
            },
            Some(_) => continue,
        };
        out.changes.push(change);
    }
    Some(out)
}

/// Who leads, as far as the key's changes have told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LeaderState {
    leader: Option<String>,
}

impl LeaderState {
    /// The mark `change`, seen `at`, makes: `detection ended` for a delete
    /// (detail: the old leader), `election ended` for a leader other than
    /// the last one (detail: the new leader), nothing for a lease refresh.
    pub(crate) fn apply(&mut self, change: &KeyChange, at: Timestamp) -> Option<Event> {
        match change {
            KeyChange::Delete { prev, .. } => {
                let old = prev.clone().or_else(|| self.leader.take());
                self.leader = None;
                Some(Event::new(Phase::Detection.end_event(), at, old))
            }
            KeyChange::Put { value, .. } if value.is_empty() => None,
            KeyChange::Put { value, .. } => {
                if self.leader.as_deref() == Some(value.as_str()) {
                    return None;
                }
                self.leader = Some(value.clone());
                Some(Event::new(
                    Phase::Election.end_event(),
                    at,
                    Some(value.clone()),
                ))
            }
        }
    }
}

/// The `detection ended` and `election ended` marks of the leader key `key`
/// in the etcd serving clients at `etcd` (`host:port`). Dropping the stream
/// closes its connection; it has no task of its own.
pub(crate) fn leader_events(etcd: String, key: String) -> BoxStream<'static, Event> {
    let watch = Watch {
        http: None,
        base: format!("http://{etcd}"),
        key,
        state: LeaderState::default(),
        next_revision: None,
        response: None,
        buf: Vec::new(),
        pending: VecDeque::new(),
        failures: 0,
    };
    Box::pin(futures::stream::unfold(watch, |mut w| async move {
        loop {
            if let Some(e) = w.pending.pop_front() {
                return Some((e, w));
            }
            w.step().await;
        }
    }))
}

/// The watch's state between the stream's polls.
struct Watch {
    http: Option<reqwest::Client>,
    base: String,
    key: String,
    state: LeaderState,
    /// Where the next watch starts; `None` until the key has been read.
    next_revision: Option<i64>,
    response: Option<reqwest::Response>,
    /// Bytes of a line not yet complete.
    buf: Vec<u8>,
    pending: VecDeque<Event>,
    /// Failed attempts in a row, for the back-off.
    failures: u32,
}

/// A line longer than this is no watch response: dropped.
const MAX_LINE: usize = 1 << 20;

impl Watch {
    /// Reads the key or opens the watch if need be, else waits for the next
    /// piece of the watch's response and queues the marks it makes.
    async fn step(&mut self) {
        let Some(response) = self.response.as_mut() else {
            if self.failures > 0 {
                let backoff = 100u64 << self.failures.min(4);
                tokio::time::sleep(Duration::from_millis(backoff.min(1500))).await;
            }
            match self.open().await {
                Ok(r) => {
                    self.response = Some(r);
                    self.buf.clear();
                }
                Err(e) => {
                    self.failures += 1;
                    tracing::debug!(key = %self.key, error = %e, "etcd leader watch: not open (no detection/election marks meanwhile)");
                }
            }
            return;
        };
        match response.chunk().await {
            Ok(Some(bytes)) => {
                let at = Timestamp::now();
                self.buf.extend_from_slice(&bytes);
                while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=end).collect();
                    self.on_line(&String::from_utf8_lossy(&line), at);
                }
                if self.buf.len() > MAX_LINE {
                    self.buf.clear();
                }
            }
            Ok(None) => self.lost("etcd ended the watch"),
            Err(e) => self.lost(&e.to_string()),
        }
    }

    fn lost(&mut self, why: &str) {
        tracing::debug!(key = %self.key, why, "etcd leader watch lost; reopening");
        self.response = None;
        self.failures += 1;
    }

    fn on_line(&mut self, line: &str, at: Timestamp) {
        let Some(parsed) = parse_watch_line(line) else {
            return;
        };
        self.failures = 0;
        for change in &parsed.changes {
            let next = change.revision() + 1;
            self.next_revision = Some(self.next_revision.map_or(next, |r| r.max(next)));
            if let Some(e) = self.state.apply(change, at) {
                self.pending.push_back(e);
            }
        }
        if parsed.ended {
            if parsed.compacted {
                self.next_revision = None;
            }
            self.lost("etcd cancelled the watch");
        }
    }

    /// Reads the key (the first time, or after a compaction) and opens a
    /// watch from the revision after what is known.
    async fn open(&mut self) -> Result<reqwest::Response, String> {
        let http = match &self.http {
            Some(h) => h.clone(),
            None => {
                let h = reqwest::Client::builder()
                    .no_proxy()
                    .connect_timeout(Duration::from_secs(1))
                    // No idle connection outlives its request: the watch's
                    // own is closed when the stream is dropped.
                    .pool_max_idle_per_host(0)
                    .build()
                    .map_err(|e| e.to_string())?;
                self.http = Some(h.clone());
                h
            }
        };
        let key = base64_encode(self.key.as_bytes());
        let start = match self.next_revision {
            Some(r) => r,
            None => {
                let v: Value = http
                    .post(format!("{}/v3/kv/range", self.base))
                    .json(&json!({ "key": key }))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let revision = v["header"]["revision"]
                    .as_str()
                    .and_then(|r| r.parse::<i64>().ok())
                    .ok_or_else(|| format!("no revision in etcd's answer {v}"))?;
                self.state.leader = v["kvs"][0]["value"]
                    .as_str()
                    .and_then(base64_decode)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .filter(|l| !l.is_empty());
                self.next_revision = Some(revision + 1);
                revision + 1
            }
        };
        let body = json!({
            "create_request": { "key": key, "start_revision": start.to_string(), "prev_kv": true }
        });
        http.post(format!("{}/v3/watch", self.base))
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())
    }
}

/// Standard base64 with padding, as etcd's JSON gateway takes keys.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64 (padding optional), as etcd's JSON gateway writes
/// keys and values; `None` when it is not base64.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cluster::local::config::{NodeConfig, PatroniTimings, SynchronousMode};

    #[test]
    fn base64_round_trips() {
        for s in [
            "",
            "f",
            "fo",
            "foo",
            "foob",
            "fooba",
            "foobar",
            "/chaos/s/leader",
        ] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).as_deref(), Some(s.as_bytes()), "{s:?}");
        }
        assert_eq!(base64_encode(b"node1"), "bm9kZTE=");
        assert_eq!(base64_decode("bm9kZTE").as_deref(), Some(&b"node1"[..]));
        assert_eq!(base64_decode("bm9k!TE="), None);
        assert_eq!(base64_decode("b"), None);
    }

    #[test]
    fn the_key_is_under_the_namespace_patroni_is_given() {
        let cfg = NodeConfig {
            scope: "chaos-x",
            name: "node1",
            host: "127.0.0.11",
            pg_port: 5000,
            api_port: 8000,
            etcd_client: "127.0.0.1:2379",
            node_dir: Path::new("/tmp/x/node1"),
            pg_bin: Path::new("/usr/lib/postgresql/15/bin"),
            timings: PatroniTimings::for_version((3, 0, 2)),
            synchronous_mode: SynchronousMode::default(),
            extra_parameters: &[],
            template_script: Path::new("/tmp/x/bin/pg_ctl"),
        }
        .render();
        assert_eq!(cfg["namespace"], NAMESPACE);
        assert_eq!(leader_key("chaos-x"), "/chaos/chaos-x/leader");
    }

    // Lines as etcd 3.4's gateway writes them (captured from a real etcd).
    const CREATED: &str = r#"{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"2","raft_term":"2"},"created":true}}"#;
    const PUT_NODE1: &str = r#"{"result":{"header":{"revision":"3"},"events":[{"kv":{"key":"L2NoYW9zL3MvbGVhZGVy","create_revision":"2","mod_revision":"3","version":"2","value":"bm9kZTE="},"prev_kv":{"key":"L2NoYW9zL3MvbGVhZGVy","create_revision":"2","mod_revision":"2","version":"1","value":"bm9kZTE="}}]}}"#;
    const DELETE_NODE1: &str = r#"{"result":{"header":{"revision":"4"},"events":[{"type":"DELETE","kv":{"key":"L2NoYW9zL3MvbGVhZGVy","mod_revision":"4"},"prev_kv":{"key":"L2NoYW9zL3MvbGVhZGVy","create_revision":"2","mod_revision":"3","version":"2","value":"bm9kZTE="}}]}}"#;
    const PUT_NODE2: &str = r#"{"result":{"header":{"revision":"5"},"events":[{"kv":{"key":"L2NoYW9zL3MvbGVhZGVy","create_revision":"5","mod_revision":"5","version":"1","value":"bm9kZTI=","lease":"4111120289186755850"}}]}}"#;

    #[test]
    fn watch_lines_parse() {
        assert_eq!(parse_watch_line(CREATED), Some(WatchLine::default()));
        assert_eq!(
            parse_watch_line(PUT_NODE1).expect("parses").changes,
            vec![KeyChange::Put {
                value: "node1".into(),
                revision: 3
            }]
        );
        assert_eq!(
            parse_watch_line(DELETE_NODE1).expect("parses").changes,
            vec![KeyChange::Delete {
                prev: Some("node1".into()),
                revision: 4
            }]
        );
        let canceled = parse_watch_line(
            r#"{"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"7"}}"#,
        )
        .expect("parses");
        assert!(canceled.ended && canceled.compacted);
        let error = parse_watch_line(r#"{"error":{"grpc_code":14,"message":"unavailable"}}"#)
            .expect("parses");
        assert!(error.ended && !error.compacted);
        assert_eq!(parse_watch_line("not json"), None);
        assert_eq!(parse_watch_line(""), None);
    }

    #[test]
    fn a_delete_ends_detection_and_a_new_leader_election() {
        let at = Timestamp::now();
        let mut state = LeaderState {
            leader: Some("node1".into()),
        };
        let marks: Vec<Event> = [PUT_NODE1, DELETE_NODE1, PUT_NODE2, PUT_NODE2]
            .iter()
            .flat_map(|l| parse_watch_line(l).expect("parses").changes)
            .filter_map(|c| state.apply(&c, at))
            .collect();
        let names: Vec<(&str, Option<&str>)> = marks
            .iter()
            .map(|e| (e.name.as_str(), e.detail.as_deref()))
            .collect();
        // The refresh of node1 and the second write of node2 are no marks.
        assert_eq!(
            names,
            vec![
                ("detection ended", Some("node1")),
                ("election ended", Some("node2")),
            ]
        );
        assert_eq!(marks[0].at, at);
    }

    #[test]
    fn a_switchover_is_an_election_without_detection() {
        let mut state = LeaderState {
            leader: Some("node1".into()),
        };
        let change = KeyChange::Put {
            value: "node3".into(),
            revision: 10,
        };
        let e = state.apply(&change, Timestamp::now()).expect("a mark");
        assert_eq!(e.name, "election ended");
        assert_eq!(e.detail.as_deref(), Some("node3"));
        assert_eq!(state.apply(&change, Timestamp::now()), None);
        // A delete without its old value names the leader known before.
        let e = state
            .apply(
                &KeyChange::Delete {
                    prev: None,
                    revision: 11,
                },
                Timestamp::now(),
            )
            .expect("a mark");
        assert_eq!(e.detail.as_deref(), Some("node3"));
    }
}
