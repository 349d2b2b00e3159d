//! The names of the built-in faults: a leaf module, so that targets can be
//! configured per fault without depending on the faults themselves. Public as
//! [`crate::fault::FaultKind`].

use std::fmt;

use crate::{Error, Result};

/// The built-in faults by name, as the command line and the external target's
/// fault commands call them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FaultKind {
    /// `DeletePrimary::kill()`.
    KillPrimary,
    /// `DeletePrimary::graceful()`.
    StopPrimary,
    /// `FreezePrimary`.
    FreezePrimary,
    /// `FreezeReplicas`.
    FreezeReplicas,
    /// `PartitionNetwork::isolate_primary()`.
    IsolatePrimary,
    /// `PartitionNetwork::primary_from_replicas()`.
    PartitionPrimaryFromReplicas,
    /// `PauseNode::primary()`.
    PauseNode,
    /// `StopDcs`.
    StopDcs,
    /// `Switchover::to_sync_standby()`.
    Switchover,
    /// `ThrottleDisk::primary()`; takes a rate (`throttle-primary-disk=1MiB/s`).
    ThrottlePrimaryDisk,
    /// `PacketLoss` on the primary's links; takes a percentage (`primary-packet-loss=30%`).
    PrimaryPacketLoss,
    /// `Bandwidth` on the primary's links; takes a rate (`primary-bandwidth=1MiB/s`).
    PrimaryBandwidth,
    /// `Latency` on the primary's links; takes a delay (`primary-latency=100ms`).
    PrimaryLatency,
}

impl FaultKind {
    /// Every built-in fault.
    pub const ALL: [FaultKind; 13] = [
        FaultKind::KillPrimary,
        FaultKind::StopPrimary,
        FaultKind::FreezePrimary,
        FaultKind::FreezeReplicas,
        FaultKind::IsolatePrimary,
        FaultKind::PartitionPrimaryFromReplicas,
        FaultKind::PauseNode,
        FaultKind::StopDcs,
        FaultKind::Switchover,
        FaultKind::ThrottlePrimaryDisk,
        FaultKind::PrimaryPacketLoss,
        FaultKind::PrimaryBandwidth,
        FaultKind::PrimaryLatency,
    ];

    /// The fault's name, e.g. `kill-primary`.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillPrimary => "kill-primary",
            FaultKind::StopPrimary => "stop-primary",
            FaultKind::FreezePrimary => "freeze-primary",
            FaultKind::FreezeReplicas => "freeze-replicas",
            FaultKind::IsolatePrimary => "isolate-primary",
            FaultKind::PartitionPrimaryFromReplicas => "partition-primary-from-replicas",
            FaultKind::PauseNode => "pause-primary",
            FaultKind::StopDcs => "stop-dcs",
            FaultKind::Switchover => "switchover",
            FaultKind::ThrottlePrimaryDisk => "throttle-primary-disk",
            FaultKind::PrimaryPacketLoss => "primary-packet-loss",
            FaultKind::PrimaryBandwidth => "primary-bandwidth",
            FaultKind::PrimaryLatency => "primary-latency",
        }
    }

    /// Whether the fault degrades the service rather than takes it away: a
    /// throttled disk, packet loss, limited bandwidth, added latency. Writes
    /// may only slow down; the report gives such a fault latency figures
    /// (a [`Slowdown`](crate::verify::Slowdown)) and an RTO only for an outage
    /// it caused (writes that failed or got no reply).
    pub fn degrades(self) -> bool {
        matches!(
            self,
            FaultKind::ThrottlePrimaryDisk
                | FaultKind::PrimaryPacketLoss
                | FaultKind::PrimaryBandwidth
                | FaultKind::PrimaryLatency
        )
    }

    /// The environment variable that gives an external target the command for
    /// this fault, e.g. `CHAOS_KILL_PRIMARY_CMD`.
    pub fn env_var(self) -> String {
        format!("CHAOS_{}_CMD", self.name().replace('-', "_").to_uppercase())
    }

    /// Parses a name as written by [`name`](Self::name).
    ///
    /// # Errors
    /// [`Error::Config`] listing the names there are.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| Error::Config {
                field: "fault",
                expected: "one of kill-primary, stop-primary, freeze-primary, freeze-replicas, \
                           isolate-primary, partition-primary-from-replicas, \
                           pause-primary, stop-dcs, switchover, throttle-primary-disk, \
                           primary-packet-loss, primary-bandwidth, primary-latency",
                found: name.to_string(),
            })
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
