//! Typed views of the CloudNativePG custom resources the target reads:
//! [`Cluster`], [`Pooler`] and [`FailoverQuorum`] (group `postgresql.cnpg.io`,
//! version `v1`).
//!
//! Only the fields the library reads are typed; every field name is checked
//! against the CRD schemas CNPG 1.30 installs. Unknown fields are ignored when
//! reading (never `deny_unknown_fields`), so newer operators keep working — and
//! for the same reason these types must not be sent back whole with a `replace`
//! (it would drop what they do not know): change objects with patches.
//!
//! ```
//! use chaos_core::cluster::cnpg::crd::Cluster;
//!
//! let cluster: Cluster = serde_json::from_str(r#"{
//!     "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
//!     "metadata": {"name": "pg", "namespace": "db"},
//!     "spec": {"instances": 3, "somethingNewer": true},
//!     "status": {"currentPrimary": "pg-1", "targetPrimary": "pending"}
//! }"#).unwrap();
//! assert_eq!(cluster.spec.instances, 3);
//! let status = cluster.status.unwrap();
//! assert!(status.is_electing());
//! ```

/// The API group of every CNPG resource.
pub const GROUP: &str = "postgresql.cnpg.io";
/// The API version of the resources typed here.
pub const VERSION: &str = "v1";

/// The `status.phase` strings the CNPG operator writes (`api/v1/cluster_types.go`).
pub mod phase {
    /// `PhaseHealthy`: nothing to do.
    pub const HEALTHY: &str = "Cluster in healthy state";
    /// `PhaseFailOver`: the primary is gone and a new one is being chosen.
    pub const FAILING_OVER: &str = "Failing over";
    /// `PhaseSwitchover`: a planned change of primary.
    pub const SWITCHOVER: &str = "Switchover in progress";
    /// `PhaseWaitingForInstancesToBeActive`: e.g. right after a promotion,
    /// while the old primary rejoins.
    pub const WAITING_FOR_INSTANCES: &str = "Waiting for the instances to become active";
    /// `PhaseFirstPrimary`: bootstrapping the first primary.
    pub const SETTING_UP_PRIMARY: &str = "Setting up primary";
    /// `PhaseCreatingReplica`: adding a replica.
    pub const CREATING_REPLICA: &str = "Creating a new replica";
    /// `PhaseUpgrade`: rolling update of the instances.
    pub const UPGRADING: &str = "Upgrading cluster";
    /// `PhaseInplacePrimaryRestart`: the primary restarts in place.
    pub const PRIMARY_RESTART_IN_PLACE: &str = "Primary instance is being restarted in-place";
    /// `PhaseInplaceDeletePrimaryRestart`: the primary restarts without a switchover.
    pub const PRIMARY_RESTART_WITHOUT_SWITCHOVER: &str =
        "Primary instance is being restarted without a switchover";
    /// `PhaseUnrecoverable`: needs a human.
    pub const UNRECOVERABLE: &str =
        "Cluster is in an unrecoverable state, needs manual intervention";
}

/// The `reason` of the Kubernetes Events the CNPG operator records on a
/// `Cluster` around a change of primary.
pub mod event_reason {
    /// The operator starts a failover ("Current primary isn't healthy,
    /// initiating a failover from X").
    pub const FAILING_OVER: &str = "FailingOver";
    /// The operator chose the new primary ("Failing over from X to Y").
    pub const FAILOVER_TARGET: &str = "FailoverTarget";
    /// The primary is Ready to the kubelet but its status check failed: the
    /// failover is deferred until Kubernetes marks it not Ready.
    pub const PRIMARY_STATUS_CHECK_FAILED: &str = "PrimaryStatusCheckFailed";
    /// A switchover starts ("Initiating switchover to Y …").
    pub const SWITCHOVER: &str = "Switchover";
}

/// The value of `status.targetPrimary` while the operator has decided to fail
/// over but not yet chosen the new primary (`PendingFailoverMarker`).
pub const PENDING_FAILOVER_MARKER: &str = "pending";

/// The annotation that fences instances (`cnpg.io/fencedInstances`): a JSON
/// list of instance names, or `["*"]` for all of them.
pub const FENCED_INSTANCES_ANNOTATION: &str = "cnpg.io/fencedInstances";

/// The label naming the cluster an instance pod belongs to.
pub const CLUSTER_LABEL: &str = "cnpg.io/cluster";

/// The label with an instance pod's role (`primary` or `replica`; absent or
/// `unhealthy` mid-failover, so never the only source of truth).
pub const INSTANCE_ROLE_LABEL: &str = "cnpg.io/instanceRole";

mod cluster;
mod pooler;
mod quorum;
#[cfg(test)]
mod tests;

pub use cluster::*;
pub use pooler::*;
pub use quorum::*;
