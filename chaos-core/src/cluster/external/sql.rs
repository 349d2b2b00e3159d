//! What the external target learns by SQL.

use std::time::Duration;

use tokio_postgres::config::Host;

use crate::cluster::{Member, Role, Topology};
use crate::dsn::redact;
use crate::error::ExternalError;
use crate::{Error, Result};

/// One node of an external cluster.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) name: String,
    pub(super) dsn: String,
}

pub(super) fn parse_dsn(field: &'static str, dsn: &str) -> Result<tokio_postgres::Config> {
    dsn.parse().map_err(|_| Error::Config {
        field,
        expected: "a libpq connection string or postgresql:// URL",
        found: redact(dsn),
    })
}

/// `host:port` of a single-host DSN.
pub(super) fn node_name(dsn: &str) -> Result<String> {
    let config = parse_dsn("node_dsn", dsn)?;
    let hosts = config.get_hosts();
    if hosts.len() != 1 {
        return Err(Error::Config {
            field: "node_dsn",
            expected: "a DSN with exactly one host (one DSN per node)",
            found: redact(dsn),
        });
    }
    let host = match &hosts[0] {
        Host::Tcp(h) => h.clone(),
        Host::Unix(p) => p.display().to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    Ok(format!("{host}:{port}"))
}

const CONNECT: Duration = Duration::from_secs(2);
const QUERY: Duration = Duration::from_secs(3);

/// What one node says about itself.
struct NodeState {
    in_recovery: bool,
    timeline: Option<u32>,
    /// The name under which a standby appears in its primary's
    /// `pg_stat_replication.application_name`.
    application_name: Option<String>,
    /// On a primary: `(application_name, sync_state, state)` of each standby.
    standbys: Vec<(String, String, String)>,
    server: Option<String>,
}

async fn simple_values(client: &tokio_postgres::Client, sql: &str) -> Option<Vec<Option<String>>> {
    let msgs = tokio::time::timeout(QUERY, client.simple_query(sql))
        .await
        .ok()?
        .ok()?;
    msgs.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => {
            Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
        }
        _ => None,
    })
}

async fn node_state(dsn: &str) -> Result<NodeState> {
    let client = crate::pg::connect(dsn, CONNECT).await?;
    let row = simple_values(
        &client,
        "SELECT pg_is_in_recovery(), host(inet_server_addr()) || ':' || current_setting('port')",
    )
    .await
    .ok_or_else(|| ExternalError::NoAnswer { dsn: redact(dsn) })?;
    let in_recovery = row.first().cloned().flatten().as_deref() == Some("t");
    let server = row.get(1).cloned().flatten();
    // Each of these may be refused to an unprivileged user: then unknown.
    let timeline = if in_recovery {
        let received =
            simple_values(&client, "SELECT received_tli FROM pg_stat_wal_receiver").await;
        let checkpoint =
            simple_values(&client, "SELECT timeline_id FROM pg_control_checkpoint()").await;
        [received, checkpoint]
            .into_iter()
            .flatten()
            .find_map(|r| r.first().cloned().flatten()?.parse().ok())
    } else {
        simple_values(
            &client,
            "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int",
        )
        .await
        .and_then(|r| r.first().cloned().flatten()?.parse().ok())
    };
    let mut application_name = None;
    let mut standbys = Vec::new();
    if in_recovery {
        let conninfo = simple_values(&client, "SELECT conninfo FROM pg_stat_wal_receiver")
            .await
            .and_then(|r| r.first().cloned().flatten());
        let cluster_name = simple_values(&client, "SELECT current_setting('cluster_name')")
            .await
            .and_then(|r| r.first().cloned().flatten())
            .filter(|s| !s.is_empty());
        application_name = conninfo
            .as_deref()
            .and_then(application_name_of)
            .or(cluster_name)
            .or_else(|| Some("walreceiver".into()));
    } else if let Ok(rows) = tokio::time::timeout(
        QUERY,
        client.simple_query("SELECT application_name, sync_state, state FROM pg_stat_replication"),
    )
    .await
    .unwrap_or_else(|_| Ok(Vec::new()))
    {
        for m in rows {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                let get = |i| r.get(i).unwrap_or_default().to_string();
                standbys.push((get(0), get(1), get(2)));
            }
        }
    }
    Ok(NodeState {
        in_recovery,
        timeline,
        application_name,
        standbys,
        server,
    })
}

impl NodeState {
    /// The member called `name` (`host:port`) in `role`, as this node sees itself.
    fn member(&self, name: String, role: Role) -> Member {
        let (host, port) = split(&name);
        Member {
            name,
            role,
            state: if self.in_recovery {
                "in recovery"
            } else {
                "read-write"
            }
            .into(),
            host,
            port,
            timeline: self.timeline,
            lag: None,
        }
    }
}

/// `application_name` in a conninfo as PostgreSQL shows it (`k=v k='v w'`).
fn application_name_of(conninfo: &str) -> Option<String> {
    conninfo.split_whitespace().find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "application_name").then(|| v.trim_matches('\'').to_string())
    })
}

fn split(name: &str) -> (String, u16) {
    match name.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(0)),
        None => (name.to_string(), 0),
    }
}

/// The topology: each node's own view, standbys matched to the primary's
/// `pg_stat_replication` by application name. Without node DSNs, the one
/// server the read-write DSN reaches.
pub(super) async fn topology(rw_dsn: &str, nodes: &[Node]) -> Result<Topology> {
    if nodes.is_empty() {
        let s = node_state(rw_dsn).await?;
        let name = s.server.clone().unwrap_or_else(|| "rw".into());
        let role = if s.in_recovery {
            Role::Replica
        } else {
            Role::Primary
        };
        return Ok(Topology {
            members: vec![s.member(name, role)],
        });
    }
    let mut states = futures::future::join_all(nodes.iter().map(|n| node_state(&n.dsn))).await;
    if states.iter().all(Result::is_err)
        && let Some(Err(first)) = (!states.is_empty()).then(|| states.swap_remove(0))
    {
        return Err(ExternalError::NoNodeAnswered {
            nodes: nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            first: Box::new(first),
        }
        .into());
    }
    let sync_names: Vec<String> = states
        .iter()
        .flatten()
        .filter(|s| !s.in_recovery)
        .flat_map(|s| s.standbys.iter())
        .filter(|(_, sync, state)| (sync == "sync" || sync == "quorum") && state == "streaming")
        .map(|(app, _, _)| app.clone())
        .collect();
    let mut members: Vec<Member> = nodes
        .iter()
        .zip(states)
        .map(|(n, s)| match s {
            Err(_) => {
                let (host, port) = split(&n.name);
                Member {
                    name: n.name.clone(),
                    role: Role::Down,
                    state: "unreachable".into(),
                    host,
                    port,
                    timeline: None,
                    lag: None,
                }
            }
            Ok(s) => {
                let role = if !s.in_recovery {
                    Role::Primary
                } else if s
                    .application_name
                    .as_ref()
                    .is_some_and(|a| sync_names.contains(a))
                {
                    Role::SyncStandby
                } else {
                    Role::Replica
                };
                s.member(n.name.clone(), role)
            }
        })
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Topology { members })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_and_application_names() {
        assert_eq!(
            node_name("postgresql://u@db1:6432/x").ok().as_deref(),
            Some("db1:6432")
        );
        assert_eq!(
            node_name("host=db2 user=u").ok().as_deref(),
            Some("db2:5432")
        );
        assert_eq!(
            application_name_of(
                "user=rep host=10.0.0.1 port=5432 application_name=node2 sslmode=prefer"
            )
            .as_deref(),
            Some("node2")
        );
        assert_eq!(application_name_of("host=x"), None);
    }
}
