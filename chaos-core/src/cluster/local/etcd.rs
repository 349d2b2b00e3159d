//! etcd's v3 JSON gateway, spoken in one place: the cluster's version
//! (`GET /version`), single keys read and deleted (`POST /v3/kv/range`,
//! `POST /v3/kv/deleterange`) and watched (`POST /v3/watch`), with typed
//! requests and answers; and the keys Patroni keeps there.
//!
//! The gateway writes keys and values in base64 and 64-bit integers as
//! strings (proto3's JSON mapping), and leaves out fields that hold their
//! default (an empty value, a zero revision).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// Patroni's `namespace` in the nodes' configuration (see `config.rs`).
pub(crate) const NAMESPACE: &str = "/chaos/";

/// The leader key of cluster `scope`: the leader's member name, under a
/// lease of `ttl` seconds.
pub(crate) fn leader_key(scope: &str) -> String {
    format!("{NAMESPACE}{scope}/leader")
}

/// The `/sync` key of cluster `scope` (see [`SyncKey`]).
pub(crate) fn sync_key(scope: &str) -> String {
    format!("{NAMESPACE}{scope}/sync")
}

/// The failover key of cluster `scope`: a switchover or failover Patroni
/// has accepted and not finished (`{}`, or empty, once done).
pub(crate) fn failover_key(scope: &str) -> String {
    format!("{NAMESPACE}{scope}/failover")
}

/// Patroni's `/sync` key: which leader named which synchronous standbys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct SyncKey {
    /// The leader that wrote it.
    pub leader: Option<String>,
    /// Its synchronous standbys, comma-separated.
    #[serde(default)]
    pub sync_standby: Option<String>,
}

/// A client of one etcd's gateway.
#[derive(Debug, Clone)]
pub(crate) struct Etcd {
    http: reqwest::Client,
    /// `http://host:port`.
    base: String,
}

impl Etcd {
    /// A client for short requests to the etcd serving clients at `endpoint`
    /// (`host:port`): 2 s at most a request, no proxy (it is on loopback).
    ///
    /// # Errors
    /// When reqwest cannot build a client (no TLS backend, …).
    pub(crate) fn new(endpoint: &str) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()?;
        Ok(Self::with(http, endpoint))
    }

    /// A client for a watch, whose answer streams for as long as it is open:
    /// no time limit on a request, 1 s to connect, and no idle connection
    /// kept (the watch's own is closed when its response is dropped).
    ///
    /// # Errors
    /// When reqwest cannot build a client.
    pub(crate) fn for_watch(endpoint: &str) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(1))
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(Self::with(http, endpoint))
    }

    fn with(http: reqwest::Client, endpoint: &str) -> Self {
        Etcd {
            http,
            base: format!("http://{endpoint}"),
        }
    }

    /// `GET /version`, within `timeout`.
    pub(crate) async fn version(&self, timeout: Duration) -> Result<Version, reqwest::Error> {
        self.http
            .get(format!("{}/version", self.base))
            .timeout(timeout)
            .send()
            .await?
            .json()
            .await
    }

    /// `key` as of now, with the store's revision, within `timeout`.
    pub(crate) async fn range(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<RangeResponse, reqwest::Error> {
        self.http
            .post(format!("{}/v3/kv/range", self.base))
            .json(&KeyRequest::new(key))
            .timeout(timeout)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    /// The value of `key`; `Ok(None)` when it does not exist.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<String>, reqwest::Error> {
        let answer = self.range(key, Duration::from_secs(2)).await?;
        Ok(answer.kvs.first().map(|kv| kv.value_or_empty()))
    }

    /// Deletes `key`.
    pub(crate) async fn delete(&self, key: &str) -> Result<(), reqwest::Error> {
        self.http
            .post(format!("{}/v3/kv/deleterange", self.base))
            .json(&KeyRequest::new(key))
            .timeout(Duration::from_secs(2))
            .send()
            .await?
            .error_for_status()
            .map(|_| ())
    }

    /// Opens a watch of `key` from `start_revision` on, with each delete
    /// carrying the value before it: the response streams one JSON object a
    /// line, read with [`parse_watch_line`].
    pub(crate) async fn watch(
        &self,
        key: &str,
        start_revision: i64,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let body = WatchRequest {
            create_request: WatchCreateRequest {
                key: base64_encode(key.as_bytes()),
                start_revision: start_revision.to_string(),
                prev_kv: true,
            },
        };
        self.http
            .post(format!("{}/v3/watch", self.base))
            .json(&body)
            .send()
            .await?
            .error_for_status()
    }
}

/// `GET /version`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Version {
    /// The server's version, e.g. `3.4.23`.
    #[serde(default)]
    pub etcdserver: String,
    /// The cluster's version, `not_decided` until its members agreed on one.
    #[serde(default)]
    pub etcdcluster: String,
}

impl Version {
    /// Whether the cluster's version is decided: before that, a Patroni
    /// that connects waits 5 s before it tries again.
    pub(crate) fn is_decided(&self) -> bool {
        !self.etcdcluster.is_empty() && self.etcdcluster != "not_decided"
    }
}

/// A request naming one key (base64, as the gateway wants it).
#[derive(Debug, Serialize)]
struct KeyRequest {
    key: String,
}

impl KeyRequest {
    fn new(key: &str) -> Self {
        KeyRequest {
            key: base64_encode(key.as_bytes()),
        }
    }
}

/// `POST /v3/watch`'s body: a watch of one key.
#[derive(Debug, Serialize)]
struct WatchRequest {
    create_request: WatchCreateRequest,
}

#[derive(Debug, Serialize)]
struct WatchCreateRequest {
    key: String,
    /// An int64, as a string.
    start_revision: String,
    prev_kv: bool,
}

/// `/v3/kv/range`'s answer: the store's revision and the key, if it exists.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RangeResponse {
    /// The store's revision when it answered.
    #[serde(default)]
    pub header: Header,
    /// The key and its value; empty when it does not exist.
    #[serde(default)]
    pub kvs: Vec<KeyValue>,
}

impl RangeResponse {
    /// The key's value, decoded; `None` when the key does not exist.
    pub(crate) fn value(&self) -> Option<String> {
        self.kvs.first().map(KeyValue::value_or_empty)
    }
}

/// The header of every answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Header {
    /// The store's revision; `None` when missing or not a number.
    #[serde(default, deserialize_with = "lenient_int")]
    pub revision: Option<i64>,
}

/// A key and its value, as the gateway writes them.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct KeyValue {
    /// The value in base64; missing when empty.
    #[serde(default)]
    value: Option<String>,
    /// The revision of the key's last change.
    #[serde(default, deserialize_with = "lenient_int")]
    mod_revision: Option<i64>,
}

impl KeyValue {
    /// The value, decoded; `None` when missing or not base64.
    fn decoded(&self) -> Option<String> {
        let bytes = base64_decode(self.value.as_deref()?)?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The value, decoded; empty when missing (the gateway leaves an empty
    /// value out) or not base64.
    fn value_or_empty(&self) -> String {
        base64_decode(self.value.as_deref().unwrap_or(""))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

/// One line of a watch's response: a result, or an error instead of one.
#[derive(Debug, Deserialize)]
struct WatchMessage {
    #[serde(default)]
    result: Option<WatchResult>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WatchResult {
    canceled: bool,
    #[serde(deserialize_with = "lenient_int")]
    compact_revision: Option<i64>,
    events: Vec<WatchEvent>,
}

#[derive(Debug, Deserialize)]
struct WatchEvent {
    /// Missing for a PUT (the default of the enum).
    #[serde(rename = "type", default)]
    kind: EventType,
    kv: Option<KeyValue>,
    #[serde(default)]
    prev_kv: Option<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
enum EventType {
    #[default]
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(other)]
    Other,
}

/// An int64 as the gateway writes it (a string), or as a number; `None`
/// when it is neither.
fn lenient_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Number(i64),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<Int>::deserialize(d)? {
        Some(Int::Number(n)) => Some(n),
        Some(Int::Text(s)) => s.parse().ok(),
        Some(Int::Other(_)) | None => None,
    })
}

/// One change of a watched key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyChange {
    /// The key was written (`value`), at `revision`.
    Put { value: String, revision: i64 },
    /// The key was deleted or its lease expired; `prev` is the value it had.
    Delete { prev: Option<String>, revision: i64 },
}

impl KeyChange {
    /// The store's revision of the change.
    pub(crate) fn revision(&self) -> i64 {
        match self {
            KeyChange::Put { revision, .. } | KeyChange::Delete { revision, .. } => *revision,
        }
    }
}

/// One line of a watch's response, read.
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
/// base64), or `{"error": {...}}`. `None` for what is neither.
pub(crate) fn parse_watch_line(line: &str) -> Option<WatchLine> {
    let message: WatchMessage = serde_json::from_str(line.trim()).ok()?;
    let mut out = WatchLine::default();
    if message.error.is_some() {
        out.ended = true;
        return Some(out);
    }
    let result = message.result?;
    if result.canceled {
        out.ended = true;
        out.compacted = result.compact_revision.is_some_and(|r| r > 0);
    }
    for e in result.events {
        let Some(kv) = e.kv else { continue };
        let revision = kv.mod_revision.unwrap_or(0);
        let change = match e.kind {
            EventType::Delete => KeyChange::Delete {
                prev: e.prev_kv.as_ref().and_then(KeyValue::decoded),
                revision,
            },
            EventType::Put => KeyChange::Put {
                value: kv.decoded().unwrap_or_default(),
                revision,
            },
            EventType::Other => continue,
        };
        out.changes.push(change);
    }
    Some(out)
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
    use super::*;

    #[test]
    fn the_sync_key_parses_as_patroni_writes_it() {
        let k: SyncKey =
            serde_json::from_str(r#"{"leader":"node1","sync_standby":"node3"}"#).unwrap();
        assert_eq!(k.leader.as_deref(), Some("node1"));
        assert_eq!(k.sync_standby.as_deref(), Some("node3"));
        let k: SyncKey =
            serde_json::from_str(r#"{"leader":"node2","sync_standby":null,"quorum":0}"#).unwrap();
        assert_eq!(k.sync_standby, None);
        assert_eq!(sync_key("s"), "/chaos/s/sync");
        assert_eq!(leader_key("chaos-x"), "/chaos/chaos-x/leader");
        assert_eq!(failover_key("s"), "/chaos/s/failover");
    }

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
    fn requests_are_written_as_the_gateway_reads_them() {
        assert_eq!(
            serde_json::to_value(KeyRequest::new("/chaos/s/leader")).unwrap(),
            serde_json::json!({ "key": "L2NoYW9zL3MvbGVhZGVy" })
        );
        let watch = WatchRequest {
            create_request: WatchCreateRequest {
                key: base64_encode(b"/chaos/s/leader"),
                start_revision: 7.to_string(),
                prev_kv: true,
            },
        };
        assert_eq!(
            serde_json::to_value(watch).unwrap(),
            serde_json::json!({ "create_request": {
                "key": "L2NoYW9zL3MvbGVhZGVy", "start_revision": "7", "prev_kv": true
            }})
        );
    }

    // Answers of etcd 3.4.23's gateway, captured with curl.
    const VERSION: &str = r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#;
    const RANGE_LEADER: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"3","raft_term":"2"},"kvs":[{"key":"L2NoYW9zL3MvbGVhZGVy","create_revision":"3","mod_revision":"3","version":"1","value":"bm9kZTE="}],"count":"1"}"#;
    const RANGE_NONE: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"}}"#;
    const RANGE_EMPTY_VALUE: &str = r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"},"kvs":[{"key":"L2NoYW9zL3MvZmFpbG92ZXI=","create_revision":"2","mod_revision":"2","version":"1"}],"count":"1"}"#;

    #[test]
    fn answers_parse() {
        let v: Version = serde_json::from_str(VERSION).unwrap();
        assert!(v.is_decided());
        assert_eq!(v.etcdserver, "3.4.23");
        let v: Version =
            serde_json::from_str(r#"{"etcdserver":"3.4.23","etcdcluster":"not_decided"}"#).unwrap();
        assert!(!v.is_decided());

        let r: RangeResponse = serde_json::from_str(RANGE_LEADER).unwrap();
        assert_eq!(r.header.revision, Some(3));
        assert_eq!(r.value().as_deref(), Some("node1"));
        let r: RangeResponse = serde_json::from_str(RANGE_NONE).unwrap();
        assert_eq!(r.header.revision, Some(2));
        assert_eq!(r.value(), None);
        let r: RangeResponse = serde_json::from_str(RANGE_EMPTY_VALUE).unwrap();
        assert_eq!(r.value().as_deref(), Some(""));
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
        assert_eq!(
            parse_watch_line(PUT_NODE2).expect("parses").changes,
            vec![KeyChange::Put {
                value: "node2".into(),
                revision: 5
            }]
        );
        let canceled = parse_watch_line(
            r#"{"result":{"header":{"revision":"9"},"canceled":true,"compact_revision":"7"}}"#,
        )
        .expect("parses");
        assert!(canceled.ended && canceled.compacted);
        let canceled =
            parse_watch_line(r#"{"result":{"header":{"revision":"9"},"canceled":true}}"#)
                .expect("parses");
        assert!(canceled.ended && !canceled.compacted);
        let error = parse_watch_line(r#"{"error":{"grpc_code":14,"message":"unavailable"}}"#)
            .expect("parses");
        assert!(error.ended && !error.compacted);
        // Revisions as numbers are read too; an unknown event type is skipped.
        let line = parse_watch_line(
            r#"{"result":{"events":[{"type":"NEW","kv":{"mod_revision":8}},{"kv":{"mod_revision":9}}]}}"#,
        )
        .expect("parses");
        assert_eq!(
            line.changes,
            vec![KeyChange::Put {
                value: String::new(),
                revision: 9
            }]
        );
        assert_eq!(parse_watch_line("not json"), None);
        assert_eq!(parse_watch_line(""), None);
        assert_eq!(parse_watch_line("{}"), None);
    }
}
