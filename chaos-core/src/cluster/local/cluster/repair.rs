//! Bringing the local cluster back to health between runs
//! ([`Target::repair`](crate::cluster::Target::repair)): what Patroni does not
//! mend by itself, mended, and what cannot be, explained.

use std::time::{Duration, Instant};

use super::super::etcd;
use super::LocalCluster;
use crate::cluster::{Member, Role, Topology};
use crate::{Error, Result};

impl LocalCluster {
    /// [`Target::repair`](crate::cluster::Target::repair) for the local cluster.
    pub(super) async fn repair_inner(&self, timeout: Duration) -> Result<()> {
        /// How long a member may stay out of replication under a leader
        /// before it is re-initialised: Patroni rewinds and restarts a
        /// rejoining node well within this.
        const STUCK: Duration = Duration::from_secs(10);
        for node in self.nodes() {
            if self.patroni_pid(&node.name).is_none() {
                tracing::warn!(node = %node.name, "restarting a node left down by an earlier test");
                self.start_node(&node.name)?;
            }
        }
        let start = Instant::now();
        let mut out_since: std::collections::HashMap<String, Instant> = Default::default();
        let mut reinitialised: Vec<String> = Vec::new();
        let mut no_sync_since: Option<Instant> = None;
        let mut sync_cleared = false;
        let mut last = None;
        while start.elapsed() < timeout {
            let left = timeout.saturating_sub(start.elapsed());
            match LocalCluster::wait_healthy(self, left.min(Duration::from_secs(2))).await {
                Ok(_) => {
                    if !reinitialised.is_empty() {
                        tracing::warn!(nodes = ?reinitialised, took = ?start.elapsed(), "repaired by re-initialising");
                    }
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            let Ok(t) = self.topology().await else {
                continue;
            };
            let Some(leader) = t.primary().map(|m| m.name.clone()) else {
                out_since.clear();
                continue;
            };
            if t.sync_standbys().next().is_none() && self.inner.synchronous_mode.is_synchronous() {
                let since = *no_sync_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= STUCK && !sync_cleared {
                    sync_cleared = self.clear_stale_sync_key(&leader).await;
                }
            } else {
                no_sync_since = None;
            }
            for m in &t.members {
                let replicating = m.name == leader || m.is_up();
                if replicating && !diverged(m, &t) {
                    out_since.remove(&m.name);
                    continue;
                }
                let since = *out_since.entry(m.name.clone()).or_insert_with(Instant::now);
                if since.elapsed() >= STUCK && !reinitialised.contains(&m.name) {
                    tracing::warn!(node = %m.name, state = %m.state, timeline = ?m.timeline, leader = %leader,
                        "re-initialising a member stuck out of replication");
                    self.reinitialize(&m.name).await;
                    reinitialised.push(m.name.clone());
                }
            }
        }
        let state = match self.topology().await {
            Ok(t) => describe_unhealthy(&t, self.nodes().len()),
            Err(e) => format!("no node's Patroni answers ({e})"),
        };
        let also = if reinitialised.is_empty() {
            String::new()
        } else {
            format!(
                "; re-initialised {} from the leader without effect",
                reinitialised.join(", ")
            )
        };
        Err(Error::Timeout {
            what: format!(
                "the local cluster to become healthy again: {state}{also}. Look at \
                 <node>/patroni.log and <node>/pglog/postgresql.log in {dir} (CHAOS_KEEP=1 keeps \
                 the cluster), or start a new cluster{cause}",
                dir = self.dir().display(),
                cause = last
                    .map(|e| format!(" (last check: {})", crate::error::describe(&e)))
                    .unwrap_or_default(),
            ),
            waited: timeout,
            logs: self.inner.logs_tail(),
        })
    }

    /// A leader cannot name a synchronous standby while Patroni's `/sync` key
    /// names another leader: its writes of the key compare against a version
    /// it does not hold ("Synchronous replication key updated by someone
    /// else", every HA loop). That is what Patroni 3.0.2 leaves after a paused
    /// primary took the leader key back. Deletes such a key (as `etcdctl del`
    /// would) so the leader writes a new one; returns whether it did.
    async fn clear_stale_sync_key(&self, leader: &str) -> bool {
        let key = etcd::sync_key(&self.inner.scope);
        let stale = match self.inner.etcd.get(&key).await {
            Ok(Some(value)) => serde_json::from_str::<etcd::SyncKey>(&value)
                .ok()
                .and_then(|k| k.leader)
                .filter(|named| named != leader),
            _ => None,
        };
        let Some(named) = stale else { return false };
        match self.inner.etcd.delete(&key).await {
            Ok(()) => {
                tracing::warn!(%key, named = %named, leader,
                    "deleted a /sync key naming another leader: the leader could not name a synchronous standby");
                true
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "cannot delete a stale /sync key");
                false
            }
        }
    }

    /// Asks node `name`'s Patroni to wipe and re-create its data directory
    /// from the leader (`POST /reinitialize`, forced). Best effort: the next
    /// health check says whether it helped.
    async fn reinitialize(&self, name: &str) {
        let Some(node) = self.node(name) else { return };
        match self
            .inner
            .patroni
            .node(node.api_url())
            .reinitialize(true)
            .await
        {
            Ok(reply) => {
                tracing::info!(node = name, status = reply.status, body = %reply.body.trim(), "asked Patroni to re-initialise");
            }
            Err(e) => {
                tracing::warn!(node = name, error = %e, "cannot ask Patroni to re-initialise")
            }
        }
    }
}

/// Whether member `m` runs on a newer timeline than the leader: it
/// acknowledged writes the leader never had, and cannot stream from it.
fn diverged(m: &Member, t: &Topology) -> bool {
    let leader = t.primary().and_then(|l| l.timeline);
    m.role != Role::Primary && matches!((m.timeline, leader), (Some(a), Some(b)) if a > b)
}

/// What keeps topology `t` from being healthy, member by member, in words.
fn describe_unhealthy(t: &Topology, expected: usize) -> String {
    let Some(leader) = t.primary() else {
        return format!(
            "no member holds the leader key ({})",
            t.members
                .iter()
                .map(|m| format!("{} {}", m.name, m.state))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let tl = |m: &Member| m.timeline.map_or("?".to_string(), |t| t.to_string());
    let mut out = vec![format!("{} leads on timeline {}", leader.name, tl(leader))];
    for m in t.members.iter().filter(|m| m.name != leader.name) {
        if diverged(m, t) {
            out.push(format!(
                "{} is {} on timeline {}, ahead of the leader's: it has writes the leader \
                 never had and needs re-initialising (`patronictl reinit`)",
                m.name,
                m.state,
                tl(m)
            ));
        } else if !m.is_up() {
            out.push(format!("{} is {} (timeline {})", m.name, m.state, tl(m)));
        }
    }
    if t.sync_standbys().next().is_none() {
        out.push("no synchronous standby".into());
    }
    if t.members.len() < expected {
        out.push(format!("{} of {expected} members known", t.members.len()));
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: Role, state: &str, timeline: u32) -> Member {
        Member {
            name: name.into(),
            role,
            state: state.into(),
            host: "127.0.0.11".into(),
            port: 5432,
            timeline: Some(timeline),
            lag: None,
        }
    }

    #[test]
    fn a_member_ahead_of_the_leader_is_named_with_what_to_do() {
        // What Patroni 3.0.2 leaves after a paused primary took the key back:
        // the demoted node is on the timeline it was promoted to.
        let t = Topology {
            members: vec![
                member("node1", Role::Replica, "stopped", 2),
                member("node2", Role::Replica, "streaming", 1),
                member("node3", Role::Primary, "running", 1),
            ],
        };
        assert!(diverged(&t.members[0], &t));
        assert!(!diverged(&t.members[1], &t));
        assert!(!diverged(&t.members[2], &t));
        let text = describe_unhealthy(&t, 3);
        assert!(text.starts_with("node3 leads on timeline 1"), "{text}");
        assert!(
            text.contains("node1 is stopped on timeline 2, ahead of the leader's")
                && text.contains("patronictl reinit"),
            "{text}"
        );
        assert!(text.contains("no synchronous standby"), "{text}");
        assert!(
            !text.contains("node2"),
            "a streaming replica is fine: {text}"
        );
    }

    #[test]
    fn without_a_leader_every_member_state_is_listed() {
        let t = Topology {
            members: vec![
                member("node1", Role::Down, "stopped", 1),
                member("node2", Role::Replica, "running", 1),
            ],
        };
        let text = describe_unhealthy(&t, 3);
        assert_eq!(
            text,
            "no member holds the leader key (node1 stopped, node2 running)"
        );
    }
}
