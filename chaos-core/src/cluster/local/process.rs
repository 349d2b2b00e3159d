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
                install: "install the Debian package `postgresql-15` (it creates the user)",
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
        // lchown: a symbolic link is changed itself, never what it points to.
        let chown = |p: &Path| {
            std::os::unix::fs::lchown(p, Some(self.uid.as_raw()), Some(self.gid.as_raw()))
                .map_err(|e| Error::io(format!("chown {}", p.display()), e))
        };
        chown(path)?;
        if path.is_dir() && !path.is_symlink() {
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

/// SIGCONT to `pids` in reverse order, undoing a SIGSTOP sweep that stopped
/// them in order (parents first): children run again before their parents
/// notice. Every process is signalled; the first error is returned.
pub(crate) fn resume_all(pids: &[i32]) -> Result<()> {
    let mut first_error = None;
    for &pid in pids.iter().rev() {
        if let Err(e) = signal(pid, Signal::SIGCONT) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Waits until none of `pids` is stopped; false if some still are at `deadline`.
pub(crate) async fn wait_not_stopped(pids: &[i32], deadline: Instant) -> bool {
    while pids.iter().any(|&p| is_stopped(p)) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Waits (without blocking the runtime) until every one of `pids` is stopped
/// or gone — SIGSTOP takes hold when a process is next scheduled — or `within`
/// passed. Whether they all were.
pub(crate) async fn wait_stopped(pids: &[i32], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if pids.iter().all(|&p| is_dead(p) || is_stopped(p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
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
pub(crate) fn is_dead(pid: i32) -> bool {
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
/// gets an immediate shutdown (so it frees its shared memory), stragglers are
/// killed after 5 s. Returns once all of them are gone from `/proc`, or after
/// 10 s with a warning.
///
/// A zombie is not gone: it keeps its PID and `/proc` entry until its parent
/// reaps it. Patroni starts each postmaster through a helper that exits at
/// once, so postmasters (and the logger, which outlives its postmaster) are
/// orphans, reaped by init, which on some hosts polls only every second or
/// two. Only a zombie whose parent is this process counts as gone: the
/// caller reaps it (its [`Child`]) right after.
pub(crate) fn stop_all_under(dir: &Path) {
    let needle = format!("{}/", dir.display());
    let me = std::process::id() as i32;
    // Every process seen, with its start time: a backend whose postmaster died is
    // no longer a descendant, and a PID may be reused.
    let mut seen: Vec<(i32, u64)> = Vec::new();
    let mut signalled: Vec<i32> = Vec::new();
    let started = Instant::now();
    loop {
        for p in pids_under(dir) {
            if !seen.iter().any(|&(q, _)| q == p)
                && let Some(st) = start_time(p)
            {
                seen.push((p, st));
            }
        }
        let alive: Vec<i32> = seen
            .iter()
            .filter(|&&(p, st)| start_time(p) == Some(st) && !(is_dead(p) && ppid(p) == Some(me)))
            .map(|&(p, _)| p)
            .collect();
        if alive.is_empty() {
            return;
        }
        if started.elapsed() >= Duration::from_secs(10) {
            tracing::warn!(dir = %dir.display(), pids = ?alive, "processes of the local cluster survive SIGKILL");
            return;
        }
        if started.elapsed() >= Duration::from_secs(5) {
            for &p in &alive {
                let _ = signal(p, Signal::SIGKILL);
            }
        } else {
            // Patroni and etcd first, so nothing restarts PostgreSQL behind our back;
            // backends follow their postmaster.
            let (postmasters, others): (Vec<i32>, Vec<i32>) = alive
                .into_iter()
                .filter(|p| !signalled.contains(p) && cmdline_contains(*p, &needle))
                .partition(|&p| cmdline_contains(p, "-D "));
            for &p in &others {
                let _ = signal(p, Signal::SIGKILL);
            }
            for &p in &postmasters {
                let _ = signal(p, Signal::SIGQUIT);
            }
            signalled.extend(others.into_iter().chain(postmasters));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The file in a cluster directory naming the process that owns it.
const OWNER_FILE: &str = "owner";

/// The marker of a cluster kept by `CHAOS_KEEP=1`: sweeps and watchdogs leave it.
pub(crate) const KEPT_FILE: &str = "kept";

/// The script in a cluster directory that stops its processes and removes it.
const REMOVE_SCRIPT: &str = "remove.sh";

/// How old a cluster directory without a readable owner must be to be swept:
/// younger ones may be being created.
const UNOWNED_GRACE: Duration = Duration::from_secs(60);

/// Creates the cluster directory `root/<run_id>` with its owner (this process)
/// and removal script already in it: they are written in `.<run_id>.staging`,
/// which is then renamed, so a concurrent sweep never sees it without an owner.
pub(crate) fn create_run_dir(root: &Path, run_id: &str) -> std::io::Result<PathBuf> {
    let dir = root.join(run_id);
    let staging = root.join(format!(".{run_id}.staging"));
    fs::create_dir(&staging)?;
    let me = std::process::id() as i32;
    let filled = fs::write(
        staging.join(OWNER_FILE),
        format!("{me} {}\n", start_time(me).unwrap_or(0)),
    )
    .and_then(|()| fs::write(staging.join(REMOVE_SCRIPT), remove_script(&dir)))
    .and_then(|()| fs::rename(&staging, &dir));
    if let Err(e) = filled {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(dir)
}

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The removal script of cluster directory `dir`, run by the watchdog and by hand
/// for kept clusters. Its patterns match the cluster's programs only, never the
/// shell that runs it (whose command line names the directory too).
fn remove_script(dir: &Path) -> String {
    format!(
        r#"# Stops the processes of the local cluster in this directory, then removes it.
CHAOS_DIR={}
ours="$CHAOS_DIR/.*patroni.yml|(--data-dir |-D |--pgdata=|-f )$CHAOS_DIR/"
pkill -KILL -f -- "$CHAOS_DIR/.*patroni.yml"
pkill -KILL -f -- "--data-dir $CHAOS_DIR/"
pkill -KILL -f -- "-f $CHAOS_DIR/proxy/haproxy.cfg"
pkill -QUIT -f -- "-D $CHAOS_DIR/"
i=0
while pgrep -f -- "$ours" >/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
pkill -KILL -f -- "$ours"
{}{}rm -rf -- "$CHAOS_DIR"
"#,
        shell_quote(&dir.display().to_string()),
        dir.file_name()
            .and_then(|n| n.to_str())
            .map(super::netfilter::remove_script_lines)
            .unwrap_or_default(),
        dir.file_name()
            .and_then(|n| n.to_str())
            .map(super::disk::remove_script_lines)
            .unwrap_or_default()
    )
}

/// The shell command that stops the processes of cluster directory `dir` and
/// removes it.
pub(crate) fn remove_command(dir: &Path) -> String {
    let script = dir.join(REMOVE_SCRIPT);
    format!("sh {}", shell_quote(&script.display().to_string()))
}

/// What `dir/owner` says about the process that owns `dir`: `Some(alive)`, or
/// `None` when there is no readable owner.
fn owner_alive(dir: &Path) -> Option<bool> {
    let text = fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
    let mut it = text.split_whitespace();
    let pid = it.next()?.parse::<i32>().ok()?;
    let st = it.next()?.parse::<u64>().ok()?;
    Some(start_time(pid) == Some(st) && !is_dead(pid))
}

/// Whether `name` is a cluster directory (`<run_id>`, or `.<run_id>.staging`
/// while created): the sweep touches nothing else under the work directory.
fn is_run_dir_name(name: &str) -> bool {
    let id = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".staging"))
        .unwrap_or(name);
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether the cluster directory `dir` is abandoned: not kept, and its owner is
/// gone, or it has no owner and is older than [`UNOWNED_GRACE`].
fn abandoned(dir: &Path) -> bool {
    if dir.join(KEPT_FILE).exists() {
        return false;
    }
    match owner_alive(dir) {
        Some(alive) => !alive,
        None => fs::metadata(dir)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > UNOWNED_GRACE)),
    }
}

/// Removes every abandoned cluster directory under `root`, stopping whatever
/// processes of it survived. Returns the directories swept.
pub(crate) fn sweep(root: &Path) -> Vec<PathBuf> {
    let mut swept = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return swept;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let ours = entry.file_name().to_str().is_some_and(is_run_dir_name);
        if !ours || !dir.is_dir() || !abandoned(&dir) {
            continue;
        }
        tracing::warn!(dir = %dir.display(), "sweeping a local cluster left behind by a killed run");
        stop_all_under(&dir);
        if let Some(id) = entry.file_name().to_str() {
            let id = id.trim_start_matches('.').trim_end_matches(".staging");
            super::netfilter::remove_run(id);
            super::disk::remove_run(id);
        }
        let _ = fs::remove_dir_all(&dir);
        swept.push(dir);
    }
    swept
}

/// A shell script that waits for its stdin to close (the owning process dropped the
/// cluster or died, even by SIGKILL), then runs the cluster's removal script, unless
/// the cluster is kept (marking it kept if `CHAOS_KEEP=1` was set at spawn time).
const WATCHDOG: &str = r#"
read -r _ignored
[ -d "$CHAOS_DIR" ] || exit 0
[ -e "$CHAOS_DIR/kept" ] && exit 0
if [ "$CHAOS_KEEP" = "1" ]; then : > "$CHAOS_DIR/kept"; exit 0; fi
exec sh "$CHAOS_DIR/remove.sh"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_id::new_run_id;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::SystemTime;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chaos-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// An owner record (`pid start-time`) of a process that has exited.
    fn dead_owner() -> String {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        let st = start_time(pid).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        format!("{pid} {st}\n")
    }

    #[test]
    fn the_sweep_spares_clusters_being_created_and_kept_and_removes_abandoned_ones() {
        let root = scratch("sweep");
        assert!(
            is_run_dir_name(&new_run_id()),
            "run ids look like cluster dirs"
        );
        let mkdir = |name: String| {
            let dir = root.join(name);
            fs::create_dir(&dir).unwrap();
            dir
        };
        // `create_run_dir` between its first two steps: no owner written yet.
        let fresh = mkdir(format!(".{}.staging", new_run_id()));
        let dead = mkdir(new_run_id());
        fs::write(dead.join(OWNER_FILE), dead_owner()).unwrap();
        let kept = mkdir(new_run_id());
        fs::write(kept.join(OWNER_FILE), dead_owner()).unwrap();
        fs::write(kept.join(KEPT_FILE), "").unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(120);
        let stale = mkdir(format!(".{}.staging", new_run_id()));
        let foreign = mkdir("not-a-cluster".into());
        for d in [&stale, &foreign] {
            fs::File::open(d).unwrap().set_modified(long_ago).unwrap();
        }

        // Other starts sweep all along while this one creates cluster directories.
        let stop = AtomicBool::new(false);
        let (created, swept) = std::thread::scope(|s| {
            let sweeper = s.spawn(|| {
                let mut swept = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    swept.extend(sweep(&root));
                }
                swept
            });
            let created: Vec<PathBuf> = (0..200)
                .map(|_| create_run_dir(&root, &new_run_id()).unwrap())
                .collect();
            stop.store(true, Ordering::Relaxed);
            (created, sweeper.join().unwrap())
        });
        for dir in &created {
            assert!(dir.join(OWNER_FILE).exists(), "{} was swept", dir.display());
        }
        for dir in [&fresh, &kept, &foreign] {
            assert!(dir.exists(), "{} was swept", dir.display());
        }
        for dir in [&dead, &stale] {
            assert!(
                !dir.exists() && swept.contains(dir),
                "{} not swept",
                dir.display()
            );
        }
        assert_eq!(swept.len(), 2, "{swept:?}");
        fs::remove_dir_all(&root).unwrap();
    }

    /// A process that appears while the cluster stops (here a "backend" forked by a
    /// shutting-down "postmaster", orphaned when it exits) is waited for as well.
    #[test]
    fn stopping_waits_for_processes_born_during_the_shutdown() {
        let dir = scratch("stop");
        let late = dir.join("late.pid");
        let script = format!(
            "trap 'sleep 0.5 & echo $! > {late}; sleep 0.2; exit 0' QUIT; : > {ready}; \
             while :; do sleep 0.02; done",
            late = shell_quote(&late.display().to_string()),
            ready = shell_quote(&dir.join("ready").display().to_string()),
        );
        let data = format!("{}/data", dir.display());
        let mut postmaster = Command::new("sh")
            .args(["-c", &script, "postgres", "-D", &data])
            .spawn()
            .unwrap();
        while !dir.join("ready").exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop_all_under(&dir);
        let pid: i32 = fs::read_to_string(&late).unwrap().trim().parse().unwrap();
        assert!(is_dead(pid), "the late process {pid} outlived the stop");
        postmaster.wait().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
