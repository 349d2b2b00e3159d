//! Where a Service routes, from its `EndpointSlice`s, and when that changed:
//! the end of the `routing` phase.
//!
//! Pure, as [`status`](super::status): the event stream feeds it the slices
//! its watch delivered, each stamped on arrival, and asks when the Service
//! first pointed at the new primary.
//!
//! - A slice's pods are the endpoints whose `targetRef` is a Pod and that
//!   are ready (`conditions.ready` absent counts as ready, as the API says).
//! - A change is timed by the slice's own
//!   [`endpoints.kubernetes.io/last-change-trigger-time`](TRIGGER_TIME_ANNOTATION)
//!   (the change of pod or Service that the controller applied) when it has
//!   one and it falls within the change under way, else by the watch event's
//!   arrival.
//! - With a CNPG `Pooler`, clients reach PgBouncer, whose pods never change
//!   in a failover: routing ends when the pooler's backend, the cluster's
//!   `-rw` Service ([`backend_service`]), points at the new primary.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::crd::{PoolerSpec, PoolerType};
use super::status::parse_time;
use crate::timeline::Timestamp;

/// The annotation the EndpointSlice controller sets to the time of the pod
/// or Service change a slice's last update applied.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The ready pods one EndpointSlice points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backends {
    /// The pods behind ready endpoints.
    pub pods: BTreeSet<String>,
    /// The slice's [`TRIGGER_TIME_ANNOTATION`], if set and readable.
    pub changed: Option<Timestamp>,
}

impl Backends {
    /// The ready pods and the trigger time of `slice`.
    pub fn of(slice: &EndpointSlice) -> Self {
        let pods = slice
            .endpoints
            .iter()
            .flatten()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .filter_map(|e| e.target_ref.as_ref())
            .filter(|r| r.kind.as_deref() == Some("Pod"))
            .filter_map(|r| r.name.clone())
            .collect();
        let changed = slice
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(TRIGGER_TIME_ANNOTATION))
            .and_then(|t| parse_time(t));
        Backends { pods, changed }
    }
}

/// One moment the Service's routing was seen: the pods of all its slices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// When it was seen (the watch event's arrival).
    pub arrived: Timestamp,
    /// When it changed: the slice's trigger time if within the change, else
    /// the arrival.
    pub at: Timestamp,
    /// The pods the Service routes to.
    pub pods: BTreeSet<String>,
}

/// The EndpointSlices of one Service, as watched, and the routes they made.
#[derive(Debug, Default, Clone)]
pub struct Routes {
    slices: BTreeMap<String, Backends>,
    seen: Vec<Route>,
}

impl Routes {
    /// Records slice `name` as a watch delivered it at `arrived` (`None`:
    /// deleted) and the Service's routing then. `since`, the start of the
    /// change under way, bounds the trigger times believed (older ones
    /// belong to an earlier change; later than the arrival, to another
    /// clock).
    pub fn observe(
        &mut self,
        name: &str,
        backends: Option<Backends>,
        arrived: Timestamp,
        since: Option<Timestamp>,
    ) {
        let changed = backends.as_ref().and_then(|b| b.changed);
        match backends {
            Some(b) => self.slices.insert(name.to_string(), b),
            None => self.slices.remove(name),
        };
        let at = changed
            .filter(|c| since.is_none_or(|s| *c >= s) && *c <= arrived)
            .unwrap_or(arrived);
        let pods = self.slices.values().flat_map(|b| b.pods.clone()).collect();
        self.seen.push(Route { arrived, at, pods });
    }

    /// When the Service first routed to `pod` among the routes seen since
    /// `since` (arrival time): the end of routing to a new primary.
    pub fn first_to(&self, pod: &str, since: Timestamp) -> Option<Timestamp> {
        self.seen
            .iter()
            .find(|r| r.arrived >= since && r.pods.contains(pod))
            .map(|r| r.at)
    }

    /// Forgets the routes seen before `since`, but the last one.
    pub fn forget_before(&mut self, since: Timestamp) {
        let keep_from = self
            .seen
            .iter()
            .rposition(|r| r.arrived < since)
            .unwrap_or(0);
        self.seen.drain(..keep_from);
    }
}

/// The Service a CNPG `Pooler` sends its clients to: `<cluster>-rw` for an
/// `rw` pooler (the default), `<cluster>-ro` or `<cluster>-r` otherwise.
pub fn backend_service(pooler: &PoolerSpec) -> String {
    let suffix = match pooler.type_or_default() {
        PoolerType::Ro => "ro",
        PoolerType::R => "r",
        PoolerType::Rw | PoolerType::Unknown => "rw",
    };
    format!("{}-{suffix}", pooler.cluster.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn slice(pods: &[(&str, Option<bool>)], trigger: Option<&str>) -> EndpointSlice {
        let endpoints: Vec<serde_json::Value> = pods
            .iter()
            .map(|(pod, ready)| {
                serde_json::json!({"addresses": ["10.244.0.12"],
                    "conditions": {"ready": ready},
                    "targetRef": {"kind": "Pod", "name": pod}})
            })
            .collect();
        let annotations = match trigger {
            Some(t) => serde_json::json!({ TRIGGER_TIME_ANNOTATION: t }),
            None => serde_json::json!({}),
        };
        serde_json::from_value(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "cluster-example-rw-abcde", "annotations": annotations,
                         "labels": {SERVICE_NAME_LABEL: "cluster-example-rw"}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "postgres", "port": 5432}]
        }))
        .expect("an EndpointSlice")
    }

    fn t(text: &str) -> Timestamp {
        parse_time(text).expect("time")
    }

    #[test]
    fn ready_pods_and_the_trigger_time() {
        let b = Backends::of(&slice(
            &[("c-1", Some(false)), ("c-2", Some(true)), ("c-3", None)],
            Some("2026-08-21T10:00:08.123456789Z"),
        ));
        assert_eq!(
            b.pods,
            BTreeSet::from(["c-2".to_string(), "c-3".to_string()])
        );
        assert_eq!(b.changed, Some(t("2026-08-21T10:00:08.123456Z")));
        let unset = Backends::of(&slice(&[("c-2", Some(true))], None));
        assert_eq!(unset.changed, None);
    }

    #[test]
    fn the_switch_is_the_first_route_to_the_new_primary() {
        let since = t("2026-08-21T10:00:00Z");
        let mut routes = Routes::default();
        let before = Timestamp::from(since.system_time() - Duration::from_secs(60));
        routes.observe(
            "s",
            Some(Backends::of(&slice(&[("c-1", Some(true))], None))),
            before,
            None,
        );
        // Empty while the old primary goes, then the new one, with a trigger
        // time: that time, not the arrival.
        let empty = t("2026-08-21T10:00:01Z");
        routes.observe(
            "s",
            Some(Backends::of(&slice(&[], None))),
            empty,
            Some(since),
        );
        let arrived = t("2026-08-21T10:00:08.300000Z");
        routes.observe(
            "s",
            Some(Backends::of(&slice(
                &[("c-2", Some(true))],
                Some("2026-08-21T10:00:08.250000Z"),
            ))),
            arrived,
            Some(since),
        );
        assert_eq!(
            routes.first_to("c-2", since),
            Some(t("2026-08-21T10:00:08.250000Z"))
        );
        assert_eq!(routes.first_to("c-1", since), None, "before the change");
        assert_eq!(routes.first_to("c-1", before), Some(before));

        // A trigger time from before the change, or after the arrival
        // (another clock), is not believed: the arrival is.
        for stale in ["2026-08-21T09:59:00Z", "2026-08-21T10:00:09Z"] {
            let mut r = Routes::default();
            r.observe(
                "s",
                Some(Backends::of(&slice(&[("c-2", Some(true))], Some(stale)))),
                arrived,
                Some(since),
            );
            assert_eq!(r.first_to("c-2", since), Some(arrived), "{stale}");
        }

        // Forgetting keeps the latest route before `since`.
        routes.forget_before(arrived);
        assert_eq!(routes.seen.len(), 2);
        // Slices add up; a deleted one no longer routes.
        let mut two = Routes::default();
        let one = |pod| Some(Backends::of(&slice(&[(pod, Some(true))], None)));
        two.observe("a", one("c-1"), since, None);
        two.observe("b", one("c-2"), since, None);
        assert_eq!(two.seen[1].pods.len(), 2);
        two.observe("a", None, since, None);
        assert_eq!(two.seen[2].pods, BTreeSet::from(["c-2".to_string()]));
    }

    #[test]
    fn a_poolers_backend_is_the_clusters_service() {
        let spec = |ty: serde_json::Value| -> PoolerSpec {
            serde_json::from_value(serde_json::json!({"cluster": {"name": "cluster-example"},
                                                      "type": ty, "pgbouncer": {}}))
            .expect("a PoolerSpec")
        };
        assert_eq!(
            backend_service(&spec(serde_json::json!("rw"))),
            "cluster-example-rw"
        );
        assert_eq!(
            backend_service(&spec(serde_json::Value::Null)),
            "cluster-example-rw"
        );
        assert_eq!(
            backend_service(&spec(serde_json::json!("ro"))),
            "cluster-example-ro"
        );
    }
}
