//! Errors of the local target ([`LocalCluster`](crate::cluster::local::LocalCluster)).

use std::path::PathBuf;
use std::time::Duration;

/// The local cluster is not in a state the operation can work with, or a
/// part of it (its cgroups, filesystems, HAProxy, network rules) could not
/// be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// No node has this name.
    #[error("no node called {name}")]
    NoSuchNode {
        /// The name asked for.
        name: String,
    },

    /// The cluster has no nodes to ask.
    #[error("the cluster has no nodes")]
    NoNodes,

    /// No node holds Patroni's leader lock.
    #[error("the cluster has no primary (no leader lock held)")]
    NoPrimary,

    /// The cluster is not healthy yet: what Patroni reports.
    #[error("not healthy yet: {topology}")]
    NotHealthy {
        /// The topology as Patroni reports it.
        topology: String,
    },

    /// The leader does not see every replica streaming, or no synchronous one.
    #[error(
        "leader {leader}: {streaming}/{want} replicas streaming, {sync} synchronous, in recovery: {in_recovery}"
    )]
    Replication {
        /// The leader's name.
        leader: String,
        /// Replicas streaming from it.
        streaming: i64,
        /// Replicas expected.
        want: i64,
        /// Synchronous (or quorum) standbys among them.
        sync: i64,
        /// Whether the leader is, oddly, in recovery.
        in_recovery: bool,
    },

    /// A query sent to a node got no answer in time.
    #[error("no answer to {query} within {waited:?}")]
    NoAnswer {
        /// The query, e.g. `SELECT NOT pg_is_in_recovery()`.
        query: &'static str,
        /// How long it was awaited.
        waited: Duration,
    },

    /// A node's PostgreSQL is not running: its `postmaster.pid` is missing,
    /// unreadable or names no live process.
    #[error("PostgreSQL of {node} is not running ({} unreadable)", .pid_file.display())]
    PostgresDown {
        /// The node.
        node: String,
        /// The `postmaster.pid` read.
        pid_file: PathBuf,
    },

    /// A node's Patroni is not running.
    #[error("Patroni of {node} is not running")]
    PatroniDown {
        /// The node.
        node: String,
    },

    /// The cluster's etcd is not running.
    #[error("etcd is not running")]
    EtcdDown,

    /// HAProxy, the cluster's proxy, exited.
    #[error("HAProxy exited ({status})\n{log}")]
    ProxyExited {
        /// How it exited.
        status: String,
        /// The tail of its log.
        log: String,
    },

    /// HAProxy has no stats socket to read its state from: the cluster's
    /// directory is too deep for a Unix socket's path.
    #[error("the proxy has no stats socket (cluster directory too deep)")]
    NoStatsSocket,

    /// A cgroup hierarchy a fault needs is not mounted.
    #[error("no {hierarchy} hierarchy is mounted")]
    NoCgroup {
        /// The hierarchy, e.g. `cgroup2` or `cgroup v1 blkio`.
        hierarchy: &'static str,
    },

    /// A block device's `dev` file in sysfs does not hold `MAJ:MIN`.
    #[error("{} says {found:?}, not MAJ:MIN", .path.display())]
    DeviceNumber {
        /// The sysfs file.
        path: PathBuf,
        /// What it holds.
        found: String,
    },

    /// The loopback interface has a root qdisc of someone else's where a
    /// latency fault installs its own.
    #[error(
        "lo already has the root qdisc `{qdisc}`; a latency fault installs its own there \
         (is another run's latency fault in place?)"
    )]
    QdiscInUse {
        /// The qdisc found, as `tc qdisc show` prints it.
        qdisc: String,
    },

    /// A network group index that the cluster did not make.
    #[error("no network group {index}")]
    NoNetworkGroup {
        /// The index.
        index: usize,
    },

    /// More network degradations in one run than `tc` class numbers allow.
    #[error("too many degradations in one run ({count})")]
    TooManyDegradations {
        /// The degradation's number.
        count: u32,
    },

    /// An HTTP client for one of the cluster's services could not be made.
    #[error("cannot make an HTTP client for {service}: {source}")]
    HttpClient {
        /// The service, e.g. `etcd's gateway`.
        service: &'static str,
        /// reqwest's error (no TLS backend, …).
        #[source]
        source: reqwest::Error,
    },
}
