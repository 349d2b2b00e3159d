//! Reading and deleting single keys through etcd's v3 JSON gateway
//! (`POST /v3/kv/range`, `POST /v3/kv/deleterange`), for repairs of the DCS
//! state Patroni keeps (its leader and `/sync` keys, see `leader_watch`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::leader_watch::{NAMESPACE, base64_decode, base64_encode};

/// A request naming one key (base64, as the gateway wants it).
#[derive(Serialize)]
struct KeyRequest {
    key: String,
}

/// `/v3/kv/range`'s answer: the key's value, if it exists.
#[derive(Deserialize)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(default)]
    value: String,
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

/// The `/sync` key of cluster `scope`.
pub(crate) fn sync_key(scope: &str) -> String {
    format!("{NAMESPACE}{scope}/sync")
}

/// The value of `key` on the etcd at `client` (`host:port`); `Ok(None)` when
/// it does not exist.
pub(crate) async fn get(
    http: &reqwest::Client,
    client: &str,
    key: &str,
) -> Result<Option<String>, reqwest::Error> {
    let answer: RangeResponse = http
        .post(format!("http://{client}/v3/kv/range"))
        .json(&KeyRequest {
            key: base64_encode(key.as_bytes()),
        })
        .timeout(Duration::from_secs(2))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer
        .kvs
        .first()
        .and_then(|kv| base64_decode(&kv.value))
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Deletes `key` on the etcd at `client`.
pub(crate) async fn delete(
    http: &reqwest::Client,
    client: &str,
    key: &str,
) -> Result<(), reqwest::Error> {
    http.post(format!("http://{client}/v3/kv/deleterange"))
        .json(&KeyRequest {
            key: base64_encode(key.as_bytes()),
        })
        .timeout(Duration::from_secs(2))
        .send()
        .await?
        .error_for_status()
        .map(|_| ())
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
    }
}
