//! A mocked Kubernetes API server for the CNPG target's tests, the way
//! kube-rs tests itself (`tower_test::mock::pair` + `kube::Client::new`):
//! responses come from the fixtures in `../shared/reference/fixtures`,
//! every request is recorded, watches (`?watch=true`) are answered with
//! chunked streams of watch events the test feeds, and the RBAC Role
//! shipped in `deploy/rbac/` must allow each request.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chaos_core::cluster::cnpg::CnpgCluster;
use http::{Method, Request, Response};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const NS: &str = "pg-chaos";
pub const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
pub const WHOAMI: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
pub const CLUSTER_PATH: &str =
    "/apis/postgresql.cnpg.io/v1/namespaces/pg-chaos/clusters/cluster-example";

pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../shared/reference/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

/// One request the mock server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Seen {
    /// Changes something: neither a read nor a question about the caller's
    /// own rights (which every authenticated user may ask).
    pub fn mutating(&self) -> bool {
        !matches!(self.method, Method::GET) && !self.is_review()
    }

    /// A SelfSubjectAccessReview or SelfSubjectReview.
    pub fn is_review(&self) -> bool {
        self.method == Method::POST && (self.path == ACCESS_REVIEWS || self.path == WHOAMI)
    }

    /// The permission a SelfSubjectAccessReview asked about, as
    /// [`rbac`](Self::rbac) describes a request.
    pub fn reviewed(&self) -> Option<(String, String, String, String, String)> {
        if self.path != ACCESS_REVIEWS {
            return None;
        }
        let a = &self.body["spec"]["resourceAttributes"];
        let field = |k: &str| a[k].as_str().unwrap_or_default().to_string();
        Some((
            field("verb"),
            field("group"),
            field("resource"),
            field("subresource"),
            field("namespace"),
        ))
    }

    /// Whether it opened a watch.
    pub fn is_watch(&self) -> bool {
        self.param("watch").as_deref() == Some("true")
    }

    /// A query parameter, percent-decoded.
    pub fn param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then(|| percent_decode(v))
        })
    }

    /// (verb, group, resource, subresource, namespace) as RBAC sees it.
    pub fn rbac(&self) -> (String, String, String, String, String) {
        let parts: Vec<&str> = self.path.trim_start_matches('/').split('/').collect();
        // /api/v1/... or /apis/<group>/<version>/...
        let (group, rest) = match parts[0] {
            "api" => (String::new(), &parts[2..]),
            _ => (parts[1].to_string(), &parts[3..]),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (ns.to_string(), rest),
            other => (String::new(), other),
        };
        let resource = rest.first().copied().unwrap_or_default().to_string();
        let named = rest.len() > 1;
        let sub = rest.get(2).copied().unwrap_or_default().to_string();
        let verb = match self.method {
            Method::GET if self.is_watch() => "watch",
            Method::GET if named => "get",
            Method::GET => "list",
            Method::POST => "create",
            Method::PATCH => "patch",
            Method::PUT => "update",
            Method::DELETE => "delete",
            _ => "other",
        };
        (verb.into(), group, resource, sub, namespace)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How the mock answers one request.
pub enum Reply {
    /// A status code and a JSON body, or (a JSON string) a plain-text body,
    /// as the API server sends pod logs.
    Json(u16, Value),
    /// A watch: `200` and a chunked body, one watch event (`{"type":
    /// "MODIFIED", "object": …}`) per line as the test sends them, open
    /// until the sender is dropped.
    Watch(mpsc::UnboundedReceiver<Value>),
}

/// Answers a request with a status code and a JSON body.
pub type Handler = Box<dyn FnMut(&Seen) -> (u16, Value) + Send>;

/// Answers any request, watches included.
pub type WatchHandler = Box<dyn FnMut(&Seen) -> Reply + Send>;

pub fn status(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": reason, "reason": reason, "code": code}),
    )
}

type MockBody = UnsyncBoxBody<Bytes, Infallible>;

/// A client whose API server is `handler`; returns the log of requests.
pub fn mock(mut handler: Handler) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
    mock_watching(Box::new(move |s| {
        let (code, value) = handler(s);
        Reply::Json(code, value)
    }))
}

/// As [`mock`], with watches.
pub fn mock_watching(mut handler: WatchHandler) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<MockBody>>();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen_log = log.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let seen = Seen {
                method: parts.method.clone(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let reply = handler(&seen);
            seen_log.lock().expect("log").push(seen);
            let resp = match reply {
                Reply::Json(code, value) => {
                    let (content_type, body) = match value {
                        Value::String(text) => ("text/plain", text.into_bytes()),
                        other => (
                            "application/json",
                            serde_json::to_vec(&other).expect("json"),
                        ),
                    };
                    Response::builder()
                        .status(code)
                        .header("content-type", content_type)
                        .body(Full::new(Bytes::from(body)).boxed_unsync())
                }
                Reply::Watch(rx) => {
                    let lines = futures::stream::unfold(rx, |mut rx| async move {
                        let event = rx.recv().await?;
                        let mut line = serde_json::to_vec(&event).expect("json");
                        line.push(b'\n');
                        Some((Ok(Frame::data(Bytes::from(line))), rx))
                    });
                    Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(StreamBody::new(lines).boxed_unsync())
                }
            }
            .expect("response");
            send.send_response(resp);
        }
    });
    (kube::Client::new(svc, "default"), log)
}

/// Answers the reads every flow makes; `None` for anything else.
pub fn common(s: &Seen, ns_label: bool) -> Option<(u16, Value)> {
    let pods = fixture("cnpg_pods_during_failover.json");
    match (s.method.clone(), s.path.as_str()) {
        (Method::GET, CLUSTER_PATH) => Some((200, fixture("cnpg_cluster_01_healthy.json"))),
        (Method::GET, "/api/v1/namespaces/pg-chaos") => {
            let labels = if ns_label {
                json!({"chaos.dev/allow": "true"})
            } else {
                json!({})
            };
            Some((
                200,
                json!({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": NS, "labels": labels}}),
            ))
        }
        (Method::GET, "/api/v1/namespaces/pg-chaos/secrets/cluster-example-app") => {
            Some((200, fixture("cnpg_app_secret.json")))
        }
        (Method::GET, p) if p.starts_with("/api/v1/namespaces/pg-chaos/pods/") => {
            let name = p.rsplit('/').next().unwrap_or_default();
            let mut pod = pods["items"]
                .as_array()
                .and_then(|items| items.iter().find(|i| i["metadata"]["name"] == name))
                .cloned()?;
            pod["metadata"]["uid"] = json!(format!("uid-{name}"));
            pod["status"]["hostIP"] = json!("172.18.0.3");
            Some((200, pod))
        }
        (Method::POST, ACCESS_REVIEWS) => {
            let mut review = s.body.clone();
            review["status"] = json!({"allowed": true});
            Some((201, review))
        }
        (Method::POST, "/apis/coordination.k8s.io/v1/namespaces/pg-chaos/leases") => {
            Some((201, s.body.clone()))
        }
        (Method::GET, "/api/v1/namespaces/default/services/kubernetes") => Some((
            200,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes"},
                   "spec": {"clusterIP": "10.96.0.1"}}),
        )),
        (Method::GET, "/api/v1/namespaces/default/endpoints/kubernetes") => Some((
            200,
            json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes"},
                   "subsets": [{"addresses": [{"ip": "172.18.0.2"}]}]}),
        )),
        _ => None,
    }
}

pub async fn target(client: kube::Client, allow: bool, dry_run: bool) -> CnpgCluster {
    target_with(client, allow, dry_run, None).await
}

/// [`target`], writing through `pooler` if given.
pub async fn target_with(
    client: kube::Client,
    allow: bool,
    dry_run: bool,
    pooler: Option<&str>,
) -> CnpgCluster {
    let mut b = CnpgCluster::builder(NS, "cluster-example")
        .rw_dsn("postgresql://app:pw@127.0.0.1:1/app")
        .run_id("0123456789abcdef")
        .dry_run(dry_run);
    if allow {
        b = b.allow("kind-chaos/pg-chaos");
    }
    if let Some(p) = pooler {
        b = b.pooler(p);
    }
    b.build_with_client(client, "kind-chaos")
        .await
        .expect("target")
}

pub fn log_of(log: &Arc<Mutex<Vec<Seen>>>) -> Vec<Seen> {
    log.lock().expect("log").clone()
}

/// Waits until a watch on `path` was opened (at most 5 s).
pub async fn watch_opened(log: &Arc<Mutex<Vec<Seen>>>, path: &str) {
    for _ in 0..500 {
        if log_of(log).iter().any(|s| s.path == path && s.is_watch()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no watch on {path}: {:#?}", log_of(log));
}

/// One RBAC rule of the shipped file.
#[derive(Debug, serde::Deserialize)]
struct Rule {
    #[serde(rename = "apiGroups", default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
struct RoleDoc {
    kind: String,
    metadata: serde_json::Map<String, Value>,
    rules: Vec<Rule>,
}

/// Asserts that `deploy/rbac/chaos-cnpg-role.yaml` allows every request in
/// `seen`; returns what was used as (verb, group, resource, subresource,
/// namespace).
pub fn assert_allowed_by_role(seen: &[Seen]) -> BTreeSet<(String, String, String, String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/rbac/chaos-cnpg-role.yaml"
    ))
    .expect("role file");
    let docs: Vec<RoleDoc> = text
        .split("\n---\n")
        .map(|d| serde_norway::from_str(d).expect("a Role or ClusterRole"))
        .collect();
    // Reviews of one's own rights are every authenticated user's
    // (system:basic-user); what they asked about must be granted, as every
    // request made must be.
    let used: BTreeSet<_> = seen
        .iter()
        .filter(|s| !s.is_review())
        .map(Seen::rbac)
        .chain(seen.iter().filter_map(Seen::reviewed))
        .collect();
    for (verb, group, resource, sub, namespace) in &used {
        let full = if sub.is_empty() {
            resource.clone()
        } else {
            format!("{resource}/{sub}")
        };
        let allowed = docs.iter().any(|d| {
            let scope_ok = match d.kind.as_str() {
                "Role" => {
                    d.metadata.get("namespace").and_then(Value::as_str) == Some(namespace.as_str())
                }
                _ => namespace.is_empty(),
            };
            scope_ok
                && d.rules.iter().any(|r| {
                    r.api_groups.iter().any(|g| g == group)
                        && r.resources.contains(&full)
                        && r.verbs.iter().any(|v| v == verb)
                })
        });
        assert!(
            allowed,
            "not allowed by deploy/rbac/chaos-cnpg-role.yaml: {verb} {group}/{full} in {namespace:?}"
        );
    }
    used
}

/// A list response: `items` at resource version `version`.
pub fn list(kind: &str, items: Vec<Value>, version: &str) -> Value {
    json!({"apiVersion": "v1", "kind": format!("{kind}List"),
           "metadata": {"resourceVersion": version}, "items": items})
}

/// A watch event of `object` (`ADDED`, `MODIFIED`, `DELETED`).
pub fn watch_event(kind: &str, object: &Value) -> Value {
    json!({"type": kind, "object": object})
}

/// Per-path watch feeds: the first watch on a path gets the feed's stream;
/// later ones (the watcher re-watching) stay open and silent.
#[derive(Default, Clone)]
pub struct Feeds {
    inner: Arc<Mutex<BTreeMap<String, Feed>>>,
}

enum Feed {
    /// Not watched yet.
    Waiting(mpsc::UnboundedReceiver<Value>),
    /// Watched: later watches get a silent stream kept open by this.
    Taken(Vec<mpsc::UnboundedSender<Value>>),
}

impl Feeds {
    /// A feed for watches on `path`; what is sent goes to the watch.
    pub fn add(&self, path: &str) -> mpsc::UnboundedSender<Value> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner
            .lock()
            .expect("feeds")
            .insert(path.to_string(), Feed::Waiting(rx));
        tx
    }

    /// The reply to a watch on `path`.
    pub fn reply(&self, path: &str) -> Reply {
        let mut feeds = self.inner.lock().expect("feeds");
        let feed = feeds
            .entry(path.to_string())
            .or_insert_with(|| Feed::Taken(Vec::new()));
        match std::mem::replace(feed, Feed::Taken(Vec::new())) {
            Feed::Waiting(rx) => Reply::Watch(rx),
            Feed::Taken(mut open) => {
                let (tx, rx) = mpsc::unbounded_channel();
                open.push(tx);
                *feed = Feed::Taken(open);
                Reply::Watch(rx)
            }
        }
    }
}
