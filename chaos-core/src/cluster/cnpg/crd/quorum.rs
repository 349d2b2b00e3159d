//! The CNPG `FailoverQuorum`: the synchronous standbys a failover may promote.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::{GROUP, VERSION};

/// A CNPG `FailoverQuorum`: which synchronous standbys the primary last
/// reported, so that a failover only promotes a standby known to have every
/// acknowledged commit. It has no `spec`, only a `status`, so it implements
/// [`kube::Resource`] by hand instead of through the `CustomResource` derive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailoverQuorum {
    /// Standard object metadata (named like its Cluster).
    pub metadata: ObjectMeta,
    /// The quorum last written by the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<FailoverQuorumStatus>,
}

/// The status of a [`FailoverQuorum`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailoverQuorumStatus {
    /// `any` or `first`, as in `synchronous_standby_names`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The primary that wrote this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// The potentially synchronous standbys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standby_names: Vec<String>,
    /// How many of them a commit waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_number: Option<i32>,
}

impl kube::Resource for FailoverQuorum {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "FailoverQuorum".into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        "failoverquorums".into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl kube::core::object::HasStatus for FailoverQuorum {
    type Status = FailoverQuorumStatus;

    fn status(&self) -> Option<&FailoverQuorumStatus> {
        self.status.as_ref()
    }

    fn status_mut(&mut self) -> &mut Option<FailoverQuorumStatus> {
        &mut self.status
    }
}
