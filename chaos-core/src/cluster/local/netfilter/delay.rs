//! Latency on `lo`: an `htb` root per run, a class with a `netem` leaf per
//! delaying degradation, and the probe for whether the kernel has netem.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::command::tc;
use super::{Net, fnv1a};
use crate::Result;
use crate::error::LocalError;

impl Net {
    /// Adds the `htb` class (and the root `htb` on `lo`, for the run's first
    /// delay) whose netem leaf delays degradation `n`'s packets.
    pub(super) fn add_delay(&self, n: u32, delay: Duration) -> Result<()> {
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
    pub(super) fn remove_delay(&self, chain: &str) {
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
}

/// The handle (major) of the run's root `htb` on `lo`: 0x1000..0xefff, from
/// the run id.
pub(super) fn tc_major(run_id: &str) -> u16 {
    0x1000 + (fnv1a(run_id) % 0xe000) as u16
}

/// The `htb` class (minor) of delay number `n`; class 1 is the default.
pub(super) fn delay_minor(n: u32) -> Result<u16> {
    u16::try_from(n + 1)
        .ok()
        .filter(|m| *m < 0xffff)
        .ok_or_else(|| LocalError::TooManyDegradations { count: n }.into())
}

/// The `tc` commands that make delay class `minor` (and the root, if `root`).
pub(super) fn delay_commands(
    major: u16,
    minor: u16,
    delay: Duration,
    root: bool,
) -> Vec<Vec<String>> {
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

pub(super) fn class_removal(major: u16, minor: u16) -> Vec<String> {
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
pub(super) fn remove_delay_root(run_id: &str) {
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
pub(super) fn probe_netem(run_id: &str) -> Option<String> {
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
