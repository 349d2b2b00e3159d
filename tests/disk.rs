//! Disk faults on a real local cluster: each node's data directory and WAL on
//! loop-device filesystems of their own, I/O throttled in the kernel (blkio
//! cgroups), and nothing left behind by a killed run. Needs root, as CI runs;
//! without root the typed error is checked instead.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chaos_core::fault::{Fault, FaultGuard, PartitionNetwork, ThrottleDisk};
use chaos_core::prelude::*;
use chaos_tests::{SharedCluster, init_tracing, is_root, processes_of, root_or_skip};

/// One cluster for the file; tests take turns on it.
static SHARED: SharedCluster = SharedCluster::new(|| {
    LocalCluster::builder()
        .nodes(2)
        .proxy(false)
        .separate_wal(true)
});

async fn healthy_turn() -> (tokio::sync::MutexGuard<'static, ()>, &'static LocalCluster) {
    SHARED.healthy_turn().await
}

fn run_id(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// `(source, mount point, type)` of the mount holding `path`.
fn mount_of(path: &Path) -> (String, String, String) {
    let path = std::fs::canonicalize(path).unwrap();
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.to_string(),
                f.get(1)?.to_string(),
                f.get(2)?.to_string(),
            ))
        })
        .filter(|(_, m, _)| path.starts_with(m))
        .max_by_key(|(_, m, _)| m.len())
        .unwrap()
}

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Commit latency of `n` single-row autocommit INSERTs, one after the other
/// (each waits for the WAL flush on the primary and the synchronous standby).
#[derive(Debug, Clone, Copy)]
struct Latency {
    median: Duration,
    /// Wall time over `n`: what the rate limit governs. The kernel lets a
    /// throttled group burst at the start of each 100 ms slice, so under a
    /// mild limit most commits pass at once and a few wait long: the median
    /// barely moves while the mean follows the limit.
    mean: Duration,
}

async fn commit_latency(client: &tokio_postgres::Client, n: usize) -> Latency {
    let mut took = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        client
            .execute("INSERT INTO disk_probe VALUES (now())", &[])
            .await
            .unwrap();
        took.push(t.elapsed());
    }
    let mean = start.elapsed() / n as u32;
    took.sort();
    Latency {
        median: took[n / 2],
        mean,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_the_primarys_wal_slows_commits_and_lifting_it_restores_them() {
    init_tracing();
    if !root_or_skip("throttling_the_primarys_wal_slows_commits_and_lifting_it_restores_them") {
        return;
    }
    let (_turn, c) = healthy_turn().await;
    let primary = c.primary().await.unwrap();
    let client = chaos_core::pg::connect(&c.node(&primary).unwrap().dsn(), Duration::from_secs(2))
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS disk_probe (at timestamptz)")
        .await
        .unwrap();
    let before = commit_latency(&client, 50).await;
    // A commit writes one 8 KiB WAL page: at 64 KiB/s every commit waits.
    let guard = ThrottleDisk::primary()
        .write_bps(64 << 10)
        .wal_only()
        .inject(c)
        .await
        .expect("the throttle is set");
    assert_eq!(guard.info().kind, "throttle-primary-disk");
    assert_eq!(guard.info().victim.as_deref(), Some(primary.as_str()));
    assert_eq!(guard.info().mode, "write 64 KiB/s on the WAL");
    assert_eq!(guard.devices().len(), 1, "the WAL device only");
    let during = commit_latency(&client, 12).await;
    guard.heal().await.expect("healed");
    // Writes the throttle had queued drain first (at the old rate, for a
    // moment): wait for one quick commit, up to 10 s, then measure.
    let drained = Instant::now();
    while commit_latency(&client, 1).await.median > Duration::from_millis(20) {
        assert!(
            drained.elapsed() < Duration::from_secs(10),
            "commits still slow 10 s after the throttle was lifted"
        );
    }
    let after = commit_latency(&client, 50).await;
    println!(
        "commit latency median / mean: before {:?} / {:?}, throttled {:?} / {:?}, after {:?} / {:?}",
        before.median, before.mean, during.median, during.mean, after.median, after.mean
    );
    assert!(
        during.median > before.median * 3 && during.mean > before.mean * 3,
        "throttled commits took {during:?}, {before:?} before"
    );
    // Generous: the machine is shared. Lifted means back near the start, and
    // far below the throttled latency.
    assert!(
        after.mean < before.mean * 2 + Duration::from_millis(5) && after.mean * 3 < during.mean,
        "commits took {after:?} after the throttle was lifted, {before:?} before, {during:?} throttled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_nodes_data_and_wal_live_on_loop_device_filesystems_of_their_own() {
    init_tracing();
    if !is_root() {
        let err = LocalCluster::builder()
            .disk_faults(true)
            .start()
            .await
            .expect_err("needs root");
        assert!(matches!(err, chaos_core::Error::Privilege { .. }), "{err}");
        assert!(err.to_string().contains("root"), "{err}");
        return;
    }
    let (_turn, c) = healthy_turn().await;
    let run = run_id(c.dir());
    let loops = output("losetup", &["-a"]);
    for node in c.nodes() {
        let data = node.data_dir();
        let (dev, mnt, fstype) = mount_of(&data);
        assert!(
            dev.starts_with("/dev/loop"),
            "{} is on {dev}",
            data.display()
        );
        assert_eq!(fstype, "ext4");
        assert!(Path::new(&mnt).starts_with(c.dir()), "{mnt}");
        let pg_wal = data.join("pg_wal");
        assert!(pg_wal.is_symlink(), "{} is no symlink", pg_wal.display());
        let (wal_dev, wal_mnt, _) = mount_of(&pg_wal);
        assert!(
            wal_dev.starts_with("/dev/loop") && wal_dev != dev,
            "{wal_dev} vs {dev}"
        );
        assert_ne!(wal_mnt, mnt);
        let findmnt = output(
            "findmnt",
            &[
                "-n",
                "-o",
                "SOURCE",
                "--target",
                &data.display().to_string(),
            ],
        );
        assert_eq!(findmnt.trim(), dev);
        for what in ["data", "wal"] {
            let name = format!("chaos-{run}-{}-{what}.img", node.name);
            assert!(loops.contains(&name), "losetup -a lacks {name}:\n{loops}");
        }
        // PostgreSQL runs in the node's blkio group.
        let pid = c.postmaster_pid(&node.name).unwrap();
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let group = format!("/chaos-{run}/{}", node.name);
        assert!(
            cgroups
                .lines()
                .any(|l| l.contains(":blkio:") && l.ends_with(&group)),
            "{cgroups}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_recreated_by_pg_basebackup_keeps_its_wal_on_the_wal_disk() {
    init_tracing();
    if !root_or_skip("a_replica_recreated_by_pg_basebackup_keeps_its_wal_on_the_wal_disk") {
        return;
    }
    let (_turn, c) = healthy_turn().await;
    let t = c.topology().await.unwrap();
    let replica = t.standbys().next().unwrap().name.clone();
    let data = c.node(&replica).unwrap().data_dir();
    let node_dir = c.dir().join(&replica);
    let wal = node_dir.join("wal-disk/pg_wal");
    // Gone once the WAL directory is re-created (inode numbers come back).
    let marker = wal.join("chaos-marker");
    std::fs::write(&marker, "").unwrap();
    // Patroni removes the data directory and the WAL directory its pg_wal
    // points to, then runs pg_basebackup with --waldir.
    let out = Command::new("patronictl")
        .arg("-c")
        .arg(node_dir.join("patroni.yml"))
        .args(["reinit", c.scope(), &replica, "--force", "--wait"])
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.wait_replica(&replica, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(!marker.exists(), "pg_wal was not re-created");
    assert_eq!(std::fs::read_link(data.join("pg_wal")).unwrap(), wal);
    let (dev, mnt, _) = mount_of(&wal);
    assert!(
        dev.starts_with("/dev/loop") && mnt.ends_with("/wal-disk"),
        "{dev} {mnt}"
    );
    let segments = std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().len() == 24)
        .count();
    assert!(segments > 0, "no WAL segment in {}", wal.display());
    c.wait_healthy(Duration::from_secs(60)).await.unwrap();
}

/// Starts this test binary running `helper_disk_faults_and_wait` on a fresh
/// work directory; returns it and the cluster directory it prints.
fn spawn_helper(work: &Path) -> (Child, PathBuf, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_disk_faults_and_wait",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CHAOS_HELPER_WORK_DIR", work)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("helper starts");
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split_once("CLUSTER_DIR=").map(|(_, r)| r.to_string()))
        .expect("the helper injected its faults");
    let (dir, chain) = line.trim().split_once(" CHAIN=").unwrap();
    (child, PathBuf::from(dir), chain.to_string())
}

#[tokio::test]
#[ignore = "helper process for the kill test"]
async fn helper_disk_faults_and_wait() {
    let Some(work) = std::env::var_os("CHAOS_HELPER_WORK_DIR") else {
        return;
    };
    let cluster = LocalCluster::builder()
        .work_dir(work)
        .nodes(2)
        .proxy(false)
        .disk_faults(true)
        .start()
        .await
        .expect("helper cluster boots");
    let partition = PartitionNetwork::primary_from_replicas()
        .inject(&cluster)
        .await
        .expect("partition");
    let _throttle = ThrottleDisk::primary()
        .write_bps(1 << 20)
        .inject(&cluster)
        .await
        .expect("throttle");
    println!(
        "CLUSTER_DIR={} CHAIN={}",
        cluster.dir().display(),
        partition.chain().unwrap()
    );
    tokio::time::sleep(Duration::from_secs(300)).await;
}

/// What is left of run `dir`: processes, iptables chains, cgroups (v2 and
/// blkio), mounts, loop devices, backing files, the directory.
fn leftovers(dir: &Path) -> Vec<String> {
    let run = run_id(dir);
    let mut left = Vec::new();
    let pids = processes_of(dir);
    if !pids.is_empty() {
        left.push(format!("processes {pids:?}"));
    }
    if output("iptables", &["-w", "-S"]).contains(&format!("chaos-{run}")) {
        left.push("iptables rules".into());
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f[2] == "cgroup2" || (f[2] == "cgroup" && f[3].split(',').any(|o| o == "blkio")) {
            let cg = Path::new(f[1]).join(format!("chaos-{run}"));
            if cg.exists() {
                left.push(format!("cgroup {}", cg.display()));
            }
        }
        if f[1].contains(&format!("/{run}/")) {
            left.push(format!("mount {}", f[1]));
        }
    }
    for l in output("losetup", &["-a"]).lines() {
        if l.contains(&format!("chaos-{run}-")) {
            left.push(format!("loop device {l}"));
        }
    }
    for (what, cmd, args) in [
        ("network namespace", "ip", &["netns", "list"][..]),
        ("link", "ip", &["link", "show"][..]),
    ] {
        for l in output(cmd, args).lines() {
            if l.contains(&format!("chaos-{run}")) {
                left.push(format!("{what} {l}"));
            }
        }
    }
    if dir.join("disks").exists() {
        left.push("backing files".into());
    }
    if dir.exists() {
        left.push("cluster directory".into());
    }
    left
}

/// The watchdog of cluster directory `dir` (a `sh` whose environment names it).
fn watchdog_of(dir: &Path) -> Option<i32> {
    let want = format!("CHAOS_DIR={}", dir.display());
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        if !String::from_utf8_lossy(&cmd).contains("read -r _ignored") {
            return None;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        env.split(|b| *b == 0)
            .any(|v| v == want.as_bytes())
            .then_some(pid)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_leaves_no_mount_loop_device_cgroup_rule_or_process_behind() {
    init_tracing();
    if !root_or_skip("a_killed_run_leaves_no_mount_loop_device_cgroup_rule_or_process_behind") {
        return;
    }
    let _turn = SHARED.lock().await;
    let base = std::env::temp_dir().join(format!("chaos-test-disk-kill-{}", std::process::id()));
    let (work_a, work_b) = (base.join("a"), base.join("b"));
    // Two runs at once: one cleaned by its watchdog, one by the next start's sweep.
    let a = std::thread::spawn(move || spawn_helper(&work_a));
    let (mut child_b, dir_b, chain_b) = spawn_helper(&work_b);
    let (mut child_a, dir_a, chain_a) = a.join().unwrap();
    for (dir, chain) in [(&dir_a, &chain_a), (&dir_b, &chain_b)] {
        let run = run_id(dir);
        assert!(chain.starts_with(&format!("chaos-{run}-")), "{chain}");
        let left = leftovers(dir);
        for what in [
            "processes",
            "iptables",
            "cgroup",
            "mount",
            "loop device",
            "backing files",
        ] {
            assert!(
                left.iter().any(|l| l.starts_with(what)),
                "the helper's run has no {what}: {left:?}"
            );
        }
        let blkio = Path::new("/sys/fs/cgroup/blkio").join(format!("chaos-{run}"));
        assert!(blkio.exists(), "{}", blkio.display());
        let throttled = std::fs::read_dir(&blkio)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| {
                std::fs::read_to_string(e.path().join("blkio.throttle.write_bps_device")).unwrap()
            })
            .collect::<String>();
        assert!(throttled.contains(" 1048576"), "{throttled:?}");
    }

    // Run b loses its watchdog first: only a sweep can clean it.
    let watchdog = watchdog_of(&dir_b).expect("run b has a watchdog");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watchdog),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child_a.kill().unwrap();
    child_b.kill().unwrap();
    child_a.wait().unwrap();
    child_b.wait().unwrap();

    // Run a: its watchdog runs remove.sh.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = leftovers(&dir_a);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left by the watchdog after 30 s: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        leftovers(&dir_b).iter().any(|l| l.starts_with("mount")),
        "run b was cleaned without its watchdog"
    );

    // Run b: the next start in its work directory sweeps it.
    let next = LocalCluster::builder()
        .work_dir(&work_b)
        .nodes(2)
        .proxy(false)
        .start()
        .await
        .expect("the next cluster boots");
    let left = leftovers(&dir_b);
    assert!(left.is_empty(), "left after the sweep: {left:?}");
    // A cluster without disk faults cannot be throttled: the error says how.
    let err = ThrottleDisk::primary()
        .write_iops(10)
        .inject(&next)
        .await
        .expect_err("no disks to throttle");
    assert!(
        matches!(
            err,
            chaos_core::Error::Config {
                field: "disk_faults",
                ..
            }
        ) && err.to_string().contains("disk_faults(true)"),
        "{err}"
    );
    next.stop();
    let _ = std::fs::remove_dir_all(&base);
}

/// Boot time of a cluster with disk faults and with a separate WAL against
/// the default (3 nodes, no proxy), a few boots each; prints the medians.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: cargo test -p chaos-tests --test disk -- --ignored boot_time"]
async fn boot_time_with_disks_against_the_default() {
    init_tracing();
    if !root_or_skip("boot_time_with_disks_against_the_default") {
        return;
    }
    let _turn = SHARED.lock().await;
    let mut medians = Vec::new();
    for (name, disks, wal) in [
        ("default", false, false),
        ("disk_faults", true, false),
        ("separate_wal", true, true),
    ] {
        let mut took = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let c = LocalCluster::builder()
                .proxy(false)
                .disk_faults(disks)
                .separate_wal(wal)
                .start()
                .await
                .unwrap();
            took.push(t.elapsed());
            c.stop();
        }
        took.sort();
        println!("{name}: boots {took:?}, median {:?}", took[took.len() / 2]);
        medians.push(took[took.len() / 2]);
    }
    println!(
        "boot time ratio: disk_faults {:.2}, separate_wal {:.2} of the default",
        medians[1].as_secs_f64() / medians[0].as_secs_f64(),
        medians[2].as_secs_f64() / medians[0].as_secs_f64()
    );
}
