//! Fault primitives. Injecting a [`Fault`] returns a [`FaultGuard`] that heals it:
//! explicitly with [`FaultGuard::heal`], or on `Drop` as a fallback.
//!
//! A fault is generic over the target it runs on (`Fault<LocalCluster>`,
//! `Fault<ExternalCluster>`, …). The built-in faults also implement
//! `Fault<dyn Target>`, which is what tests and the command line use: it hands
//! the fault, as a [`Builtin`], to [`Target::inject_builtin`](crate::cluster::Target::inject_builtin),
//! and the target does it its own way or fails with
//! [`crate::Error::Unsupported`] naming the targets that can (from the
//! [`CATALOGUE`]). [`Shell`] runs on every target.
//!
//! This module says *what* a fault is: the traits, each built-in fault with
//! its settings, the catalogue. It knows no target. *How* a target does a
//! fault lives with the target, behind the seam: `cluster/local/faults/`
//! (with the local guards, e.g.
//! [`PauseGuard`](crate::cluster::local::PauseGuard)),
//! `cluster/external/faults.rs`, `cluster/cnpg/faults.rs`; the impls that
//! hand a fault to any target (`Fault<dyn Target>`, [`Shell`] on every
//! target) are in `cluster/dispatch.rs`.
//!
//! ## Writing a fault
//!
//! `inject` must return once the fault **is in effect** and take
//! [`FaultInfo::injected_at`] and [`FaultGuard::injected_at`] at that moment —
//! after the signal was delivered, the command exited, the rule was installed.
//! RTO is measured from it, and a write that slips in before the fault took
//! hold must not look like recovery.

mod builtin;
mod dcs;
mod delete_primary;
mod freeze;
pub(crate) mod link;
mod partition;
pub(crate) mod pause;
pub(crate) mod shell;
mod spec;
pub(crate) mod switchover;
pub(crate) mod throttle;

use std::fmt;
use std::future::Future;
use std::time::Instant;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use crate::fault_kind::{ArgKind, CATALOGUE, FaultArg, FaultEntry, FaultKind};
pub use builtin::Builtin;
pub(crate) use builtin::with_builtins;
pub use dcs::StopDcs;
pub use delete_primary::{DeleteMode, DeletePrimary};
pub use freeze::{FreezePrimary, FreezeReplicas};
pub use link::{Bandwidth, Latency, PacketLoss};
pub use partition::{Direction, PartitionNetwork};
pub use pause::PauseNode;
pub use shell::{Shell, ShellGuard};
pub use spec::FaultSpec;
pub use switchover::Switchover;
pub use throttle::ThrottleDisk;

use crate::Result;
use crate::timeline::Timestamp;

/// A fault that can be injected into a target of type `T`.
pub trait Fault<T: ?Sized> {
    /// The guard that heals this fault.
    type Guard: FaultGuard + 'static;

    /// Injects the fault, resolving its victim (e.g. the current primary) now,
    /// and returns once it is in effect.
    ///
    /// # Errors
    /// When the victim cannot be found, the fault cannot be applied, or the
    /// target cannot do this fault ([`Error::Unsupported`](crate::Error::Unsupported)).
    fn inject(self, target: &T) -> impl Future<Output = Result<Self::Guard>> + Send;
}

/// An injected fault. Dropping it without [`heal`](Self::heal) heals it on a
/// best-effort basis (logged, never panics).
#[must_use = "dropping the guard heals the fault at once"]
pub trait FaultGuard: Send + Sync {
    /// What was injected, where and when.
    fn info(&self) -> &FaultInfo;

    /// Monotonic time at which the fault was in effect.
    fn injected_at(&self) -> Instant;

    /// Heals the fault and waits until the victim is back in service; returns
    /// when that was.
    ///
    /// # Errors
    /// When healing fails or the victim does not come back in time.
    fn heal(self) -> impl Future<Output = Result<Healed>> + Send;
}

/// What was injected, where and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultInfo {
    /// Kind of fault, e.g. `delete-primary`.
    pub kind: String,
    /// Details, e.g. `kill` or `graceful`, or the shell command.
    pub mode: String,
    /// The node(s) it hit, if known.
    pub victim: Option<String>,
    /// Wall-clock time at which it was in effect.
    pub injected_at: Timestamp,
}

impl FaultInfo {
    /// Whether this is a degrading fault (see [`FaultKind::degrades`]), by
    /// its [`kind`](Self::kind).
    pub fn degrades(&self) -> bool {
        FaultKind::parse(&self.kind).is_ok_and(FaultKind::degrades)
    }
}

/// When and how a fault was healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healed {
    /// How the victim came back, the event's name in the timeline, e.g.
    /// [`Healing::NodeRejoined`](crate::timeline::Healing::NodeRejoined);
    /// a custom fault names its own with `"postgres restarted".into()`.
    pub event: crate::timeline::Healing,
    /// Wall-clock time the victim was back.
    pub at: Timestamp,
    /// Detail, e.g. the node's name.
    pub detail: Option<String>,
}

/// A fault guard with its type erased, so that guards of any fault can be kept
/// together and healed whatever happens to the test body.
pub struct AnyGuard(Box<dyn ErasedGuard>);

trait ErasedGuard: Send + Sync {
    fn info(&self) -> &FaultInfo;
    fn injected_at(&self) -> Instant;
    fn heal_boxed(self: Box<Self>) -> BoxFuture<'static, Result<Healed>>;
}

impl<G: FaultGuard + 'static> ErasedGuard for G {
    fn info(&self) -> &FaultInfo {
        FaultGuard::info(self)
    }
    fn injected_at(&self) -> Instant {
        FaultGuard::injected_at(self)
    }
    fn heal_boxed(self: Box<Self>) -> BoxFuture<'static, Result<Healed>> {
        Box::pin((*self).heal())
    }
}

impl AnyGuard {
    /// Erases the type of `guard`.
    pub fn new<G: FaultGuard + 'static>(guard: G) -> Self {
        AnyGuard(Box::new(guard))
    }
}

impl fmt::Debug for AnyGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnyGuard").field(self.0.info()).finish()
    }
}

impl FaultGuard for AnyGuard {
    fn info(&self) -> &FaultInfo {
        self.0.info()
    }

    fn injected_at(&self) -> Instant {
        self.0.injected_at()
    }

    fn heal(self) -> impl Future<Output = Result<Healed>> + Send {
        self.0.heal_boxed()
    }
}
