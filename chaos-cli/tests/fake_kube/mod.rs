//! A stand-in for the Kubernetes API server, over plain HTTP on 127.0.0.1,
//! for `chaos run --target cnpg` as a user runs it: it answers from the
//! fixtures in `../shared/reference/fixtures`, records every request (method,
//! path, User-Agent), and comes with a kubeconfig (context `fake`) that
//! points at it. Plus a listener standing in for the database, which counts
//! the connections made to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// The namespace and Cluster the fake serves.
pub const NS: &str = "pg-chaos";
const CLUSTER_PATH: &str =
    "/apis/postgresql.cnpg.io/v1/namespaces/pg-chaos/clusters/cluster-example";

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The User-Agent header, if any.
    pub user_agent: Option<String>,
}

impl Seen {
    /// A question about the caller's own rights (SelfSubjectAccessReview,
    /// SelfSubjectReview): a POST that changes nothing.
    pub fn is_review(&self) -> bool {
        self.method == "POST"
            && (self.path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
                || self.path == "/apis/authentication.k8s.io/v1/selfsubjectreviews")
    }
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../shared/reference/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

/// The fake API server.
pub struct FakeKube {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    dir: PathBuf,
}

/// What the fake answers beyond the Cluster and the namespace.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    /// The namespace carries `chaos.dev/allow=true`.
    pub namespace_allows: bool,
    /// SelfSubjectAccessReviews for this verb and resource say no.
    pub deny: Option<(&'static str, &'static str)>,
}

impl FakeKube {
    /// Starts serving on a free port.
    pub fn start(name: &str, answers: Answers) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                let answers = answers.clone();
                std::thread::spawn(move || serve(stream, &log, &answers));
            }
        });
        let dir =
            std::env::temp_dir().join(format!("chaos-cli-fake-kube-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        FakeKube { port, seen, dir }
    }

    /// A kubeconfig whose context `fake` is this server.
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.dir.join("config");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    \
                 server: http://127.0.0.1:{}\ncontexts:\n- name: fake\n  context:\n    \
                 cluster: fake\n    user: fake\nusers:\n- name: fake\n  user: {{}}\n\
                 current-context: fake\n",
                self.port
            ),
        )
        .expect("kubeconfig");
        path
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>, answers: &Answers) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let path = target.split('?').next().unwrap_or_default().to_string();
    let mut length = 0usize;
    let mut user_agent = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "user-agent" => user_agent = Some(value.to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let seen = Seen {
        method,
        path,
        user_agent,
    };
    let (code, answer) = answer(&seen, &body, answers);
    log.lock().expect("log").push(seen);
    let text = answer.to_string();
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "not found", "reason": "NotFound", "code": 404}),
    )
}

fn answer(s: &Seen, body: &Value, answers: &Answers) -> (u16, Value) {
    match (s.method.as_str(), s.path.as_str()) {
        ("GET", CLUSTER_PATH) => (200, fixture("cnpg_cluster_01_healthy.json")),
        ("GET", "/api/v1/namespaces/pg-chaos") => {
            let labels = if answers.namespace_allows {
                json!({"chaos.dev/allow": "true"})
            } else {
                json!({})
            };
            (
                200,
                json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": NS, "labels": labels}}),
            )
        }
        ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") => {
            let attrs = &body["spec"]["resourceAttributes"];
            let denied = answers.deny.is_some_and(|(verb, resource)| {
                attrs["verb"] == verb && attrs["resource"] == resource
            });
            let mut review = body.clone();
            review["status"] = json!({"allowed": !denied});
            (201, review)
        }
        ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews") => (
            201,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                   "metadata": {}, "status": {"userInfo": {"username": "jane"}}}),
        ),
        _ => not_found(),
    }
}

/// A listener standing in for the database: counts the connections made to
/// it, and closes each at once.
pub struct Dialled {
    port: u16,
    count: Arc<AtomicUsize>,
}

impl Dialled {
    /// Starts listening on a free port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = listener.local_addr().expect("address").port();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                c.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Dialled { port, count }
    }

    /// A DSN to it (with a password that must never be shown).
    pub fn dsn(&self) -> String {
        format!(
            "postgresql://app:pw-dialled-123@127.0.0.1:{}/app?connect_timeout=2",
            self.port
        )
    }

    /// How many connections were made.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// Whether `dir` holds no file.
pub fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}
