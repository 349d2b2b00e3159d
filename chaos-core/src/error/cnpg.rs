//! Errors of the CNPG target ([`CnpgCluster`](crate::cluster::cnpg::CnpgCluster)).

/// The CNPG `Cluster` (or an object around it) is not in a state the
/// operation can work with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CnpgError {
    /// The Cluster names no current primary now (a failover is electing).
    #[error(
        "Cluster {namespace}/{cluster} has no current primary now (phase {phase:?}, targetPrimary {target_primary:?})"
    )]
    NoPrimary {
        /// The namespace.
        namespace: String,
        /// The Cluster's name.
        cluster: String,
        /// Its `status.phase`.
        phase: Option<String>,
        /// Its `status.targetPrimary`.
        target_primary: Option<String>,
    },

    /// The Cluster has no healthy standby to switch over to.
    #[error("Cluster {cluster} has no healthy standby to switch over to")]
    NoHealthyStandby {
        /// The Cluster's name.
        cluster: String,
    },

    /// No instance of the Cluster has this name.
    #[error(
        "{asked_by}: Cluster {namespace}/{cluster} has no instance called {name} (instances: {})",
        .instances.join(", ")
    )]
    NoInstance {
        /// What asked, e.g. `PartitionNetwork::node`.
        asked_by: &'static str,
        /// The namespace.
        namespace: String,
        /// The Cluster's name.
        cluster: String,
        /// The name asked for.
        name: String,
        /// The instances the Cluster has.
        instances: Vec<String>,
    },

    /// The Cluster object read back has no `metadata.resourceVersion` to
    /// patch against.
    #[error("the Cluster {cluster} has no metadata.resourceVersion")]
    NoResourceVersion {
        /// The Cluster's name.
        cluster: String,
    },

    /// The Cluster's application Secret lacks a field.
    #[error("Secret {secret} has no `{key}`")]
    SecretField {
        /// The Secret's name.
        secret: String,
        /// The missing key, e.g. `password`.
        key: &'static str,
    },

    /// A Service selects no ready pod to forward a connection to.
    #[error("Service {namespace}/{service} selects no ready pod now")]
    NoReadyPod {
        /// The namespace.
        namespace: String,
        /// The Service's name.
        service: String,
    },
}
