//! The local cluster's processes: etcd, Patroni (which runs PostgreSQL) and
//! HAProxy started, signalled, stopped and waited for; and teardown.

use std::fs;
use std::io::Write;
use std::process::{Child, Command};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::super::process;
use super::super::proxy::Backend;
use super::{Children, Inner, LocalCluster, mkdir, tail};
use crate::error::LocalError;
use crate::{Error, Result};

impl Inner {
    /// Waits until etcd serves with its cluster version decided: Patroni
    /// started before that waits 5 s before it tries again.
    pub(super) async fn wait_etcd(&self, timeout: Duration) -> Result<()> {
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
    pub(super) fn start_proxy(&self) -> Result<()> {
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
    pub(super) fn proxy_exit(&self) -> Option<String> {
        let mut children = self.lock();
        match children.proxy.as_mut()?.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Children> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn start_etcd(&self) -> Result<()> {
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

    pub(super) fn start_node(&self, i: usize) -> Result<()> {
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

    pub(super) fn logs_tail(&self) -> String {
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
    pub(super) fn teardown(&self) {
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

impl LocalCluster {
    /// The postmaster PID of node `name`, from `postmaster.pid`.
    ///
    /// # Errors
    /// [`LocalError::PostgresDown`] when the node's PostgreSQL is not running.
    pub fn postmaster_pid(&self, name: &str) -> Result<i32> {
        let node = &self.inner.nodes[self.index_of(name)?];
        let path = node.data_dir().join("postmaster.pid");
        let pid = fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
            .filter(|&pid| process::start_time(pid).is_some() && !process::is_dead(pid))
            .ok_or_else(|| LocalError::PostgresDown {
                node: name.to_string(),
                pid_file: path.clone(),
            })?;
        Ok(pid)
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
}
