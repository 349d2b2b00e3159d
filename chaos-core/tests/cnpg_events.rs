//! The CNPG target's event stream against a mocked API server
//! ([`cnpg_mock`]) that serves watches: the Cluster's statuses, the
//! EndpointSlices of the routing Service and the Cluster's Events arrive as
//! chunked watch events at times the test chooses, and the marks must be
//! stamped when they arrive (or by the slice's own trigger time), not on a
//! polling grid. With a Pooler, routing is the pooler's backend switching.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chaos_core::cluster::Target;
use chaos_core::timeline::{Event, EventKind, Phase, Timestamp};
use futures::StreamExt;
use http::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

mod cnpg_mock;

use cnpg_mock::{
    CLUSTER_PATH, Feeds, NS, Reply, Seen, assert_allowed_by_role, common, fixture, list, log_of,
    mock_watching, status, target_with, watch_event, watch_opened,
};

const CLUSTERS: &str = "/apis/postgresql.cnpg.io/v1/namespaces/pg-chaos/clusters";
const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/pg-chaos/endpointslices";
const EVENTS: &str = "/api/v1/namespaces/pg-chaos/events";
const POOLER: &str = "/apis/postgresql.cnpg.io/v1/namespaces/pg-chaos/poolers/pooler-example-rw";
/// The selector of the `-rw` Service's slices.
const RW_SLICES: &str = "kubernetes.io/service-name=cluster-example-rw";

/// An RFC 3339 time with nanoseconds, as `timestamps=true` prefixes log lines.
fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// A log line of CNPG's instance manager for a PostgreSQL record, with the
/// API server's `timestamps=true` prefix; `log_time` in PostgreSQL's form.
fn cnpg_log_line(at: std::time::SystemTime, pod: &str, message: &str) -> String {
    let ts = rfc3339(at);
    // `2026-08-21T10:00:05.811123456Z` -> `2026-08-21 10:00:05.811 UTC`.
    let log_time = format!("{} UTC", ts[..23].replacen('T', " ", 1));
    let line = json!({
        "level": "info", "ts": ts, "logger": "postgres", "msg": "record",
        "logging_pod": pod,
        "record": {"log_time": log_time, "process_id": "27", "error_severity": "LOG",
                   "sql_state_code": "00000", "message": message,
                   "backend_type": "startup", "query_id": "0"},
    });
    format!("{ts} {line}")
}

/// The new primary's log as the API server would send it: a line from long
/// before the failover, a replica's read-only start, an instance-manager
/// line, then the promotion, 50 to 10 ms before `now`.
fn promotion_log(now: std::time::SystemTime, pod: &str) -> String {
    use std::time::Duration;
    let before = now - Duration::from_secs(3600);
    let ms = |n: u64| now - Duration::from_millis(n);
    let manager = json!({"level": "info", "ts": rfc3339(ms(60)), "logger": "instance-manager",
                         "msg": "Promoting instance", "logging_pod": pod});
    [
        cnpg_log_line(
            before,
            pod,
            "database system is ready to accept connections",
        ),
        cnpg_log_line(
            before,
            pod,
            "database system is ready to accept read-only connections",
        ),
        format!("{} {manager}", rfc3339(ms(60))),
        cnpg_log_line(ms(50), pod, "received promote request"),
        cnpg_log_line(
            ms(40),
            pod,
            "redo done at 0/5000060 system usage: CPU: user: 0.00 s, system: 0.01 s, elapsed: 1.59 s",
        ),
        cnpg_log_line(ms(30), pod, "selected new timeline ID: 2"),
        cnpg_log_line(ms(20), pod, "archive recovery complete"),
        cnpg_log_line(
            ms(10),
            pod,
            "database system is ready to accept connections",
        ),
    ]
    .join("\n")
        + "\n"
}

/// The log marks [`CnpgCluster`]'s event stream takes from the new
/// primary's log.
const LOG_MARKS: [&str; 5] = [
    "promote requested",
    "wal recovery ended",
    "timeline selected",
    "archive recovery complete",
    "ready for connections",
];

/// An EndpointSlice of `service` pointing at the ready pod `pod`, with
/// the trigger-time annotation `trigger` if given.
fn slice(service: &str, pod: &str, trigger: Option<&str>) -> Value {
    let annotations = match trigger {
        Some(t) => json!({ "endpoints.kubernetes.io/last-change-trigger-time": t }),
        None => json!({}),
    };
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-abcde"), "namespace": NS, "resourceVersion": "2",
                     "labels": {"kubernetes.io/service-name": service},
                     "annotations": annotations},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.12"], "conditions": {"ready": true},
                       "targetRef": {"kind": "Pod", "name": pod, "namespace": NS}}],
        "ports": [{"name": "postgres", "port": 5432, "protocol": "TCP"}]
    })
}

/// A mocked API server with the target's event stream running on it.
struct Flow {
    log: Arc<Mutex<Vec<Seen>>>,
    /// The Cluster watch.
    cluster: UnboundedSender<Value>,
    /// The `-rw` Service's EndpointSlice watch.
    slices: UnboundedSender<Value>,
    /// The events the stream gave, with when the test received each.
    got: Arc<Mutex<Vec<(Event, Timestamp)>>>,
    /// When the watches were open.
    started: Timestamp,
    _stream: tokio::task::JoinHandle<()>,
}

impl Flow {
    /// Starts the stream of a target writing through `pooler` (if given);
    /// the new primary's log is readable or forbidden. Returns once the
    /// three watches are open.
    async fn start(log_readable: bool, pooler: Option<&str>) -> Flow {
        let feeds = Feeds::default();
        let cluster = feeds.add(CLUSTERS);
        let slices = feeds.add(SLICES);
        let (client, log) = mock_watching(Box::new(move |s| {
            let selector = s.param("labelSelector").unwrap_or_default();
            match (s.method.clone(), s.path.as_str()) {
                (Method::GET, CLUSTERS | EVENTS) | (Method::GET, SLICES)
                    if s.is_watch() && (s.path != SLICES || selector == RW_SLICES) =>
                {
                    feeds.reply(&s.path)
                }
                (Method::GET, CLUSTERS) => Reply::Json(
                    200,
                    list(
                        "Cluster",
                        vec![fixture("cnpg_cluster_01_healthy.json")],
                        "12345",
                    ),
                ),
                (Method::GET, SLICES) if selector == RW_SLICES => Reply::Json(
                    200,
                    list(
                        "EndpointSlice",
                        vec![slice("cluster-example-rw", "cluster-example-1", None)],
                        "1",
                    ),
                ),
                // Any other Service (the pooler's own): its pods never change.
                (Method::GET, SLICES) if s.is_watch() => feeds.reply("other slices"),
                (Method::GET, SLICES) => Reply::Json(
                    200,
                    list(
                        "EndpointSlice",
                        vec![slice(
                            "pooler-example-rw",
                            "pooler-example-rw-7d9c5b-x2x4z",
                            None,
                        )],
                        "1",
                    ),
                ),
                (Method::GET, EVENTS) => {
                    let mut events = fixture("cnpg_events_failover.json");
                    events["metadata"] = json!({"resourceVersion": "7"});
                    Reply::Json(200, events)
                }
                (Method::GET, POOLER) => Reply::Json(
                    200,
                    json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Pooler",
                           "metadata": {"name": "pooler-example-rw", "namespace": NS},
                           "spec": {"cluster": {"name": "cluster-example"}, "type": "rw",
                                    "instances": 2, "pgbouncer": {"poolMode": "session"}}}),
                ),
                (Method::GET, p)
                    if p.starts_with("/api/v1/namespaces/pg-chaos/pods/")
                        && p.ends_with("/log") =>
                {
                    if log_readable {
                        let pod = p.split('/').nth(6).unwrap_or_default();
                        Reply::Json(200, Value::String(promotion_log(SystemTime::now(), pod)))
                    } else {
                        let (code, body) = status(403, "Forbidden");
                        Reply::Json(code, body)
                    }
                }
                _ => {
                    let (code, body) = common(s, false).unwrap_or_else(|| status(404, "NotFound"));
                    Reply::Json(code, body)
                }
            }
        }));
        let t = Arc::new(target_with(client, true, false, pooler).await);
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let stream = tokio::spawn(async move {
            let mut events = t.events();
            while let Some(e) = events.next().await {
                sink.lock().expect("got").push((e, Timestamp::now()));
            }
        });
        for path in [CLUSTERS, SLICES, EVENTS] {
            watch_opened(&log, path).await;
        }
        Flow {
            log,
            cluster,
            slices,
            got,
            started: Timestamp::now(),
            _stream: stream,
        }
    }

    /// Sends a Cluster fixture as a `MODIFIED` watch event.
    fn status(&self, name: &str) -> Timestamp {
        let at = Timestamp::now();
        self.cluster
            .send(watch_event("MODIFIED", &fixture(name)))
            .expect("cluster watch open");
        at
    }

    /// Sends the `-rw` slice pointing at `pod`; returns when it was sent.
    fn route(&self, pod: &str, trigger: Option<&str>) -> Timestamp {
        let at = Timestamp::now();
        self.slices
            .send(watch_event(
                "MODIFIED",
                &slice("cluster-example-rw", pod, trigger),
            ))
            .expect("slice watch open");
        at
    }

    /// The events until `name` came and half a second more (at most 15 s).
    async fn until(&self, name: &str) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut quiet_from: Option<Instant> = None;
        while Instant::now() < deadline
            && quiet_from.is_none_or(|q| q.elapsed() < Duration::from_millis(500))
        {
            if quiet_from.is_none() && self.names().iter().any(|n| n == name) {
                quiet_from = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let events: Vec<Event> = self
            .got
            .lock()
            .expect("got")
            .iter()
            .map(|(e, _)| e.clone())
            .collect();
        assert!(
            quiet_from.is_some(),
            "no {name:?} in {:#?}",
            events.iter().map(|e| e.name()).collect::<Vec<_>>()
        );
        events
    }

    fn names(&self) -> Vec<String> {
        self.got
            .lock()
            .expect("got")
            .iter()
            .map(|(e, _)| e.name().to_string())
            .collect()
    }

    /// A failover as the operator records it: pending, elected, promoted
    /// (`promoted` is given when 04 was sent), the `-rw` slice switching to
    /// the new primary (by `route`, which returns when it was sent), then
    /// healthy. Returns the routing's send time and the events.
    async fn failover(
        &self,
        route: impl FnOnce(&Flow, Timestamp) -> Timestamp,
    ) -> (Timestamp, Vec<Event>) {
        let pause = || tokio::time::sleep(Duration::from_millis(30));
        self.status("cnpg_cluster_02_failover_pending.json");
        pause().await;
        self.status("cnpg_cluster_03_failover_target_elected.json");
        pause().await;
        let promoted = self.status("cnpg_cluster_04_failover_promoted_old_primary_rejoining.json");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let routed = route(self, promoted);
        pause().await;
        self.status("cnpg_cluster_05_healthy_after_failover.json");
        (routed, self.until("routing ended").await)
    }
}

fn mark<'a>(events: &'a [Event], name: &str) -> &'a Event {
    events
        .iter()
        .find(|e| e.name() == name)
        .unwrap_or_else(|| panic!("no {name:?}: {events:#?}"))
}

/// A failover through the watches: the topology changes and every phase
/// end, in order; the routing mark at the slice's arrival, within a few ms
/// of its sending (a 250 ms poll would be late by up to 250 ms); the new
/// primary's log split once; no request polls; every request allowed by
/// the shipped Role.
#[tokio::test(flavor = "multi_thread")]
async fn a_failover_is_marked_from_watch_events_as_they_arrive() {
    let f = Flow::start(true, None).await;
    let (routed, events) = f.failover(|f, _| f.route("cluster-example-2", None)).await;
    let names: Vec<&str> = events.iter().map(|e| e.name()).collect();
    let order: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| Phase::ended_by(n).is_some())
        .collect();
    assert_eq!(
        order,
        [
            "detection ended",
            "election ended",
            "promotion ended",
            "routing ended"
        ],
        "{names:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::PrimaryLost { .. })),
        "{names:?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(&e.kind, EventKind::NewPrimary { node, .. } if node == "cluster-example-2")
        ),
        "{names:?}"
    );
    let routing = mark(&events, "routing ended");
    assert_eq!(routing.detail.as_deref(), Some("cluster-example-2"));
    let late_ms = routing.at.ms_since(routed);
    assert!(
        (0.0..50.0).contains(&late_ms),
        "routing stamped {late_ms:.3} ms after the slice was sent"
    );
    assert!(
        mark(&events, "promotion ended").at <= routing.at,
        "{events:#?}"
    );
    // Nothing from before the watches were open (the fixtures' own times
    // are months old).
    assert!(events.iter().all(|e| e.at >= f.started), "{events:#?}");

    // The new primary's log: each mark once, in order, after it was observed.
    let marks: Vec<&Event> = events
        .iter()
        .filter(|e| LOG_MARKS.contains(&e.name()))
        .collect();
    assert_eq!(
        marks.iter().map(|e| e.name()).collect::<Vec<_>>(),
        LOG_MARKS,
        "{names:?}"
    );
    assert!(marks.windows(2).all(|w| w[0].at <= w[1].at), "{marks:#?}");
    assert_eq!(
        marks[2].detail.as_deref(),
        Some("selected new timeline ID: 2")
    );

    let seen = log_of(&f.log);
    // Watched, with the selectors that pick this Cluster, its -rw slices
    // and its Events.
    let watch = |path: &str, key: &str| {
        seen.iter()
            .find(|s| s.path == path && s.is_watch())
            .and_then(|s| s.param(key))
    };
    assert_eq!(
        watch(CLUSTERS, "fieldSelector").as_deref(),
        Some("metadata.name=cluster-example")
    );
    assert_eq!(watch(SLICES, "labelSelector").as_deref(), Some(RW_SLICES));
    assert_eq!(
        watch(EVENTS, "fieldSelector").as_deref(),
        Some("involvedObject.kind=Cluster,involvedObject.name=cluster-example")
    );
    // Nothing polled: the Cluster was read once (building the target), no
    // Endpoints at all; the log once (every mark in the first read).
    assert_eq!(
        seen.iter().filter(|s| s.path == CLUSTER_PATH).count(),
        1,
        "{seen:#?}"
    );
    assert!(
        seen.iter().all(|s| !s.path.contains("/endpoints/")),
        "{seen:#?}"
    );
    let logs: Vec<&Seen> = seen.iter().filter(|s| s.path.ends_with("/log")).collect();
    assert_eq!(logs.len(), 1, "{logs:#?}");
    assert_eq!(
        logs[0].path,
        "/api/v1/namespaces/pg-chaos/pods/cluster-example-2/log"
    );
    for p in ["container=postgres", "timestamps=true", "sinceTime="] {
        assert!(logs[0].query.contains(p), "{}", logs[0].query);
    }
    let used = assert_allowed_by_role(&seen);
    for (verb, resource, sub) in [
        ("watch", "clusters", ""),
        ("watch", "endpointslices", ""),
        ("watch", "events", ""),
        ("get", "pods", "log"),
    ] {
        assert!(
            used.iter()
                .any(|u| (u.0.as_str(), u.2.as_str(), u.3.as_str()) == (verb, resource, sub)),
            "{verb} {resource}/{sub} never used: {used:?}"
        );
    }
}

/// The slice's own `last-change-trigger-time`, within the change, is the
/// routing mark, to the microsecond.
#[tokio::test(flavor = "multi_thread")]
async fn the_slices_trigger_time_is_the_routing_mark() {
    let f = Flow::start(true, None).await;
    let trigger = std::cell::Cell::new(None);
    let (_, events) = f
        .failover(|f, promoted| {
            let at = promoted.plus(Duration::from_millis(150));
            trigger.set(Some(at));
            // As the controller writes it: RFC 3339 with nanoseconds.
            let text = humantime::format_rfc3339_nanos(at.system_time()).to_string();
            f.route("cluster-example-2", Some(&text))
        })
        .await;
    assert_eq!(Some(mark(&events, "routing ended").at), trigger.get());
}

/// Through a Pooler, routing ends when its backend, the cluster's `-rw`
/// Service, points at the new primary: the pooler's own pods never change.
#[tokio::test(flavor = "multi_thread")]
async fn through_a_pooler_routing_ends_when_its_backend_switches() {
    let f = Flow::start(true, Some("pooler-example-rw")).await;
    let (routed, events) = f.failover(|f, _| f.route("cluster-example-2", None)).await;
    let routing = mark(&events, "routing ended");
    assert!(routing.at >= routed, "{routing:?}");
    let seen = log_of(&f.log);
    assert!(
        seen.iter()
            .any(|s| s.path == POOLER && s.method == Method::GET)
    );
    let selectors: Vec<String> = seen
        .iter()
        .filter(|s| s.path == SLICES)
        .filter_map(|s| s.param("labelSelector"))
        .collect();
    assert!(!selectors.is_empty());
    assert!(selectors.iter().all(|s| s == RW_SLICES), "{selectors:?}");
    assert_allowed_by_role(&seen);
}

/// A forbidden log: no log marks, read once for the promotion, the phases
/// all the same.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_log_is_skipped() {
    let f = Flow::start(false, None).await;
    let (_, events) = f.failover(|f, _| f.route("cluster-example-2", None)).await;
    let names: Vec<&str> = events.iter().map(|e| e.name()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::NewPrimary { .. })),
        "{names:?}"
    );
    assert!(names.contains(&"routing ended"), "{names:?}");
    assert!(names.iter().all(|n| !LOG_MARKS.contains(n)), "{names:?}");
    let seen = log_of(&f.log);
    assert_eq!(seen.iter().filter(|s| s.path.ends_with("/log")).count(), 1);
}
