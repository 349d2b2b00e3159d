//! Freeze the primary: SIGSTOP its postmaster and every backend, like a VM stall
//! or a long GC pause. Nothing crashes; the node simply stops answering.

use std::time::{Instant, SystemTime};

use nix::sys::signal::Signal;

use super::{Fault, FaultGuard, Healed};
use crate::Result;
use crate::report::FaultInfo;
use crate::target::local::LocalCluster;
use crate::target::local::process;

/// Freezes the current primary's PostgreSQL processes (not its Patroni, which
/// keeps the leader lock). Healing thaws them. Below Patroni's `ttl` no failover
/// happens, which makes this a controlled outage of known length.
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct FreezePrimary;

impl FreezePrimary {
    /// A freeze of the current primary.
    pub fn new() -> Self {
        FreezePrimary
    }
}

impl Fault<LocalCluster> for FreezePrimary {
    type Guard = FreezePrimaryGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<FreezePrimaryGuard> {
        let leader = cluster.primary().await?;
        let postmaster = cluster.postmaster_pid(&leader)?;
        let mut pids = vec![postmaster];
        pids.extend(process::descendants(postmaster));
        let injected_at = Instant::now();
        let wall = SystemTime::now();
        // Postmaster first, so it forks no new backend meanwhile.
        for &pid in &pids {
            process::signal(pid, Signal::SIGSTOP)?;
        }
        // Backends forked between the scan and the postmaster's stop.
        let late: Vec<i32> = process::descendants(postmaster)
            .into_iter()
            .filter(|p| !pids.contains(p))
            .collect();
        for &pid in &late {
            process::signal(pid, Signal::SIGSTOP)?;
        }
        pids.extend(late);
        tracing::info!(node = %leader, processes = pids.len(), "primary frozen");
        Ok(FreezePrimaryGuard {
            info: FaultInfo {
                kind: "freeze-primary".into(),
                mode: "sigstop".into(),
                node: Some(leader),
                injected_at: wall,
            },
            pids,
            injected_at,
            thawed: false,
        })
    }
}

/// Guard of [`FreezePrimary`]: SIGCONT to every frozen process.
#[derive(Debug)]
pub struct FreezePrimaryGuard {
    info: FaultInfo,
    pids: Vec<i32>,
    injected_at: Instant,
    thawed: bool,
}

impl FreezePrimaryGuard {
    /// The frozen processes.
    pub fn pids(&self) -> &[i32] {
        &self.pids
    }

    fn thaw(&mut self) -> Result<()> {
        self.thawed = true;
        // Backends first, postmaster last.
        let mut first_error = None;
        for &pid in self.pids.iter().rev() {
            if let Err(e) = process::signal(pid, Signal::SIGCONT) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl FaultGuard for FreezePrimaryGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    async fn heal(mut self) -> Result<Healed> {
        self.thaw()?;
        Ok(Healed {
            event: "primary thawed".into(),
            at: SystemTime::now(),
            detail: self.info.node.clone(),
        })
    }
}

impl Drop for FreezePrimaryGuard {
    fn drop(&mut self) {
        if !self.thawed
            && let Err(e) = self.thaw()
        {
            tracing::error!(error = %e, "fault guard dropped: could not thaw the primary");
        }
    }
}
