//! The CNPG target's event stream, from watches of the Kubernetes API.
//!
//! Three watches (kube-runtime's [`watcher`]) run while the stream is
//! alive, each in a task of its own that stamps what it receives the moment
//! it arrives:
//!
//! - the `Cluster` (`metadata.name=<cluster>`): its statuses, for the
//!   topology changes and the phase marks of [`status::phase_marks`];
//! - the `EndpointSlice`s of the routing Service
//!   (`kubernetes.io/service-name=<service>`): `<cluster>-rw`, or with a
//!   `Pooler` the Service the pooler sends its clients to
//!   ([`routing::backend_service`]); the end of `routing` is when it first
//!   points at the new primary ([`routing`]);
//! - the Kubernetes Events of the `Cluster` (`FailingOver`,
//!   `FailoverTarget`, …).
//!
//! Pod logs cannot be watched: once `currentPrimary` names a new pod, its
//! log is read every [`LOG_PERIOD`] for the finer promotion marks, at most
//! [`PROMOTION_LOG_READS`] times. A watch that fails is retried with
//! kube-runtime's default backoff.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Event as KubeEvent;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::crd::{self, Cluster, Pooler};
use super::routing::{self, Backends, Routes, SERVICE_NAME_LABEL};
use super::status::{self, ObservedStatus};
use super::target::{CnpgCluster, topology_of};
use crate::cluster::Topology;
use crate::timeline::{Event, EventKind, PromotionStep, Timestamp};

/// How many times the event stream reads a new primary's log for its
/// promotion marks before it gives up waiting for
/// [`READY_FOR_CONNECTIONS`](status::READY_FOR_CONNECTIONS).
pub const PROMOTION_LOG_READS: u32 = 20;

/// How often a new primary's log is read while its marks are collected.
pub const LOG_PERIOD: Duration = Duration::from_millis(250);

/// What a watch delivered, stamped on arrival.
#[derive(Debug)]
enum Observation {
    /// The `Cluster` as it is now.
    Cluster(Box<Cluster>, Timestamp),
    /// An EndpointSlice of the routing Service: its backends, or `None`
    /// when it was deleted.
    Slice {
        name: String,
        backends: Option<Backends>,
        arrived: Timestamp,
    },
    /// A Kubernetes Event of the `Cluster`.
    Event(Box<KubeEvent>),
}

/// The event stream of `target` (see the [module docs](self)).
pub(super) fn events(target: CnpgCluster) -> BoxStream<'static, Event> {
    let state = State {
        target,
        watches: None,
        last: None,
        window: Vec::new(),
        since: None,
        routes: Routes::default(),
        endpoints_switched: None,
        events: BTreeMap::new(),
        emitted: BTreeSet::new(),
        pending: VecDeque::new(),
        last_primary: None,
        promotion_log: None,
    };
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(e) = s.pending.pop_front() {
                return Some((e, s));
            }
            let rx = match &mut s.watches {
                Some(w) => &mut w.rx,
                None => {
                    s.watches = Some(Watches::start(&s.target).await);
                    continue;
                }
            };
            let next = if let Some(log) = &s.promotion_log {
                tokio::select! {
                    o = rx.recv() => o.map(Some),
                    () = tokio::time::sleep_until(log.next) => Some(None),
                }
            } else {
                rx.recv().await.map(Some)
            };
            match next {
                Some(Some(o)) => s.observe(o),
                Some(None) => {}
                // Every watch task ended: nothing more will come.
                None => return None,
            }
            s.read_promotion_log().await;
        }
    }))
}

/// The watch tasks, aborted when the stream is dropped.
struct Watches {
    rx: mpsc::UnboundedReceiver<Observation>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Watches {
    /// Starts the three watches of `target`.
    async fn start(target: &CnpgCluster) -> Self {
        let kube = target.kube();
        let (tx, rx) = mpsc::unbounded_channel();
        let service = routing_service(target).await;
        tracing::debug!(service = %service, "routing: watching the Service's EndpointSlices");
        let clusters: Api<Cluster> = Api::namespaced(kube.client.clone(), &kube.namespace);
        let slices: Api<EndpointSlice> = Api::namespaced(kube.client.clone(), &kube.namespace);
        let events: Api<KubeEvent> = Api::namespaced(kube.client.clone(), &kube.namespace);
        let name = target.cluster_name();
        let tasks = vec![
            spawn_watch(
                "Cluster",
                watcher(
                    clusters,
                    watcher::Config::default().fields(&format!("metadata.name={name}")),
                ),
                tx.clone(),
                |c: Cluster, at, deleted| (!deleted).then(|| Observation::Cluster(Box::new(c), at)),
            ),
            spawn_watch(
                "EndpointSlice",
                watcher(
                    slices,
                    watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={service}")),
                ),
                tx.clone(),
                |s: EndpointSlice, arrived, deleted| {
                    Some(Observation::Slice {
                        name: s.metadata.name.clone().unwrap_or_default(),
                        backends: (!deleted).then(|| Backends::of(&s)),
                        arrived,
                    })
                },
            ),
            spawn_watch(
                "Event",
                watcher(
                    events,
                    watcher::Config::default().fields(&format!(
                        "involvedObject.kind=Cluster,involvedObject.name={name}"
                    )),
                ),
                tx,
                |e: KubeEvent, _, deleted| (!deleted).then(|| Observation::Event(Box::new(e))),
            ),
        ];
        Watches { rx, tasks }
    }
}

/// The Service whose EndpointSlices end `routing`: the write Service, or
/// for a `Pooler` its backend (the pooler's own pods do not change in a
/// failover). When the Pooler cannot be read, `<cluster>-rw`.
async fn routing_service(target: &CnpgCluster) -> String {
    let Some(pooler) = target.pooler() else {
        return target.write_service().to_string();
    };
    let kube = target.kube();
    let poolers: Api<Pooler> = Api::namespaced(kube.client.clone(), &kube.namespace);
    match poolers.get(pooler).await {
        Ok(p) => routing::backend_service(&p.spec),
        Err(e) => {
            let fallback = format!("{}-rw", target.cluster_name());
            tracing::warn!(
                pooler = %pooler, error = %e,
                "cannot read the Pooler: routing is timed on {fallback}"
            );
            fallback
        }
    }
}

/// Runs `stream` in a task: each object it delivers is stamped on arrival,
/// turned into an [`Observation`] by `to` (with whether it was deleted) and
/// sent. After a re-list, objects no longer listed count as deleted.
/// Errors are retried with the default backoff and logged (at `warn` once).
fn spawn_watch<K, S>(
    what: &'static str,
    stream: S,
    tx: mpsc::UnboundedSender<Observation>,
    to: impl Fn(K, Timestamp, bool) -> Option<Observation> + Send + 'static,
) -> JoinHandle<()>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream.default_backoff());
        let mut known: BTreeMap<String, K> = BTreeMap::new();
        let mut listed: Option<BTreeSet<String>> = None;
        let mut warned = false;
        while let Some(item) = stream.next().await {
            let at = Timestamp::now();
            let name = |o: &K| o.meta().name.clone().unwrap_or_default();
            let out = match item {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    if let Some(l) = listed.as_mut() {
                        l.insert(name(&o));
                    }
                    known.insert(name(&o), o.clone());
                    vec![to(o, at, false)]
                }
                Ok(watcher::Event::Delete(o)) => {
                    known.remove(&name(&o));
                    vec![to(o, at, true)]
                }
                Ok(watcher::Event::Init) => {
                    listed = Some(BTreeSet::new());
                    Vec::new()
                }
                Ok(watcher::Event::InitDone) => {
                    let listed = listed.take().unwrap_or_default();
                    let gone: Vec<String> = known
                        .keys()
                        .filter(|k| !listed.contains(*k))
                        .cloned()
                        .collect();
                    gone.into_iter()
                        .filter_map(|k| known.remove(&k))
                        .map(|o| to(o, at, true))
                        .collect()
                }
                Err(e) => {
                    if warned {
                        tracing::debug!(watch = what, error = %e, "watch failed; retrying");
                    } else {
                        tracing::warn!(watch = what, error = %e, "watch failed; retrying");
                        warned = true;
                    }
                    Vec::new()
                }
            };
            for o in out.into_iter().flatten() {
                if tx.send(o).is_err() {
                    return;
                }
            }
        }
    })
}

/// What the event stream remembers between observations.
struct State {
    target: CnpgCluster,
    /// Started at the first poll of the stream (in the runtime).
    watches: Option<Watches>,
    last: Option<Topology>,
    /// The statuses of the change under way, the last stable one first.
    window: Vec<ObservedStatus>,
    since: Option<Timestamp>,
    routes: Routes,
    endpoints_switched: Option<Timestamp>,
    /// The Cluster's Kubernetes Events, by name.
    events: BTreeMap<String, KubeEvent>,
    emitted: BTreeSet<EventKind>,
    pending: VecDeque<Event>,
    /// The last `currentPrimary` seen.
    last_primary: Option<String>,
    /// The new primary whose log is still to be read for its promotion marks.
    promotion_log: Option<PromotionLog>,
}

/// A promotion whose log marks the event stream is collecting.
struct PromotionLog {
    /// The new primary's pod.
    pod: String,
    /// Marks before this (the start of the change) belong to earlier events.
    since: Timestamp,
    /// Reads so far.
    reads: u32,
    /// When to read next.
    next: tokio::time::Instant,
    /// The marks already emitted for this promotion.
    found: BTreeSet<EventKind>,
}

impl State {
    /// Takes in one observation and queues the events it makes.
    fn observe(&mut self, o: Observation) {
        match o {
            Observation::Cluster(cluster, at) => {
                self.note_promotion(&cluster, at);
                self.note_status(&cluster, at);
            }
            Observation::Slice {
                name,
                backends,
                arrived,
            } => {
                let since = self.since.or_else(|| self.window.first().map(|o| o.at));
                self.routes.observe(&name, backends, arrived, since);
                if self.since.is_none()
                    && let Some(stable) = since
                {
                    // No change under way: only the routes since the last
                    // stable status can matter to the next one.
                    self.routes.forget_before(stable);
                }
            }
            Observation::Event(e) => {
                let key = e.metadata.name.clone().unwrap_or_default();
                self.events.insert(key, *e);
            }
        }
        self.mark_phases();
    }

    /// When `currentPrimary` changed, starts collecting the new primary's
    /// log marks from the start of the change (the last stable status
    /// before it).
    fn note_promotion(&mut self, cluster: &Cluster, now: Timestamp) {
        let current = cluster
            .status
            .as_ref()
            .and_then(|s| s.current_primary.clone())
            .filter(|p| !p.is_empty() && p != crd::PENDING_FAILOVER_MARKER);
        let Some(current) = current else {
            return;
        };
        if self.last_primary.as_ref().is_some_and(|p| *p != current) {
            let since = self
                .since
                .or_else(|| self.window.first().map(|o| o.at))
                .unwrap_or(now);
            self.promotion_log = Some(PromotionLog {
                pod: current.clone(),
                since,
                reads: 0,
                next: tokio::time::Instant::now(),
                found: BTreeSet::new(),
            });
        }
        self.last_primary = Some(current);
    }

    /// Topology changes, and the status in the window of the change under
    /// way (which starts at the first status that is not stable).
    fn note_status(&mut self, cluster: &Cluster, now: Timestamp) {
        let topo = topology_of(cluster);
        if let Some(before) = &self.last {
            for kind in topo.changes_since(before) {
                self.pending.push_back(Event::new(kind, now, None));
            }
        }
        self.last = Some(topo);
        let status = cluster.status.clone().unwrap_or_default();
        let observed = ObservedStatus::new(now, status);
        if self.since.is_none() {
            if stable(&observed) || self.window.is_empty() {
                self.window = vec![observed];
                return;
            }
            // A change began after the last stable status.
            self.since = self.window.first().map(|o| o.at);
        }
        self.window.push(observed);
    }

    /// The phase marks of the change under way not emitted yet; when the
    /// change is over (stable again and routed), starts afresh.
    fn mark_phases(&mut self) {
        let Some(since) = self.since else {
            return;
        };
        let latest = self.window.last().map(|o| &o.status);
        let old_primary = self
            .window
            .first()
            .and_then(|o| o.status.current_primary.clone());
        let new_primary = latest
            .and_then(|s| s.target_primary.clone())
            .filter(|t| t != crd::PENDING_FAILOVER_MARKER && Some(t) != old_primary.as_ref());
        if self.endpoints_switched.is_none()
            && let Some(p) = &new_primary
        {
            self.endpoints_switched = self.routes.first_to(p, since);
        }
        let events: Vec<KubeEvent> = self.events.values().cloned().collect();
        for mark in status::phase_marks(since, &self.window, &events, self.endpoints_switched) {
            if self.emitted.insert(mark.kind.clone()) {
                self.pending.push_back(mark);
            }
        }
        if self.window.last().is_some_and(stable) && self.endpoints_switched.is_some() {
            // The change is over: the next one starts from here.
            self.since = None;
            self.endpoints_switched = None;
            self.emitted.clear();
            self.window = self.window.split_off(self.window.len() - 1);
            if let Some(last) = self.window.first() {
                self.routes.forget_before(last.at);
            }
        }
    }

    /// Reads the new primary's log, if a promotion's marks are still being
    /// collected and [`LOG_PERIOD`] has passed since the last read, and
    /// queues the marks not emitted yet. Stops once the server is ready for
    /// connections, after [`PROMOTION_LOG_READS`] reads, or at once when the
    /// log is not readable.
    async fn read_promotion_log(&mut self) {
        let now = tokio::time::Instant::now();
        let Some(log) = self.promotion_log.as_mut().filter(|l| l.next <= now) else {
            return;
        };
        log.reads += 1;
        log.next = now + LOG_PERIOD;
        let Some(marks) = self.target.promotion_log_marks(&log.pod, log.since).await else {
            self.promotion_log = None;
            return;
        };
        for mark in marks {
            if log.found.insert(mark.kind.clone()) {
                self.pending.push_back(mark);
            }
        }
        if log.found.contains(&EventKind::PromotionStep(
            PromotionStep::ReadyForConnections,
        )) || log.reads >= PROMOTION_LOG_READS
        {
            self.promotion_log = None;
        }
    }
}

/// Whether a status is at rest: healthy, with the current primary the
/// target.
fn stable(o: &ObservedStatus) -> bool {
    let s = &o.status;
    s.current_primary.is_some()
        && s.current_primary == s.target_primary
        && s.phase.as_deref() == Some(crd::phase::HEALTHY)
}
