//! Errors of the faults: the cluster is not as a fault needs it.

use std::time::Duration;

/// A fault cannot be injected or healed on the cluster as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// The cluster has no primary to act on.
    #[error("the cluster has no primary to {action}")]
    NoPrimary {
        /// What the fault would have done, e.g. `switch over`.
        action: &'static str,
    },

    /// The cluster has no replica to act on.
    #[error("no replica to {action}")]
    NoReplica {
        /// What the fault would have done, e.g. `freeze`.
        action: &'static str,
    },

    /// A switchover to the node that is the primary already.
    #[error("{node} is the primary already: no switchover to it")]
    AlreadyPrimary {
        /// The node asked for.
        node: String,
    },

    /// A switchover to the synchronous standby when there is none.
    #[error("no synchronous standby to switch over to: {topology}")]
    NoSyncStandby {
        /// The topology as Patroni reports it.
        topology: String,
    },

    /// A switchover or failover is pending already.
    #[error("a switchover or failover is pending already (DCS key {key})")]
    SwitchoverPending {
        /// The DCS key that says so.
        key: String,
    },

    /// Patroni answered the switchover request with an error.
    #[error("Patroni refused the switchover (POST {url}: HTTP {status}): {body}")]
    SwitchoverRefused {
        /// The URL posted to.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Patroni's answer, trimmed.
        body: String,
    },

    /// The switchover request got no answer from Patroni.
    #[error("switchover request failed (POST {url}): {}", reason(&**.source))]
    SwitchoverRequest {
        /// The URL posted to.
        url: String,
        /// Why no answer came: a [`crate::Error`] (boxed as a trait object,
        /// so that `source()` is the error itself and downcasts to it).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Processes stopped by a fault did not resume after `SIGCONT`.
    #[error("processes of {nodes} still stopped {waited:?} after SIGCONT")]
    StillStopped {
        /// The nodes, comma-separated.
        nodes: String,
        /// How long they were given.
        waited: Duration,
    },
}

/// Why a request failed, without the wrapper's words that repeat the URL:
/// the source's message and causes (reqwest's "error sending request: …:
/// connection refused"), else the error's own message.
fn reason(e: &(dyn std::error::Error + Send + Sync)) -> String {
    match e.source() {
        Some(cause) => crate::error::describe(cause),
        None => e.to_string(),
    }
}
