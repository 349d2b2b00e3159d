//! Delete the primary: the node that leads is lost, like a crashed machine or a
//! deleted pod.

use std::time::Duration;

use super::FaultKind;

/// How the primary goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteMode {
    /// SIGKILL of the node's HA agent and postmaster: a lost node.
    Kill,
    /// SIGTERM of the HA agent: a clean shutdown that hands over leadership.
    Graceful,
}

/// Deletes the current primary. Healing restarts the node and waits until it has
/// rejoined as a streaming replica (rewound by Patroni if needed).
///
/// ```no_run
/// # async fn demo(cluster: &chaos_core::cluster::local::LocalCluster) -> chaos_core::Result<()> {
/// use chaos_core::fault::{DeletePrimary, Fault, FaultGuard};
///
/// let guard = DeletePrimary::kill().inject(cluster).await?;
/// // … the cluster fails over …
/// guard.heal().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct DeletePrimary {
    pub(crate) mode: DeleteMode,
    pub(crate) rejoin_timeout: Duration,
}

impl DeletePrimary {
    /// Kill the primary like a lost node.
    pub fn kill() -> Self {
        DeletePrimary {
            mode: DeleteMode::Kill,
            rejoin_timeout: Duration::from_secs(90),
        }
    }

    /// Stop the primary gracefully.
    pub fn graceful() -> Self {
        DeletePrimary {
            mode: DeleteMode::Graceful,
            ..Self::kill()
        }
    }

    /// How long healing waits for the node to rejoin (default 90 s).
    pub fn rejoin_timeout(mut self, timeout: Duration) -> Self {
        self.rejoin_timeout = timeout;
        self
    }

    /// The mode.
    pub fn mode(&self) -> DeleteMode {
        self.mode
    }

    /// How long healing waits for the node to rejoin.
    #[cfg(feature = "cnpg")]
    pub(crate) fn rejoin_wait(&self) -> Duration {
        self.rejoin_timeout
    }

    /// The built-in fault this is.
    pub fn kind(&self) -> FaultKind {
        match self.mode {
            DeleteMode::Kill => FaultKind::KillPrimary,
            DeleteMode::Graceful => FaultKind::StopPrimary,
        }
    }
}
