//! Patroni's REST API, spoken in one place: a typed client of the nodes'
//! APIs, with typed requests and answers.
//!
//! | request | method | answer |
//! | --- | --- | --- |
//! | `GET /cluster` | [`NodeApi::cluster`] | [`ClusterInfo`] |
//! | `GET /config` | [`NodeApi::config`] | [`DynamicConfig`] |
//! | `PATCH /config` | [`NodeApi::patch_config`] | ([`ConfigPatch`] sent) |
//! | `GET /patroni` | [`NodeApi::patroni`] | [`NodeStatus`] |
//! | `POST /switchover` | [`NodeApi::switchover`] | [`Reply`] |
//! | `POST /restart` | [`NodeApi::restart`] | — |
//! | `POST /reinitialize` | [`NodeApi::reinitialize`] | [`Reply`] |
//!
//! Every failed request is an [`Error::Patroni`] naming the URL, with
//! reqwest's error as its source. The answers keep what this crate reads, and
//! tolerate what Patroni versions from 2.1 to 4.1 add or rename (`master`
//! became `primary` in 3.0 for `/patroni`, `quorum_standby` came with 4.0).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Error, Result};

/// The time a request may take when its endpoint has no limit of its own.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// `GET /cluster`: read every 50 ms while a fault runs, from every node at
/// once; a node that does not answer within this is taken as silent.
const CLUSTER_TIMEOUT: Duration = Duration::from_millis(700);
/// `GET`/`PATCH /config`, between runs.
const CONFIG_TIMEOUT: Duration = Duration::from_secs(10);
/// `POST /switchover`: Patroni answers once the switchover is done, or
/// after 20 s.
const SWITCHOVER_TIMEOUT: Duration = Duration::from_secs(40);
/// `POST /restart`: Patroni answers once PostgreSQL runs again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(90);

/// The client of every node's REST API: one connection pool, no proxy (the
/// nodes are on loopback), 2 s at most a request unless the endpoint says
/// otherwise (see [`NodeApi`]).
#[derive(Debug, Clone)]
pub(crate) struct Patroni {
    http: reqwest::Client,
}

impl Patroni {
    /// A client.
    ///
    /// # Errors
    /// [`Error::Patroni`] when reqwest cannot build a client (no TLS
    /// backend, …).
    pub(crate) fn new() -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| Error::Patroni {
                url: "(client)".into(),
                source: e,
            })?;
        Ok(Patroni { http })
    }

    /// The API of the node at `base_url` (`http://host:port`, see
    /// [`NodeInfo::api_url`](super::NodeInfo::api_url)).
    pub(crate) fn node(&self, base_url: impl Into<String>) -> NodeApi {
        NodeApi {
            http: self.http.clone(),
            base: base_url.into(),
            timeout: None,
        }
    }
}

/// One node's REST API. Cheap to clone; owns what it needs, so that a
/// request can run on a task of its own.
#[derive(Debug, Clone)]
pub(crate) struct NodeApi {
    http: reqwest::Client,
    base: String,
    /// Overrides each endpoint's own limit.
    timeout: Option<Duration>,
}

impl NodeApi {
    /// The same API with `timeout` for every request, instead of each
    /// endpoint's own limit.
    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The URL of `path` (`/cluster`, …) on this node.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn limit(&self, endpoint: Duration) -> Duration {
        self.timeout.unwrap_or(endpoint)
    }

    /// `GET path`, a 2xx answer read as `T`.
    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str, limit: Duration) -> Result<T> {
        let url = self.url(path);
        let res = async {
            self.http
                .get(&url)
                .timeout(self.limit(limit))
                .send()
                .await?
                .error_for_status()?
                .json::<T>()
                .await
        }
        .await;
        res.map_err(|source| Error::Patroni { url, source })
    }

    /// `method path` with `body`, the answer whatever its status.
    async fn send<B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
        limit: Duration,
    ) -> Result<Reply> {
        let url = self.url(path);
        let res = async {
            let r = self
                .http
                .request(method, &url)
                .json(body)
                .timeout(self.limit(limit))
                .send()
                .await?;
            let status = r.status().as_u16();
            Ok(Reply {
                status,
                body: r.text().await.unwrap_or_default(),
            })
        }
        .await;
        res.map_err(|source| Error::Patroni { url, source })
    }

    /// `GET /cluster`: the members as this node sees them (within 700 ms).
    ///
    /// # Errors
    /// [`Error::Patroni`] when the node does not answer with a cluster.
    pub(crate) async fn cluster(&self) -> Result<ClusterInfo> {
        self.get("/cluster", CLUSTER_TIMEOUT).await
    }

    /// `GET /config`: the dynamic configuration in the DCS (within 10 s).
    ///
    /// # Errors
    /// [`Error::Patroni`] when the node does not answer with one.
    pub(crate) async fn config(&self) -> Result<DynamicConfig> {
        self.get("/config", CONFIG_TIMEOUT).await
    }

    /// `PATCH /config` with `patch` (within 10 s). Patroni wakes its HA loop
    /// after every patch, even one that changes nothing.
    ///
    /// # Errors
    /// [`Error::Patroni`] when the request fails or Patroni refuses it.
    pub(crate) async fn patch_config(&self, patch: &ConfigPatch) -> Result<()> {
        let url = self.url("/config");
        self.http
            .patch(&url)
            .json(patch)
            .timeout(self.limit(CONFIG_TIMEOUT))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map(drop)
            .map_err(|source| Error::Patroni { url, source })
    }

    /// `GET /patroni`: the node's status, whatever the HTTP status (503
    /// while PostgreSQL is not running carries the same document), within
    /// 2 s.
    ///
    /// # Errors
    /// [`Error::Patroni`] when the node does not answer with a status.
    pub(crate) async fn patroni(&self) -> Result<NodeStatus> {
        let url = self.url("/patroni");
        let res = async {
            self.http
                .get(&url)
                .timeout(self.limit(DEFAULT_TIMEOUT))
                .send()
                .await?
                .json::<NodeStatus>()
                .await
        }
        .await;
        res.map_err(|source| Error::Patroni { url, source })
    }

    /// `POST /switchover` from `leader` to `candidate`, sent to the leader.
    /// Patroni answers once the switchover is done (200), when it refuses it
    /// (412: in synchronous mode only a synchronous standby may take over),
    /// or after 20 s (503); waits 40 s at most.
    ///
    /// # Errors
    /// [`Error::Patroni`] when no answer comes; a refusal is a [`Reply`].
    pub(crate) async fn switchover(&self, leader: &str, candidate: &str) -> Result<Reply> {
        let body = SwitchoverRequest { leader, candidate };
        self.send(
            reqwest::Method::POST,
            "/switchover",
            &body,
            SWITCHOVER_TIMEOUT,
        )
        .await
    }

    /// `POST /restart`: restarts the node's PostgreSQL and answers once it
    /// runs again (within 90 s).
    ///
    /// # Errors
    /// [`Error::Patroni`] when the request fails or Patroni refuses it.
    pub(crate) async fn restart(&self) -> Result<()> {
        let url = self.url("/restart");
        self.http
            .post(&url)
            .json(&RestartRequest {})
            .timeout(self.limit(RESTART_TIMEOUT))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map(drop)
            .map_err(|source| Error::Patroni { url, source })
    }

    /// `POST /reinitialize`: wipes the node's data directory and copies it
    /// again from the leader; with `force`, even while PostgreSQL runs
    /// (within 2 s: Patroni answers before the copy).
    ///
    /// # Errors
    /// [`Error::Patroni`] when no answer comes; a refusal (503 while one
    /// is under way, …) is a [`Reply`].
    pub(crate) async fn reinitialize(&self, force: bool) -> Result<Reply> {
        let body = ReinitializeRequest { force };
        self.send(
            reqwest::Method::POST,
            "/reinitialize",
            &body,
            DEFAULT_TIMEOUT,
        )
        .await
    }
}

/// An answer of Patroni's whose status is the news: its status and body
/// (plain text, e.g. `Successfully switched over to "node2"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body as Patroni sent it.
    pub body: String,
}

impl Reply {
    /// Whether Patroni did what was asked (2xx).
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// `POST /switchover`'s body.
#[derive(Debug, Serialize)]
struct SwitchoverRequest<'a> {
    leader: &'a str,
    candidate: &'a str,
}

/// `POST /reinitialize`'s body.
#[derive(Debug, Serialize)]
struct ReinitializeRequest {
    force: bool,
}

/// `POST /restart`'s body: no conditions (role, pending restart, version,
/// schedule), restart now.
#[derive(Debug, Serialize)]
struct RestartRequest {}

/// `GET /cluster`: the members as the answering node sees them in the DCS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClusterInfo {
    /// Every member with a key in the DCS (one whose key expired is missing).
    pub members: Vec<ClusterMember>,
    /// The cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl ClusterInfo {
    /// The timeline of the leader this view names (`None` without one).
    pub(crate) fn leader_timeline(&self) -> Option<u32> {
        self.members
            .iter()
            .filter(|m| m.role == MemberRole::Leader)
            .map(|m| m.timeline.unwrap_or(0))
            .max()
    }
}

/// One member of [`ClusterInfo`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ClusterMember {
    /// The member's name (`node1`, …).
    pub name: String,
    /// Its role.
    pub role: MemberRole,
    /// PostgreSQL's state: `running`, `streaming` (a replica receiving WAL,
    /// Patroni 3.0.4 on), `starting`, `stopped`, `crashed`, …
    pub state: String,
    /// PostgreSQL's address.
    #[serde(default)]
    pub host: String,
    /// PostgreSQL's port.
    #[serde(default)]
    pub port: u16,
    /// The member's REST API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Its timeline, when PostgreSQL runs.
    #[serde(default)]
    pub timeline: Option<u32>,
    /// A replica's lag behind the leader in bytes; `None` when Patroni
    /// cannot tell (it writes `"unknown"`) or for the leader.
    #[serde(default, deserialize_with = "lag")]
    pub lag: Option<u64>,
}

impl ClusterMember {
    /// Whether its PostgreSQL serves (`running` or `streaming`).
    pub(crate) fn is_serving(&self) -> bool {
        self.state == "running" || self.state == "streaming"
    }
}

/// `lag` as Patroni writes it: bytes, or `"unknown"`.
fn lag<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lag {
        Bytes(u64),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<Lag>::deserialize(d)? {
        Some(Lag::Bytes(b)) => Some(b),
        Some(Lag::Other(_)) | None => None,
    })
}

/// A member's role as Patroni names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MemberRole {
    /// Holds the leader key (`leader`; `master` or `primary` in `/patroni`).
    #[serde(alias = "master", alias = "primary")]
    Leader,
    /// The leader of a standby cluster.
    StandbyLeader,
    /// The synchronous standby.
    SyncStandby,
    /// A standby of the quorum (Patroni 4's `synchronous_mode: quorum`).
    QuorumStandby,
    /// Any other replica.
    Replica,
    /// A role this client does not know (`demoted`, `uninitialized`, …).
    #[serde(other)]
    Other,
}

/// `GET /patroni`: the answering node's own status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct NodeStatus {
    /// PostgreSQL's state (`running`, `stopped`, …).
    pub state: Option<String>,
    /// The node's role (`master`/`primary` is [`MemberRole::Leader`]).
    pub role: Option<MemberRole>,
    /// PostgreSQL's version as a number (`150004`).
    pub server_version: Option<u32>,
    /// PostgreSQL's timeline, when it runs.
    pub timeline: Option<u32>,
    /// Patroni itself.
    pub patroni: Option<PatroniInfo>,
}

/// The `patroni` part of [`NodeStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct PatroniInfo {
    /// Patroni's version (`3.0.2`).
    pub version: String,
    /// The cluster's name.
    pub scope: String,
}

/// A value of Patroni's dynamic configuration or of a PostgreSQL parameter:
/// JSON's scalars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    /// `true`, `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// Text (`"1min"`, `"quorum"`).
    Text(String),
}

impl Scalar {
    /// The value as a whole number, if it is one.
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Scalar::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The value as a non-negative whole number, if it is one.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Scalar::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// Text as Patroni's own settings want it: a whole number or a boolean
    /// typed as such, anything else as text.
    pub(crate) fn typed(text: &str) -> Self {
        if let Ok(n) = text.parse::<i64>() {
            Scalar::Number(n.into())
        } else if let Ok(b) = text.parse::<bool>() {
            Scalar::Bool(b)
        } else {
            Scalar::Text(text.to_string())
        }
    }
}

impl From<u64> for Scalar {
    fn from(n: u64) -> Self {
        Scalar::Number(n.into())
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Scalar::Text(s.to_string())
    }
}

impl fmt::Display for Scalar {
    /// Text as it is, numbers and booleans as JSON writes them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Number(n) => write!(f, "{n}"),
            Scalar::Text(s) => f.write_str(s),
        }
    }
}

/// `GET /config`: Patroni's dynamic configuration, the settings an
/// experiment may change (see
/// [`PATRONI_SETTINGS`](super::PATRONI_SETTINGS)) and PostgreSQL's
/// parameters. Settings the DCS does not hold are `None`; others (`slots`,
/// `standby_cluster`, …) are not read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct DynamicConfig {
    /// The leader key's time to live, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Scalar>,
    /// Seconds between HA loop runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loop_wait: Option<Scalar>,
    /// Seconds to retry DCS and PostgreSQL operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_timeout: Option<Scalar>,
    /// Bytes a replica may lag and still be promoted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_lag_on_failover: Option<Scalar>,
    /// Seconds to wait for a crashed primary to recover before failing over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_start_timeout: Option<Scalar>,
    /// Seconds to wait for a primary to stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_stop_timeout: Option<Scalar>,
    /// `true`, `false` or `"quorum"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous_mode: Option<Scalar>,
    /// Whether the primary refuses writes without a synchronous standby.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous_mode_strict: Option<Scalar>,
    /// How many synchronous standbys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous_node_count: Option<Scalar>,
    /// Whether a primary keeps running when the DCS is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failsafe_mode: Option<Scalar>,
    /// Whether a replica's timeline is checked before promotion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_timeline: Option<Scalar>,
    /// The `postgresql` section.
    pub postgresql: PostgresqlConfig,
}

impl DynamicConfig {
    /// The Patroni setting called `name`, if the DCS holds it; `None` too
    /// for a name that is not one of the settings read.
    pub(crate) fn setting(&self, name: &str) -> Option<&Scalar> {
        match name {
            "ttl" => self.ttl.as_ref(),
            "loop_wait" => self.loop_wait.as_ref(),
            "retry_timeout" => self.retry_timeout.as_ref(),
            "maximum_lag_on_failover" => self.maximum_lag_on_failover.as_ref(),
            "primary_start_timeout" => self.primary_start_timeout.as_ref(),
            "primary_stop_timeout" => self.primary_stop_timeout.as_ref(),
            "synchronous_mode" => self.synchronous_mode.as_ref(),
            "synchronous_mode_strict" => self.synchronous_mode_strict.as_ref(),
            "synchronous_node_count" => self.synchronous_node_count.as_ref(),
            "failsafe_mode" => self.failsafe_mode.as_ref(),
            "check_timeline" => self.check_timeline.as_ref(),
            _ => None,
        }
    }

    /// The PostgreSQL parameter called `name`, if set.
    pub(crate) fn parameter(&self, name: &str) -> Option<&Scalar> {
        self.postgresql.parameters.get(name)?.as_ref()
    }
}

/// The `postgresql` section of [`DynamicConfig`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct PostgresqlConfig {
    /// PostgreSQL's parameters (`null` where one was removed).
    pub parameters: BTreeMap<String, Option<Scalar>>,
    /// Whether a former primary is rewound rather than re-initialised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_pg_rewind: Option<bool>,
    /// Whether replicas get replication slots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub use_slots: Option<bool>,
}

/// A `PATCH /config` body: Patroni settings and PostgreSQL parameters, each
/// set to a value or removed (`None`, sent as `null`). What it leaves out
/// stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct ConfigPatch {
    /// Patroni's settings (`ttl`, `loop_wait`, …).
    #[serde(flatten)]
    pub settings: BTreeMap<String, Option<Scalar>>,
    /// PostgreSQL's parameters, under `postgresql.parameters`.
    #[serde(skip_serializing_if = "ParametersPatch::is_empty")]
    pub postgresql: ParametersPatch,
}

/// The `postgresql` part of a [`ConfigPatch`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct ParametersPatch {
    /// Parameters set (`Some`) or removed (`None`).
    pub parameters: BTreeMap<String, Option<Scalar>>,
}

impl ParametersPatch {
    fn is_empty(&self) -> bool {
        self.parameters.is_empty()
    }
}

impl ConfigPatch {
    /// A patch of `loop_wait` alone.
    pub(crate) fn loop_wait(seconds: u64) -> Self {
        let mut patch = ConfigPatch::default();
        patch.set("loop_wait", Some(seconds.into()));
        patch
    }

    /// Sets Patroni's setting `name` to `value`, or removes it (`None`).
    pub(crate) fn set(&mut self, name: &str, value: Option<Scalar>) {
        self.settings.insert(name.to_string(), value);
    }

    /// Sets PostgreSQL's parameter `name` to `value`, or removes it (`None`).
    pub(crate) fn set_parameter(&mut self, name: &str, value: Option<Scalar>) {
        self.postgresql.parameters.insert(name.to_string(), value);
    }
}

#[cfg(test)]
mod tests;
