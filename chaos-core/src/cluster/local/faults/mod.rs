//! The built-in faults on the local cluster: `Fault<LocalCluster>` for each
//! fault of [`crate::fault`] (which says what the fault is and its settings),
//! and the guards that heal them — by PID, iptables chain, blkio cgroup or
//! Patroni's REST API. Re-exported from [`crate::cluster::local`].

mod chain;
mod dcs;
mod delete_primary;
mod freeze;
mod link;
mod partition;
mod pause;
mod switchover;
mod throttle;

pub use dcs::StopDcsGuard;
pub use delete_primary::DeletePrimaryGuard;
pub use freeze::FreezeGuard;
pub use link::LinkGuard;
pub use partition::PartitionGuard;
pub use pause::PauseGuard;
pub use switchover::SwitchoverGuard;
pub use throttle::ThrottleGuard;
