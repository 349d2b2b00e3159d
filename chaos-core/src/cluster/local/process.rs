//! Processes of the local cluster: starting them as the right user, finding them
//! again through `/proc`, stopping them, and sweeping what a killed run left.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid, User};

use crate::{Error, Result};

/// The user the database processes run as: `postgres` when we are root (PostgreSQL
/// refuses to run as root), the current user otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunAs {
    pub uid: Uid,
    pub gid: Gid,
    /// Whether we switch users when spawning.
    pub switch: bool,
}

impl RunAs {
    pub(crate) fn detect() -> Result<Self> {
        if !Uid::effective().is_root() {
            return Ok(RunAs {
                uid: Uid::effective(),
                gid: Gid::effective(),
                switch: false,
            });
        }
        let user = User::from_name("postgres")
            .map_err(|e| Error::process("looking up the `postgres` user", e))?
            .ok_or_else(|| Error::BinaryNotFound {
                program: "user `postgres` (PostgreSQL refuses to run as root)",
                searched: "/etc/passwd".into(),
                package: "postgresql-15",
                env_var: "CHAOS_PG_BIN",
            })?;
        Ok(RunAs {
            uid: user.uid,
            gid: user.gid,
            switch: true,
        })
    }

    /// Gives `path` (and everything below it) to the run-as user.
    pub(crate) fn own(&self, path: &Path) -> Result<()> {
        if !self.switch {
            return Ok(());
        }
        let chown = |p: &Path| {
            std::os::unix::fs::chown(p, Some(self.uid.as_raw()), Some(self.gid.as_raw()))
                .map_err(|e| Error::io(format!("chown {}", p.display()), e))
        };
        chown(path)?;
        if path.is_dir() {
            for entry in fs::read_dir(path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
            {
                let entry = entry.map_err(|e| Error::io("reading directory entry", e))?;
                self.own(&entry.path())?;
            }
        }
        Ok(())
    }
}

/// Spawns `cmd` as `run_as`, in its own process group, with output appended to `log`.
pub(crate) fn spawn(mut cmd: Command, run_as: RunAs, log: &Path, what: &str) -> Result<Child> {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(format!("opening log {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::io(format!("opening log {}", log.display()), e))?;
    run_as.own(log)?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME");
    if run_as.switch {
        cmd.uid(run_as.uid.as_raw()).gid(run_as.gid.as_raw());
    }
    cmd.spawn()
        .map_err(|e| Error::io(format!("starting {what} ({:?})", cmd.get_program()), e))
}

/// Reads `/proc/<pid>/cmdline` as one space-separated string.
fn cmdline(pid: i32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .map(String::from_utf8_lossy)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// The parent PID of `pid`.
fn ppid(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// The kernel start time of `pid` (clock ticks since boot): with the PID it
/// identifies a process even after PID reuse.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether `pid` is a zombie or gone.
fn is_dead(pid: i32) -> bool {
    match stat_fields(pid) {
        None => true,
        Some(f) => f.first().is_some_and(|s| s == "Z" || s == "X"),
    }
}

/// Whether `pid` is stopped by a signal (state `T`).
pub(crate) fn is_stopped(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s == "T"))
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// PIDs whose command line mentions `dir`, plus all their descendants.
pub(crate) fn pids_under(dir: &Path) -> Vec<i32> {
    let needle = format!("{}/", dir.display());
    let me = std::process::id() as i32;
    let pids = all_pids();
    let found: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|&p| p != me && cmdline(p).is_some_and(|c| c.contains(&needle)))
        .collect();
    // Postgres backends do not mention the data directory: add descendants.
    with_descendants(found, &pids)
}

/// `roots` plus every descendant among `pids`.
fn with_descendants(mut found: Vec<i32>, pids: &[i32]) -> Vec<i32> {
    loop {
        let before = found.len();
        for &p in pids {
            if !found.contains(&p) && ppid(p).is_some_and(|pp| found.contains(&pp)) {
                found.push(p);
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

/// Whether the command line of `pid` mentions `needle`.
pub(crate) fn cmdline_contains(pid: i32, needle: &str) -> bool {
    cmdline(pid).is_some_and(|c| c.contains(needle))
}

/// Sends `sig` to `pid`, ignoring processes that are already gone.
pub(crate) fn signal(pid: i32, sig: Signal) -> Result<()> {
    match kill(Pid::from_raw(pid), sig) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(e) => Err(Error::process(format!("sending {sig} to pid {pid}"), e)),
    }
}

/// Stops every process belonging to `dir`: Patroni and etcd are killed, PostgreSQL
/// gets an immediate shutdown (so it frees its shared memory), stragglers are killed.
pub(crate) fn stop_all_under(dir: &Path) {
    let pids = pids_under(dir);
    if pids.is_empty() {
        return;
    }
    // Patroni and etcd first, so nothing restarts PostgreSQL behind our back.
    let needle = format!("{}/", dir.display());
    let (postmasters, others): (Vec<i32>, Vec<i32>) =
        pids.iter().partition(|&&p| cmdline_contains(p, "-D "));
    for &p in &others {
        if cmdline_contains(p, &needle) {
            let _ = signal(p, Signal::SIGKILL);
        }
    }
    // Immediate shutdown: PostgreSQL frees its shared memory on the way out.
    for &p in &postmasters {
        let _ = signal(p, Signal::SIGQUIT);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && pids.iter().any(|&p| !is_dead(p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids_under(dir).into_iter().chain(pids) {
        if !is_dead(p) {
            let _ = signal(p, Signal::SIGKILL);
        }
    }
}

/// The file in a cluster directory naming the process that owns it.
const OWNER_FILE: &str = "owner";

/// Records this process as owner of `dir` (PID and start time).
pub(crate) fn write_owner(dir: &Path) -> Result<()> {
    let me = std::process::id() as i32;
    let st = start_time(me).unwrap_or(0);
    fs::write(dir.join(OWNER_FILE), format!("{me} {st}\n"))
        .map_err(|e| Error::io(format!("writing owner marker in {}", dir.display()), e))
}

/// Whether the process recorded in `dir/owner` still runs.
fn owner_alive(dir: &Path) -> bool {
    let Ok(text) = fs::read_to_string(dir.join(OWNER_FILE)) else {
        return false;
    };
    let mut it = text.split_whitespace();
    let (Some(pid), Some(st)) = (it.next(), it.next()) else {
        return false;
    };
    let (Ok(pid), Ok(st)) = (pid.parse::<i32>(), st.parse::<u64>()) else {
        return false;
    };
    start_time(pid) == Some(st) && !is_dead(pid)
}

/// Removes every cluster directory under `root` whose owner is gone, stopping
/// whatever processes of it survived. Returns the directories swept.
pub(crate) fn sweep(root: &Path) -> Vec<PathBuf> {
    let mut swept = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return swept;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() || owner_alive(&dir) {
            continue;
        }
        tracing::warn!(dir = %dir.display(), "sweeping a local cluster left behind by a killed run");
        stop_all_under(&dir);
        let _ = fs::remove_dir_all(&dir);
        swept.push(dir);
    }
    swept
}

/// A shell script that waits for its stdin to close (the owning process dropped the
/// cluster or died, even by SIGKILL), then stops the cluster's processes and removes
/// its directory.
const WATCHDOG: &str = r#"
read -r _ignored
[ -d "$CHAOS_DIR" ] || exit 0
[ "$CHAOS_KEEP" = "1" ] && exit 0
pkill -KILL -f -- "$CHAOS_DIR/.*patroni.yml"
pkill -QUIT -f -- "-D $CHAOS_DIR/"
pkill -KILL -f -- "--data-dir $CHAOS_DIR/"
i=0
while pgrep -f -- "$CHAOS_DIR/" >/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
pkill -KILL -f -- "$CHAOS_DIR/"
rm -rf -- "$CHAOS_DIR"
"#;

/// Starts the watchdog for `dir`. Keep the returned child's stdin open for as long
/// as the cluster lives; closing it (or dying) triggers the cleanup.
pub(crate) fn spawn_watchdog(dir: &Path) -> Result<Child> {
    let keep = if keep_requested() { "1" } else { "0" };
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .env("CHAOS_DIR", dir)
        .env("CHAOS_KEEP", keep)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io("starting the cleanup watchdog (sh)", e))
}

/// Whether `CHAOS_KEEP=1` asks to keep clusters for debugging.
pub(crate) fn keep_requested() -> bool {
    std::env::var("CHAOS_KEEP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Waits for `child` to exit (reaping it), killing it after `grace`.
pub(crate) fn reap(child: &mut Child, grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// All descendants of `pid` (children, grandchildren, …).
pub(crate) fn descendants(pid: i32) -> Vec<i32> {
    let mut all = with_descendants(vec![pid], &all_pids());
    all.remove(0);
    all
}
