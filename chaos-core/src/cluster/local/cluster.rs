//! The local cluster: its nodes, its processes and the handle that owns them.
//!
//! A file per responsibility: booting (`builder.rs`), the processes and their
//! control (`processes.rs`), topology and health (`health.rs`), the
//! [`Target`](crate::cluster::Target) implementation (`target.rs`) and
//! repairs between runs (`repair.rs`). Patroni's REST API is spoken in
//! `../patroni.rs`, etcd's gateway in `../etcd.rs`.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, OnceLock};

use super::binaries::Binaries;
use super::boot::BootTimings;
use super::config::{PatroniTimings, SynchronousMode};
use super::disk::Disks;
use super::etcd::Etcd;
use super::netfilter::Net;
use super::patroni::{NodeApi, Patroni};
use super::process::{self, RunAs};
use super::proxy::Proxy;
use crate::error::LocalError;
use crate::{Error, Result};

mod builder;
mod health;
mod processes;
mod repair;
mod target;

pub use builder::LocalClusterBuilder;
pub(crate) use health::Nudged;

/// Addresses of one node.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Patroni member name (`node1`, …).
    pub name: String,
    /// Loopback address the node listens on.
    pub host: String,
    /// PostgreSQL port.
    pub pg_port: u16,
    /// Patroni REST API port.
    pub api_port: u16,
    dir: PathBuf,
    data: PathBuf,
}

impl NodeInfo {
    /// A DSN for this node alone.
    pub fn dsn(&self) -> String {
        format!(
            "postgresql://postgres@{}:{}/postgres?connect_timeout=2",
            self.host, self.pg_port
        )
    }

    /// The node's Patroni REST API base URL.
    pub fn api_url(&self) -> String {
        format!("http://{}:{}", self.host, self.api_port)
    }

    /// The node's PostgreSQL data directory (owned by the user PostgreSQL
    /// runs as; see [`LocalCluster::command`]). With
    /// [`LocalClusterBuilder::disk_faults`] it is `data-disk/data` below the
    /// node's directory, on the node's own filesystem.
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("patroni.yml")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("patroni.log")
    }
}

/// A running local cluster. Cloning shares it; the processes stop and the
/// directory is removed when the last clone is dropped or [`stop`](Self::stop)
/// is called (`CHAOS_KEEP=1` keeps them until removed by hand, and prints how).
/// A watchdog process cleans up too if this process dies without dropping it
/// (SIGKILL, `process::exit`, statics).
///
/// Clients reach the primary through [`rw_dsn`](Self::rw_dsn) (multi-host,
/// `target_session_attrs=read-write`), or, for single-host drivers, through
/// [`proxy_dsn`](Self::proxy_dsn): HAProxy on `127.0.0.10`, started with the
/// cluster when installed (see [`LocalClusterBuilder::proxy`]). Its changes
/// of route appear among the target's events as `proxy routes to` (with the
/// node) and `proxy routes nowhere`.
#[derive(Clone)]
pub struct LocalCluster {
    inner: Arc<Inner>,
}

impl fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCluster")
            .field("dir", &self.inner.dir)
            .field("nodes", &self.inner.nodes.len())
            .finish()
    }
}

struct Inner {
    dir: PathBuf,
    scope: String,
    binaries: Binaries,
    run_as: RunAs,
    timings: PatroniTimings,
    synchronous_mode: SynchronousMode,
    etcd_client: String,
    etcd_peer: String,
    /// etcd's gateway, for short requests.
    etcd: Etcd,
    nodes: Vec<NodeInfo>,
    /// The proxy, or why there is none.
    proxy: std::result::Result<Arc<Proxy>, &'static str>,
    children: Mutex<Children>,
    /// The nodes' REST APIs.
    patroni: Patroni,
    boot: OnceLock<BootTimings>,
    /// Per-node cgroups and the marking chain for network faults, or why
    /// there are none.
    net: std::result::Result<Net, String>,
    /// The nodes' own filesystems and blkio groups, with disk faults.
    disks: Option<Disks>,
}

struct Children {
    etcd: Option<Child>,
    patroni: Vec<Option<Child>>,
    proxy: Option<Child>,
    watchdog: Option<Child>,
    stopped: bool,
}

fn mkdir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))
}

/// The last `lines` lines of a file, or a note that it is missing.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            format!("==> {} <==\n{}\n", path.display(), all[start..].join("\n"))
        }
        Err(_) => format!("==> {} <== (missing)\n", path.display()),
    }
}

impl LocalCluster {
    /// A builder with the defaults (three nodes).
    pub fn builder() -> LocalClusterBuilder {
        LocalClusterBuilder::default()
    }

    /// Boots a default three-node cluster.
    ///
    /// # Errors
    /// As [`LocalClusterBuilder::start`].
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// The cluster's directory (configs, data, logs).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// etcd's client endpoint (`host:port`).
    pub fn etcd_endpoint(&self) -> &str {
        &self.inner.etcd_client
    }

    /// The cluster's etcd gateway.
    pub(crate) fn etcd(&self) -> &Etcd {
        &self.inner.etcd
    }

    /// The Patroni scope (cluster name).
    pub fn scope(&self) -> &str {
        &self.inner.scope
    }

    /// The Patroni timings in force.
    pub fn timings(&self) -> PatroniTimings {
        self.inner.timings
    }

    /// How commits wait for standbys (see
    /// [`LocalClusterBuilder::synchronous_mode`]).
    pub fn synchronous_mode(&self) -> SynchronousMode {
        self.inner.synchronous_mode
    }

    /// The programs the cluster runs.
    pub fn binaries(&self) -> &Binaries {
        &self.inner.binaries
    }

    /// The nodes' addresses.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.inner.nodes
    }

    /// The read-write endpoint: a multi-host DSN with
    /// `target_session_attrs=read-write`, so clients follow the primary.
    /// It carries no password (the local cluster trusts loopback).
    pub fn rw_dsn(&self) -> String {
        let hosts: Vec<String> = self
            .inner
            .nodes
            .iter()
            .map(|n| format!("{}:{}", n.host, n.pg_port))
            .collect();
        format!(
            "postgresql://postgres@{}/postgres?target_session_attrs=read-write&connect_timeout=2",
            hosts.join(",")
        )
    }

    /// The single-host DSN through the proxy, which always reaches the primary:
    /// `postgresql://postgres@127.0.0.10:<port>/postgres?connect_timeout=2`.
    /// After a failover, connections to the old primary are closed and new ones
    /// reach the new primary once HAProxy's health checks see it (within a few
    /// hundred milliseconds of Patroni's promotion). No password: the local
    /// cluster trusts loopback.
    ///
    /// # Errors
    /// [`Error::Config`] naming HAProxy when the cluster runs without a proxy
    /// (HAProxy not installed, or [`LocalClusterBuilder::proxy`]`(false)`).
    pub fn proxy_dsn(&self) -> Result<String> {
        self.proxy().map(|p| p.dsn())
    }

    fn proxy(&self) -> Result<&Arc<Proxy>> {
        self.inner.proxy.as_ref().map_err(|why| Error::Config {
            field: "proxy",
            expected: "a local cluster with HAProxy in front of it: install the Debian package \
                       `haproxy` (or set CHAOS_HAPROXY), or enable it with \
                       LocalClusterBuilder::proxy(true)",
            found: format!("a cluster started without a proxy ({why})"),
        })
    }

    /// The nodes the proxy routes new connections to now (normally the
    /// primary alone; none between the loss of a primary and the promotion of
    /// the next), read from HAProxy's stats socket.
    ///
    /// # Errors
    /// [`Error::Config`] when the cluster has no proxy (see
    /// [`proxy_dsn`](Self::proxy_dsn)); [`Error::Io`] when HAProxy does not
    /// answer.
    pub async fn proxy_routes(&self) -> Result<Vec<String>> {
        self.proxy()?.servers_up().await
    }

    /// A command that runs as the user the cluster's PostgreSQL runs as (the
    /// `postgres` user when this process is root, else this process's user),
    /// with PostgreSQL's programs first on `PATH` — for faults of a test's own
    /// that touch a node's files or call `pg_ctl`.
    ///
    /// ```no_run
    /// # fn demo(cluster: &chaos_core::cluster::local::LocalCluster) -> std::io::Result<()> {
    /// let node = &cluster.nodes()[0];
    /// let status = cluster
    ///     .command("pg_controldata")
    ///     .arg(node.data_dir())
    ///     .status()?;
    /// # Ok(()) }
    /// ```
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(program);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.inner.binaries.pg_bin.clone()];
        dirs.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(dirs) {
            cmd.env("PATH", joined);
        }
        if self.inner.run_as.switch {
            cmd.uid(self.inner.run_as.uid.as_raw())
                .gid(self.inner.run_as.gid.as_raw());
        }
        cmd
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.inner.nodes.iter().find(|n| n.name == name)
    }

    /// The REST API of node `name`.
    ///
    /// # Errors
    /// [`LocalError::NoSuchNode`] when the cluster has no such node.
    pub(crate) fn patroni_api(&self, name: &str) -> Result<NodeApi> {
        let node = self.node(name).ok_or_else(|| LocalError::NoSuchNode {
            name: name.to_string(),
        })?;
        Ok(self.inner.patroni.node(node.api_url()))
    }

    fn index_of(&self, name: &str) -> Result<usize> {
        self.inner
            .nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| {
                LocalError::NoSuchNode {
                    name: name.to_string(),
                }
                .into()
            })
    }

    /// With `CHAOS_KEEP=1`, says now on stderr where this cluster is and how
    /// to remove it, for a cluster that is never dropped (the test harness's
    /// shared one: its watchdog keeps it when the process exits, silently).
    /// Does nothing otherwise.
    pub(crate) fn announce_kept(&self) {
        if !process::keep_requested() {
            return;
        }
        let msg = format!(
            "CHAOS_KEEP=1: the local cluster at {} will be kept when these tests end \
             (processes left running); remove it with: {}",
            self.dir().display(),
            process::remove_command(self.dir())
        );
        tracing::warn!("{msg}");
        let _ = writeln!(std::io::stderr().lock(), "{msg}");
    }

    /// How the boot went (set once [`LocalClusterBuilder::start`] returned it).
    pub fn boot_timings(&self) -> Option<&BootTimings> {
        self.inner.boot.get()
    }

    /// The tails of every log of the cluster.
    pub(crate) fn logs_tail(&self) -> String {
        self.inner.logs_tail()
    }

    /// The nodes' own filesystems and blkio groups, when the cluster was built
    /// with [`LocalClusterBuilder::disk_faults`].
    pub(crate) fn disks(&self) -> Option<&Disks> {
        self.inner.disks.as_ref()
    }

    /// The cluster's network-fault machinery, or why it has none.
    pub(crate) fn net(&self) -> std::result::Result<&Net, &str> {
        self.inner.net.as_ref().map_err(String::as_str)
    }

    /// Stops every process, waits until all are gone, and removes the directory
    /// (unless `CHAOS_KEEP=1`). Dropping the last clone does the same.
    pub fn stop(self) {
        self.inner.teardown();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.teardown();
    }
}
