//! The CloudNativePG target (feature `cnpg`): a CNPG `Cluster` on kind, AKS or
//! any Kubernetes, driven through the Kubernetes API (`kube`), with Chaos Mesh
//! for network and I/O faults.

mod access;
pub mod advisor;
mod builder;
pub mod chaos_mesh;
pub mod crd;
mod faults;
mod forward;
mod reconfig;
pub mod routing;
mod safety;
pub mod status;
mod target;
mod watch;

pub use builder::{
    CnpgClusterBuilder, ENV_ALLOW, ENV_APISERVER_IPS, ENV_CLUSTER, ENV_DRY_RUN, ENV_KUBE_CONTEXT,
    ENV_NAMESPACE, ENV_POOLER, ENV_RW_DSN, ENV_TARGET, USER_AGENT,
};
pub use chaos_mesh::ChaosMeshGuard;
pub use faults::{CnpgDeleteGuard, CnpgSwitchoverGuard, Fence, FenceGuard};
pub use safety::{ALLOW_LABEL, MANAGED_BY, MANAGED_BY_LABEL, RUN_LABEL};
pub use target::CnpgCluster;
