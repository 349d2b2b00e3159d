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
//! A degradation ([`Net::degrade`]) is a chain of the same kind whose rules
//! select the same packets, and act on them otherwise: drop each at random
//! (`-m statistic`), drop what exceeds a byte rate (`-m hashlimit`, policing,
//! one bucket per direction), or hand them to a `netem` qdisc that delays them
//! (`-j CLASSIFY` into an `htb` class on `lo`; only where the kernel has
//! netem, see [`Net::netem_missing`]).
//!
//! Everything is named after the run id, and removed by the fault's guard,
//! by the cluster's teardown, by its watchdog's `remove.sh` and by a later
//! start's sweep ([`remove_run`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::error::LocalError;
use crate::{Error, Result};

mod command;
mod delay;
mod sweep;
#[cfg(test)]
mod tests;

use command::iptables;
use delay::{delay_minor, probe_netem, tc_major};
pub(crate) use sweep::{remove_run, remove_script_lines};

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

/// The smallest rate a [`Degradation::Rate`] takes, in bytes per second
/// (iptables rounds smaller byte rates coarsely).
pub(crate) const MIN_RATE: u64 = 1024;
/// The largest rate a [`Degradation::Rate`] takes, in bytes per second
/// (iptables' byte-mode hashlimit overflows above).
pub(crate) const MAX_RATE: u64 = 1 << 30;
/// The longest [`Degradation::Delay`].
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(60);
/// Below this rate the default bucket (one second of traffic) is smaller than
/// a loopback packet (up to 64 KiB with GSO): give it this many bytes.
const SMALL_RATE: u64 = 96 * 1024;
const SMALL_RATE_BURST: u64 = 128 * 1024;

/// What a degradation does to the packets it selects.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Degradation {
    /// Drop each packet with this probability (0 < p ≤ 1).
    Loss(f64),
    /// Drop what exceeds this many bytes per second, per direction: one
    /// token bucket for everything the node sends to the chosen peers, one
    /// for what they send to it. The bucket holds one second of traffic (at
    /// least 128 KiB).
    Rate(u64),
    /// Delay each packet by this much (netem).
    Delay(Duration),
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
    /// The `htb` classes on `lo` of this run's delays.
    delays: Mutex<BTreeSet<u16>>,
}

impl Net {
    /// Creates the cgroups and the marking chain of run `run_id`.
    pub(crate) fn setup(run_id: &str, groups: Vec<Group>) -> Result<Net> {
        let root = cgroup2_root().ok_or(LocalError::NoCgroup {
            hierarchy: "cgroup2",
        })?;
        let cgroup_dir = root.join(format!("chaos-{run_id}"));
        let net = Net {
            run_id: run_id.to_string(),
            cgroup_dir,
            groups,
            next: AtomicU32::new(1),
            delays: Mutex::default(),
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
        for &(from, to) in pairs {
            for mut rule in self.pair_matches(from, to, false)? {
                rule.extend(["-j", "DROP"].map(String::from));
                append(chain, &rule)?;
            }
        }
        Ok(())
    }

    /// The matches that select packets sent by group `from` to group `to`:
    /// on connections `to` has sent on, and new connections to `to`'s ports.
    /// With `exclusive`, no packet matches both (a degradation must count a
    /// packet once).
    fn pair_matches(&self, from: usize, to: usize, exclusive: bool) -> Result<Vec<Vec<String>>> {
        let outside = format!("chaos-{}", self.run_id);
        // Who sends: a group's cgroup, or (clients) anything outside the cluster.
        let sender: Vec<String> = if from == CLIENTS {
            vec![
                "-m".into(),
                "cgroup".into(),
                "!".into(),
                "--path".into(),
                outside,
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
        let mut on_conn = sender.clone();
        on_conn.extend(["-m", "connmark", "--mark", &mark].map(String::from));
        let mut rules = vec![on_conn];
        if to != CLIENTS {
            // New connections to the other side's ports, before it has sent.
            let g = self.by_index(to)?;
            let ports = g
                .ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let mut new_conn = sender;
            new_conn.extend(
                [
                    "-d",
                    &g.host,
                    "-p",
                    "tcp",
                    "-m",
                    "multiport",
                    "--dports",
                    &ports,
                ]
                .map(String::from),
            );
            if exclusive {
                new_conn.extend(["-m", "connmark", "!", "--mark", &mark].map(String::from));
            }
            rules.push(new_conn);
        }
        Ok(rules)
    }

    /// Installs a degradation of `node`'s links: `how` acts on the packets
    /// each `from` group sends to each `to` group (pairs as for
    /// [`Net::cut`]; pairs sent by `node` are its outbound direction, the
    /// others inbound). Returns the degradation's chain; [`Net::lift`]
    /// removes it. A [`Degradation::Delay`] needs netem ([`Net::netem_missing`]).
    pub(crate) fn degrade(
        &self,
        node: usize,
        pairs: &[(usize, usize)],
        how: Degradation,
    ) -> Result<String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let chain = format!("{}-{n}", self.chain());
        let rules = self.degrade_rules(&chain, n, node, pairs, how)?;
        if let Degradation::Delay(delay) = how {
            self.add_delay(n, delay)?;
        }
        let res = iptables(&["-N", &chain]).and_then(|()| {
            let filled = rules
                .iter()
                .try_for_each(|r| append(&chain, r))
                .and_then(|()| iptables(&["-A", &self.chain(), "-j", &chain]));
            if filled.is_err() {
                let _ = iptables(&["-F", &chain]);
                let _ = iptables(&["-X", &chain]);
            }
            filled
        });
        if let Err(e) = res {
            self.remove_delay(&chain);
            return Err(e);
        }
        Ok(chain)
    }

    /// The rules (after `-A <chain>`) of degradation number `n`.
    fn degrade_rules(
        &self,
        chain: &str,
        n: u32,
        node: usize,
        pairs: &[(usize, usize)],
        how: Degradation,
    ) -> Result<Vec<Vec<String>>> {
        let mut rules = Vec::new();
        for &(from, to) in pairs {
            let action: Vec<String> = match how {
                Degradation::Loss(p) => [
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &format!("{p:.6}"),
                    "-j",
                    "DROP",
                ]
                .map(String::from)
                .to_vec(),
                Degradation::Rate(rate) => {
                    let mut a: Vec<String> = ["-m", "hashlimit", "--hashlimit-above"]
                        .map(String::from)
                        .to_vec();
                    a.push(format!("{rate}b/s"));
                    if rate < SMALL_RATE {
                        a.push("--hashlimit-burst".into());
                        a.push(format!("{SMALL_RATE_BURST}b"));
                    }
                    a.push("--hashlimit-name".into());
                    a.push(hashlimit_name(chain, from == node));
                    a.extend(["-j", "DROP"].map(String::from));
                    a
                }
                Degradation::Delay(_) => vec![
                    "-j".into(),
                    "CLASSIFY".into(),
                    "--set-class".into(),
                    format!("{:x}:{:x}", tc_major(&self.run_id), delay_minor(n)?),
                ],
            };
            for mut rule in self.pair_matches(from, to, true)? {
                rule.extend(["-m", "comment", "--comment", chain].map(String::from));
                rule.extend(action.iter().cloned());
                rules.push(rule);
            }
        }
        Ok(rules)
    }

    fn by_index(&self, index: usize) -> Result<&Group> {
        self.groups
            .iter()
            .find(|g| g.index == index)
            .ok_or_else(|| LocalError::NoNetworkGroup { index }.into())
    }

    /// Removes a cut made by [`Net::cut`] or a degradation made by
    /// [`Net::degrade`].
    pub(crate) fn lift(&self, chain: &str) -> Result<()> {
        let res = iptables(&["-D", &self.chain(), "-j", chain])
            .and_then(|()| iptables(&["-F", chain]))
            .and_then(|()| iptables(&["-X", chain]));
        self.remove_delay(chain);
        res
    }

    /// Whether this kernel lacks netem, and why; probed once per process
    /// (in a network namespace `chaos-<run id>-netem`, removed at once).
    pub(crate) fn netem_missing(&self) -> Option<String> {
        static MISSING: OnceLock<Option<String>> = OnceLock::new();
        MISSING.get_or_init(|| probe_netem(&self.run_id)).clone()
    }

    /// Removes the chains and cgroups (once the processes in them are gone).
    pub(crate) fn teardown(&self) {
        remove_run(&self.run_id);
    }
}

/// Appends `rule` to `chain`.
fn append(chain: &str, rule: &[String]) -> Result<()> {
    let mut args = vec!["-A", chain];
    args.extend(rule.iter().map(String::as_str));
    iptables(&args)
}

/// FNV-1a: a stable hash for short names derived from long ones.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The hashlimit table of a rate degradation's direction: hashlimit names
/// hold 15 characters, fewer than `chaos-<run id>-<n>`, so `c`, 12 hex digits
/// of the chain name's hash and `o`(utbound) or `i`(nbound). The rules carry
/// the full chain name as a comment.
pub(crate) fn hashlimit_name(chain: &str, outbound: bool) -> String {
    let way = if outbound { 'o' } else { 'i' };
    format!("c{:012x}{way}", fnv1a(chain) & 0xffff_ffff_ffff)
}
