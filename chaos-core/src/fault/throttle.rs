//! Disk throttling: a node's I/O limited.
//!
//! The local cluster does it in the kernel (blkio cgroup throttles on its
//! loop-device filesystems) and needs one built with
//! [`LocalClusterBuilder::disk_faults`](crate::cluster::local::LocalClusterBuilder::disk_faults)
//! (each node's data directory on a filesystem of its own), hence root. Other
//! targets: `Fault<dyn Target>` says which can.

use super::FaultKind;
use crate::{Error, Result};

/// Limits a node's disk I/O (by default the current primary's): bytes or
/// operations per second, reads or writes, on its data and WAL filesystems
/// or on the WAL alone. Commits slow down as the WAL flush at each commit
/// waits for the throttled device; a low enough limit stalls the node
/// without killing it, the gray failure a health check may not notice.
/// Healing lifts the limits and waits until the node serves again in
/// Patroni's topology.
///
/// The node's processes run in a blkio cgroup; the limits are its
/// `blkio.throttle.*_device` settings for the node's loop devices. Kernel
/// background writeback is not throttled (cgroup v1), what PostgreSQL writes
/// and syncs itself is: WAL flushes, checkpoints' syncs, reads.
///
/// ```no_run
/// # async fn demo() -> chaos_core::Result<()> {
/// use chaos_core::cluster::local::LocalCluster;
/// use chaos_core::fault::{Fault, FaultGuard, ThrottleDisk};
///
/// let cluster = LocalCluster::builder().separate_wal(true).start().await?;
/// // The primary's WAL device takes 50 writes per second.
/// let guard = ThrottleDisk::primary()
///     .write_iops(50)
///     .wal_only()
///     .inject(&cluster)
///     .await?;
/// println!("{}", guard.info().mode); // "write 50 IOPS on the WAL"
/// tokio::time::sleep(std::time::Duration::from_secs(5)).await;
/// guard.heal().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ThrottleDisk {
    pub(crate) node: Option<String>,
    pub(crate) limits: DiskLimits,
    pub(crate) wal_only: bool,
}

impl ThrottleDisk {
    /// Throttles the node that is primary when the fault is injected. Set at
    /// least one limit.
    pub fn primary() -> Self {
        ThrottleDisk {
            node: None,
            limits: DiskLimits::default(),
            wal_only: false,
        }
    }

    /// Throttles node `name`, whatever its role.
    pub fn node(name: impl Into<String>) -> Self {
        ThrottleDisk {
            node: Some(name.into()),
            ..Self::primary()
        }
    }

    /// At most `bytes` written per second.
    pub fn write_bps(mut self, bytes: u64) -> Self {
        self.limits.write_bps = Some(bytes);
        self
    }

    /// At most `bytes` read per second.
    pub fn read_bps(mut self, bytes: u64) -> Self {
        self.limits.read_bps = Some(bytes);
        self
    }

    /// At most `ops` write operations per second.
    pub fn write_iops(mut self, ops: u64) -> Self {
        self.limits.write_iops = Some(ops);
        self
    }

    /// At most `ops` read operations per second.
    pub fn read_iops(mut self, ops: u64) -> Self {
        self.limits.read_iops = Some(ops);
        self
    }

    /// Throttles the WAL's filesystem only, not the data directory's; needs a
    /// cluster built with
    /// [`LocalClusterBuilder::separate_wal`](crate::cluster::local::LocalClusterBuilder::separate_wal).
    pub fn wal_only(mut self) -> Self {
        self.wal_only = true;
        self
    }

    /// The built-in fault this is.
    pub fn kind(&self) -> FaultKind {
        FaultKind::ThrottlePrimaryDisk
    }

    /// The node named with [`node`](Self::node), if any (other targets).
    #[cfg(feature = "cnpg")]
    pub(crate) fn node_name(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// The write and read IOPS limits set (other targets).
    #[cfg(feature = "cnpg")]
    pub(crate) fn iops_limits(&self) -> (Option<u64>, Option<u64>) {
        (self.limits.write_iops, self.limits.read_iops)
    }

    /// Whether a bytes-per-second limit is set (other targets).
    #[cfg(feature = "cnpg")]
    pub(crate) fn has_bps_limit(&self) -> bool {
        self.limits.write_bps.is_some() || self.limits.read_bps.is_some()
    }

    /// Whether only the WAL is throttled (other targets).
    #[cfg(feature = "cnpg")]
    pub(crate) fn is_wal_only(&self) -> bool {
        self.wal_only
    }

    /// What is limited, e.g. `write 1 MiB/s, write 50 IOPS on the WAL`.
    pub(crate) fn describe(&self) -> String {
        let l = &self.limits;
        let parts: Vec<String> = [
            l.write_bps.map(|b| format!("write {}", rate(b))),
            l.read_bps.map(|b| format!("read {}", rate(b))),
            l.write_iops.map(|n| format!("write {n} IOPS")),
            l.read_iops.map(|n| format!("read {n} IOPS")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let on = if self.wal_only { " on the WAL" } else { "" };
        format!("{}{on}", parts.join(", "))
    }

    /// Checks the settings against the cluster's disks.
    pub(crate) fn check(&self, separate_wal: bool) -> Result<()> {
        if self.limits.is_empty() {
            return Err(Error::Config {
                field: "ThrottleDisk",
                expected: "at least one limit: write_bps, read_bps, write_iops or read_iops",
                found: "none".into(),
            });
        }
        if self.limits.write_bps == Some(0)
            || self.limits.read_bps == Some(0)
            || self.limits.write_iops == Some(0)
            || self.limits.read_iops == Some(0)
        {
            return Err(Error::Config {
                field: "ThrottleDisk",
                expected: "limits above 0 (0 means no limit to the kernel)",
                found: self.describe(),
            });
        }
        if self.wal_only && !separate_wal {
            return Err(Error::Config {
                field: "ThrottleDisk::wal_only",
                expected: "a local cluster with the WAL on a filesystem of its own: \
                           build it with LocalClusterBuilder::separate_wal(true)",
                found: "a cluster whose WAL shares the data directory's filesystem".into(),
            });
        }
        Ok(())
    }
}

/// A [`ThrottleDisk`]'s limits, per second; `None` leaves a setting alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DiskLimits {
    pub(crate) read_bps: Option<u64>,
    pub(crate) write_bps: Option<u64>,
    pub(crate) read_iops: Option<u64>,
    pub(crate) write_iops: Option<u64>,
}

impl DiskLimits {
    /// Whether no limit is set.
    pub(crate) fn is_empty(&self) -> bool {
        [
            self.read_bps,
            self.write_bps,
            self.read_iops,
            self.write_iops,
        ]
        .iter()
        .all(Option::is_none)
    }
}

/// `bytes` per second, in the largest binary unit that divides it.
fn rate(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB/s", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB/s", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB/s", b >> 10),
        b => format!("{b} B/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_only_needs_a_separate_wal() {
        let f = ThrottleDisk::primary().write_iops(50).wal_only();
        let err = f.check(false).expect_err("no WAL filesystem");
        assert!(
            matches!(
                err,
                Error::Config {
                    field: "ThrottleDisk::wal_only",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("separate_wal(true)"), "{err}");
        f.check(true).expect("a WAL filesystem");
        ThrottleDisk::primary()
            .write_iops(50)
            .check(false)
            .expect("the data filesystem");
    }

    #[test]
    fn a_throttle_needs_a_limit_above_zero() {
        assert!(ThrottleDisk::primary().check(true).is_err());
        assert!(ThrottleDisk::primary().write_bps(0).check(true).is_err());
    }

    #[test]
    fn the_mode_names_the_limits() {
        let f = ThrottleDisk::node("node2")
            .write_bps(1 << 20)
            .read_bps(256 * 1024)
            .write_iops(50)
            .wal_only();
        assert_eq!(
            f.describe(),
            "write 1 MiB/s, read 256 KiB/s, write 50 IOPS on the WAL"
        );
        assert_eq!(f.kind(), FaultKind::ThrottlePrimaryDisk);
        assert_eq!(rate(1000), "1000 B/s");
    }
}
