//! The built-in faults on an external cluster: each by the command it was
//! given for it ([`ExternalClusterBuilder::fault_command`](super::ExternalClusterBuilder::fault_command)),
//! run as a [`Shell`] fault under the fault's name.

use super::ExternalCluster;
use crate::Result;
use crate::fault::{
    AnyGuard, Bandwidth, DeletePrimary, Fault, FaultKind, FreezePrimary, FreezeReplicas, Latency,
    PacketLoss, PartitionNetwork, PauseNode, Shell, ShellGuard, StopDcs, Switchover, ThrottleDisk,
};

/// The command the cluster was given for built-in fault `kind`, as a
/// [`Shell`] fault under the fault's name.
fn command_for(target: &ExternalCluster, kind: FaultKind) -> Result<Shell> {
    let Some(cmd) = target.fault_command_for(kind) else {
        return Err(kind.unsupported("external"));
    };
    let mut shell = Shell::new(cmd.inject.clone()).name(kind.name());
    if let Some(h) = &cmd.heal {
        shell = shell.heal(h.clone());
    }
    Ok(shell)
}

/// Injects built-in fault `kind` by running the command given for it; a
/// value (`--fault NAME=VALUE`) reaches it as `CHAOS_FAULT_ARG`.
pub(super) async fn inject_builtin(
    target: &ExternalCluster,
    kind: FaultKind,
    arg: Option<String>,
) -> Result<AnyGuard> {
    let mut shell = command_for(target, kind)?;
    if let Some(arg) = arg {
        shell = shell.env("CHAOS_FAULT_ARG", arg);
    }
    Fault::<ExternalCluster>::inject(shell, target)
        .await
        .map(AnyGuard::new)
}

macro_rules! by_command {
    ($($fault:ty),*) => {$(
        /// By the command given for the fault.
        impl Fault<ExternalCluster> for $fault {
            type Guard = ShellGuard;

            async fn inject(self, target: &ExternalCluster) -> Result<ShellGuard> {
                Fault::<ExternalCluster>::inject(command_for(target, self.kind())?, target).await
            }
        }
    )*};
}

by_command!(
    Bandwidth,
    DeletePrimary,
    FreezePrimary,
    FreezeReplicas,
    Latency,
    PacketLoss,
    PartitionNetwork,
    PauseNode,
    StopDcs,
    Switchover,
    ThrottleDisk
);
