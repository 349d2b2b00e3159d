//! Losing the DCS: the cluster's etcd is killed, then started again with the
//! same data, as a crashed or unreachable etcd would be.

use std::time::Duration;

use super::FaultKind;

/// Stops the cluster's DCS (SIGKILL of etcd; its data is kept). Healing starts
/// etcd again and waits until it serves and Patroni reports a leader.
///
/// What the cluster does meanwhile is Patroni's choice. Patroni 3.0.2 without
/// `failsafe_mode` cannot renew the leader key, so after `retry_timeout` the
/// leader demotes itself: it stops PostgreSQL and starts it read-only, and no
/// write succeeds until the DCS is back and a leader is elected again
/// (measured locally: writes fail 2.1–2.7 s after etcd died, with `retry_timeout`
/// 2 s; healthy and writable again 4–5 s after etcd restarts). With
/// `failsafe_mode: true` (`PATCH /config` on the leader's REST API) the
/// leader keeps its role while every other member answers its
/// `POST /failsafe`: not one write failed during an 8 s outage (past the
/// `ttl`).
///
/// Local target only; on an external target it runs the command given for
/// [`FaultKind::StopDcs`].
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct StopDcs {
    pub(crate) restart_timeout: Duration,
}

impl Default for StopDcs {
    fn default() -> Self {
        Self::new()
    }
}

impl StopDcs {
    /// An outage of the cluster's etcd.
    pub fn new() -> Self {
        StopDcs {
            restart_timeout: Duration::from_secs(60),
        }
    }

    /// How long healing waits for etcd to serve and a leader to be elected
    /// (default 60 s).
    pub fn restart_timeout(mut self, timeout: Duration) -> Self {
        self.restart_timeout = timeout;
        self
    }

    /// The built-in fault this is.
    pub fn kind(&self) -> FaultKind {
        FaultKind::StopDcs
    }
}
