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

use super::etcd::{Etcd, KeyChange, parse_watch_line};
use crate::timeline::{Event, EventKind, Phase, Timestamp};

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
                Some(Event::new(EventKind::PhaseEnded(Phase::Detection), at, old))
            }
            KeyChange::Put { value, .. } if value.is_empty() => None,
            KeyChange::Put { value, .. } => {
                if self.leader.as_deref() == Some(value.as_str()) {
                    return None;
                }
                self.leader = Some(value.clone());
                Some(Event::new(
                    EventKind::PhaseEnded(Phase::Election),
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
        etcd: None,
        endpoint: etcd,
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
    /// The client, made on the first attempt to open the watch.
    etcd: Option<Etcd>,
    /// etcd's client endpoint (`host:port`).
    endpoint: String,
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
        let etcd = match &self.etcd {
            Some(e) => e.clone(),
            None => {
                let e = Etcd::for_watch(&self.endpoint).map_err(|e| e.to_string())?;
                self.etcd = Some(e.clone());
                e
            }
        };
        let start = match self.next_revision {
            Some(r) => r,
            None => {
                let answer = etcd
                    .range(&self.key, Duration::from_secs(1))
                    .await
                    .map_err(|e| e.to_string())?;
                let revision = answer
                    .header
                    .revision
                    .ok_or_else(|| format!("no revision in etcd's answer {answer:?}"))?;
                self.state.leader = answer.value().filter(|l| !l.is_empty());
                self.next_revision = Some(revision + 1);
                revision + 1
            }
        };
        etcd.watch(&self.key, start)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cluster::local::config::{NodeConfig, PatroniTimings, SynchronousMode};
    use crate::cluster::local::etcd::{NAMESPACE, leader_key};

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
        assert_eq!(cfg.namespace, NAMESPACE);
        assert_eq!(leader_key("chaos-x"), "/chaos/chaos-x/leader");
    }

    // Lines as etcd 3.4's gateway writes them (captured from a real etcd).
    const PUT_NODE1: &str = r#"{"result":{"header":{"revision":"3"},"events":[{"kv":{"key":"L2NoYW9zL3MvbGVhZGVy","create_revision":"2","mod_revision":"3","version":"2","value":"bm9kZTE="},"prev_kv":{"key":"L2NoYW9zL3MvbGVhZGVy","create_revision":"2","mod_revision":"2","version":"1","value":"bm9kZTE="}}]}}"#;
    const DELETE_NODE1: &str = r#"{"result":{"header":{"revision":"4"},"events":[{"type":"DELETE","kv":{"key":"L2NoYW9zL3MvbGVhZGVy","mod_revision":"4"},"prev_kv":{"key":"L2NoYW9zL3MvbGVhZGVy","create_revision":"2","mod_revision":"3","version":"2","value":"bm9kZTE="}}]}}"#;
    const PUT_NODE2: &str = r#"{"result":{"header":{"revision":"5"},"events":[{"kv":{"key":"L2NoYW9zL3MvbGVhZGVy","create_revision":"5","mod_revision":"5","version":"1","value":"bm9kZTI=","lease":"4111120289186755850"}}]}}"#;

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
            .map(|e| (e.name(), e.detail.as_deref()))
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
        assert_eq!(e.kind, EventKind::PhaseEnded(Phase::Election));
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
