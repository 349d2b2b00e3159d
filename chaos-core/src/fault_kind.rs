//! The built-in faults by name, and their catalogue: a leaf module, so that
//! targets can be configured per fault without depending on the faults
//! themselves. Public as [`crate::fault::FaultKind`] and
//! [`crate::fault::CATALOGUE`].
//!
//! The catalogue is the one place a built-in fault is described: its name,
//! the value it takes, a line of help and the targets that do it. The
//! command line's `--fault` (its parser and its help), [`FaultSpec`](crate::fault::FaultSpec)
//! and the [`Error::Unsupported`] a target returns for a fault it cannot do
//! are all generated from it.

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

/// What kind of value a fault takes (`NAME=VALUE`); each has its parser in
/// [`FaultSpec`](crate::fault::FaultSpec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgKind {
    /// Bytes per second: `1MiB/s`, `500KB/s`, `2048B/s`.
    Rate,
    /// A rate as [`Rate`](Self::Rate), or write operations per second: `100iops`.
    RateOrIops,
    /// A percentage, more than 0 and at most 100: `30%`.
    Percent,
    /// A delay, more than 0: `100ms`.
    Delay,
}

/// The value a fault takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultArg {
    /// How it is parsed.
    pub kind: ArgKind,
    /// What stands for it in help: `RATE`, `PERCENT`, `DELAY`.
    pub placeholder: &'static str,
    /// What a valid one looks like, for errors: `primary-latency=DELAY, e.g. 100ms`.
    pub expected: &'static str,
    /// The moderate value a fault given without one gets
    /// (`FaultSpec::from(FaultKind)`).
    pub default: &'static str,
}

/// One built-in fault in the [`CATALOGUE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultEntry {
    /// The fault.
    pub kind: FaultKind,
    /// Its name, e.g. `kill-primary`.
    pub name: &'static str,
    /// The value it takes, if any.
    pub arg: Option<FaultArg>,
    /// One line of help (the command line's `--fault` help).
    pub help: &'static str,
    /// Whether it degrades the service rather than takes it away (see
    /// [`FaultKind::degrades`]).
    pub degrades: bool,
    /// Whether the CloudNativePG target does it (through the Kubernetes API
    /// or Chaos Mesh). The local target does every built-in fault; the
    /// external target each one it was given a command for.
    pub on_cnpg: bool,
}

/// The name of the target that does every built-in fault.
const LOCAL: &str = "local";
/// How the external target does a built-in fault.
const EXTERNAL: &str = "external (given a command for it)";
/// Faults the CNPG target does that have no [`FaultKind`].
const CNPG_EXTRAS: &str = "Fence and Shell";

/// Every built-in fault, once, in the order the command line lists them.
pub const CATALOGUE: [FaultEntry; 13] = [
    FaultEntry {
        kind: FaultKind::KillPrimary,
        name: "kill-primary",
        arg: None,
        help: "SIGKILL the primary (a lost node); on cnpg a forced delete of its pod \
               (grace period 0)",
        degrades: false,
        on_cnpg: true,
    },
    FaultEntry {
        kind: FaultKind::StopPrimary,
        name: "stop-primary",
        arg: None,
        help: "stop the primary cleanly (a hand-over); on cnpg a delete of its pod with its \
               grace period",
        degrades: false,
        on_cnpg: true,
    },
    FaultEntry {
        kind: FaultKind::FreezePrimary,
        name: "freeze-primary",
        arg: None,
        help: "SIGSTOP the primary's PostgreSQL (a stalled machine); with --hold shorter than \
               the ttl an outage of known length, without it held until a failover recovers \
               the service, then thawed",
        degrades: false,
        on_cnpg: false,
    },
    FaultEntry {
        kind: FaultKind::FreezeReplicas,
        name: "freeze-replicas",
        arg: None,
        help: "SIGSTOP every standby (synchronous commits wait)",
        degrades: false,
        on_cnpg: false,
    },
    FaultEntry {
        kind: FaultKind::IsolatePrimary,
        name: "isolate-primary",
        arg: None,
        help: "drop the primary's packets to and from the other nodes and etcd (root); on cnpg \
               a Chaos Mesh NetworkChaos from the other instances, the API server and its \
               kubelet; use with --hold",
        degrades: false,
        on_cnpg: true,
    },
    FaultEntry {
        kind: FaultKind::PartitionPrimaryFromReplicas,
        name: "partition-primary-from-replicas",
        arg: None,
        help: "drop the replication links of the primary (root; on cnpg a Chaos Mesh \
               NetworkChaos); use with --hold",
        degrades: false,
        on_cnpg: true,
    },
    FaultEntry {
        kind: FaultKind::PauseNode,
        name: "pause-primary",
        arg: None,
        help: "SIGSTOP the primary's Patroni and PostgreSQL (a paused VM); use with --hold",
        degrades: false,
        on_cnpg: false,
    },
    FaultEntry {
        kind: FaultKind::StopDcs,
        name: "stop-dcs",
        arg: None,
        help: "kill etcd, the DCS (the leader demotes itself); use with --hold",
        degrades: false,
        on_cnpg: false,
    },
    FaultEntry {
        kind: FaultKind::Switchover,
        name: "switchover",
        arg: None,
        help: "planned switchover to the synchronous standby (Patroni API; on cnpg to the most \
               advanced standby, as `kubectl cnpg promote`)",
        degrades: false,
        on_cnpg: true,
    },
    FaultEntry {
        kind: FaultKind::ThrottlePrimaryDisk,
        name: "throttle-primary-disk",
        arg: Some(FaultArg {
            kind: ArgKind::RateOrIops,
            placeholder: "RATE",
            expected: "throttle-primary-disk=RATE, e.g. 1MiB/s, 500KB/s or 100iops",
            default: "1MiB/s",
        }),
        help: "throttle the primary's disk writes (RATE like 1MiB/s, or 100iops; root; on cnpg a \
               Chaos Mesh IOChaos, 100iops only); use with --hold",
        degrades: true,
        on_cnpg: true,
    },
    FaultEntry {
        kind: FaultKind::PrimaryPacketLoss,
        name: "primary-packet-loss",
        arg: Some(FaultArg {
            kind: ArgKind::Percent,
            placeholder: "PERCENT",
            expected: "primary-packet-loss=PERCENT, more than 0 and at most 100, e.g. 30%",
            default: "20%",
        }),
        help: "drop PERCENT of the primary's packets at random (root); use with --hold",
        degrades: true,
        on_cnpg: false,
    },
    FaultEntry {
        kind: FaultKind::PrimaryBandwidth,
        name: "primary-bandwidth",
        arg: Some(FaultArg {
            kind: ArgKind::Rate,
            placeholder: "RATE",
            expected: "primary-bandwidth=RATE, e.g. 1MiB/s",
            default: "1MiB/s",
        }),
        help: "limit the primary's links to RATE each way, e.g. 1MiB/s (root); use with --hold",
        degrades: true,
        on_cnpg: false,
    },
    FaultEntry {
        kind: FaultKind::PrimaryLatency,
        name: "primary-latency",
        arg: Some(FaultArg {
            kind: ArgKind::Delay,
            placeholder: "DELAY",
            expected: "primary-latency=DELAY, e.g. 100ms",
            default: "100ms",
        }),
        help: "delay the primary's packets by DELAY (root, needs the kernel's netem)",
        degrades: true,
        on_cnpg: false,
    },
];

impl FaultKind {
    /// Every built-in fault.
    pub const ALL: [FaultKind; 13] = {
        let mut all = [FaultKind::KillPrimary; 13];
        let mut i = 0;
        while i < CATALOGUE.len() {
            all[i] = CATALOGUE[i].kind;
            i += 1;
        }
        all
    };

    /// The fault's entry in the [`CATALOGUE`].
    pub fn entry(self) -> &'static FaultEntry {
        // The catalogue lists the kinds in their declaration order (its
        // tests check it), so a kind's discriminant is its row.
        &CATALOGUE[self as usize]
    }

    /// The fault's name, e.g. `kill-primary`.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// Whether the fault degrades the service rather than takes it away: a
    /// throttled disk, packet loss, limited bandwidth, added latency. Writes
    /// may only slow down; the report gives such a fault latency figures
    /// (a [`Slowdown`](crate::verify::Slowdown)) and an RTO only for an outage
    /// it caused (writes that failed or got no reply).
    pub fn degrades(self) -> bool {
        self.entry().degrades
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
                expected: names_expected(),
                found: name.to_string(),
            })
    }

    /// The error a target that cannot do this fault returns: what the
    /// catalogue says does it. `target` is the target's
    /// [`kind`](crate::cluster::Target::kind).
    pub fn unsupported(self, target: &str) -> Error {
        Error::Unsupported {
            fault: self.name().to_string(),
            target: target.to_string(),
            supported_by: self.supported_by(target),
        }
    }

    /// Which targets do this fault, in words, for an
    /// [`Error::Unsupported`] on `target`.
    pub fn supported_by(self, target: &str) -> String {
        if target == "external" {
            return format!(
                "{LOCAL}; external when given the command that does it \
                 (ExternalCluster::builder(..).fault_command(FaultKind::{self:?}, ..), \
                 {} or `chaos run --fault {} --fault-cmd ..`)",
                self.env_var(),
                self.name()
            );
        }
        let on_cnpg = if self.entry().on_cnpg { ", cnpg" } else { "" };
        format!("{LOCAL}, {EXTERNAL}{on_cnpg}; on cnpg: {}", cnpg_faults())
    }
}

/// The faults the CNPG target does, as a sentence's list:
/// `kill-primary, …, Fence and Shell`.
pub(crate) fn cnpg_faults() -> String {
    let names: Vec<&str> = CATALOGUE
        .iter()
        .filter(|e| e.on_cnpg)
        .map(|e| e.name)
        .collect();
    format!("{}, {CNPG_EXTRAS}", names.join(", "))
}

/// `one of kill-primary, stop-primary, …`, built once from the catalogue.
fn names_expected() -> &'static str {
    static EXPECTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    EXPECTED.get_or_init(|| {
        let names: Vec<&str> = CATALOGUE.iter().map(|e| e.name).collect();
        format!("one of {}", names.join(", "))
    })
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_in_the_catalogue_exactly_once() {
        // A new variant must be added to this match, and so to the catalogue.
        let listed = |k: FaultKind| match k {
            FaultKind::KillPrimary
            | FaultKind::StopPrimary
            | FaultKind::FreezePrimary
            | FaultKind::FreezeReplicas
            | FaultKind::IsolatePrimary
            | FaultKind::PartitionPrimaryFromReplicas
            | FaultKind::PauseNode
            | FaultKind::StopDcs
            | FaultKind::Switchover
            | FaultKind::ThrottlePrimaryDisk
            | FaultKind::PrimaryPacketLoss
            | FaultKind::PrimaryBandwidth
            | FaultKind::PrimaryLatency => CATALOGUE.iter().filter(|e| e.kind == k).count(),
        };
        for kind in FaultKind::ALL {
            assert_eq!(listed(kind), 1, "{kind:?}");
            assert_eq!(kind.entry().kind, kind);
        }
        for (row, e) in CATALOGUE.iter().enumerate() {
            assert_eq!(
                e.kind as usize, row,
                "{} is out of declaration order",
                e.name
            );
        }
        let mut names: Vec<&str> = CATALOGUE.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len(), "names are unique");
    }

    #[test]
    fn the_faults_that_take_a_value_are_the_degrading_ones() {
        for e in CATALOGUE {
            assert_eq!(e.arg.is_some(), e.degrades, "{}", e.name);
            if let Some(arg) = e.arg {
                assert!(arg.expected.starts_with(e.name), "{}", e.name);
                assert!(arg.expected.contains(arg.placeholder), "{}", e.name);
            }
        }
    }

    #[test]
    fn an_unknown_name_lists_every_name() {
        let err = FaultKind::parse("bogus").expect_err("unknown");
        for e in CATALOGUE {
            assert!(err.to_string().contains(e.name), "{err}");
        }
    }

    #[test]
    fn unsupported_names_the_cnpg_faults() {
        let text = FaultKind::PrimaryLatency.supported_by("cnpg");
        assert_eq!(
            text,
            "local, external (given a command for it); on cnpg: kill-primary, stop-primary, \
             isolate-primary, partition-primary-from-replicas, switchover, \
             throttle-primary-disk, Fence and Shell"
        );
        assert!(
            FaultKind::KillPrimary
                .supported_by("mine")
                .starts_with("local, external (given a command for it), cnpg;")
        );
        assert!(
            FaultKind::StopDcs
                .supported_by("external")
                .contains("CHAOS_STOP_DCS_CMD")
        );
    }
}
