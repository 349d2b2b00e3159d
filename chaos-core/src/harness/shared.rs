//! State shared by the failover tests of one test binary: one runtime, one
//! cluster per node count (started lazily), and a lock so that failovers run
//! one at a time while `cargo test` runs tests on parallel threads.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::{Mutex, MutexGuard};

use crate::cluster::local::LocalCluster;
use crate::{Error, Result};

/// The runtime every failover test runs on, so the shared cluster's connections
/// and tasks outlive any single test.
pub(crate) static RUNTIME: LazyLock<Result<Runtime, String>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("chaos-test")
        .build()
        .map_err(|e| e.to_string())
});

static SERIAL: Mutex<()> = Mutex::const_new(());

static CLUSTERS: LazyLock<Mutex<HashMap<usize, LocalCluster>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Takes the failover lock: one failover at a time per test binary.
pub(crate) async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// The shared cluster with `nodes` nodes, started on first use and brought back
/// to full health (every node streaming, a synchronous standby) before it is
/// handed out. A cluster that cannot be repaired is replaced.
///
/// The cluster is never dropped (it lives in a static): its watchdog removes it
/// when the test process exits.
pub(crate) async fn healthy_cluster(nodes: usize) -> Result<LocalCluster> {
    let mut clusters = CLUSTERS.lock().await;
    if let Some(cluster) = clusters.get(&nodes).cloned() {
        match repair(&cluster).await {
            Ok(()) => return Ok(cluster),
            Err(e) => {
                tracing::error!(error = %e, "shared cluster could not be repaired; starting a new one");
                if let Some(old) = clusters.remove(&nodes) {
                    old.stop();
                }
            }
        }
    }
    let cluster = LocalCluster::builder().nodes(nodes).start().await?;
    clusters.insert(nodes, cluster.clone());
    Ok(cluster)
}

/// Brings a cluster back to full health after an earlier test.
async fn repair(cluster: &LocalCluster) -> Result<()> {
    if cluster.wait_healthy(Duration::from_secs(20)).await.is_ok() {
        return Ok(());
    }
    // A node whose Patroni is gone (e.g. a test killed it and its guard could not
    // restart it) is started again.
    for node in cluster.nodes() {
        if cluster.patroni_pid(&node.name).is_none() {
            tracing::warn!(node = %node.name, "restarting a node left down by an earlier test");
            cluster.start_node(&node.name)?;
        }
    }
    cluster
        .wait_healthy(Duration::from_secs(90))
        .await
        .map(|_| ())
        .map_err(|e| Error::ClusterState(format!("shared cluster unhealthy: {e}")))
}
