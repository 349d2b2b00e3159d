//! The CNPG `Pooler`: PgBouncer in front of a cluster.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The desired state of a CNPG `Pooler` (PgBouncer in front of a cluster).
/// [`Pooler`] is the whole object.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "postgresql.cnpg.io",
    version = "v1",
    kind = "Pooler",
    plural = "poolers",
    namespaced,
    status = "PoolerStatus",
    schema = "disabled",
    derive = "PartialEq",
    doc = "A CloudNativePG `Pooler`: metadata, [`PoolerSpec`] and [`PoolerStatus`]."
)]
#[serde(rename_all = "camelCase")]
pub struct PoolerSpec {
    /// The cluster the pooler serves.
    pub cluster: ClusterReference,
    /// Number of PgBouncer pods. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<i32>,
    /// Which instances it routes to: `rw` (default, the primary), `ro` or `r`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<PoolerType>,
    /// PgBouncer settings.
    #[serde(default)]
    pub pgbouncer: PgBouncerSpec,
}

impl PoolerSpec {
    /// The pooler's type, `rw` when absent.
    pub fn type_or_default(&self) -> PoolerType {
        self.type_.clone().unwrap_or(PoolerType::Rw)
    }
}

/// A reference to a `Cluster` in the same namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterReference {
    /// The cluster's name.
    pub name: String,
}

/// `spec.type` of a Pooler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolerType {
    /// To the primary.
    Rw,
    /// To the replicas.
    Ro,
    /// To any instance.
    R,
    /// A value this library does not know.
    #[serde(other)]
    Unknown,
}

/// `spec.pgbouncer` of a Pooler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PgBouncerSpec {
    /// `session` (default) or `transaction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_mode: Option<String>,
    /// PgBouncer parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// Whether PgBouncer is paused (connections held, not served).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// The auth query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_query: Option<String>,
    /// `pg_hba` lines.
    #[serde(default, rename = "pg_hba", skip_serializing_if = "Vec::is_empty")]
    pub pg_hba: Vec<String>,
}

/// The observed state of a Pooler.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolerStatus {
    /// Number of pods trying to be scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<i32>,
    /// `active`, `paused`, `inactive` or `failed` (newer operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the pooler is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_reason: Option<String>,
    /// The latest admission validation error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The PgBouncer image in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}
