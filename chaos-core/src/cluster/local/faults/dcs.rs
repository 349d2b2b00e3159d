//! [`StopDcs`] on the local cluster: SIGKILL of its etcd, started again on
//! heal with the same data.

use std::time::{Duration, Instant};

use crate::cluster::local::LocalCluster;
use crate::error::LocalError;
use crate::fault::{Fault, FaultGuard, FaultInfo, Healed, StopDcs};
use crate::timeline::{Healing, Timestamp};
use crate::{Error, Result};

impl Fault<LocalCluster> for StopDcs {
    type Guard = StopDcsGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<StopDcsGuard> {
        let pid = cluster.etcd_pid().ok_or(LocalError::EtcdDown)?;
        // Returns once etcd has exited: then the fault is in effect.
        cluster.stop_dcs()?;
        let injected_at = Instant::now();
        tracing::info!(pid, "DCS (etcd) stopped");
        Ok(StopDcsGuard {
            info: FaultInfo {
                kind: "stop-dcs".into(),
                mode: "sigkill-etcd".into(),
                victim: Some("etcd".into()),
                injected_at: Timestamp::now(),
            },
            cluster: cluster.clone(),
            injected_at,
            restart_timeout: self.restart_timeout,
            healed: false,
        })
    }
}

/// Guard of [`StopDcs`]: starts etcd again.
#[derive(Debug)]
pub struct StopDcsGuard {
    info: FaultInfo,
    cluster: LocalCluster,
    injected_at: Instant,
    restart_timeout: Duration,
    healed: bool,
}

impl FaultGuard for StopDcsGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    /// Starts etcd, waits until it serves, then until Patroni reports a leader.
    async fn heal(mut self) -> Result<Healed> {
        self.healed = true;
        let start = Instant::now();
        self.cluster.start_dcs(self.restart_timeout).await?;
        let served = Timestamp::now();
        tracing::info!("DCS (etcd) serves again");
        loop {
            match self.cluster.primary().await {
                Ok(leader) => {
                    return Ok(Healed {
                        event: Healing::DcsBack,
                        at: served,
                        detail: Some(format!("leader {leader}")),
                    });
                }
                Err(e) if start.elapsed() >= self.restart_timeout => {
                    return Err(Error::Timeout {
                        what: format!("a leader after the DCS came back (last: {e})"),
                        waited: self.restart_timeout,
                        logs: String::new(),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for StopDcsGuard {
    /// Starts etcd on a thread of its own (with its own runtime, so that this
    /// works inside or outside one) and waits for it a bounded time.
    fn drop(&mut self) {
        if self.healed {
            return;
        }
        let cluster = self.cluster.clone();
        let timeout = self.restart_timeout;
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("chaos-start-dcs".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::io("building a runtime to restart etcd", e))
                    .and_then(|rt| rt.block_on(cluster.start_dcs(timeout)));
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "fault guard dropped: could not restart etcd");
            return;
        }
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(Ok(())) => tracing::info!("fault guard dropped: etcd restarted"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "fault guard dropped: could not restart etcd")
            }
            Err(_) => tracing::error!("fault guard dropped: etcd not serving after 15 s"),
        }
    }
}
