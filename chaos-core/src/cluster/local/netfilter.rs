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
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::error::LocalError;
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
        Err(Error::Command {
            command: format!("iptables -w {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn tc(args: &[String]) -> Result<()> {
    let out = Command::new("tc")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running tc (Debian package `iproute2`)", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("tc {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
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

    /// Adds the `htb` class (and the root `htb` on `lo`, for the run's first
    /// delay) whose netem leaf delays degradation `n`'s packets.
    fn add_delay(&self, n: u32, delay: Duration) -> Result<()> {
        let major = tc_major(&self.run_id);
        let minor = delay_minor(n)?;
        let mut delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
        let root = match lo_root_qdisc() {
            Some(line) if line.starts_with(&format!("qdisc htb {major:x}: root")) => true,
            Some(line) if !line.starts_with("qdisc noqueue") => {
                return Err(LocalError::QdiscInUse { qdisc: line }.into());
            }
            _ => false,
        };
        for cmd in delay_commands(major, minor, delay, !root) {
            if let Err(e) = tc(&cmd) {
                if delays.is_empty() {
                    let _ = tc(&root_removal());
                } else {
                    let _ = tc(&class_removal(major, minor));
                }
                return Err(e);
            }
        }
        delays.insert(minor);
        Ok(())
    }

    /// Removes the `htb` class of a delay's chain, and the root `htb` with the
    /// run's last delay. Nothing if `chain` is no delay.
    fn remove_delay(&self, chain: &str) {
        let Some(minor) = chain
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .and_then(|n| delay_minor(n).ok())
        else {
            return;
        };
        let mut delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
        if !delays.remove(&minor) {
            return;
        }
        let major = tc_major(&self.run_id);
        if let Err(e) = tc(&class_removal(major, minor)) {
            tracing::warn!(error = %e, "could not remove a latency class");
        }
        if delays.is_empty() {
            remove_delay_root(&self.run_id);
        }
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
    remove_delay_root(run_id);
    let netns = format!("{prefix}-netem");
    if Path::new("/run/netns").join(&netns).exists() {
        let _ = Command::new("ip").args(["netns", "del", &netns]).output();
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
    let major = tc_major(run_id);
    format!(
        r#"if command -v iptables >/dev/null 2>&1; then
  iptables -w -S OUTPUT 2>/dev/null | grep -e "-j chaos-{run_id}" | sed 's/^-A OUTPUT //' | while read -r rule; do eval "iptables -w -D OUTPUT $rule"; done
  chains=$(iptables -w -S 2>/dev/null | sed -n 's/^-N \(chaos-{run_id}[-0-9]*\)$/\1/p')
  for c in $chains; do iptables -w -F "$c"; done
  for c in $chains; do iptables -w -X "$c"; done
fi
if command -v tc >/dev/null 2>&1 && tc qdisc show dev lo 2>/dev/null | grep -q '^qdisc htb {major:x}: root'; then
  tc qdisc del dev lo root
fi
if [ -e /run/netns/chaos-{run_id}-netem ]; then ip netns del chaos-{run_id}-netem; fi
if [ -n '{cg}' ] && [ -d '{cg}/chaos-{run_id}' ]; then
  for d in '{cg}/chaos-{run_id}'/*/; do rmdir "$d" 2>/dev/null; done
  rmdir '{cg}/chaos-{run_id}' 2>/dev/null
fi
"#
    )
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

/// The handle (major) of the run's root `htb` on `lo`: 0x1000..0xefff, from
/// the run id.
fn tc_major(run_id: &str) -> u16 {
    0x1000 + (fnv1a(run_id) % 0xe000) as u16
}

/// The `htb` class (minor) of delay number `n`; class 1 is the default.
fn delay_minor(n: u32) -> Result<u16> {
    u16::try_from(n + 1)
        .ok()
        .filter(|m| *m < 0xffff)
        .ok_or_else(|| LocalError::TooManyDegradations { count: n }.into())
}

/// The `tc` commands that make delay class `minor` (and the root, if `root`).
fn delay_commands(major: u16, minor: u16, delay: Duration, root: bool) -> Vec<Vec<String>> {
    let class = |minor: u16| {
        format!(
            "class add dev lo parent {major:x}: classid {major:x}:{minor:x} htb rate 100gbit quantum 60000"
        )
    };
    let mut cmds = Vec::new();
    if root {
        cmds.push(format!(
            "qdisc add dev lo root handle {major:x}: htb default 1"
        ));
        cmds.push(class(1));
    }
    cmds.push(class(minor));
    cmds.push(format!(
        "qdisc add dev lo parent {major:x}:{minor:x} netem delay {}us limit 100000",
        delay.as_micros()
    ));
    cmds.into_iter()
        .map(|c| c.split_whitespace().map(String::from).collect())
        .collect()
}

fn class_removal(major: u16, minor: u16) -> Vec<String> {
    format!("class del dev lo classid {major:x}:{minor:x}")
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn root_removal() -> Vec<String> {
    ["qdisc", "del", "dev", "lo", "root"]
        .map(String::from)
        .to_vec()
}

/// The first line of `tc qdisc show dev lo root`, if tc runs.
fn lo_root_qdisc() -> Option<String> {
    let out = Command::new("tc")
        .args(["qdisc", "show", "dev", "lo", "root"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

/// Removes run `run_id`'s root `htb` on `lo`, if it is there.
fn remove_delay_root(run_id: &str) {
    let major = tc_major(run_id);
    if lo_root_qdisc().is_some_and(|l| l.starts_with(&format!("qdisc htb {major:x}: root")))
        && let Err(e) = tc(&root_removal())
    {
        tracing::warn!(error = %e, "could not remove the latency qdisc from lo");
    }
}

/// Why netem cannot be used here, if it cannot: tries to add a netem qdisc to
/// the loopback device of a fresh network namespace `chaos-<run id>-netem`,
/// then removes the namespace.
fn probe_netem(run_id: &str) -> Option<String> {
    if Path::new("/sys/module/sch_netem").exists() {
        return None;
    }
    let ns = format!("chaos-{run_id}-netem");
    let run = |args: &[&str]| -> std::result::Result<(), String> {
        match Command::new("ip").args(args).stdin(Stdio::null()).output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Err(format!("running ip: {e}")),
        }
    };
    if let Err(e) = run(&["netns", "add", &ns]) {
        return Some(format!(
            "could not make a network namespace to probe for netem: {e}"
        ));
    }
    let res = run(&[
        "netns", "exec", &ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
    ]);
    let _ = run(&["netns", "del", &ns]);
    res.err()
        .map(|e| format!("`tc qdisc add … netem` failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Net {
        let groups = vec![
            Group {
                name: "node1".into(),
                index: 0,
                host: "127.0.0.11".into(),
                ports: vec![5432, 8008],
            },
            Group {
                name: "node2".into(),
                index: 1,
                host: "127.0.0.12".into(),
                ports: vec![5433, 8009],
            },
            Group {
                name: "etcd".into(),
                index: DCS,
                host: "127.0.0.1".into(),
                ports: vec![2379],
            },
        ];
        Net {
            run_id: "00112233445566aa".into(),
            cgroup_dir: PathBuf::from("/nonexistent"),
            groups,
            next: AtomicU32::new(1),
            delays: Mutex::default(),
        }
    }

    fn joined(rules: &[Vec<String>]) -> Vec<String> {
        rules.iter().map(|r| r.join(" ")).collect()
    }

    #[test]
    fn loss_rules_select_each_packet_once() {
        let net = net();
        let chain = "chaos-00112233445566aa-3";
        let pairs = [(0, 1), (1, 0), (0, CLIENTS)];
        let rules = net
            .degrade_rules(chain, 3, 0, &pairs, Degradation::Loss(0.25))
            .unwrap();
        let rules = joined(&rules);
        assert_eq!(
            rules,
            [
                "-m cgroup --path chaos-00112233445566aa/node1 -m connmark --mark 0x20000/0x20000 \
                 -m comment --comment chaos-00112233445566aa-3 \
                 -m statistic --mode random --probability 0.250000 -j DROP",
                "-m cgroup --path chaos-00112233445566aa/node1 -d 127.0.0.12 -p tcp -m multiport \
                 --dports 5433,8009 -m connmark ! --mark 0x20000/0x20000 \
                 -m comment --comment chaos-00112233445566aa-3 \
                 -m statistic --mode random --probability 0.250000 -j DROP",
                "-m cgroup --path chaos-00112233445566aa/node2 -m connmark --mark 0x10000/0x10000 \
                 -m comment --comment chaos-00112233445566aa-3 \
                 -m statistic --mode random --probability 0.250000 -j DROP",
                "-m cgroup --path chaos-00112233445566aa/node2 -d 127.0.0.11 -p tcp -m multiport \
                 --dports 5432,8008 -m connmark ! --mark 0x10000/0x10000 \
                 -m comment --comment chaos-00112233445566aa-3 \
                 -m statistic --mode random --probability 0.250000 -j DROP",
                "-m cgroup --path chaos-00112233445566aa/node1 -m connmark --mark 0x4000000/0x4000000 \
                 -m comment --comment chaos-00112233445566aa-3 \
                 -m statistic --mode random --probability 0.250000 -j DROP",
            ]
        );
    }

    #[test]
    fn rate_rules_share_one_bucket_per_direction() {
        let net = net();
        let chain = "chaos-00112233445566aa-4";
        let pairs = [(0, 1), (0, DCS), (1, 0), (CLIENTS, 0)];
        let rules = joined(
            &net.degrade_rules(chain, 4, 0, &pairs, Degradation::Rate(1 << 20))
                .unwrap(),
        );
        let out = hashlimit_name(chain, true);
        let inb = hashlimit_name(chain, false);
        assert_ne!(out, inb);
        assert!(out.len() <= 15 && inb.len() <= 15, "{out} {inb}");
        assert_eq!(rules.len(), 8, "{rules:#?}");
        for r in &rules[..4] {
            assert!(
                r.ends_with(&format!(
                    "--hashlimit-above 1048576b/s --hashlimit-name {out} -j DROP"
                )),
                "{r}"
            );
        }
        for r in &rules[4..] {
            assert!(
                r.ends_with(&format!("--hashlimit-name {inb} -j DROP")),
                "{r}"
            );
        }
        assert!(
            rules[7].starts_with("-m cgroup ! --path chaos-00112233445566aa -d 127.0.0.11"),
            "{}",
            rules[7]
        );
        // A small rate gets a bucket that holds a loopback packet.
        let small = joined(
            &net.degrade_rules(chain, 4, 0, &[(0, 1)], Degradation::Rate(4096))
                .unwrap(),
        );
        assert!(
            small[0].contains("--hashlimit-above 4096b/s --hashlimit-burst 131072b"),
            "{}",
            small[0]
        );
    }

    #[test]
    fn hashlimit_names_differ_between_runs_and_faults() {
        let a = hashlimit_name("chaos-00112233445566aa-1", true);
        let b = hashlimit_name("chaos-00112233445566ab-1", true);
        let c = hashlimit_name("chaos-00112233445566aa-2", true);
        assert!(a != b && a != c && b != c);
        assert_eq!(a.len(), 14);
    }

    #[test]
    fn delays_classify_into_a_netem_class_of_the_runs_htb() {
        let net = net();
        let major = tc_major("00112233445566aa");
        assert!((0x1000..0xf000).contains(&major));
        let rules = joined(
            &net.degrade_rules(
                "c",
                2,
                0,
                &[(0, 1)],
                Degradation::Delay(Duration::from_millis(100)),
            )
            .unwrap(),
        );
        assert!(
            rules[0].ends_with(&format!("-j CLASSIFY --set-class {major:x}:3")),
            "{}",
            rules[0]
        );
        let cmds: Vec<String> = delay_commands(major, 3, Duration::from_millis(100), true)
            .iter()
            .map(|c| c.join(" "))
            .collect();
        assert_eq!(
            cmds,
            [
                format!("qdisc add dev lo root handle {major:x}: htb default 1"),
                format!(
                    "class add dev lo parent {major:x}: classid {major:x}:1 htb rate 100gbit quantum 60000"
                ),
                format!(
                    "class add dev lo parent {major:x}: classid {major:x}:3 htb rate 100gbit quantum 60000"
                ),
                format!("qdisc add dev lo parent {major:x}:3 netem delay 100000us limit 100000"),
            ]
        );
        assert_eq!(
            delay_commands(major, 4, Duration::from_millis(5), false).len(),
            2
        );
        assert_eq!(
            class_removal(major, 3).join(" "),
            format!("class del dev lo classid {major:x}:3")
        );
    }

    #[test]
    fn the_removal_script_removes_the_runs_qdisc_and_probe_namespace() {
        let script = remove_script_lines("00112233445566aa");
        let major = tc_major("00112233445566aa");
        assert!(
            script.contains(&format!("grep -q '^qdisc htb {major:x}: root'")),
            "{script}"
        );
        assert!(
            script.contains("ip netns del chaos-00112233445566aa-netem"),
            "{script}"
        );
        assert!(script.contains("chaos-00112233445566aa[-0-9]*"), "{script}");
        let check = Command::new("sh")
            .args(["-n", "-c", &script])
            .output()
            .unwrap();
        assert!(check.status.success(), "{script}\n{check:?}");
    }
}
