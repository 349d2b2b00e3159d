//! Who is primary, who follows — in roles every target can report.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use super::Target;
use crate::timeline::{Event, EventKind};

/// The role of a member, the same words for every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Accepts writes.
    Primary,
    /// A standby the primary waits for before acknowledging a commit.
    SyncStandby,
    /// Any other standby.
    Replica,
    /// Not serving.
    Down,
}

/// One member of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's name (`node1`, a pod name, or `host:port`).
    pub name: String,
    /// Its role now.
    pub role: Role,
    /// The target's own word for its state (e.g. Patroni's `streaming`).
    pub state: String,
    /// PostgreSQL host.
    pub host: String,
    /// PostgreSQL port.
    pub port: u16,
    /// The member's timeline, if known.
    pub timeline: Option<u32>,
    /// Replication lag in bytes, if known (standbys only).
    pub lag: Option<u64>,
}

impl Member {
    /// Whether the member serves (any role but [`Role::Down`]).
    pub fn is_up(&self) -> bool {
        self.role != Role::Down
    }
}

/// A snapshot of a cluster's roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// All members, sorted by name.
    pub members: Vec<Member>,
}

impl Topology {
    /// The primary, if exactly one member is primary.
    pub fn primary(&self) -> Option<&Member> {
        let mut it = self.primaries();
        match (it.next(), it.next()) {
            (Some(p), None) => Some(p),
            _ => None,
        }
    }

    /// Every member that claims to be primary (more than one: split-brain).
    pub fn primaries(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.role == Role::Primary)
    }

    /// The primary's name, if any.
    pub fn primary_name(&self) -> Option<&str> {
        self.primary().map(|m| m.name.as_str())
    }

    /// Members that are synchronous standbys.
    pub fn sync_standbys(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.role == Role::SyncStandby)
    }

    /// Members that serve and are not primary.
    pub fn standbys(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| matches!(m.role, Role::SyncStandby | Role::Replica))
    }

    /// Members that are down.
    pub fn down(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.role == Role::Down)
    }

    /// The primary's timeline.
    pub fn timeline(&self) -> Option<u32> {
        self.primary().and_then(|m| m.timeline)
    }

    /// Whether `expected` members all serve, exactly one is primary and at least
    /// one is a synchronous standby.
    pub fn is_healthy(&self, expected: usize) -> bool {
        self.members.len() == expected
            && self.members.iter().all(Member::is_up)
            && self.primary().is_some()
            && self.sync_standbys().next().is_some()
    }

    /// The events that lead from `before` to `self`: a new primary (or a newer
    /// timeline), the primary lost, members going down and coming back.
    pub fn changes_since(&self, before: &Topology) -> Vec<EventKind> {
        let mut out = Vec::new();
        let (old, new) = (before.primary(), self.primary());
        match (old, new) {
            (Some(o), None) => out.push(EventKind::PrimaryLost {
                node: o.name.clone(),
            }),
            (o, Some(n)) if o.is_none_or(|o| o.name != n.name || n.timeline > o.timeline) => {
                out.push(EventKind::NewPrimary {
                    node: n.name.clone(),
                    timeline: n.timeline,
                });
            }
            _ => {}
        }
        for m in &self.members {
            let was = before.members.iter().find(|b| b.name == m.name);
            let node = m.name.clone();
            match (was.map(Member::is_up), m.is_up()) {
                (Some(true), false) => out.push(EventKind::MemberDown { node }),
                (Some(false), true) => out.push(EventKind::MemberBack { node }),
                _ => {}
            }
        }
        out
    }
}

/// Polls a target's topology and yields the changes between snapshots.
pub(super) fn poll_events<T: Target + ?Sized>(
    target: Arc<T>,
    every: Duration,
) -> BoxStream<'static, Event> {
    let stream = futures::stream::unfold(
        (target, None::<Topology>, Vec::<Event>::new()),
        move |(target, mut last, mut pending)| async move {
            loop {
                if let Some(e) = pending.pop() {
                    return Some((e, (target, last, pending)));
                }
                tokio::time::sleep(every).await;
                let Ok(now) = target.topology().await else {
                    continue;
                };
                if let Some(before) = &last {
                    pending = now
                        .changes_since(before)
                        .into_iter()
                        .rev()
                        .map(|kind| Event::now(kind, None))
                        .collect();
                }
                last = Some(now);
            }
        },
    );
    Box::pin(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: Role, timeline: Option<u32>) -> Member {
        Member {
            name: name.into(),
            role,
            state: String::new(),
            host: "127.0.0.1".into(),
            port: 5432,
            timeline,
            lag: None,
        }
    }

    fn topo(members: Vec<Member>) -> Topology {
        Topology { members }
    }

    #[test]
    fn roles_and_health() {
        let t = topo(vec![
            member("a", Role::Primary, Some(3)),
            member("b", Role::SyncStandby, Some(3)),
            member("c", Role::Down, None),
        ]);
        assert_eq!(t.primary_name(), Some("a"));
        assert_eq!(t.timeline(), Some(3));
        assert_eq!(t.standbys().count(), 1);
        assert_eq!(t.down().count(), 1);
        assert!(!t.is_healthy(3), "a member is down");
        let two = topo(vec![
            member("a", Role::Primary, Some(3)),
            member("b", Role::Primary, Some(4)),
        ]);
        assert_eq!(two.primary(), None, "two primaries are no single primary");
        assert_eq!(two.primaries().count(), 2);
    }

    #[test]
    fn changes_name_the_new_primary_and_members() {
        let before = topo(vec![
            member("a", Role::Primary, Some(3)),
            member("b", Role::SyncStandby, Some(3)),
        ]);
        let during = topo(vec![
            member("a", Role::Down, None),
            member("b", Role::SyncStandby, Some(3)),
        ]);
        let after = topo(vec![
            member("a", Role::Down, None),
            member("b", Role::Primary, Some(4)),
        ]);
        assert_eq!(
            during.changes_since(&before),
            vec![
                EventKind::PrimaryLost { node: "a".into() },
                EventKind::MemberDown { node: "a".into() },
            ]
        );
        assert_eq!(
            after.changes_since(&during),
            vec![EventKind::NewPrimary {
                node: "b".into(),
                timeline: Some(4)
            }]
        );
        assert!(after.changes_since(&after).is_empty());
    }
}
