//! State shared by the failover tests of one test binary: one runtime, one
//! target per kind (started lazily), and a lock so that failovers run one at a
//! time while `cargo test` runs tests on parallel threads.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::{Mutex, MutexGuard};

use crate::Result;
use crate::cluster::{Target, TargetSpec};

/// The runtime every failover test runs on, so the shared cluster's connections
/// and tasks outlive any single test.
pub(crate) static RUNTIME: LazyLock<std::io::Result<Runtime>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("chaos-test")
        .build()
});

static SERIAL: Mutex<()> = Mutex::const_new(());

static TARGETS: LazyLock<Mutex<HashMap<String, Arc<dyn Target>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Takes the failover lock: one failover at a time per test binary.
pub(crate) async fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// What a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    Local(usize),
    External,
    #[cfg(feature = "cnpg")]
    Cnpg,
}

/// The shared target, created on first use (sweeping what killed runs left)
/// and brought back to full health before it is handed out. A local cluster
/// that cannot be repaired is replaced.
///
/// The target is never dropped (it lives in a static): a local cluster's
/// watchdog removes it when the test process exits.
pub(crate) async fn healthy_target(which: Resolved) -> Result<Arc<dyn Target>> {
    let key = format!("{which:?}");
    let mut targets = TARGETS.lock().await;
    if let Some(target) = targets.get(&key).cloned() {
        match target.repair(Duration::from_secs(90)).await {
            Ok(()) => return Ok(target),
            Err(e) if matches!(which, Resolved::Local(_)) => {
                tracing::error!(error = %e, "shared cluster could not be repaired; starting a new one");
                if let Some(old) = targets.remove(&key) {
                    old.shutdown();
                }
            }
            Err(e) => return Err(e),
        }
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let spec = match which {
        Resolved::Local(nodes) => TargetSpec::from_vars("local", nodes, env)?,
        Resolved::External => TargetSpec::from_vars("external", 0, env)?,
        #[cfg(feature = "cnpg")]
        Resolved::Cnpg => TargetSpec::from_vars("cnpg", 0, env)?,
    };
    let target = spec.build_shared().await?;
    target.wait_healthy(Duration::from_secs(90)).await?;
    let swept = target.sweep().await?;
    if !swept.is_empty() {
        tracing::warn!(?swept, "swept leftovers of killed runs");
    }
    targets.insert(key, target.clone());
    Ok(target)
}
