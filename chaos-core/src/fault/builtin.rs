//! The built-in faults as one typed value, [`Builtin`], which is what a
//! target receives through
//! [`Target::inject_builtin`](crate::cluster::Target::inject_builtin):
//! `Fault<dyn Target>` for each built-in fault (and for
//! [`FaultSpec`](super::FaultSpec)), in `cluster/dispatch.rs`, asks the
//! target, and the target does it with its own `Fault<ItsType>` or says
//! [`Error::Unsupported`](crate::Error::Unsupported).

use super::{
    AnyGuard, Bandwidth, DeletePrimary, Fault, FaultKind, FreezePrimary, FreezeReplicas, Latency,
    PacketLoss, PartitionNetwork, PauseNode, StopDcs, Switchover, ThrottleDisk,
};
use crate::Result;

/// Calls macro `$then!` with the built-in faults' type names: the one list
/// that [`Builtin`] and the seam's `Fault<dyn Target>` impls
/// (`cluster/dispatch.rs`) are generated from.
macro_rules! with_builtins {
    ($then:ident) => {
        $then!(
            DeletePrimary,
            FreezePrimary,
            FreezeReplicas,
            PartitionNetwork,
            PauseNode,
            StopDcs,
            Switchover,
            ThrottleDisk,
            PacketLoss,
            Bandwidth,
            Latency,
        );
    };
}
pub(crate) use with_builtins;

macro_rules! builtin {
    ($($variant:ident),* $(,)?) => {
        /// A built-in fault with its settings, as a target receives it.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum Builtin {
            $(
                #[doc = concat!("[`", stringify!($variant), "`].")]
                $variant($variant),
            )*
        }

        impl Builtin {
            /// The fault's name in the [catalogue](super::CATALOGUE).
            pub fn kind(&self) -> FaultKind {
                match self {
                    $(Builtin::$variant(f) => f.kind(),)*
                }
            }

            /// Injects the fault into `target` through `T`'s own `Fault<T>`
            /// impls: how a target that does every built-in fault implements
            /// [`Target::inject_builtin`](crate::cluster::Target::inject_builtin).
            ///
            /// # Errors
            /// As the fault's own `inject`.
            pub async fn inject_into<T>(self, target: &T) -> Result<AnyGuard>
            where
                T: ?Sized + Sync,
                $($variant: Fault<T>,)*
            {
                match self {
                    $(Builtin::$variant(f) => {
                        Fault::<T>::inject(f, target).await.map(AnyGuard::new)
                    })*
                }
            }
        }

        $(
            impl From<$variant> for Builtin {
                fn from(fault: $variant) -> Self {
                    Builtin::$variant(fault)
                }
            }
        )*
    };
}

with_builtins!(builtin);
