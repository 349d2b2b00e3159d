//! The built-in faults as one typed value, [`Builtin`], which is what a
//! target receives through [`Target::inject_builtin`]: `Fault<dyn Target>`
//! for each built-in fault (and for [`FaultSpec`](super::FaultSpec)) asks the
//! target, and the target does it with its own `Fault<ItsType>` or says
//! [`Error::Unsupported`](crate::Error::Unsupported).

use std::future::Future;

use super::{
    AnyGuard, Bandwidth, DeletePrimary, Fault, FaultKind, FreezePrimary, FreezeReplicas, Latency,
    PacketLoss, PartitionNetwork, PauseNode, StopDcs, Switchover, ThrottleDisk,
};
use crate::Result;
use crate::cluster::Target;

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
            /// [`Target::inject_builtin`].
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

            /// On any target: the target does it its own way
            /// ([`Target::inject_builtin`]), or says it cannot.
            impl Fault<dyn Target> for $variant {
                type Guard = AnyGuard;

                fn inject(
                    self,
                    target: &dyn Target,
                ) -> impl Future<Output = Result<AnyGuard>> + Send {
                    target.inject_builtin(Builtin::$variant(self), None)
                }
            }
        )*
    };
}

builtin!(
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
