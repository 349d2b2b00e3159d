//! What a local cluster leaves behind: nothing after a drop, a panic or a
//! killed run (its watchdog, or the next start, sweeps it), unless kept with
//! `CHAOS_KEEP=1`; side-by-side clusters; set-up errors that name what to fix.
//! Tests that boot a cluster take this file's lock so that at most one runs at
//! a time on a small CI machine.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chaos_core::prelude::*;
use chaos_tests::{
    eventually, init_tracing, port_free, processes_of, scratch, snapshot, still_running,
};

/// One cluster at a time: each is 3 PostgreSQL servers on a 2-core machine.
static CLUSTER_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    CLUSTER_LOCK.lock().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_survives_a_dropped_or_panicking_cluster() {
    init_tracing();
    let _serial = serial().await;
    for panic in [false, true] {
        let cluster = LocalCluster::builder()
            .work_dir(scratch("cleanup"))
            .start()
            .await
            .expect("cluster boots");
        let dir = cluster.dir().to_path_buf();
        let mut ports: Vec<(String, u16)> = cluster
            .nodes()
            .iter()
            .flat_map(|n| [(n.host.clone(), n.pg_port), (n.host.clone(), n.api_port)])
            .collect();
        let etcd_port = cluster
            .etcd_endpoint()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        ports.push(("127.0.0.1".into(), etcd_port));
        assert!(
            processes_of(&dir).len() >= 7,
            "etcd, 3 Patroni, 3 postmasters run"
        );
        assert!(ports.iter().all(|(h, p)| !port_free(h, *p)), "ports in use");
        // A client connection, so that a backend runs too.
        let client = chaos_core::pg::connect(&cluster.rw_dsn(), Duration::from_secs(5))
            .await
            .expect("connect");
        let procs = snapshot(&dir);

        if panic {
            let task = tokio::spawn(async move {
                let _owned = cluster;
                panic!("test body panics while owning the cluster");
            });
            assert!(task.await.unwrap_err().is_panic());
        } else {
            drop(cluster);
        }
        // Checked at once: dropping returns only when every process is gone.
        let left = still_running(&procs);
        assert!(left.is_empty(), "processes left: {left:?} of {procs:?}");
        assert!(
            processes_of(&dir).is_empty(),
            "processes left: {:?}",
            processes_of(&dir)
        );
        assert!(!dir.exists(), "{} left behind", dir.display());
        drop(client);
        assert!(
            ports.iter().all(|(h, p)| port_free(h, *p)),
            "a port is still taken"
        );
    }
    std::fs::remove_dir_all(scratch("cleanup")).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_run_side_by_side_on_distinct_ports() {
    init_tracing();
    let _serial = serial().await;
    let (a, b) = tokio::join!(LocalCluster::start(), LocalCluster::start());
    let (a, b) = (
        a.expect("first cluster boots"),
        b.expect("second cluster boots"),
    );
    assert_ne!(a.dir(), b.dir());
    let ports = |c: &LocalCluster| -> Vec<u16> {
        c.nodes()
            .iter()
            .flat_map(|n| [n.pg_port, n.api_port])
            .collect()
    };
    let (pa, pb) = (ports(&a), ports(&b));
    assert!(
        pa.iter().all(|p| !pb.contains(p)),
        "{pa:?} and {pb:?} overlap"
    );
    // Each endpoint reaches its own cluster: a table made in one is absent in the other.
    let ca = chaos_core::pg::connect(&a.rw_dsn(), Duration::from_secs(5))
        .await
        .unwrap();
    let cb = chaos_core::pg::connect(&b.rw_dsn(), Duration::from_secs(5))
        .await
        .unwrap();
    ca.batch_execute("CREATE TABLE only_in_a (x int)")
        .await
        .unwrap();
    let in_b: i64 = cb
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_b, 0);
    assert_ne!(a.scope(), b.scope());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_not_ready_in_time_is_an_error_with_logs_and_leaves_nothing() {
    init_tracing();
    let _serial = serial().await;
    let work = scratch("not-ready");
    let err = LocalCluster::builder()
        .work_dir(&work)
        .ready_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Timeout { .. }), "{msg}");
    assert!(
        msg.contains("a healthy cluster") && msg.contains("patroni.log"),
        "{msg}"
    );
    // No process of the failed start survives (any cluster directory under
    // `work` is in their command lines), and no directory is left.
    let survivors = processes_of(&work);
    assert!(survivors.is_empty(), "processes left: {survivors:?}");
    let leftovers: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    std::fs::remove_dir_all(work).ok();
}

/// Run by `a_killed_run_*` tests in a child process: boots a cluster in
/// `CHAOS_HELPER_WORK_DIR`, prints its directory and waits to be killed.
#[tokio::test]
#[ignore = "helper process for the kill tests"]
async fn helper_boot_and_wait() {
    let Some(work) = std::env::var_os("CHAOS_HELPER_WORK_DIR") else {
        return;
    };
    let cluster = LocalCluster::builder()
        .work_dir(work)
        .start()
        .await
        .expect("helper cluster boots");
    println!("CLUSTER_DIR={}", cluster.dir().display());
    tokio::time::sleep(Duration::from_secs(300)).await;
}

/// Boots a cluster in a child process, SIGKILLs it, and returns the cluster dir.
fn boot_in_child_and_kill(work: &Path) -> PathBuf {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_boot_and_wait",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CHAOS_HELPER_WORK_DIR", work)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("helper starts");
    let stdout = child.stdout.take().unwrap();
    let dir = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("CLUSTER_DIR=")
                .map(|(_, d)| PathBuf::from(d.trim()))
        })
        .expect("helper printed its cluster dir");
    child.kill().expect("SIGKILL the helper");
    child.wait().unwrap();
    dir
}

/// PIDs of processes whose environment names `dir` as `CHAOS_DIR` (the watchdog).
fn watchdogs_of(dir: &Path) -> Vec<i32> {
    let needle = format!("CHAOS_DIR={}", dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|e| e.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_is_cleaned_up_by_its_watchdog() {
    init_tracing();
    let _serial = serial().await;
    let work = scratch("watchdog");
    let dir = tokio::task::spawn_blocking({
        let work = work.clone();
        move || boot_in_child_and_kill(&work)
    })
    .await
    .unwrap();
    assert!(
        eventually(Duration::from_secs(20), || processes_of(&dir).is_empty()
            && !dir.exists()),
        "the watchdog did not clean up {}: {:?}",
        dir.display(),
        processes_of(&dir)
    );
    std::fs::remove_dir_all(work).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_without_watchdog_is_swept_by_the_next_start() {
    init_tracing();
    let _serial = serial().await;
    let work = scratch("sweep");
    let dir = tokio::task::spawn_blocking({
        let work = work.clone();
        move || {
            let dir = boot_in_child_and_kill(&work);
            // Simulate losing the watchdog too (e.g. the whole session was killed).
            for pid in watchdogs_of(&dir) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            dir
        }
    })
    .await
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !processes_of(&dir).is_empty(),
        "orphans exist before the sweep"
    );

    let next = LocalCluster::builder()
        .work_dir(&work)
        .start()
        .await
        .expect("next cluster boots");
    assert!(
        processes_of(&dir).is_empty(),
        "orphans survived the sweep: {:?}",
        processes_of(&dir)
    );
    assert!(!dir.exists(), "{} survived the sweep", dir.display());
    drop(next);
    std::fs::remove_dir_all(work).ok();
}

/// Run by `a_kept_cluster_stays_until_removed_by_hand` in a child process with
/// `CHAOS_KEEP=1`: boots a cluster in `CHAOS_HELPER_WORK_DIR` and drops it.
#[tokio::test]
#[ignore = "helper process for the CHAOS_KEEP test"]
async fn helper_boot_and_keep() {
    let Some(work) = std::env::var_os("CHAOS_HELPER_WORK_DIR") else {
        return;
    };
    let cluster = LocalCluster::builder()
        .work_dir(work)
        .start()
        .await
        .expect("helper cluster boots");
    drop(cluster);
}

/// Runs a shell command when dropped, even by a failed assertion.
struct RunOnDrop(String);

impl Drop for RunOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("sh").arg("-c").arg(&self.0).status();
    }
}

/// The Patroni processes of `dir`.
fn patronis_of(dir: &Path) -> usize {
    processes_of(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("patroni.yml"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_cluster_stays_until_removed_by_hand() {
    init_tracing();
    let _serial = serial().await;
    let work = scratch("keep");
    // CHAOS_KEEP is read from the environment: set it in a child process only.
    // The child's output is captured by its harness; the notice must get through.
    let out = tokio::task::spawn_blocking({
        let work = work.clone();
        move || {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "helper_boot_and_keep",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env("CHAOS_HELPER_WORK_DIR", &work)
                .env("CHAOS_KEEP", "1")
                .output()
                .expect("helper runs")
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (dir, command) = chaos_tests::kept_notice(
        &stderr,
        "CHAOS_KEEP=1: kept the local cluster at ",
        " (processes still running); remove it with: ",
    );
    // Removed whatever happens next, a failed helper included.
    let remove = RunOnDrop(command);
    assert!(
        out.status.success(),
        "helper failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );

    // It outlives its owner and its watchdog, whole.
    assert!(dir.starts_with(&work) && dir.exists(), "{}", dir.display());
    assert!(watchdogs_of(&dir).is_empty(), "its watchdog still waits");
    assert_eq!(patronis_of(&dir), 3, "every Patroni still runs");
    let procs = snapshot(&dir);
    assert!(procs.len() >= 7, "etcd, Patroni and PostgreSQL: {procs:?}");

    // The next start sweeps clusters whose owner is gone, but not a kept one.
    let next = LocalCluster::builder()
        .work_dir(&work)
        .start()
        .await
        .expect("next cluster boots");
    drop(next);
    assert!(dir.exists(), "{} was swept", dir.display());
    // Its long-lived processes (etcd, Patroni, postmasters: those naming the
    // directory) all still run; backends and workers come and go by themselves.
    let needle = format!("{}/", dir.display());
    let long_lived: Vec<(i32, u64)> = procs
        .iter()
        .copied()
        .filter(|&(p, _)| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(&needle)
            })
        })
        .collect();
    assert!(
        long_lived.len() >= 7,
        "etcd, Patroni and postmasters: {long_lived:?}"
    );
    assert_eq!(
        still_running(&long_lived),
        long_lived.iter().map(|&(p, _)| p).collect::<Vec<_>>(),
        "its processes were stopped"
    );

    // The printed command stops it and removes it.
    drop(remove);
    let left = still_running(&procs);
    assert!(left.is_empty(), "processes left: {left:?}");
    assert!(
        processes_of(&dir).is_empty() && !dir.exists(),
        "{} left",
        dir.display()
    );
    std::fs::remove_dir_all(work).ok();
}

#[tokio::test]
async fn an_unusable_work_dir_is_an_error_naming_chaos_work_dir() {
    let scratch = scratch("bad-work-dir");
    std::fs::create_dir_all(&scratch).unwrap();
    let file = scratch.join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    for work in [file.clone(), file.join("below")] {
        let err = LocalCluster::builder()
            .work_dir(&work)
            .start()
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, Error::WorkDir { path, .. } if *path == work),
            "{msg}"
        );
        assert!(msg.contains("set CHAOS_WORK_DIR"), "{msg}");
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        entries,
        std::slice::from_ref(&file),
        "something was left behind"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
    std::fs::remove_dir_all(scratch).unwrap();
}

#[tokio::test]
async fn missing_programs_are_typed_errors_naming_the_package() {
    let err = LocalCluster::builder()
        .patroni("/nonexistent/patroni")
        .start()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::BinaryNotFound {
                package: "patroni",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("pip install 'patroni[etcd3]==3.1.2'") && msg.contains("CHAOS_PATRONI"),
        "{msg}"
    );

    let err = LocalCluster::builder()
        .pg_bin("/nonexistent")
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("postgresql-15"), "{err}");

    let err = LocalCluster::builder().nodes(1).start().await.unwrap_err();
    assert!(matches!(err, Error::Config { field: "nodes", .. }), "{err}");
}

#[tokio::test]
async fn probe_rejects_bad_settings() {
    let err = ProbeConfig::default()
        .writers(0)
        .start("postgresql://x@127.0.0.1:1/db")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least 1 writer"), "{err}");
    let err = ProbeConfig::default()
        .interval(Duration::ZERO)
        .start("postgresql://x@127.0.0.1:1/db")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("above zero"), "{err}");
}
