//! Holder crate for the integration tests of `chaos-core` that run real local
//! PostgreSQL HA clusters (see `tests/*.rs`), and the helpers they share for
//! looking at processes through `/proc`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chaos_core::cluster::local::{LocalCluster, LocalClusterBuilder};
use tokio::sync::{Mutex, MutexGuard, OnceCell};

pub mod chromium;
pub mod crd;
pub mod pair;

/// One local cluster for a test file, booted by the first test that asks for
/// it; tests take turns on it (faults on a shared cluster must not overlap).
pub struct SharedCluster {
    cell: OnceCell<LocalCluster>,
    turn: Mutex<()>,
    build: fn() -> LocalClusterBuilder,
}

impl SharedCluster {
    /// A cluster that `build` describes, booted on first use.
    pub const fn new(build: fn() -> LocalClusterBuilder) -> Self {
        SharedCluster {
            cell: OnceCell::const_new(),
            turn: Mutex::const_new(()),
            build,
        }
    }

    /// The cluster, booted if it is not yet.
    pub async fn get(&'static self) -> &'static LocalCluster {
        self.cell
            .get_or_init(|| async { (self.build)().start().await.expect("cluster boots") })
            .await
    }

    /// This test's turn, without the cluster.
    pub async fn lock(&'static self) -> MutexGuard<'static, ()> {
        self.turn.lock().await
    }

    /// This test's turn on the cluster, once it is healthy.
    pub async fn healthy_turn(&'static self) -> (MutexGuard<'static, ()>, &'static LocalCluster) {
        let turn = self.lock().await;
        let c = self.get().await;
        c.wait_healthy(Duration::from_secs(90))
            .await
            .expect("the shared cluster is healthy");
        (turn, c)
    }
}

/// The `CHAOS_KEEP=1` notice in `stderr`: the line starting with `prefix`,
/// split at `middle` into the kept cluster's directory and the command that
/// removes it. Panics, showing `stderr`, when there is no such line.
pub fn kept_notice(stderr: &str, prefix: &str, middle: &str) -> (std::path::PathBuf, String) {
    let notice = stderr
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no notice on stderr: {stderr}"));
    let (dir, command) = notice
        .split_once(middle)
        .unwrap_or_else(|| panic!("no removal command in {notice:?}"));
    (std::path::PathBuf::from(dir), command.to_string())
}

/// Whether this process runs as root (network and disk faults need it).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// For a test that needs root: `true` when it may go on. Without root it
/// fails under CI (`CI` set: CI runs as root, so the faults must be tested
/// there) and elsewhere says on stderr that `test` was skipped, then `false`.
pub fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs root, and CI runs as root: run the suite as root"
    );
    skipped("root", test);
    false
}

/// Says on the process's stderr, past cargo's capture of a passing test's
/// output, that `test` was skipped for want of `what`; `ci/test` counts
/// these lines.
pub fn skipped(what: &str, test: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped (needs {what}): {test}");
}

/// `iptables -S`: every rule of the filter table.
pub fn iptables_rules() -> String {
    std::process::Command::new("iptables")
        .arg("-S")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn stat_after_name(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.rsplit_once(')')?.1.trim_start().to_string())
}

/// The state letter of `pid` (`R`, `S`, `T` for stopped, `Z`, …).
pub fn process_state(pid: i32) -> Option<char> {
    stat_after_name(pid)?.chars().next()
}

fn ppid(pid: i32) -> Option<i32> {
    stat_after_name(pid)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Live processes whose command line mentions `dir`, plus their descendants
/// (PostgreSQL backends do not mention it).
pub fn processes_of(dir: &Path) -> Vec<i32> {
    let mut ours = processes_and_zombies_of(dir);
    ours.retain(|&p| !matches!(process_state(p), None | Some('Z') | Some('X')));
    ours
}

/// The kernel start time of `pid` (clock ticks since boot): with the PID it
/// names a process even after PID reuse.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_after_name(pid)?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Every process of `dir` ([`processes_of`], zombies included) with its
/// start time, to check later with [`still_present`].
pub fn every_process_of(dir: &Path) -> Vec<(i32, u64)> {
    processes_and_zombies_of(dir)
        .into_iter()
        .filter_map(|p| Some((p, start_time(p)?)))
        .collect()
}

/// Those of `procs` that still have a `/proc` entry, as `pid state`: a zombie
/// counts, since its PID is not free until its parent reaps it.
pub fn still_present(procs: &[(i32, u64)]) -> Vec<String> {
    procs
        .iter()
        .filter(|&&(p, st)| start_time(p) == Some(st))
        .map(|&(p, _)| format!("{p} {}", process_state(p).unwrap_or('?')))
        .collect()
}

fn processes_and_zombies_of(dir: &Path) -> Vec<i32> {
    let needle = format!("{}/", dir.display());
    let pids: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let mut ours: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(&needle)
                })
                .unwrap_or(false)
        })
        .collect();
    loop {
        let more: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| !ours.contains(p) && ppid(*p).is_some_and(|pp| ours.contains(&pp)))
            .collect();
        if more.is_empty() {
            break;
        }
        ours.extend(more);
    }
    ours
}

/// A private work directory for tests that inspect what is left behind.
pub fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chaos-test-{name}-{}", std::process::id()))
}

/// The live processes of `dir` (see [`processes_of`]) with their start times,
/// to check later with [`still_running`].
pub fn snapshot(dir: &Path) -> Vec<(i32, u64)> {
    processes_of(dir)
        .into_iter()
        .filter_map(|p| Some((p, start_time(p)?)))
        .collect()
}

/// Those of `procs` that still run (zombies count as gone). Unlike
/// [`processes_of`], this sees a backend whose postmaster is already gone.
pub fn still_running(procs: &[(i32, u64)]) -> Vec<i32> {
    procs
        .iter()
        .filter(|&&(p, st)| {
            start_time(p) == Some(st) && !matches!(process_state(p), None | Some('Z' | 'X'))
        })
        .map(|&(p, _)| p)
        .collect()
}

/// Whether nothing listens on `host:port`.
pub fn port_free(host: &str, port: u16) -> bool {
    TcpListener::bind((host, port)).is_ok()
}

/// Waits up to `timeout` for `cond`.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// Logs of the library to the test's captured output, filtered by `RUST_LOG`
/// (default `warn`); later calls do nothing.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
