//! Booting, inspecting and tearing down the local cluster.

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use nix::sys::signal::Signal;

use super::binaries::{self, Binaries, Overrides};
use super::boot::{self, BootTimings};
use super::config::{NodeConfig, PG_HBA, PatroniTimings, SynchronousMode};
use super::disk::{self, Disks};
use super::etcd::{self, Etcd};
use super::leader_watch;
use super::log_tail;
use super::netfilter::{self, Group, Net};
use super::patroni::{ClusterInfo, ConfigPatch, MemberRole, NodeApi, Patroni};
use super::process::{self, RunAs};
use super::proxy::{self, Backend, Proxy};
use super::template::{self, StageAt, TemplateSource};
use crate::cluster::{Member, Role, Target, Topology, topology};
use crate::timeline::Event;
use crate::{Error, Result};

mod repair;

/// Builder for a [`LocalCluster`]. `Default` boots three nodes, with HAProxy
/// in front of them when it is installed (see [`proxy`](Self::proxy)).
#[derive(Debug, Clone)]
#[must_use]
pub struct LocalClusterBuilder {
    nodes: usize,
    work_dir: Option<PathBuf>,
    ready_timeout: Duration,
    timings: Option<PatroniTimings>,
    synchronous_mode: SynchronousMode,
    parameters: Vec<(String, String)>,
    overrides: Overrides,
    proxy: Option<bool>,
    template_cache: bool,
    cache_dir: Option<PathBuf>,
    disk_faults: bool,
    separate_wal: bool,
}

impl Default for LocalClusterBuilder {
    fn default() -> Self {
        LocalClusterBuilder {
            nodes: 3,
            work_dir: None,
            ready_timeout: Duration::from_secs(90),
            timings: None,
            synchronous_mode: SynchronousMode::default(),
            parameters: Vec::new(),
            overrides: Overrides::default(),
            proxy: None,
            template_cache: true,
            cache_dir: None,
            disk_faults: false,
            separate_wal: false,
        }
    }
}

impl LocalClusterBuilder {
    /// Number of PostgreSQL nodes (2 to 9; default 3).
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes;
        self
    }

    /// Directory under which cluster directories are created (default
    /// `$CHAOS_WORK_DIR`, else `<tmp>/chaos-local-<uid>`).
    pub fn work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = Some(dir.into());
        self
    }

    /// How long [`start`](Self::start) waits for a healthy cluster (default 90 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Overrides Patroni's timings (default: chosen from the installed version).
    pub fn timings(mut self, timings: PatroniTimings) -> Self {
        self.timings = Some(timings);
        self
    }

    /// How commits wait for standbys (default [`SynchronousMode::Strict`]).
    /// With [`SynchronousMode::Off`] the cluster replicates asynchronously,
    /// and boot and [`LocalCluster::wait_healthy`] wait for streaming
    /// replicas only, not for a synchronous standby.
    pub fn synchronous_mode(mut self, mode: SynchronousMode) -> Self {
        self.synchronous_mode = mode;
        self
    }

    /// Adds a PostgreSQL parameter, e.g. `("checkpoint_timeout", "1min")`.
    pub fn parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((name.into(), value.into()));
        self
    }

    /// PostgreSQL's bin directory (default: `$CHAOS_PG_BIN`, else the newest
    /// `/usr/lib/postgresql/<major>/bin`, else `pg_config --bindir`).
    pub fn pg_bin(mut self, dir: impl Into<PathBuf>) -> Self {
        self.overrides.pg_bin = Some(dir.into());
        self
    }

    /// The `patroni` executable (default: `$CHAOS_PATRONI`, else `PATH`).
    pub fn patroni(mut self, path: impl Into<PathBuf>) -> Self {
        self.overrides.patroni = Some(path.into());
        self
    }

    /// The `etcd` executable (default: `$CHAOS_ETCD`, else `PATH`).
    pub fn etcd(mut self, path: impl Into<PathBuf>) -> Self {
        self.overrides.etcd = Some(path.into());
        self
    }

    /// The `haproxy` executable (default: `$CHAOS_HAPROXY`, else `PATH`,
    /// `/usr/bin`, `/usr/sbin`).
    pub fn haproxy(mut self, path: impl Into<PathBuf>) -> Self {
        self.overrides.haproxy = Some(path.into());
        self
    }

    /// Whether to put HAProxy in front of the cluster: one single-host address,
    /// [`LocalCluster::proxy_dsn`], that always reaches the primary — what
    /// production clusters offer to drivers without multi-host DSNs (sqlx).
    /// HAProxy health-checks each node's Patroni REST API (`GET /primary`,
    /// 200 only on the leader) every 200 ms, forwards TCP to that node's
    /// PostgreSQL port, and closes the connections to a node it marks down.
    ///
    /// Default: on when a `haproxy` executable is found (Debian package
    /// `haproxy`), off otherwise. `proxy(true)` makes a missing HAProxy an
    /// error; `proxy(false)` never starts it.
    pub fn proxy(mut self, enabled: bool) -> Self {
        self.proxy = Some(enabled);
        self
    }

    /// Whether to keep the initialised data directory between runs (default on):
    /// a warm boot copies it instead of running `initdb`. It lives in
    /// `$CHAOS_CACHE_DIR`, else `$XDG_CACHE_HOME/chaos`, else `~/.cache/chaos`,
    /// under a name made of the PostgreSQL version and the `initdb` options,
    /// so a new PostgreSQL makes a new one. `CHAOS_NO_CACHE=1` turns it off too.
    pub fn template_cache(mut self, enabled: bool) -> Self {
        self.template_cache = enabled;
        self
    }

    /// Where the template cache lives (instead of `$CHAOS_CACHE_DIR` or the
    /// user's cache directory).
    pub fn template_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Whether each node's data directory lives on an ext4 filesystem of its
    /// own, on a loop device over a sparse 1 GiB file in the cluster
    /// directory, with the node's processes in a blkio cgroup: what
    /// [`ThrottleDisk`](crate::fault::ThrottleDisk) throttles (default off; it
    /// adds a few tens of milliseconds to the boot). Needs root, `losetup` and
    /// `mkfs.ext4` (Debian packages `util-linux`, `e2fsprogs`) and the cgroup
    /// v1 blkio controller; [`start`](Self::start) fails with
    /// [`Error::Privilege`] otherwise. The filesystems are unmounted and the
    /// loop devices detached at teardown (and by the watchdog and later
    /// sweeps after a killed run).
    pub fn disk_faults(mut self, enabled: bool) -> Self {
        self.disk_faults = enabled;
        self
    }

    /// Whether each node's WAL (`pg_wal`) lives on a second loop-device
    /// filesystem of its own, like CNPG's `walStorage`; `pg_wal` is then a
    /// symbolic link to it, and replicas re-created later by `pg_basebackup`
    /// get `--waldir`. Implies [`disk_faults`](Self::disk_faults); lets
    /// [`ThrottleDisk::wal_only`](crate::fault::ThrottleDisk::wal_only)
    /// throttle the WAL alone (default off).
    pub fn separate_wal(mut self, enabled: bool) -> Self {
        self.separate_wal = enabled;
        self
    }

    /// Boots the cluster and waits until it has a leader, every replica
    /// streams, Patroni has chosen a synchronous standby and a synchronous
    /// commit on the leader was acknowledged (with [`SynchronousMode::Off`]:
    /// every replica streams and a commit was acknowledged), and, with a proxy, until the
    /// proxy routes to the leader. [`LocalCluster::boot_timings`] tells where
    /// the time went. Clusters left behind by killed runs are swept first.
    ///
    /// # Errors
    /// [`Error::BinaryNotFound`] when PostgreSQL, Patroni or etcd is missing
    /// (or HAProxy, with [`proxy(true)`](Self::proxy)),
    /// [`Error::Privilege`] when [`disk_faults`](Self::disk_faults) or
    /// [`separate_wal`](Self::separate_wal) is asked for without root, loop
    /// devices, `mkfs.ext4` or the blkio controller,
    /// [`Error::Config`] for an invalid node count, [`Error::WorkDir`] when the
    /// work directory cannot be created or written in, [`Error::Timeout`] (with
    /// log tails) when the cluster does not become healthy in time or the proxy
    /// does not route to its leader, [`Error::ClusterState`] when HAProxy exits
    /// (with its log's tail).
    pub async fn start(self) -> Result<LocalCluster> {
        if !(2..=9).contains(&self.nodes) {
            return Err(Error::Config {
                field: "nodes",
                expected: "between 2 and 9 nodes",
                found: self.nodes.to_string(),
            });
        }
        let binaries = Binaries::discover_inner(&self.overrides, self.proxy != Some(false))?;
        if binaries.patroni_version < self.synchronous_mode.min_patroni() {
            let (a, b, c) = binaries.patroni_version;
            return Err(Error::Config {
                field: "synchronous_mode",
                expected: "Patroni 4.0 or later for quorum commit (`ci/install-deps.sh` installs \
                           4.1.5: pass /opt/chaos/patroni-4.1.5/bin/patroni to \
                           LocalClusterBuilder::patroni, --patroni or CHAOS_PATRONI)",
                found: format!("Patroni {a}.{b}.{c} at {}", binaries.patroni.display()),
            });
        }
        let proxy = match (self.proxy, &binaries.haproxy) {
            (Some(false), _) => {
                ProxyChoice::Off("it was disabled with LocalClusterBuilder::proxy(false)")
            }
            (_, Some(_)) => ProxyChoice::On,
            (Some(true), None) => {
                return Err(Error::BinaryNotFound {
                    program: "haproxy",
                    searched: binaries::SEARCHED.into(),
                    package: "haproxy",
                    install: "install the Debian package `haproxy`",
                    env_var: "CHAOS_HAPROXY",
                });
            }
            (None, None) => ProxyChoice::Off("no haproxy was found on PATH, /usr/bin or /usr/sbin"),
        };
        let disks = match (self.disk_faults, self.separate_wal) {
            (_, true) => DiskChoice::DataAndWal,
            (true, false) => DiskChoice::Data,
            (false, false) => DiskChoice::Off,
        };
        if disks != DiskChoice::Off
            && let Some(why) = disk::unavailable()
        {
            return Err(Error::Privilege {
                fault: "LocalClusterBuilder::disk_faults (loop-device filesystems per node)".into(),
                needs: "root, losetup and mkfs.ext4 (Debian packages util-linux, e2fsprogs), \
                        loop devices and the cgroup v1 blkio controller",
                found: why,
                how: "run as root (e.g. `sudo -E cargo test`) on a host with cgroup v1 blkio \
                      mounted (/sys/fs/cgroup/blkio), or build the cluster without disk_faults",
            });
        }
        let run_as = RunAs::detect()?;
        let root = self
            .work_dir
            .or_else(|| {
                std::env::var_os("CHAOS_WORK_DIR")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(default_work_dir);
        let started = Instant::now();
        let cache = match self.cache_dir {
            Some(dir) if self.template_cache => Some(dir),
            _ => self.template_cache.then(template::cache_root).flatten(),
        };
        let (cluster, staging) = tokio::task::spawn_blocking({
            let timings = self
                .timings
                .unwrap_or_else(|| PatroniTimings::for_version(binaries.patroni_version));
            let nodes = self.nodes;
            let parameters = self.parameters;
            let synchronous_mode = self.synchronous_mode;
            move || {
                Inner::create(
                    root,
                    binaries,
                    run_as,
                    timings,
                    synchronous_mode,
                    nodes,
                    &parameters,
                    proxy,
                    cache,
                    disks,
                )
            }
        })
        .await
        .map_err(|e| Error::ClusterState(format!("cluster start-up task failed: {e}")))??;
        let cluster = LocalCluster {
            inner: Arc::new(cluster),
        };
        cluster.inner.wait_etcd(self.ready_timeout).await?;
        let etcd_ready = started.elapsed();
        for i in 0..cluster.inner.nodes.len() {
            cluster.inner.start_node(i)?;
        }
        cluster.inner.start_proxy()?;
        let staging = tokio::task::spawn_blocking(move || {
            staging
                .join()
                .map_err(|_| Error::ClusterState("staging the data directory panicked".into()))?
        });
        let mut timings =
            boot::wait_booted(&cluster, started, etcd_ready, staging, self.ready_timeout).await?;
        template::close(
            &cluster.inner.dir,
            cluster.inner.nodes.iter().map(|n| n.data.as_path()),
        );
        cluster
            .wait_proxy_routes_to_primary(self.ready_timeout.saturating_sub(started.elapsed()))
            .await?;
        timings.total = started.elapsed();
        tracing::info!(total = ?timings.total, template = ?timings.template, "local cluster booted");
        let _ = cluster.inner.boot.set(timings);
        tracing::info!(
            dir = %cluster.dir().display(),
            rw_dsn = %cluster.rw_dsn(),
            proxy_dsn = cluster.proxy_dsn().ok(),
            "local cluster healthy"
        );
        Ok(cluster)
    }
}

/// The thread staging the nodes' first data directories.
type Staging = std::thread::JoinHandle<Result<(TemplateSource, Instant)>>;

/// Whether the nodes get filesystems of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DiskChoice {
    Off,
    Data,
    DataAndWal,
}

/// Whether the cluster gets a proxy, and if not, why not.
#[derive(Debug, Clone, Copy)]
enum ProxyChoice {
    On,
    Off(&'static str),
}

/// What [`LocalCluster::nudge_for_sync_standby`] did last.
#[derive(Debug, Default)]
pub(crate) struct Nudged {
    /// Running standbys at the last nudge.
    running: usize,
    /// When it was.
    at: Option<Instant>,
}

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

/// Reserves `n` distinct free TCP ports (held open until all are chosen).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("0.0.0.0:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io("reserving free ports", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io("reading reserved ports", e))
}

/// The default work directory, `<tmp>/chaos-local-<uid>`: one per user, so that
/// a run as root does not lock other users out.
fn default_work_dir() -> PathBuf {
    std::env::temp_dir().join(format!("chaos-local-{}", nix::unistd::getuid()))
}

/// An [`Error::WorkDir`] for `path`, telling how to choose another directory.
fn work_dir_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::WorkDir {
        path: path.to_path_buf(),
        reason: format!(
            "{what}: {e}; set CHAOS_WORK_DIR (or LocalClusterBuilder::work_dir) to a writable directory"
        ),
    }
}

/// Lets the run-as user traverse `path` (adds `g+rx,o+rx`; best effort).
fn let_others_in(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o055 != 0o055 {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o055));
        }
    }
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

impl Inner {
    /// Creates the cluster directory, starts staging the nodes' data
    /// directories (returned: it runs while Patroni starts), etcd and Patroni.
    #[allow(clippy::too_many_arguments)]
    fn create(
        root: PathBuf,
        binaries: Binaries,
        run_as: RunAs,
        timings: PatroniTimings,
        synchronous_mode: SynchronousMode,
        n: usize,
        parameters: &[(String, String)],
        proxy: ProxyChoice,
        cache: Option<PathBuf>,
        disk_choice: DiskChoice,
    ) -> Result<(Inner, Staging)> {
        fs::create_dir_all(&root).map_err(|e| work_dir_error(&root, "cannot create it", e))?;
        process::sweep(&root);

        let run_id = crate::run_id::new_run_id();
        let dir = process::create_run_dir(&root, &run_id)
            .map_err(|e| work_dir_error(&root, "cannot create a cluster directory in it", e))?;
        if run_as.switch {
            let_others_in(&root);
            let_others_in(&dir);
        }
        // Once it runs, the watchdog removes the directory if we fail.
        let watchdog = process::spawn_watchdog(&dir).inspect_err(|_| {
            let _ = fs::remove_dir_all(&dir);
        })?;

        let ports = free_ports(3 + 2 * n)?;
        let etcd_client = format!("127.0.0.1:{}", ports[0]);
        let etcd_peer = format!("127.0.0.1:{}", ports[1]);
        let nodes: Vec<NodeInfo> = (0..n)
            .map(|i| {
                let node_dir = dir.join(format!("node{}", i + 1));
                NodeInfo {
                    name: format!("node{}", i + 1),
                    host: format!("127.0.0.{}", 11 + i),
                    pg_port: ports[2 + 2 * i],
                    api_port: ports[3 + 2 * i],
                    data: match disk_choice {
                        DiskChoice::Off => node_dir.join("data"),
                        _ => disk::data_dir(&node_dir),
                    },
                    dir: node_dir,
                }
            })
            .collect();
        let proxy = match proxy {
            ProxyChoice::On => Ok(Arc::new(Proxy::new(&dir, ports[2 + 2 * n]))),
            ProxyChoice::Off(why) => Err(why),
        };
        let scope = format!("chaos-{run_id}");
        let net = match netfilter::unavailable() {
            Some(why) => Err(why),
            None => {
                let mut groups: Vec<Group> = nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| Group {
                        name: n.name.clone(),
                        index: i,
                        host: n.host.clone(),
                        ports: vec![n.pg_port, n.api_port],
                    })
                    .collect();
                groups.push(Group {
                    name: "etcd".into(),
                    index: netfilter::DCS,
                    host: "127.0.0.1".into(),
                    ports: vec![ports[0]],
                });
                Net::setup(&run_id, groups).map_err(|e| {
                    tracing::warn!(error = %e, "network faults unavailable");
                    netfilter::remove_run(&run_id);
                    e.to_string()
                })
            }
        };
        let disks = match disk_choice {
            DiskChoice::Off => None,
            _ => {
                let named: Vec<(String, PathBuf)> = nodes
                    .iter()
                    .map(|n| (n.name.clone(), n.dir.clone()))
                    .collect();
                let made = Disks::setup(
                    &run_id,
                    &dir,
                    &named,
                    disk_choice == DiskChoice::DataAndWal,
                    run_as,
                );
                match made {
                    Ok(d) => Some(d),
                    Err(e) => {
                        if let Ok(net) = &net {
                            net.teardown();
                        }
                        return Err(e);
                    }
                }
            }
        };
        let patroni = Patroni::new()?;
        let etcd = Etcd::new(&etcd_client).map_err(|e| {
            Error::ClusterState(format!(
                "cannot make an HTTP client for etcd's gateway: {e}"
            ))
        })?;

        let inner = Inner {
            dir: dir.clone(),
            scope,
            binaries,
            run_as,
            timings,
            synchronous_mode,
            etcd,
            etcd_client,
            etcd_peer,
            nodes,
            proxy,
            children: Mutex::new(Children {
                etcd: None,
                patroni: (0..n).map(|_| None).collect(),
                proxy: None,
                watchdog: Some(watchdog),
                stopped: false,
            }),
            patroni,
            boot: OnceLock::new(),
            net,
            disks,
        };
        // From here on, dropping `inner` cleans up whatever was started.
        let bin = template::write_bin_dir(&inner.dir, &inner.binaries.pg_bin)?;
        let script = bin.join("pg_ctl");
        for node in &inner.nodes {
            mkdir(&node.dir)?;
            mkdir(&node.dir.join("pglog"))?;
            let mut cfg = NodeConfig {
                scope: &inner.scope,
                name: &node.name,
                host: &node.host,
                pg_port: node.pg_port,
                api_port: node.api_port,
                etcd_client: &inner.etcd_client,
                node_dir: &node.dir,
                pg_bin: &bin,
                timings,
                synchronous_mode,
                extra_parameters: parameters,
                template_script: &script,
            }
            .render();
            if let Some(d) = inner.disks.as_ref().and_then(|d| d.node(&node.name)) {
                d.patch_config(&mut cfg);
            }
            let hba = node.dir.join("pg_hba.conf");
            fs::write(&hba, PG_HBA)
                .map_err(|e| Error::io(format!("writing {}", hba.display()), e))?;
            let text = serde_json::to_string_pretty(&cfg)?;
            let path = node.config_path();
            let mut f = fs::File::create(&path)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            f.write_all(text.as_bytes())
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            inner.run_as.own(&node.dir)?;
        }
        let staging = std::thread::Builder::new()
            .name("chaos-template".into())
            .spawn({
                let dir = inner.dir.clone();
                let copies: Vec<StageAt> = inner.nodes.iter().map(|n| inner.stage_at(n)).collect();
                let pg_bin = inner.binaries.pg_bin.clone();
                move || {
                    let source = template::stage(&dir, &copies, &pg_bin, run_as, cache.as_deref())?;
                    Ok((source, Instant::now()))
                }
            })
            .map_err(|e| Error::io("starting the template thread", e))?;
        inner.start_etcd()?;
        Ok((inner, staging))
    }

    /// Where `node`'s copy of the data-directory template is staged: on its
    /// own filesystem with disk faults, else in the shared pool.
    fn stage_at(&self, node: &NodeInfo) -> StageAt {
        match self.disks.as_ref().and_then(|d| d.node(&node.name)) {
            Some(d) => StageAt {
                pool: template::node_pool(&node.data),
                wal: d.wal.as_ref().map(|_| disk::wal_dir(&node.dir)),
            },
            None => StageAt::shared(&self.dir),
        }
    }

    /// Waits until etcd serves with its cluster version decided: Patroni
    /// started before that waits 5 s before it tries again.
    async fn wait_etcd(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let version = self.etcd.version(Duration::from_millis(500)).await;
            if version.is_ok_and(|v| v.is_decided()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(Error::Timeout {
            what: "etcd to serve".into(),
            waited: timeout,
            logs: tail(&self.dir.join("etcd.log"), 20),
        })
    }

    /// Starts HAProxy, if the cluster has a proxy, as the user Patroni runs as.
    fn start_proxy(&self) -> Result<()> {
        let (Ok(proxy), Some(haproxy)) = (&self.proxy, &self.binaries.haproxy) else {
            return Ok(());
        };
        let backends: Vec<Backend> = self
            .nodes
            .iter()
            .map(|n| Backend {
                name: n.name.clone(),
                host: n.host.clone(),
                pg_port: n.pg_port,
                api_port: n.api_port,
            })
            .collect();
        proxy.write_config(&backends, self.run_as)?;
        let child = process::spawn(
            proxy.command(haproxy),
            self.run_as,
            &proxy.log_path(),
            "haproxy",
        )?;
        self.lock().proxy = Some(child);
        Ok(())
    }

    /// How HAProxy exited, if it did.
    fn proxy_exit(&self) -> Option<String> {
        let mut children = self.lock();
        match children.proxy.as_mut()?.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Children> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start_etcd(&self) -> Result<()> {
        let peer = &self.etcd_peer;
        let data = self.dir.join("etcd");
        mkdir(&data)?;
        self.run_as.own(&data)?;
        let mut cmd = Command::new(&self.binaries.etcd);
        cmd.arg("--name")
            .arg("chaos")
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen-client-urls")
            .arg(format!("http://{}", self.etcd_client))
            .arg("--advertise-client-urls")
            .arg(format!("http://{}", self.etcd_client))
            .arg("--listen-peer-urls")
            .arg(format!("http://{peer}"))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://{peer}"))
            .arg("--initial-cluster")
            .arg(format!("chaos=http://{peer}"))
            .arg("--enable-v2=false")
            // A single member elects itself after one to ten ticks; 10 ms ticks
            // make that 10–100 ms instead of up to a second. Alone, it has no
            // peers to send heartbeats to, so nothing else changes.
            .arg("--heartbeat-interval=10")
            .arg("--election-timeout=100")
            .env("ETCD_UNSUPPORTED_ARCH", "")
            .current_dir(&self.dir);
        let child = process::spawn(cmd, self.run_as, &self.dir.join("etcd.log"), "etcd")?;
        self.place("etcd", &child);
        if let Some(mut old) = self.lock().etcd.replace(child) {
            process::reap(&mut old, Duration::from_millis(100));
        }
        Ok(())
    }

    fn start_node(&self, i: usize) -> Result<()> {
        let node = &self.nodes[i];
        let mut cmd = Command::new(&self.binaries.patroni);
        cmd.arg(node.config_path())
            .current_dir(&node.dir)
            .env("HOME", &node.dir)
            // libpq in the WAL receiver honours this: a reconnect to an unreachable
            // primary gives up after 2 s instead of hanging for minutes.
            .env("PGCONNECT_TIMEOUT", "2");
        let child = process::spawn(cmd, self.run_as, &node.log_path(), "patroni")?;
        self.place(&node.name, &child);
        let mut children = self.lock();
        if let Some(mut old) = children.patroni[i].take() {
            process::reap(&mut old, Duration::from_millis(100));
        }
        children.patroni[i] = Some(child);
        Ok(())
    }

    /// Moves a just-spawned process into its group's cgroup (before it forks:
    /// Patroni starts PostgreSQL a good half second later), when network
    /// faults are available.
    fn place(&self, group: &str, child: &Child) {
        if let Ok(net) = &self.net
            && let Err(e) = net.place(group, child.id())
        {
            tracing::warn!(group, error = %e, "could not place a process in its cgroup");
        }
        if let Some(disks) = &self.disks
            && let Err(e) = disks.place(group, child.id())
        {
            tracing::warn!(group, error = %e, "could not place a process in its blkio cgroup");
        }
    }

    fn logs_tail(&self) -> String {
        let mut out = tail(&self.dir.join("etcd.log"), 10);
        for node in &self.nodes {
            out.push_str(&tail(&node.log_path(), 15));
            out.push_str(&tail(&node.dir.join("pglog/postgresql.log"), 10));
        }
        if let Ok(proxy) = &self.proxy {
            out.push_str(&tail(&proxy.log_path(), 10));
        }
        out
    }

    /// Stops every process and returns once they are all gone, then removes the
    /// directory; with `CHAOS_KEEP=1`, marks the cluster kept and says where it is.
    fn teardown(&self) {
        let mut children = self.lock();
        if children.stopped {
            return;
        }
        children.stopped = true;
        if process::keep_requested() {
            self.mark_kept();
        } else {
            process::stop_all_under(&self.dir);
            if let Ok(net) = &self.net {
                net.teardown();
            }
            if let Some(disks) = &self.disks {
                disks.teardown();
            }
            let Children {
                patroni,
                etcd,
                proxy,
                ..
            } = &mut *children;
            for child in patroni.iter_mut().chain([etcd, proxy]).flatten() {
                let _ = child.kill();
                process::reap(child, Duration::from_millis(200));
            }
            if let Err(e) = fs::remove_dir_all(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove cluster directory");
            }
        }
        // Closing the watchdog's stdin lets it exit (its work is already done).
        if let Some(mut w) = children.watchdog.take() {
            drop(w.stdin.take());
            process::reap(&mut w, Duration::from_secs(10));
        }
    }

    /// Leaves the cluster running for good (sweeps and watchdogs skip it) and
    /// tells, on stderr even under the test harness, where it is and how to
    /// remove it.
    fn mark_kept(&self) {
        if let Err(e) = fs::write(self.dir.join(process::KEPT_FILE), "") {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not mark the cluster kept");
        }
        let msg = format!(
            "CHAOS_KEEP=1: kept the local cluster at {} (processes still running); remove it with: {}",
            self.dir.display(),
            process::remove_command(&self.dir)
        );
        tracing::warn!("{msg}");
        let _ = writeln!(std::io::stderr().lock(), "{msg}");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.teardown();
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

    /// Waits until a connection through the proxy (if any) reaches a primary.
    async fn wait_proxy_routes_to_primary(&self, timeout: Duration) -> Result<()> {
        let Ok(proxy) = &self.inner.proxy else {
            return Ok(());
        };
        let timeout = timeout.max(Duration::from_secs(10));
        let dsn = proxy.dsn();
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < timeout {
            if let Some(status) = self.inner.proxy_exit() {
                return Err(Error::ClusterState(format!(
                    "HAProxy exited ({status})\n{}",
                    tail(&proxy.log_path(), 20)
                )));
            }
            match reaches_primary(&dsn).await {
                Ok(true) => return Ok(()),
                Ok(false) => last = "it reached a standby".into(),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Error::Timeout {
            what: format!("the proxy at {dsn} to route to the primary (last: {last})"),
            waited: timeout,
            logs: tail(&proxy.log_path(), 20),
        })
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
    /// [`Error::ClusterState`] when the cluster has no such node.
    pub(crate) fn patroni_api(&self, name: &str) -> Result<NodeApi> {
        let node = self
            .node(name)
            .ok_or_else(|| Error::ClusterState(format!("no node called {name}")))?;
        Ok(self.inner.patroni.node(node.api_url()))
    }

    fn index_of(&self, name: &str) -> Result<usize> {
        self.inner
            .nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| Error::ClusterState(format!("no node named {name:?}")))
    }

    /// Reads the topology from the first Patroni REST API that answers.
    ///
    /// # Errors
    /// [`Error::Patroni`] when no node answers.
    pub async fn topology(&self) -> Result<Topology> {
        // Every node is asked at once: a node cut off from the DCS still
        // answers, with the view it had before the cut. Of the answers, the
        // one whose leader is on the newest timeline is the current one.
        let answers =
            futures::future::join_all(self.inner.nodes.iter().map(|node| async move {
                self.inner.patroni.node(node.api_url()).cluster().await
            }))
            .await;
        let mut best: Option<ClusterInfo> = None;
        let mut last = None;
        for answer in answers {
            match answer {
                Ok(c)
                    if best
                        .as_ref()
                        .is_none_or(|b| c.leader_timeline() > b.leader_timeline()) =>
                {
                    best = Some(c);
                }
                Ok(_) => {}
                Err(e) => last = Some(e),
            }
        }
        match best {
            Some(c) => Ok(topology_of(c, &self.inner.nodes)),
            None => Err(last.unwrap_or_else(|| Error::ClusterState("cluster has no nodes".into()))),
        }
    }

    /// Waits until node `name` serves again as Patroni reports it, with a
    /// primary in the cluster: how the guards of faults that leave the
    /// processes running (network, disk) know the node is back.
    pub(crate) async fn wait_serving(
        &self,
        name: &str,
        after: &str,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(t) = self.topology().await
                && t.members.iter().any(|m| m.name == name && m.is_up())
                && t.primary().is_some()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{name} to serve again after {after}"),
                    waited: timeout,
                    logs: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The name of the node that leads now.
    ///
    /// # Errors
    /// [`Error::ClusterState`] when no node holds the leader lock, or the
    /// topology cannot be read.
    pub async fn primary(&self) -> Result<String> {
        self.topology()
            .await?
            .primary_name()
            .map(str::to_string)
            .ok_or_else(|| {
                Error::ClusterState("the cluster has no primary (no leader lock held)".into())
            })
    }

    /// Waits until every node runs, one leads, a synchronous standby streams
    /// (every replica streams, with [`SynchronousMode::Off`]), and the leader
    /// accepts writes; returns the topology then.
    ///
    /// # Errors
    /// [`Error::Timeout`] with the tail of the logs.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<Topology> {
        let start = Instant::now();
        let mut last_state = String::from("no answer from Patroni yet");
        let mut nudged = Nudged::default();
        while start.elapsed() < timeout {
            match self.topology().await {
                Ok(t) if self.is_healthy(&t) => match self.replication_ok(&t).await {
                    Ok(()) => return Ok(t),
                    Err(e) => last_state = e.to_string(),
                },
                Ok(t) => {
                    self.nudge_for_sync_standby(&t, &mut nudged).await;
                    last_state = format!("{t:?}");
                }
                Err(e) => last_state = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Timeout {
            what: format!("a healthy cluster (last state: {last_state})"),
            waited: timeout,
            logs: self.inner.logs_tail(),
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

    /// A leader without a synchronous standby picks one on its next HA cycle;
    /// a replica that started running since the last call is worth waking it
    /// for. With quorum commit Patroni takes two cycles (it names the standbys
    /// in `synchronous_standby_names`, then publishes the quorum in the DCS
    /// once they confirm), so while a running standby is not yet in the quorum
    /// the leader is woken again every 200 ms.
    pub(crate) async fn nudge_for_sync_standby(&self, t: &Topology, nudged: &mut Nudged) {
        let running = t.standbys().count();
        let Some(leader) = t.primary_name() else {
            return;
        };
        let mode = self.inner.synchronous_mode;
        let missing = if mode == SynchronousMode::Quorum {
            t.sync_standbys().count() < running
        } else {
            mode.is_synchronous() && t.sync_standbys().next().is_none()
        };
        let again = mode == SynchronousMode::Quorum
            && nudged
                .at
                .is_some_and(|at| at.elapsed() >= Duration::from_millis(200));
        if missing && (running > nudged.running || again) {
            self.nudge(leader).await;
            nudged.running = running;
            nudged.at = Some(Instant::now());
        }
    }

    /// Wakes node `name`'s Patroni HA loop now instead of at its next
    /// `loop_wait` tick, with a `PATCH /config` that changes nothing (Patroni
    /// wakes its loop after every config patch): it writes back the
    /// `loop_wait` that `GET /config` shows. Best effort: errors are ignored.
    async fn nudge(&self, name: &str) {
        let Some(node) = self.node(name) else { return };
        let api = self
            .inner
            .patroni
            .node(node.api_url())
            .timeout(Duration::from_secs(2));
        // The value in force now, not the boot's: an experiment may have
        // changed it (`chaos experiment --set loop_wait=3`), and patching the
        // boot's value back would undo the variant.
        let current = api.config().await.ok().and_then(|c| c.loop_wait?.as_u64());
        let Some(loop_wait) = current else {
            tracing::debug!(
                node = name,
                "no configuration to wake Patroni's HA loop with"
            );
            return;
        };
        let res = api.patch_config(&ConfigPatch::loop_wait(loop_wait)).await;
        tracing::debug!(node = name, ok = res.is_ok(), "woke Patroni's HA loop");
    }

    /// How many replicas stream from `leader`, if it answers.
    pub(crate) async fn streaming_replicas(&self, leader: &str) -> Option<usize> {
        let node = self.node(leader)?;
        let client = crate::pg::connect(&node.dsn(), Duration::from_secs(1))
            .await
            .ok()?;
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                &[],
            )
            .await
            .ok()?;
        usize::try_from(row.get::<_, i64>(0)).ok()
    }

    /// Checks the cluster is healthy and a synchronous commit on the leader is
    /// acknowledged (`txid_current()` writes a commit record and waits for the
    /// synchronous standby).
    pub(crate) async fn healthy_write(&self, t: &Topology) -> Result<()> {
        if !self.is_healthy(t) {
            return Err(Error::ClusterState(format!("not healthy yet: {t:?}")));
        }
        self.replication_ok(t).await?;
        let leader = t
            .primary_name()
            .and_then(|n| self.node(n))
            .ok_or_else(|| Error::ClusterState("no leader".into()))?;
        let client = crate::pg::connect(&leader.dsn(), Duration::from_secs(2)).await?;
        tokio::time::timeout(
            Duration::from_secs(2),
            client.execute("SELECT txid_current()", &[]),
        )
        .await
        .map_err(|_| {
            Error::ClusterState(
                "the first synchronous commit was not acknowledged within 2 s".into(),
            )
        })?
        .map_err(|e| Error::pg("the first synchronous commit", e))?;
        Ok(())
    }

    /// The tails of every log of the cluster.
    pub(crate) fn logs_tail(&self) -> String {
        self.inner.logs_tail()
    }

    /// [`Topology::is_healthy`], without the synchronous standby when the
    /// cluster replicates asynchronously.
    fn is_healthy(&self, t: &Topology) -> bool {
        let expected = self.inner.nodes.len();
        if self.inner.synchronous_mode == SynchronousMode::Quorum {
            // Every standby votes in the quorum (`ANY 1 (…)` over all of
            // them): a standby outside it is one that has not caught up.
            t.is_healthy(expected) && t.sync_standbys().count() == expected - 1
        } else if self.inner.synchronous_mode.is_synchronous() {
            t.is_healthy(expected)
        } else {
            t.members.len() == expected
                && t.members.iter().all(Member::is_up)
                && t.primary().is_some()
        }
    }

    /// Checks on the leader that all replicas stream and one is synchronous
    /// (unless the cluster replicates asynchronously).
    async fn replication_ok(&self, t: &Topology) -> Result<()> {
        let leader = t
            .primary_name()
            .and_then(|n| self.node(n))
            .ok_or_else(|| Error::ClusterState("no leader".into()))?;
        let client = crate::pg::connect(&leader.dsn(), Duration::from_secs(2)).await?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'streaming'), \
                        count(*) FILTER (WHERE sync_state IN ('sync', 'quorum') AND state = 'streaming'), \
                        pg_is_in_recovery() \
                   FROM pg_stat_replication",
                &[],
            )
            .await
            .map_err(|e| Error::pg("reading pg_stat_replication", e))?;
        let streaming: i64 = row.get(0);
        let sync: i64 = row.get(1);
        let in_recovery: bool = row.get(2);
        let want = self.inner.nodes.len() as i64 - 1;
        let sync_ok = sync >= 1 || !self.inner.synchronous_mode.is_synchronous();
        if !in_recovery && streaming == want && sync_ok {
            Ok(())
        } else {
            Err(Error::ClusterState(format!(
                "leader {}: {streaming}/{want} replicas streaming, {sync} synchronous, in recovery: {in_recovery}",
                leader.name
            )))
        }
    }

    /// The postmaster PID of node `name`, from `postmaster.pid`.
    ///
    /// # Errors
    /// [`Error::ClusterState`] when the node's PostgreSQL is not running.
    pub fn postmaster_pid(&self, name: &str) -> Result<i32> {
        let node = &self.inner.nodes[self.index_of(name)?];
        let path = node.data_dir().join("postmaster.pid");
        let pid = fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
            .filter(|&pid| process::start_time(pid).is_some() && !process::is_dead(pid))
            .ok_or_else(|| {
                Error::ClusterState(format!(
                    "PostgreSQL of {name} is not running ({} unreadable)",
                    path.display()
                ))
            })?;
        Ok(pid)
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

    /// The PID of the cluster's etcd, if it runs.
    pub fn etcd_pid(&self) -> Option<i32> {
        let mut children = self.inner.lock();
        let child = children.etcd.as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(child.id() as i32),
            _ => None,
        }
    }

    /// Kills the cluster's etcd (SIGKILL: the DCS is lost, as a crashed or
    /// unreachable etcd would be); returns once it has exited. Its data stays,
    /// so [`start_dcs`](Self::start_dcs) brings the same DCS back.
    ///
    /// # Errors
    /// [`Error::Process`] when the signal cannot be sent.
    pub fn stop_dcs(&self) -> Result<()> {
        let mut children = self.inner.lock();
        if let Some(mut child) = children.etcd.take() {
            process::signal(child.id() as i32, Signal::SIGKILL)?;
            process::reap(&mut child, Duration::from_secs(5));
        }
        Ok(())
    }

    /// Starts the cluster's etcd again (same data, same addresses) and waits
    /// until it serves.
    ///
    /// # Errors
    /// [`Error::Io`] when etcd cannot be spawned, [`Error::Timeout`] when it does
    /// not serve within `timeout`.
    pub async fn start_dcs(&self, timeout: Duration) -> Result<()> {
        if self.etcd_pid().is_none() {
            self.inner.start_etcd()?;
        }
        self.inner.wait_etcd(timeout).await
    }

    /// The PID of node `name`'s Patroni process, if it runs.
    pub fn patroni_pid(&self, name: &str) -> Option<i32> {
        let i = self.index_of(name).ok()?;
        let mut children = self.inner.lock();
        let child = children.patroni[i].as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(child.id() as i32),
            _ => None,
        }
    }

    /// Kills node `name` like a lost machine: SIGKILL to Patroni and the postmaster
    /// (its backends exit once they notice the postmaster is gone). Returns the
    /// moment both signals had been sent.
    ///
    /// # Errors
    /// [`Error::Process`] when a signal cannot be sent.
    pub fn kill_node(&self, name: &str) -> Result<Instant> {
        let pg = self.postmaster_pid(name).ok();
        let i = self.index_of(name)?;
        let mut children = self.inner.lock();
        if let Some(child) = children.patroni[i].as_mut() {
            process::signal(child.id() as i32, Signal::SIGKILL)?;
        }
        if let Some(pid) = pg {
            process::signal(pid, Signal::SIGKILL)?;
        }
        let killed_at = Instant::now();
        if let Some(mut child) = children.patroni[i].take() {
            process::reap(&mut child, Duration::from_secs(1));
        }
        Ok(killed_at)
    }

    /// Stops node `name` gracefully: SIGTERM to Patroni, which shuts PostgreSQL down
    /// and releases the leader lock. Waits up to `timeout` for it to exit.
    ///
    /// # Errors
    /// [`Error::Process`] when the signal cannot be sent.
    pub async fn stop_node(&self, name: &str, timeout: Duration) -> Result<()> {
        let i = self.index_of(name)?;
        let Some(pid) = self.patroni_pid(name) else {
            return Ok(());
        };
        process::signal(pid, Signal::SIGTERM)?;
        // The child stays in its slot until it has exited, so that nobody restarts
        // the node while the old Patroni still holds its ports.
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut children = self.inner.lock();
                let exited = match children.patroni[i].as_mut() {
                    None => true,
                    Some(child) if Instant::now() >= deadline => {
                        tracing::warn!(node = name, "Patroni ignored SIGTERM; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        true
                    }
                    Some(child) => !matches!(child.try_wait(), Ok(None)),
                };
                if exited {
                    children.patroni[i] = None;
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// (Re)starts node `name`'s Patroni, which starts PostgreSQL and, for a former
    /// primary, rewinds it and rejoins it as a replica.
    ///
    /// # Errors
    /// [`Error::Io`] when Patroni cannot be spawned.
    pub fn start_node(&self, name: &str) -> Result<()> {
        let i = self.index_of(name)?;
        self.inner.start_node(i)
    }

    /// Waits until node `name` runs as a streaming replica of the current leader.
    ///
    /// # Errors
    /// [`Error::Timeout`] with the tail of the node's logs.
    pub async fn wait_replica(&self, name: &str, timeout: Duration) -> Result<Topology> {
        let start = Instant::now();
        let mut last_state = String::new();
        while start.elapsed() < timeout {
            if let Ok(t) = self.topology().await {
                let member = t.members.iter().find(|m| m.name == name);
                let leader = t.primary_name().and_then(|l| self.node(l));
                if let (Some(m), Some(leader)) = (member, leader)
                    && matches!(m.role, Role::SyncStandby | Role::Replica)
                    && self.is_streaming_to(leader, name).await
                {
                    return Ok(t);
                }
                last_state = format!("{t:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let node = &self.inner.nodes[self.index_of(name)?];
        Err(Error::Timeout {
            what: format!("{name} to rejoin as a streaming replica (last state: {last_state})"),
            waited: timeout,
            logs: tail(&node.log_path(), 25) + &tail(&node.dir.join("pglog/postgresql.log"), 15),
        })
    }

    async fn is_streaming_to(&self, leader: &NodeInfo, name: &str) -> bool {
        let Ok(client) = crate::pg::connect(&leader.dsn(), Duration::from_secs(2)).await else {
            return false;
        };
        client
            .query_opt(
                "SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'",
                &[&name],
            )
            .await
            .ok()
            .flatten()
            .is_some()
    }

    /// Stops every process, waits until all are gone, and removes the directory
    /// (unless `CHAOS_KEEP=1`). Dropping the last clone does the same.
    pub fn stop(self) {
        self.inner.teardown();
    }
}

/// The topology in a view of Patroni's, with neutral roles; every node of
/// the cluster appears, those Patroni does not list (its member key
/// expired) as down.
fn topology_of(view: ClusterInfo, nodes: &[NodeInfo]) -> Topology {
    let mut members: Vec<Member> = view
        .members
        .into_iter()
        .map(|m| {
            let role = match m.role {
                _ if !m.is_serving() => Role::Down,
                MemberRole::Leader => Role::Primary,
                // Quorum commit (Patroni 4): every standby of the quorum
                // is as synchronous as a sync standby.
                MemberRole::SyncStandby | MemberRole::QuorumStandby => Role::SyncStandby,
                MemberRole::StandbyLeader | MemberRole::Replica | MemberRole::Other => {
                    Role::Replica
                }
            };
            Member {
                name: m.name,
                role,
                state: m.state,
                host: m.host,
                port: m.port,
                timeline: m.timeline,
                lag: m.lag,
            }
        })
        .collect();
    for n in nodes {
        if !members.iter().any(|m| m.name == n.name) {
            members.push(Member {
                name: n.name.clone(),
                role: Role::Down,
                state: "absent".into(),
                host: n.host.clone(),
                port: n.pg_port,
                timeline: None,
                lag: None,
            });
        }
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Topology { members }
}

/// Whether a new connection to `dsn` reaches a server that is not in recovery.
async fn reaches_primary(dsn: &str) -> Result<bool> {
    let client = crate::pg::connect(dsn, Duration::from_secs(2)).await?;
    let row = tokio::time::timeout(
        Duration::from_secs(2),
        client.query_one("SELECT NOT pg_is_in_recovery()", &[]),
    )
    .await
    .map_err(|_| Error::ClusterState("no answer to SELECT NOT pg_is_in_recovery()".into()))?
    .map_err(|e| Error::pg("SELECT NOT pg_is_in_recovery()", e))?;
    Ok(row.get(0))
}

impl Target for LocalCluster {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn advise<'a>(&'a self, _slo: &'a crate::slo::Slo) -> BoxFuture<'a, Vec<String>> {
        let version = self.inner.binaries.patroni_version;
        Box::pin(async move {
            if !binaries::has_takeover_bug(version) {
                return Vec::new();
            }
            let (a, b, c) = version;
            vec![format!(
                "Patroni {a}.{b}.{c} has the etcd3 leader-takeover bug (fixed in 3.0.3, upstream \
                 PR #2693): a primary paused or cut off past the ttl can write the leader key back \
                 over its successor's, and what the successor acknowledged is lost. Writes lost \
                 in this run may be Patroni's, not the configuration's: the default Patroni \
                 ({}) does not have the bug",
                binaries::DEFAULT_PATRONI_VERSION
            )]
        })
    }

    fn software(&self) -> std::collections::BTreeMap<String, String> {
        let (a, b, c) = self.inner.binaries.patroni_version;
        [
            ("patroni", format!("{a}.{b}.{c}")),
            (
                "synchronous_mode",
                self.inner.synchronous_mode.name().into(),
            ),
            ("ttl", format!("{}s", self.inner.timings.ttl)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn rw_dsn(&self) -> String {
        LocalCluster::rw_dsn(self)
    }

    /// [`LocalCluster::proxy_dsn`], when the cluster has a proxy.
    /// Patroni's dynamic configuration and PostgreSQL parameters.
    fn reconfigure(&self) -> Option<&dyn crate::cluster::Reconfigure> {
        Some(self)
    }

    fn router_dsn(&self) -> Option<String> {
        self.proxy_dsn().ok()
    }

    /// The DSN of the node that leads now ([`NodeInfo::dsn`]).
    fn primary_dsn(&self) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async move {
            let t = LocalCluster::topology(self).await?;
            Ok(t.primary_name()
                .and_then(|n| self.node(n))
                .map(NodeInfo::dsn))
        })
    }

    /// The topology's changes, polled every 50 ms; with a proxy, its changes
    /// of route (`proxy routes to` / `proxy routes nowhere`), read from
    /// HAProxy's stats socket as often; and the RTO phase marks:
    /// `detection ended` (detail: the old leader) when Patroni's leader key
    /// is deleted or expires in etcd, `election ended` (detail: the new
    /// leader) when another member writes it — both watched, stamped when
    /// etcd tells — and `promotion ended` (detail: the node) when the new
    /// primary's PostgreSQL log says it accepts connections after a
    /// promotion, timed by the log line, with the promotion's steps
    /// (`promote requested`, `wal recovery ended`, `timeline selected`,
    /// `archive recovery complete`, `ready for connections`; detail
    /// `node: message`) as plain events. Without etcd the marks are missing,
    /// nothing else.
    fn events(self: Arc<Self>) -> BoxStream<'static, Event> {
        let every = Duration::from_millis(50);
        let mut streams = vec![
            leader_watch::leader_events(
                self.inner.etcd_client.clone(),
                etcd::leader_key(&self.inner.scope),
            ),
            log_tail::promotion_events(
                self.inner
                    .nodes
                    .iter()
                    .map(|n| (n.name.clone(), n.dir.join("pglog/postgresql.log")))
                    .collect(),
                log_tail::POLL,
            ),
        ];
        if let Ok(proxy) = &self.inner.proxy
            && proxy.socket.is_some()
        {
            streams.push(proxy::route_events(proxy.clone(), every));
        }
        streams.push(topology::poll_events(self, every));
        Box::pin(futures::stream::select_all(streams))
    }

    fn node_count(&self) -> usize {
        self.inner.nodes.len()
    }

    fn topology(&self) -> BoxFuture<'_, Result<Topology>> {
        Box::pin(LocalCluster::topology(self))
    }

    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<Topology>> {
        Box::pin(LocalCluster::wait_healthy(self, timeout))
    }

    /// Waits for health. A node whose Patroni is gone (a test killed it and its
    /// guard could not restart it) is started again first; a member that stays
    /// out of replication while another node leads (a diverged timeline
    /// pg_rewind cannot mend, a PostgreSQL that failed to start) is
    /// re-initialised from the leader through Patroni's `POST /reinitialize`,
    /// as an operator would. When that is not enough, the error names each
    /// member that is not healthy, its state and timeline, and what to do.
    fn repair(&self, timeout: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.repair_inner(timeout))
    }

    /// Sweeps cluster directories (and their processes) whose owning process is
    /// gone, beside this cluster's own.
    fn sweep(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let Some(root) = self.dir().parent().map(Path::to_path_buf) else {
                return Ok(Vec::new());
            };
            let swept = tokio::task::spawn_blocking(move || process::sweep(&root))
                .await
                .map_err(|e| Error::ClusterState(format!("sweep task failed: {e}")))?;
            Ok(swept.iter().map(|p| p.display().to_string()).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_work_dir_is_per_user() {
        let dir = super::default_work_dir();
        let uid = nix::unistd::getuid();
        assert_eq!(dir, std::env::temp_dir().join(format!("chaos-local-{uid}")));
    }
}
