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

mod binaries;
mod cluster;
mod config;
pub(crate) mod process;

pub use binaries::{Binaries, Overrides};
pub use cluster::{LocalCluster, LocalClusterBuilder, NodeInfo};
pub use config::PatroniTimings;
