//! Fault primitives. Injecting a [`Fault`] returns a [`FaultGuard`] that heals it:
//! explicitly with [`FaultGuard::heal`], or on `Drop` as a fallback.

mod delete_primary;
mod freeze;

use std::future::Future;
use std::time::{Instant, SystemTime};

pub use delete_primary::{DeleteMode, DeletePrimary, DeletePrimaryGuard};
pub use freeze::{FreezeGuard, FreezePrimary, FreezeReplicas};

use crate::Result;
use crate::report::FaultInfo;

/// A fault that can be injected into a target of type `T`.
pub trait Fault<T> {
    /// The guard that heals this fault.
    type Guard: FaultGuard;

    /// Injects the fault, resolving its victim (e.g. the current primary) now.
    ///
    /// # Errors
    /// When the victim cannot be found or the fault cannot be applied.
    fn inject(self, target: &T) -> impl Future<Output = Result<Self::Guard>> + Send;
}

/// An injected fault. Dropping it without [`heal`](Self::heal) heals it on a
/// best-effort basis (logged, never panics).
#[must_use = "dropping the guard heals the fault at once"]
pub trait FaultGuard: Send + Sync {
    /// What was injected, where and when.
    fn info(&self) -> &FaultInfo;

    /// Monotonic time of injection.
    fn injected_at(&self) -> Instant;

    /// Heals the fault and waits until the victim is back in service; returns
    /// when that was.
    ///
    /// # Errors
    /// When healing fails or the victim does not come back in time.
    fn heal(self) -> impl Future<Output = Result<Healed>> + Send;
}

/// When and how a fault was healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healed {
    /// The event's name, e.g. `node rejoined`.
    pub event: String,
    /// Wall-clock time the victim was back.
    pub at: SystemTime,
    /// Detail, e.g. the node's name.
    pub detail: Option<String>,
}
