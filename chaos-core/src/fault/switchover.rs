//! A planned switchover through Patroni's REST API: the primary hands over to a
//! standby, as for maintenance. Nothing fails; writes pause while the old
//! primary is demoted and the candidate promoted.

use std::time::Duration;

use super::FaultKind;

/// Which standby takes over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Candidate {
    SyncStandby,
    Node(String),
}

/// Switches the primary over to a standby with Patroni's `POST /switchover`
/// (`{"leader": <primary>, "candidate": <standby>}`), sent to the leader.
/// Injection returns once Patroni has accepted the request (the failover key
/// is in the DCS, the old primary is being demoted); a refusal (HTTP 412:
/// in synchronous mode only the synchronous standby may take over) is an
/// [`FaultError::SwitchoverRefused`](crate::error::FaultError::SwitchoverRefused) with Patroni's answer. Healing waits until the
/// candidate leads and the old primary streams from it as a replica; it does
/// not switch back.
///
/// Local target only; on an external target it runs the command given for
/// [`FaultKind::Switchover`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Switchover {
    pub(crate) candidate: Candidate,
    pub(crate) rejoin_timeout: Duration,
}

impl Default for Switchover {
    fn default() -> Self {
        Self::to_sync_standby()
    }
}

impl Switchover {
    /// A switchover to the current synchronous standby (the only candidate
    /// Patroni accepts in synchronous mode).
    pub fn to_sync_standby() -> Self {
        Switchover {
            candidate: Candidate::SyncStandby,
            rejoin_timeout: Duration::from_secs(90),
        }
    }

    /// A switchover to node `name`.
    pub fn to(name: impl Into<String>) -> Self {
        Switchover {
            candidate: Candidate::Node(name.into()),
            ..Self::to_sync_standby()
        }
    }

    /// How long healing waits for the new primary and the old one's rejoining
    /// (default 90 s).
    pub fn rejoin_timeout(mut self, timeout: Duration) -> Self {
        self.rejoin_timeout = timeout;
        self
    }

    /// The built-in fault this is.
    pub fn kind(&self) -> FaultKind {
        FaultKind::Switchover
    }

    /// The node asked for by [`to`](Self::to); `None` for the synchronous
    /// (or, on other targets, the most advanced) standby.
    #[cfg(feature = "cnpg")]
    pub(crate) fn candidate_name(&self) -> Option<&str> {
        match &self.candidate {
            Candidate::Node(n) => Some(n),
            Candidate::SyncStandby => None,
        }
    }

    /// How long healing waits.
    #[cfg(feature = "cnpg")]
    pub(crate) fn rejoin_wait(&self) -> Duration {
        self.rejoin_timeout
    }
}
