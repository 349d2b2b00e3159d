//! Who leads, who follows.

use serde::{Deserialize, Serialize};

/// One member of a cluster as its HA manager reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's name, e.g. `node1`.
    pub name: String,
    /// `leader`, `sync_standby` or `replica`.
    pub role: String,
    /// The HA manager's state, e.g. `running`, `streaming`, `stopped`.
    pub state: String,
    /// PostgreSQL host.
    #[serde(default)]
    pub host: String,
    /// PostgreSQL port.
    #[serde(default)]
    pub port: u16,
    /// The member's timeline, if known.
    #[serde(default)]
    pub timeline: Option<u32>,
    /// Replication lag in bytes, if known (replicas only).
    #[serde(default, deserialize_with = "lag")]
    pub lag: Option<u64>,
}

fn lag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    // Patroni reports "unknown" when it cannot compute the lag.
    Ok(serde_json::Value::deserialize(d)?.as_u64())
}

/// A snapshot of a cluster's roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// All members, sorted by name.
    pub members: Vec<Member>,
}

impl Topology {
    /// The member holding the leader lock, if any.
    pub fn leader(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.role == "leader")
    }

    /// The leader's name, if any.
    pub fn leader_name(&self) -> Option<&str> {
        self.leader().map(|m| m.name.as_str())
    }

    /// Members that are synchronous standbys.
    pub fn sync_standbys(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.role == "sync_standby")
    }

    /// Members that are not the leader.
    pub fn replicas(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.role != "leader")
    }

    /// The leader's timeline.
    pub fn timeline(&self) -> Option<u32> {
        self.leader().and_then(|m| m.timeline)
    }

    /// Whether every one of `expected` members is running, one leads, and at least
    /// one synchronous standby is running.
    pub fn is_healthy(&self, expected: usize) -> bool {
        let running = |m: &Member| m.state == "running" || m.state == "streaming";
        self.members.len() == expected
            && self.members.iter().all(running)
            && self.leader().is_some()
            && self.sync_standbys().any(running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_patroni_cluster_json() {
        let json = r#"{"members":[
          {"name":"node1","role":"leader","state":"running","api_url":"http://127.0.0.11:8008/patroni","host":"127.0.0.11","port":5432,"timeline":3},
          {"name":"node2","role":"sync_standby","state":"running","host":"127.0.0.12","port":5433,"timeline":3,"lag":0},
          {"name":"node3","role":"replica","state":"stopped","host":"127.0.0.13","port":5434,"lag":"unknown"}]}"#;
        let t: Topology = serde_json::from_str(json).expect("valid");
        assert_eq!(t.leader_name(), Some("node1"));
        assert_eq!(t.timeline(), Some(3));
        assert_eq!(t.sync_standbys().count(), 1);
        assert_eq!(t.replicas().count(), 2);
        assert_eq!(t.members[2].lag, None);
        assert!(!t.is_healthy(3), "a stopped member is not healthy");
        assert!(!t.is_healthy(2));
    }
}
