//! [`PauseNode`] on the local cluster: SIGSTOP of the node's Patroni, its
//! postmaster and every backend, by PID; SIGCONT on heal.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::cluster::local::{LocalCluster, process};
use crate::error::{FaultError, LocalError};
use crate::fault::pause::Victim;
use crate::fault::{Fault, FaultGuard, FaultInfo, Healed, PauseNode};
use crate::timeline::{Healing, Timestamp};
use crate::{Error, Result};

impl Fault<LocalCluster> for PauseNode {
    type Guard = PauseGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<PauseGuard> {
        let (name, mode) = match self.victim {
            Victim::Primary => (cluster.primary().await?, "sigstop-primary"),
            Victim::Node(n) => {
                if cluster.node(&n).is_none() {
                    return Err(LocalError::NoSuchNode { name: n }.into());
                }
                (n, "sigstop-node")
            }
        };
        let patroni = cluster
            .patroni_pid(&name)
            .ok_or_else(|| LocalError::PatroniDown { node: name.clone() })?;
        // A node whose PostgreSQL is down is paused all the same (Patroni alone).
        let postmaster = match cluster.postmaster_pid(&name) {
            Ok(pid) => Some(pid),
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "pausing a node without PostgreSQL");
                None
            }
        };
        let mut guard = PauseGuard {
            info: FaultInfo {
                kind: "pause-node".into(),
                mode: mode.into(),
                victim: Some(name.clone()),
                injected_at: Timestamp::now(),
            },
            cluster: cluster.clone(),
            node: name.clone(),
            pids: Vec::new(),
            injected_at: Instant::now(),
            resume_timeout: self.resume_timeout,
            resumed: false,
        };
        // Patroni first, so that it cannot react to its PostgreSQL stopping;
        // then the postmaster, so that it forks no new backend; then everything
        // below either of them (the postmaster may or may not be a descendant of
        // Patroni: Patroni 3.0 starts it through a helper process that exits).
        // Twice: processes forked between the first scan and their parent's stop
        // are caught by the second. On error the guard's Drop resumes what was
        // stopped.
        let roots: Vec<i32> = std::iter::once(patroni).chain(postmaster).collect();
        for &pid in &roots {
            guard.stop(pid)?;
        }
        for _ in 0..2 {
            for &root in &roots {
                for pid in process::descendants(root) {
                    guard.stop(pid)?;
                }
            }
        }
        // In effect once every process is stopped (SIGSTOP takes hold when the
        // process is next scheduled: wait for it, briefly).
        process::wait_stopped(&guard.pids, Duration::from_secs(2)).await;
        guard.injected_at = Instant::now();
        guard.info.injected_at = Timestamp::now();
        tracing::info!(
            node = %name,
            patroni,
            postmaster = ?postmaster,
            processes = guard.pids.len(),
            "node paused"
        );
        Ok(guard)
    }
}

/// Guard of [`PauseNode`]: SIGCONT to every paused process.
#[derive(Debug)]
pub struct PauseGuard {
    info: FaultInfo,
    cluster: LocalCluster,
    node: String,
    /// In the order they were stopped: Patroni, postmaster, the rest.
    pids: Vec<i32>,
    injected_at: Instant,
    resume_timeout: Duration,
    resumed: bool,
}

impl PauseGuard {
    /// The paused node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The paused processes, in the order they were stopped (Patroni first,
    /// then the postmaster, then their descendants).
    pub fn pids(&self) -> &[i32] {
        &self.pids
    }

    fn stop(&mut self, pid: i32) -> Result<()> {
        if !self.pids.contains(&pid) {
            process::signal(pid, Signal::SIGSTOP)?;
            self.pids.push(pid);
        }
        Ok(())
    }

    /// SIGCONT in the reverse order of the stop: backends, then the postmaster,
    /// Patroni last, so that Patroni wakes up to a PostgreSQL that runs again
    /// (and does not take it for hung), and the postmaster does not see its
    /// backends stopped. The signals follow each other within microseconds.
    fn resume(&mut self) -> Result<()> {
        self.resumed = true;
        process::resume_all(&self.pids)
    }
}

impl FaultGuard for PauseGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    /// Resumes every paused process, then waits until each runs again and the
    /// node's Patroni answers its REST API. Whatever role Patroni then gives the
    /// node (it demotes a former primary that lost its lock) is left to it.
    async fn heal(mut self) -> Result<Healed> {
        self.resume()?;
        let deadline = Instant::now() + self.resume_timeout;
        if !process::wait_not_stopped(&self.pids, deadline).await {
            return Err(FaultError::StillStopped {
                nodes: self.node.clone(),
                waited: self.resume_timeout,
            }
            .into());
        }
        if let Ok(api) = self.cluster.patroni_api(&self.node) {
            // Any status will do (503 while PostgreSQL restarts): Patroni runs.
            while api.patroni().await.is_err() {
                if Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        what: format!("Patroni of {} to answer after being resumed", self.node),
                        waited: self.resume_timeout,
                        logs: String::new(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tracing::info!(node = %self.node, "node resumed");
        Ok(Healed {
            event: Healing::NodeResumed,
            at: Timestamp::now(),
            detail: Some(self.node.clone()),
        })
    }
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        if !self.resumed
            && let Err(e) = self.resume()
        {
            tracing::error!(error = %e, node = %self.node, "fault guard dropped: could not resume the node");
        }
    }
}
