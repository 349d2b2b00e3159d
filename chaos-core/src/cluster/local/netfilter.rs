//! Cutting the local cluster's traffic in the kernel, per node.
//!
//! All nodes share the loopback interface, and their outgoing connections all
//! leave from 127.0.0.1, so addresses alone cannot tell which node sent a
//! packet. Each node's processes (Patroni, PostgreSQL and their children) and
//! etcd therefore live in a cgroup of their own under the cgroup2 hierarchy,
//! `chaos-<run id>/<group>`, and iptables tells the sender by it
//! (`-m cgroup --path`). A chain `chaos-<run id>`, first in `OUTPUT`, stamps
//! every connection with a bit per group that has sent on it (`CONNMARK
//! --or-mark`); processes outside the cluster that talk to a node's address
//! (clients, HAProxy) stamp the "clients" bit. A partition is a chain of its
//! own, `chaos-<run id>-<n>`, called from the first, whose rules DROP a
//! group's packets on connections the other side has stamped, and its new
//! connections to the other side's ports. Packets are dropped, not refused:
//! timeouts behave as in a real partition.
//!
//! Everything is named after the run id, and removed by the partition's guard,
//! by the cluster's teardown, by its watchdog's `remove.sh` and by a later
//! start's sweep ([`remove_run`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Error, Result};

/// The connmark bits this module uses: one per group, from bit 16.
const FIRST_BIT: u32 = 16;
/// Group index of etcd, and of clients (anything outside the cluster).
pub(crate) const DCS: usize = 9;
pub(crate) const CLIENTS: usize = 10;

fn bit(group: usize) -> u32 {
    1 << (FIRST_BIT + group as u32)
}

/// Where the cgroup2 hierarchy is mounted (`/sys/fs/cgroup/unified` beside
/// cgroup v1, `/sys/fs/cgroup` on pure v2), if it is.
pub(crate) fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, path, kind) = (f.next()?, f.next()?, f.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(path))
    })
}

/// Why kernel network faults cannot be used here, if they cannot.
pub(crate) fn unavailable() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not running as root".into());
    }
    let Some(root) = cgroup2_root() else {
        return Some("no cgroup2 hierarchy is mounted".into());
    };
    if !root.join("cgroup.procs").exists() {
        return Some(format!("{} has no cgroup.procs", root.display()));
    }
    match Command::new("iptables")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        _ => Some("iptables is not installed (Debian package `iptables`)".into()),
    }
}

fn iptables(args: &[&str]) -> Result<()> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running iptables", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::ClusterState(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// One addressable group of the cluster: a node or etcd.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    /// `node1`, …, or `etcd`.
    pub name: String,
    /// Its index (bit): nodes 0.., etcd [`DCS`].
    pub index: usize,
    /// The address and ports it listens on.
    pub host: String,
    pub ports: Vec<u16>,
}

/// The cluster's cgroups and marking chain.
#[derive(Debug)]
pub(crate) struct Net {
    run_id: String,
    cgroup_dir: PathBuf,
    groups: Vec<Group>,
    next: AtomicU32,
}

impl Net {
    /// Creates the cgroups and the marking chain of run `run_id`.
    pub(crate) fn setup(run_id: &str, groups: Vec<Group>) -> Result<Net> {
        let root = cgroup2_root()
            .ok_or_else(|| Error::ClusterState("no cgroup2 hierarchy is mounted".into()))?;
        let cgroup_dir = root.join(format!("chaos-{run_id}"));
        let net = Net {
            run_id: run_id.to_string(),
            cgroup_dir,
            groups,
            next: AtomicU32::new(1),
        };
        for g in &net.groups {
            let d = net.cgroup_dir.join(&g.name);
            std::fs::create_dir_all(&d)
                .map_err(|e| Error::io(format!("creating cgroup {}", d.display()), e))?;
        }
        let chain = net.chain();
        iptables(&["-N", &chain])?;
        for g in &net.groups {
            let path = net.path(&g.name);
            let mark = format!("{:#x}", bit(g.index));
            iptables(&[
                "-A",
                &chain,
                "-m",
                "cgroup",
                "--path",
                &path,
                "-j",
                "CONNMARK",
                "--or-mark",
                &mark,
            ])?;
        }
        // Anything outside the cluster talking to a node: a client.
        let outside = format!("chaos-{}", net.run_id);
        let clients = format!("{:#x}", bit(CLIENTS));
        for g in net.groups.iter().filter(|g| g.index != DCS) {
            iptables(&[
                "-A",
                &chain,
                "-m",
                "cgroup",
                "!",
                "--path",
                &outside,
                "-d",
                &g.host,
                "-j",
                "CONNMARK",
                "--or-mark",
                &clients,
            ])?;
        }
        iptables(&[
            "-I",
            "OUTPUT",
            "1",
            "-m",
            "comment",
            "--comment",
            &chain,
            "-j",
            &chain,
        ])?;
        Ok(net)
    }

    /// The marking chain, `chaos-<run id>`.
    fn chain(&self) -> String {
        format!("chaos-{}", self.run_id)
    }

    /// A group's cgroup path relative to the cgroup2 root.
    fn path(&self, group: &str) -> String {
        format!("chaos-{}/{group}", self.run_id)
    }

    /// Moves process `pid` (and so the children it forks later) into `group`'s
    /// cgroup.
    pub(crate) fn place(&self, group: &str, pid: u32) -> Result<()> {
        let procs = self.cgroup_dir.join(group).join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .map_err(|e| Error::io(format!("writing {}", procs.display()), e))
    }

    /// The group called `name`.
    pub(crate) fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Installs a cut: packets sent by each `from` group to each `to` group are
    /// dropped (give both directions for a two-way cut). [`CLIENTS`] may be on
    /// either side. Returns the cut's chain; [`Net::lift`] removes it.
    pub(crate) fn cut(&self, pairs: &[(usize, usize)]) -> Result<String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let chain = format!("{}-{n}", self.chain());
        iptables(&["-N", &chain])?;
        let res = self
            .fill(&chain, pairs)
            .and_then(|()| iptables(&["-A", &self.chain(), "-j", &chain]));
        if let Err(e) = res {
            let _ = iptables(&["-F", &chain]);
            let _ = iptables(&["-X", &chain]);
            return Err(e);
        }
        Ok(chain)
    }

    fn fill(&self, chain: &str, pairs: &[(usize, usize)]) -> Result<()> {
        let outside = format!("chaos-{}", self.run_id);
        for &(from, to) in pairs {
            // Who sends: a group's cgroup, or (clients) anything outside the cluster.
            let sender: Vec<String> = if from == CLIENTS {
                vec![
                    "-m".into(),
                    "cgroup".into(),
                    "!".into(),
                    "--path".into(),
                    outside.clone(),
                ]
            } else {
                let g = self.by_index(from)?;
                vec![
                    "-m".into(),
                    "cgroup".into(),
                    "--path".into(),
                    self.path(&g.name),
                ]
            };
            let mark = format!("{0:#x}/{0:#x}", bit(to));
            let mut on_conn: Vec<String> = sender.clone();
            on_conn.extend(["-m", "connmark", "--mark", &mark, "-j", "DROP"].map(String::from));
            let mut args = vec!["-A".to_string(), chain.to_string()];
            args.extend(on_conn);
            iptables(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
            if to != CLIENTS {
                // New connections to the other side's ports, before it has sent.
                let g = self.by_index(to)?;
                let ports = g
                    .ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                let mut args = vec!["-A".to_string(), chain.to_string()];
                args.extend(sender);
                args.extend(
                    [
                        "-d",
                        &g.host,
                        "-p",
                        "tcp",
                        "-m",
                        "multiport",
                        "--dports",
                        &ports,
                        "-j",
                        "DROP",
                    ]
                    .map(String::from),
                );
                iptables(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
            }
        }
        Ok(())
    }

    fn by_index(&self, index: usize) -> Result<&Group> {
        self.groups
            .iter()
            .find(|g| g.index == index)
            .ok_or_else(|| Error::ClusterState(format!("no network group {index}")))
    }

    /// Removes a cut made by [`Net::cut`].
    pub(crate) fn lift(&self, chain: &str) -> Result<()> {
        iptables(&["-D", &self.chain(), "-j", chain])?;
        iptables(&["-F", chain])?;
        iptables(&["-X", chain])
    }

    /// Removes the chains and cgroups (once the processes in them are gone).
    pub(crate) fn teardown(&self) {
        remove_run(&self.run_id);
    }
}

/// Removes every iptables chain (and `OUTPUT` jump) and cgroup of run `run_id`.
/// Safe to call when there are none.
pub(crate) fn remove_run(run_id: &str) {
    let prefix = format!("chaos-{run_id}");
    if let Ok(out) = Command::new("iptables").args(["-w", "-S"]).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            if line.starts_with("-A OUTPUT") && line.contains(&format!("-j {prefix}")) {
                let rule: Vec<&str> = line["-A OUTPUT".len()..].split_whitespace().collect();
                let mut args = vec!["-D", "OUTPUT"];
                args.extend(rule.iter().map(|a| a.trim_matches('"')));
                let _ = iptables(&args);
            }
        }
        let chains: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("-N "))
            .filter(|c| *c == prefix || c.starts_with(&format!("{prefix}-")))
            .collect();
        for c in &chains {
            let _ = iptables(&["-F", c]);
        }
        for c in &chains {
            let _ = iptables(&["-X", c]);
        }
    }
    if let Some(root) = cgroup2_root() {
        remove_cgroup_tree(&root.join(prefix));
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    // cgroup directories are removed with rmdir (their files are virtual).
    let _ = std::fs::remove_dir(dir);
}

/// Shell lines for `remove.sh`: the same as [`remove_run`].
pub(crate) fn remove_script_lines(run_id: &str) -> String {
    let cg = cgroup2_root().map_or_else(String::new, |r| r.display().to_string());
    format!(
        r#"if command -v iptables >/dev/null 2>&1; then
  iptables -w -S OUTPUT 2>/dev/null | grep -e "-j chaos-{run_id}" | sed 's/^-A OUTPUT //' | while read -r rule; do eval "iptables -w -D OUTPUT $rule"; done
  chains=$(iptables -w -S 2>/dev/null | sed -n 's/^-N \(chaos-{run_id}[-0-9]*\)$/\1/p')
  for c in $chains; do iptables -w -F "$c"; done
  for c in $chains; do iptables -w -X "$c"; done
fi
if [ -n '{cg}' ] && [ -d '{cg}/chaos-{run_id}' ]; then
  for d in '{cg}/chaos-{run_id}'/*/; do rmdir "$d" 2>/dev/null; done
  rmdir '{cg}/chaos-{run_id}' 2>/dev/null
fi
"#
    )
}
