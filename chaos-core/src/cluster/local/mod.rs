//! The embedded local target: a real etcd + Patroni + PostgreSQL cluster made of
//! processes on this machine, booted and torn down by the library.
//!
//! ```no_run
//! # async fn demo() -> chaos_core::Result<()> {
//! use chaos_core::cluster::local::LocalCluster;
//!
//! let cluster = LocalCluster::builder().nodes(3).start().await?;
//! println!("read-write endpoint: {}", cluster.rw_dsn());
//! let topology = cluster.topology().await?;
//! println!("leader: {:?}", topology.primary_name());
//! cluster.stop();
//! # Ok(()) }
//! ```
//!
//! Each cluster lives in its own directory under the work directory
//! (`CHAOS_WORK_DIR`, else `<tmp>/chaos-local-<uid>`). Dropping or stopping the
//! cluster returns once every process it started is gone, and removes the
//! directory; a watchdog process does the same if this process dies first, and
//! each start sweeps directories whose owning process is gone. With `CHAOS_KEEP=1`
//! the cluster is left running and marked `kept` (sweeps and watchdogs leave
//! it); its path and the command that removes it (`sh <dir>/remove.sh`) are
//! printed on stderr.
//!
//! When HAProxy is installed, the cluster also gets a proxy on `127.0.0.10`
//! that always forwards to the primary ([`LocalCluster::proxy_dsn`]), for
//! drivers that take a single host only (see [`LocalClusterBuilder::proxy`]).

mod binaries;
mod boot;
mod cluster;
mod config;
pub(crate) mod disk;
pub(crate) mod etcd;
mod faults;
pub(crate) mod leader_watch;
mod log_tail;
pub(crate) mod netfilter;
pub(crate) mod patroni;
pub(crate) mod process;
mod proxy;
mod reconfigure;
mod template;

pub use binaries::{Binaries, DEFAULT_PATRONI_VERSION, Overrides, pinned_patroni};
pub use boot::BootTimings;
pub use cluster::{LocalCluster, LocalClusterBuilder, NodeInfo};
pub use config::{PatroniTimings, SynchronousMode};
pub use faults::{
    DeletePrimaryGuard, FreezeGuard, LinkGuard, PartitionGuard, PauseGuard, StopDcsGuard,
    SwitchoverGuard, ThrottleGuard,
};
pub use reconfigure::PATRONI_SETTINGS;
pub use template::TemplateSource;
