//! [`TargetSpec`]: the one factory of targets. The test harness (the
//! `#[failover_test]` macro, from the environment) and the command line (from
//! its flags) describe the target they want as a `TargetSpec` and build it
//! here; neither builds a target by itself.

use std::sync::Arc;

use super::Target;
use super::external::{ExternalCluster, ExternalClusterBuilder};
use super::local::{LocalCluster, LocalClusterBuilder};
use crate::Result;

/// A target to build: which kind, with the front-end's settings in the
/// kind's own builder.
///
/// ```no_run
/// # async fn demo() -> chaos_core::Result<()> {
/// use chaos_core::cluster::TargetSpec;
/// use chaos_core::cluster::local::LocalCluster;
///
/// let target = TargetSpec::Local(LocalCluster::builder().nodes(3)).build().await?;
/// println!("{}", target.describe());
/// target.shutdown();
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TargetSpec {
    /// Boot an embedded Patroni cluster.
    Local(LocalClusterBuilder),
    /// Measure a cluster given by DSN.
    External(ExternalClusterBuilder),
    /// Measure a CloudNativePG `Cluster` (feature `cnpg`).
    #[cfg(feature = "cnpg")]
    Cnpg(super::cnpg::CnpgClusterBuilder),
}

impl TargetSpec {
    /// The target of kind `kind` (`local`, `external` or `cnpg`) described by
    /// the variables `var` looks up (`CHAOS_RW_DSN`, `CHAOS_CNPG_NAMESPACE`,
    /// …, as [`ExternalCluster::from_env`] and `CnpgCluster::from_env` read
    /// them); a local cluster gets `nodes` nodes.
    ///
    /// # Errors
    /// [`crate::Error::Config`] naming the variable to set or fix, or an
    /// unknown kind.
    pub fn from_vars(
        kind: &str,
        nodes: usize,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        match kind {
            "local" => Ok(TargetSpec::Local(LocalCluster::builder().nodes(nodes))),
            "external" => Ok(TargetSpec::External(ExternalCluster::builder_from_vars(
                var,
            )?)),
            #[cfg(feature = "cnpg")]
            "cnpg" => Ok(TargetSpec::Cnpg(
                super::cnpg::CnpgCluster::builder_from_vars(var)?,
            )),
            other => Err(crate::Error::Config {
                field: "CHAOS_TARGET",
                expected: if cfg!(feature = "cnpg") {
                    "local, external or cnpg"
                } else {
                    "local or external (cnpg needs chaos-core's feature `cnpg`)"
                },
                found: other.to_string(),
            }),
        }
    }

    /// The kind of target this builds: `local`, `external` or `cnpg`.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetSpec::Local(_) => "local",
            TargetSpec::External(_) => "external",
            #[cfg(feature = "cnpg")]
            TargetSpec::Cnpg(_) => "cnpg",
        }
    }

    /// Builds the target: boots a local cluster (and waits until it is
    /// healthy), checks an external one's DSNs, connects to the Kubernetes
    /// API for a CNPG one. An external or CNPG target is not waited for:
    /// call [`Target::wait_healthy`].
    ///
    /// # Errors
    /// As the kind's builder: `LocalClusterBuilder::start`,
    /// `ExternalClusterBuilder::build`, `CnpgClusterBuilder::build`.
    pub async fn build(self) -> Result<Arc<dyn Target>> {
        self.build_as(false).await
    }

    /// [`build`](Self::build) for the test harness's shared target, which is
    /// never dropped: a local cluster kept with `CHAOS_KEEP=1` says so.
    pub(crate) async fn build_shared(self) -> Result<Arc<dyn Target>> {
        self.build_as(true).await
    }

    async fn build_as(self, shared: bool) -> Result<Arc<dyn Target>> {
        Ok(match self {
            TargetSpec::Local(builder) => {
                let cluster = builder.start().await?;
                if shared {
                    cluster.announce_kept();
                }
                Arc::new(cluster)
            }
            TargetSpec::External(builder) => Arc::new(builder.build()?),
            #[cfg(feature = "cnpg")]
            TargetSpec::Cnpg(builder) => Arc::new(builder.build().await?),
        })
    }
}
