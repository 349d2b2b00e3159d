//! The error type of the crate.
//!
//! [`Error`] is what every fallible function returns. Errors of one area of
//! the crate — the local target, the CNPG target, the external target, the
//! faults, the experiment's own machinery — are enums of their own
//! ([`LocalError`], `CnpgError` (feature `cnpg`), [`ExternalError`], [`FaultError`],
//! [`ExperimentError`]) that [`Error`] wraps, so that a caller can match on
//! the area first (`Error::Local(_)`) and on the case within it second
//! (`Error::Local(LocalError::NoSuchNode { .. })`). Errors any area can
//! meet (I/O, PostgreSQL, timeouts, commands, JSON) are variants of [`Error`]
//! itself.

use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "cnpg")]
mod cnpg;
mod experiment;
mod external;
mod fault;
mod local;
#[cfg(test)]
mod tests;

#[cfg(feature = "cnpg")]
pub use cnpg::CnpgError;
pub use experiment::ExperimentError;
pub use external::ExternalError;
pub use fault::FaultError;
pub use local::LocalError;

/// Result alias used throughout `chaos-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while setting up, faulting or verifying a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A program the local target needs is not installed.
    #[error("{program} not found ({searched}); {install}, or set {env_var}")]
    BinaryNotFound {
        /// The program looked for, e.g. `patroni`.
        program: &'static str,
        /// Where it was looked for, and what was found instead.
        searched: String,
        /// The package that provides it (Debian's, or PyPI's for Patroni).
        package: &'static str,
        /// How to install it, e.g. "install the Debian package `etcd-server`".
        install: &'static str,
        /// The environment variable that overrides the search.
        env_var: &'static str,
    },

    /// A configuration value is invalid.
    #[error("invalid configuration for `{field}`: expected {expected}, found {found:?}")]
    Config {
        /// The setting that is wrong.
        field: &'static str,
        /// What a valid value looks like.
        expected: &'static str,
        /// The value that was given.
        found: String,
    },

    /// A file given as input (a report, a set of runs) is not what was
    /// expected.
    #[error("{}: {reason}; expected {expected}", .path.display())]
    BadInput {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
        /// What it should be.
        expected: &'static str,
    },

    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A process of the local cluster could not be started or signalled.
    #[error("{context}: {source}")]
    Process {
        /// What was being done.
        context: String,
        /// The underlying errno.
        #[source]
        source: nix::Error,
    },

    /// Waiting for a condition took longer than allowed.
    #[error("timed out after {waited:?} waiting for {what}{}", logs_suffix(.logs))]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        waited: Duration,
        /// The tail of the logs that explain why, if any.
        logs: String,
    },

    /// A PostgreSQL client operation failed.
    #[error("{context}: {source}{}", causes(.source))]
    Postgres {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// Patroni's REST API could not be read.
    #[error("Patroni REST API at {url}: {source}")]
    Patroni {
        /// The URL that was requested.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// The local target (a [`LocalCluster`](crate::cluster::local::LocalCluster))
    /// is not in a state the operation can work with, or could not be built.
    #[error(transparent)]
    Local(#[from] LocalError),

    /// The CNPG target is not in a state the operation can work with.
    #[cfg(feature = "cnpg")]
    #[error(transparent)]
    Cnpg(#[from] CnpgError),

    /// The external target's nodes did not answer.
    #[error(transparent)]
    External(#[from] ExternalError),

    /// A fault cannot be injected or healed on the cluster as it is.
    #[error(transparent)]
    Fault(#[from] FaultError),

    /// The experiment's own machinery was misused or broke (a handle healed
    /// twice, a runtime that cannot be built, no report).
    #[error(transparent)]
    Experiment(#[from] ExperimentError),

    /// A table named like the probe's exists with other columns: waiting will
    /// not change it.
    #[error(
        "a table `{table}` of another shape exists in this database ({found}); the probe \
         needs ({needed}): drop or rename that table, or point the probe at another database"
    )]
    ProbeTableShape {
        /// The table's name (`chaos_probe`).
        table: &'static str,
        /// Its columns as found, e.g. `id integer`.
        found: String,
        /// The columns the probe needs.
        needed: String,
    },

    /// A JSON document (a report, a set of runs) could not be parsed.
    #[error("parsing {what}: {source}")]
    JsonRead {
        /// What was read, e.g. the file's path.
        what: String,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },

    /// A value could not be serialised as JSON.
    #[error("serialising {what} as JSON: {source}")]
    JsonWrite {
        /// What was written, e.g. `the report` or a file's path.
        what: String,
        /// The serialiser's error.
        #[source]
        source: serde_json::Error,
    },

    /// A JUnit XML report could not be serialised.
    #[error("serialising the JUnit report {what}: {source}")]
    Junit {
        /// The suite whose XML it is.
        what: String,
        /// quick-junit's error.
        #[source]
        source: quick_junit::SerializeError,
    },

    /// A task of the library's own (spawned on the runtime) failed or was
    /// cancelled before it finished.
    #[error("{what} failed: {source}")]
    Task {
        /// What the task was doing, e.g. `the cluster start-up task`.
        what: &'static str,
        /// Tokio's error: a panic or a cancellation.
        #[source]
        source: tokio::task::JoinError,
    },

    /// Code run on a thread of the library's own, or a scenario's body,
    /// panicked.
    #[error("{what} panicked: {message}")]
    Panicked {
        /// What was running, e.g. `staging the data directory`.
        what: String,
        /// The panic's message.
        message: String,
    },

    /// The target cannot do this fault.
    #[error(
        "the fault `{fault}` is not available on the `{target}` target; it runs on: {supported_by}"
    )]
    Unsupported {
        /// The fault, e.g. `freeze-primary`.
        fault: String,
        /// The target's kind.
        target: String,
        /// The targets that can do it, and how.
        supported_by: String,
    },

    /// A fault or heal command exited with an error.
    #[error("the command `{command}` failed ({status}){}", stderr_suffix(.stderr))]
    Command {
        /// The command.
        command: String,
        /// How it exited.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },

    /// A report could not be written.
    #[error(
        "could not write the report {path}: {source}; set CHAOS_REPORT_DIR to a writable directory"
    )]
    ReportWrite {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A fault needs privileges or kernel features this process does not have.
    #[error("{fault} needs {needs}, but here: {found}; {how}")]
    Privilege {
        /// The fault, e.g. `partition-network`.
        fault: String,
        /// What it needs.
        needs: &'static str,
        /// What is missing here.
        found: String,
        /// How to run it.
        how: &'static str,
    },

    /// The kernel lacks a feature a fault needs (e.g. the netem qdisc).
    #[error("{fault} needs the kernel feature {feature}, which this kernel lacks ({found}); {how}")]
    KernelFeature {
        /// The fault, e.g. `primary-latency`.
        fault: String,
        /// The feature, e.g. `netem (sch_netem)`.
        feature: &'static str,
        /// What probing for it found.
        found: String,
        /// What to do instead.
        how: &'static str,
    },

    /// A Kubernetes API request failed (CNPG target).
    #[cfg(feature = "cnpg")]
    #[error("Kubernetes API: {context}: {}", kube_summary(.source))]
    Kube {
        /// What was being done, e.g. `deleting pod pg-chaos/cluster-example-1`.
        context: String,
        /// The underlying error (boxed: it is large).
        #[source]
        source: Box<kube::Error>,
    },

    /// The CNPG target refused to create, patch or delete anything in a
    /// Kubernetes context/namespace that was not allowed for chaos.
    #[cfg(feature = "cnpg")]
    #[error(
        "refusing to {action} in namespace `{namespace}` of kube context `{context}`: it is not \
         allowed for chaos ({why}). Allow it in one of three ways: set the environment variable \
         CHAOS_ALLOW={context}/{namespace}; in code, CnpgCluster::builder(..).allow(\"{context}/{namespace}\"); \
         or label the namespace: kubectl --context {context} label namespace {namespace} chaos.dev/allow=true"
    )]
    NotAllowed {
        /// What would have been done, e.g. `delete pods/cluster-example-1`.
        action: String,
        /// The kube context.
        context: String,
        /// The namespace.
        namespace: String,
        /// Why it is not allowed (no CHAOS_ALLOW entry, no label, label unreadable).
        why: String,
    },

    /// An object the CNPG target needs does not exist (the API answered 404).
    #[cfg(feature = "cnpg")]
    #[error("no {kind} named {name} in namespace {namespace} ({hint})")]
    KubeNotFound {
        /// Its kind, e.g. `Cluster`.
        kind: String,
        /// The name looked for.
        name: String,
        /// The namespace looked in.
        namespace: String,
        /// How to see what is there, or what to set instead.
        hint: String,
        /// The API's answer.
        #[source]
        source: Box<kube::Error>,
    },

    /// The Kubernetes API does not let the caller do what the CNPG target
    /// needs: a `SelfSubjectAccessReview` (what `kubectl auth can-i` asks)
    /// said no when the target was built, or a request was answered 401/403.
    #[cfg(feature = "cnpg")]
    #[error(transparent)]
    KubeForbidden(Box<Forbidden>),

    /// A Chaos Mesh experiment the CNPG target created could not be injected.
    #[cfg(feature = "cnpg")]
    #[error("Chaos Mesh could not inject {object}: {message}; {how}")]
    ChaosInjection {
        /// The experiment, e.g. `IOChaos pg-chaos/chaos-io-…`.
        object: String,
        /// What Chaos Mesh reported.
        message: String,
        /// What to do about it.
        how: String,
    },

    /// A directory that should be private to the library is unusable.
    #[error("work directory {path}: {reason}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// What the Kubernetes API refused, to whom, and what to do about it
/// ([`Error::KubeForbidden`]).
#[cfg(feature = "cnpg")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error(
    "the Kubernetes API does not allow {who} to {what} in namespace `{namespace}`{}; {how}",
    message_suffix(.message)
)]
pub struct Forbidden {
    /// Who asked: the user the API server knows, else the kube context.
    pub who: String,
    /// What was refused, as verb and resource, e.g. `delete pods` or
    /// `patch clusters.postgresql.cnpg.io/status`.
    pub what: String,
    /// The namespace (empty for a cluster-wide resource).
    pub namespace: String,
    /// The API server's own words, if any.
    pub message: String,
    /// What to do: the Role of `deploy/rbac/chaos-cnpg-role.yaml` that
    /// grants it, and how to bind it.
    pub how: String,
    /// The refused request's error (none when a review said no).
    #[source]
    pub source: Option<kube::Error>,
}

/// An error's message followed by its causes.
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    format!("{e}{}", causes(e))
}

/// `: cause: cause…` of an error's sources, which tokio-postgres keeps out of
/// its own message ("db error", "error connecting to server").
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// A Kubernetes API error in words: the API's answer as `403 Forbidden:
/// message` (kube's own text adds the whole `Status` in Rust's debug
/// form), any other error with its causes.
#[cfg(feature = "cnpg")]
pub(crate) fn kube_summary(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let mut out = s.code.to_string();
            if !s.reason.is_empty() {
                out.push(' ');
                out.push_str(&s.reason);
            }
            if !s.message.is_empty() {
                out.push_str(": ");
                out.push_str(&s.message);
            }
            out
        }
        other => describe(other),
    }
}

#[cfg(feature = "cnpg")]
fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

fn logs_suffix(logs: &str) -> String {
    if logs.is_empty() {
        String::new()
    } else {
        format!("\n--- relevant logs (tail) ---\n{logs}")
    }
}

/// A PostgreSQL error raised in a test's own SQL, e.g. with `?` in a body.
impl From<tokio_postgres::Error> for Error {
    fn from(source: tokio_postgres::Error) -> Self {
        Error::Postgres {
            context: "PostgreSQL".into(),
            source,
        }
    }
}

impl Error {
    /// An [`Error::Io`]: what was being done, and the I/O error (for faults of
    /// a test's own).
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn process(context: impl Into<String>, source: nix::Error) -> Self {
        Error::Process {
            context: context.into(),
            source,
        }
    }

    /// An [`Error::JsonRead`]: what was parsed, and the parser's error.
    pub(crate) fn json_read(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::JsonRead {
            what: what.into(),
            source,
        }
    }

    /// An [`Error::JsonWrite`]: what was serialised, and the serialiser's error.
    pub(crate) fn json_write(what: impl Into<String>, source: serde_json::Error) -> Self {
        Error::JsonWrite {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn pg(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        Error::Postgres {
            context: context.into(),
            source,
        }
    }
}
