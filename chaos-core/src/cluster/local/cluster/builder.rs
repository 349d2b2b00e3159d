//! Booting the local cluster: [`LocalClusterBuilder`] and what it creates.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::super::binaries::{self, Binaries, Overrides};
use super::super::boot;
use super::super::config::{NodeConfig, PG_HBA, PatroniTimings, SynchronousMode};
use super::super::disk::{self, Disks};
use super::super::etcd::Etcd;
use super::super::netfilter::{self, Group, Net};
use super::super::patroni::Patroni;
use super::super::process::{self, RunAs};
use super::super::proxy::Proxy;
use super::super::template::{self, StageAt, TemplateSource};
use super::{Children, Inner, LocalCluster, NodeInfo, mkdir};
use crate::error::LocalError;
use crate::{Error, Result};

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
    /// does not route to its leader, [`LocalError::ProxyExited`] when HAProxy exits
    /// (with its log's tail).
    pub async fn start(self) -> Result<LocalCluster> {
        let ready_timeout = self.ready_timeout;
        let plan = self.plan()?;
        let started = Instant::now();
        let (inner, staging) = tokio::task::spawn_blocking(move || Inner::create(plan))
            .await
            .map_err(|source| Error::Task {
                what: "the cluster start-up task",
                source,
            })??;
        let cluster = LocalCluster {
            inner: Arc::new(inner),
        };
        cluster.boot(started, staging, ready_timeout).await?;
        Ok(cluster)
    }

    /// Checks the settings against what is installed and decides what the
    /// cluster gets (proxy, filesystems, directories).
    fn plan(self) -> Result<Plan> {
        if !(2..=9).contains(&self.nodes) {
            return Err(Error::Config {
                field: "nodes",
                expected: "between 2 and 9 nodes",
                found: self.nodes.to_string(),
            });
        }
        let binaries = Binaries::discover_inner(&self.overrides, self.proxy != Some(false))?;
        check_patroni_version(&binaries, self.synchronous_mode)?;
        let proxy = choose_proxy(self.proxy, &binaries)?;
        let disks = choose_disks(self.disk_faults, self.separate_wal)?;
        let run_as = RunAs::detect()?;
        let root = self
            .work_dir
            .or_else(|| {
                std::env::var_os("CHAOS_WORK_DIR")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(default_work_dir);
        let cache = match self.cache_dir {
            Some(dir) if self.template_cache => Some(dir),
            _ => self.template_cache.then(template::cache_root).flatten(),
        };
        let timings = self
            .timings
            .unwrap_or_else(|| PatroniTimings::for_version(binaries.patroni_version));
        Ok(Plan {
            root,
            binaries,
            run_as,
            timings,
            synchronous_mode: self.synchronous_mode,
            nodes: self.nodes,
            parameters: self.parameters,
            proxy,
            cache,
            disks,
        })
    }
}

/// Quorum commit needs a Patroni that has it.
fn check_patroni_version(binaries: &Binaries, mode: SynchronousMode) -> Result<()> {
    if binaries.patroni_version >= mode.min_patroni() {
        return Ok(());
    }
    let (a, b, c) = binaries.patroni_version;
    Err(Error::Config {
        field: "synchronous_mode",
        expected: "Patroni 4.0 or later for quorum commit (`ci/install-deps.sh` installs \
                   4.1.5: pass /opt/chaos/patroni-4.1.5/bin/patroni to \
                   LocalClusterBuilder::patroni, --patroni or CHAOS_PATRONI)",
        found: format!("Patroni {a}.{b}.{c} at {}", binaries.patroni.display()),
    })
}

/// Whether the cluster gets a proxy: as asked, else when HAProxy is found.
fn choose_proxy(asked: Option<bool>, binaries: &Binaries) -> Result<ProxyChoice> {
    match (asked, &binaries.haproxy) {
        (Some(false), _) => Ok(ProxyChoice::Off(
            "it was disabled with LocalClusterBuilder::proxy(false)",
        )),
        (_, Some(_)) => Ok(ProxyChoice::On),
        (Some(true), None) => Err(Error::BinaryNotFound {
            program: "haproxy",
            searched: binaries::SEARCHED.into(),
            package: "haproxy",
            install: "install the Debian package `haproxy`",
            env_var: "CHAOS_HAPROXY",
        }),
        (None, None) => Ok(ProxyChoice::Off(
            "no haproxy was found on PATH, /usr/bin or /usr/sbin",
        )),
    }
}

/// Whether the nodes get filesystems of their own, and whether this
/// machine can give them.
fn choose_disks(disk_faults: bool, separate_wal: bool) -> Result<DiskChoice> {
    let disks = match (disk_faults, separate_wal) {
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
    Ok(disks)
}

impl LocalCluster {
    /// Starts the nodes once etcd serves, and waits until the cluster is
    /// healthy and the proxy, if any, routes to the leader; records the
    /// boot's timings.
    async fn boot(
        &self,
        started: Instant,
        staging: Staging,
        ready_timeout: Duration,
    ) -> Result<()> {
        self.inner.wait_etcd(ready_timeout).await?;
        let etcd_ready = started.elapsed();
        for i in 0..self.inner.nodes.len() {
            self.inner.start_node(i)?;
        }
        self.inner.start_proxy()?;
        let staging = tokio::task::spawn_blocking(move || {
            staging.join().map_err(|p| Error::Panicked {
                what: "staging the data directory".into(),
                message: crate::panics::panic_message(p.as_ref()),
            })?
        });
        let mut timings =
            boot::wait_booted(self, started, etcd_ready, staging, ready_timeout).await?;
        template::close(
            &self.inner.dir,
            self.inner.nodes.iter().map(|n| n.data.as_path()),
        );
        self.wait_proxy_routes_to_primary(ready_timeout.saturating_sub(started.elapsed()))
            .await?;
        timings.total = started.elapsed();
        tracing::info!(total = ?timings.total, template = ?timings.template, "local cluster booted");
        let _ = self.inner.boot.set(timings);
        tracing::info!(
            dir = %self.dir().display(),
            rw_dsn = %self.rw_dsn(),
            proxy_dsn = self.proxy_dsn().ok(),
            "local cluster healthy"
        );
        Ok(())
    }
}

/// What [`LocalClusterBuilder::plan`] decided: everything
/// [`Inner::create`] needs.
struct Plan {
    /// The work directory the cluster's directory is made in.
    root: PathBuf,
    binaries: Binaries,
    run_as: RunAs,
    timings: PatroniTimings,
    synchronous_mode: SynchronousMode,
    nodes: usize,
    parameters: Vec<(String, String)>,
    proxy: ProxyChoice,
    /// The template cache's directory, unless it is off.
    cache: Option<PathBuf>,
    disks: DiskChoice,
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

/// Makes the cluster's directory under `root` (sweeping what killed runs
/// left there first) and starts its watchdog; returns the run id, the
/// directory and the watchdog.
fn make_run_dir(root: &Path, run_as: RunAs) -> Result<(String, PathBuf, Child)> {
    fs::create_dir_all(root).map_err(|e| work_dir_error(root, "cannot create it", e))?;
    process::sweep(root);
    let run_id = crate::run_id::new_run_id();
    let dir = process::create_run_dir(root, &run_id)
        .map_err(|e| work_dir_error(root, "cannot create a cluster directory in it", e))?;
    if run_as.switch {
        let_others_in(root);
        let_others_in(&dir);
    }
    // Once it runs, the watchdog removes the directory if we fail.
    let watchdog = process::spawn_watchdog(&dir).inspect_err(|_| {
        let _ = fs::remove_dir_all(&dir);
    })?;
    Ok((run_id, dir, watchdog))
}

/// The nodes' names, addresses and directories: node `i` (from 0) is
/// `node<i+1>` on `127.0.0.<11+i>`, with ports `ports[2+2i]` (PostgreSQL)
/// and `ports[3+2i]` (REST API).
fn lay_out_nodes(dir: &Path, ports: &[u16], n: usize, disks: DiskChoice) -> Vec<NodeInfo> {
    (0..n)
        .map(|i| {
            let node_dir = dir.join(format!("node{}", i + 1));
            NodeInfo {
                name: format!("node{}", i + 1),
                host: format!("127.0.0.{}", 11 + i),
                pg_port: ports[2 + 2 * i],
                api_port: ports[3 + 2 * i],
                data: match disks {
                    DiskChoice::Off => node_dir.join("data"),
                    _ => disk::data_dir(&node_dir),
                },
                dir: node_dir,
            }
        })
        .collect()
}

/// A cgroup per node and one for etcd (serving on `etcd_port`), with the
/// marking chain network faults use; or why there are none.
fn set_up_net(
    run_id: &str,
    nodes: &[NodeInfo],
    etcd_port: u16,
) -> std::result::Result<Net, String> {
    if let Some(why) = netfilter::unavailable() {
        return Err(why);
    }
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
        ports: vec![etcd_port],
    });
    Net::setup(run_id, groups).map_err(|e| {
        tracing::warn!(error = %e, "network faults unavailable");
        netfilter::remove_run(run_id);
        e.to_string()
    })
}

/// The nodes' own filesystems and blkio groups, with disk faults.
fn set_up_disks(
    run_id: &str,
    dir: &Path,
    nodes: &[NodeInfo],
    choice: DiskChoice,
    run_as: RunAs,
) -> Result<Option<Disks>> {
    if choice == DiskChoice::Off {
        return Ok(None);
    }
    let named: Vec<(String, PathBuf)> = nodes
        .iter()
        .map(|n| (n.name.clone(), n.dir.clone()))
        .collect();
    Disks::setup(
        run_id,
        dir,
        &named,
        choice == DiskChoice::DataAndWal,
        run_as,
    )
    .map(Some)
}

impl Inner {
    /// Creates the cluster directory, starts staging the nodes' data
    /// directories (returned: it runs while Patroni starts), and etcd.
    fn create(plan: Plan) -> Result<(Inner, Staging)> {
        let (run_id, dir, watchdog) = make_run_dir(&plan.root, plan.run_as)?;
        let n = plan.nodes;
        let ports = free_ports(3 + 2 * n)?;
        // The clients first: nothing to undo if they cannot be made.
        let patroni = Patroni::new()?;
        let etcd_client = format!("127.0.0.1:{}", ports[0]);
        let etcd = Etcd::new(&etcd_client).map_err(|source| LocalError::HttpClient {
            service: "etcd's gateway",
            source,
        })?;
        let nodes = lay_out_nodes(&dir, &ports, n, plan.disks);
        let proxy = match plan.proxy {
            ProxyChoice::On => Ok(Arc::new(Proxy::new(&dir, ports[2 + 2 * n]))),
            ProxyChoice::Off(why) => Err(why),
        };
        let net = set_up_net(&run_id, &nodes, ports[0]);
        let disks =
            set_up_disks(&run_id, &dir, &nodes, plan.disks, plan.run_as).inspect_err(|_| {
                if let Ok(net) = &net {
                    net.teardown();
                }
            })?;
        let inner = Inner {
            dir,
            scope: format!("chaos-{run_id}"),
            binaries: plan.binaries,
            run_as: plan.run_as,
            timings: plan.timings,
            synchronous_mode: plan.synchronous_mode,
            etcd,
            etcd_client,
            etcd_peer: format!("127.0.0.1:{}", ports[1]),
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
        inner.write_node_files(&plan.parameters)?;
        let staging = inner.start_staging(plan.cache)?;
        inner.start_etcd()?;
        Ok((inner, staging))
    }

    /// Writes each node's `patroni.yml` and `pg_hba.conf`, with the
    /// `pg_ctl` shim they name, and gives the node's directory to the user
    /// the cluster runs as.
    fn write_node_files(&self, parameters: &[(String, String)]) -> Result<()> {
        let bin = template::write_bin_dir(&self.dir, &self.binaries.pg_bin)?;
        let script = bin.join("pg_ctl");
        for node in &self.nodes {
            mkdir(&node.dir)?;
            mkdir(&node.dir.join("pglog"))?;
            let mut cfg = NodeConfig {
                scope: &self.scope,
                name: &node.name,
                host: &node.host,
                pg_port: node.pg_port,
                api_port: node.api_port,
                etcd_client: &self.etcd_client,
                node_dir: &node.dir,
                pg_bin: &bin,
                timings: self.timings,
                synchronous_mode: self.synchronous_mode,
                extra_parameters: parameters,
                template_script: &script,
            }
            .render();
            if let Some(d) = self.disks.as_ref().and_then(|d| d.node(&node.name)) {
                d.patch_config(&mut cfg);
            }
            let hba = node.dir.join("pg_hba.conf");
            fs::write(&hba, PG_HBA)
                .map_err(|e| Error::io(format!("writing {}", hba.display()), e))?;
            let path = node.config_path();
            let text = serde_json::to_string_pretty(&cfg)
                .map_err(|e| Error::json_write(path.display().to_string(), e))?;
            let mut f = fs::File::create(&path)
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            f.write_all(text.as_bytes())
                .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
            self.run_as.own(&node.dir)?;
        }
        Ok(())
    }

    /// Starts staging the nodes' first data directories, from the template
    /// cache (`cache`) or a fresh `initdb`, on a thread of its own.
    fn start_staging(&self, cache: Option<PathBuf>) -> Result<Staging> {
        let dir = self.dir.clone();
        let copies: Vec<StageAt> = self.nodes.iter().map(|n| self.stage_at(n)).collect();
        let pg_bin = self.binaries.pg_bin.clone();
        let run_as = self.run_as;
        std::thread::Builder::new()
            .name("chaos-template".into())
            .spawn(move || {
                let source = template::stage(&dir, &copies, &pg_bin, run_as, cache.as_deref())?;
                Ok((source, Instant::now()))
            })
            .map_err(|e| Error::io("starting the template thread", e))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_work_dir_is_per_user() {
        let dir = default_work_dir();
        let uid = nix::unistd::getuid();
        assert_eq!(dir, std::env::temp_dir().join(format!("chaos-local-{uid}")));
    }

    #[test]
    fn nodes_get_their_own_address_ports_and_directories() {
        let ports = [2379, 2380, 5001, 8001, 5002, 8002, 7000];
        let nodes = lay_out_nodes(Path::new("/r"), &ports, 2, DiskChoice::Off);
        let seen: Vec<(&str, &str, u16, u16)> = nodes
            .iter()
            .map(|n| (n.name.as_str(), n.host.as_str(), n.pg_port, n.api_port))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("node1", "127.0.0.11", 5001, 8001),
                ("node2", "127.0.0.12", 5002, 8002),
            ]
        );
        assert_eq!(nodes[1].dir, Path::new("/r/node2"));
        assert_eq!(nodes[1].data_dir(), Path::new("/r/node2/data"));
        assert_eq!(nodes[1].api_url(), "http://127.0.0.12:8002");
        let on_disks = lay_out_nodes(Path::new("/r"), &ports, 2, DiskChoice::Data);
        assert_eq!(
            on_disks[0].data_dir(),
            disk::data_dir(Path::new("/r/node1"))
        );
    }

    #[test]
    fn a_proxy_asked_for_but_missing_is_an_error_naming_the_package() {
        let binaries = |haproxy: Option<&str>| Binaries {
            pg_bin: "/usr/lib/postgresql/15/bin".into(),
            patroni: "/usr/bin/patroni".into(),
            etcd: "/usr/bin/etcd".into(),
            haproxy: haproxy.map(PathBuf::from),
            patroni_version: (3, 1, 2),
        };
        assert!(matches!(
            choose_proxy(None, &binaries(Some("/usr/sbin/haproxy"))),
            Ok(ProxyChoice::On)
        ));
        assert!(matches!(
            choose_proxy(Some(false), &binaries(Some("/usr/sbin/haproxy"))),
            Ok(ProxyChoice::Off(_))
        ));
        assert!(matches!(
            choose_proxy(None, &binaries(None)),
            Ok(ProxyChoice::Off(_))
        ));
        let err = choose_proxy(Some(true), &binaries(None))
            .expect_err("an error")
            .to_string();
        assert!(
            err.contains("haproxy") && err.contains("CHAOS_HAPROXY"),
            "{err}"
        );
        // Quorum commit needs Patroni 4.
        let old = binaries(None);
        assert!(check_patroni_version(&old, SynchronousMode::Strict).is_ok());
        let err = check_patroni_version(&old, SynchronousMode::Quorum)
            .expect_err("an error")
            .to_string();
        assert!(err.contains("Patroni 3.1.2 at /usr/bin/patroni"), "{err}");
    }
}
