//! Disks of their own for the local cluster's nodes, and throttling them.
//!
//! With [`LocalClusterBuilder::disk_faults`](super::LocalClusterBuilder::disk_faults)
//! each node's data directory lives on an ext4 filesystem of its own, made on a
//! loop device over a sparse backing file (`<run dir>/disks/chaos-<run id>-<node>-data.img`,
//! mounted at `<node dir>/data-disk`, data directory `<node dir>/data-disk/data`);
//! with [`separate_wal`](super::LocalClusterBuilder::separate_wal) the WAL gets a
//! second one (`…-wal.img` on `<node dir>/wal-disk`, `pg_wal` a symbolic link to
//! `<node dir>/wal-disk/pg_wal`), like CNPG's `walStorage`.
//!
//! Each node's Patroni runs in a blkio cgroup (cgroup v1,
//! `<blkio>/chaos-<run id>/<node>`) from the moment it is spawned, so
//! PostgreSQL and everything else it starts inherit it. A throttle is the
//! cgroup's `blkio.throttle.{read,write}_{bps,iops}_device` for the loop
//! device's `MAJ:MIN`. (Kernel background writeback is not throttled under
//! cgroup v1; what PostgreSQL writes and syncs itself — WAL flushes at commit,
//! checkpoints' fsyncs — is.)
//!
//! Everything is named after the run id, and removed by the cluster's teardown,
//! by its watchdog's `remove.sh` and by a later start's sweep ([`remove_run`]),
//! once the processes are gone: unmount, detach the loop devices, delete the
//! backing files, remove the cgroups.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::config::{PatroniConfig, ToolOption};
use super::process::RunAs;
use crate::error::LocalError;
use crate::fault::throttle::DiskLimits;
use crate::{Error, Result};

/// Size of each sparse backing file: space is used only as it is written.
const SIZE: u64 = 1 << 30;

/// Directories for tools that live in `sbin`, when `PATH` lacks them.
const SBIN: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The mount point of a node's data filesystem, in its directory.
const DATA_MOUNT: &str = "data-disk";
/// The mount point of a node's WAL filesystem, in its directory.
const WAL_MOUNT: &str = "wal-disk";

/// The data directory of a node whose data lives on a filesystem of its own.
pub(crate) fn data_dir(node_dir: &Path) -> PathBuf {
    node_dir.join(DATA_MOUNT).join("data")
}

/// The WAL directory (`pg_wal`'s target) of a node with a WAL filesystem.
pub(crate) fn wal_dir(node_dir: &Path) -> PathBuf {
    node_dir.join(WAL_MOUNT).join("pg_wal")
}

/// Where the cgroup v1 blkio hierarchy is mounted, if it is.
pub(crate) fn blkio_root() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 4 && f[2] == "cgroup" && f[3].split(',').any(|o| o == "blkio"))
            .then(|| PathBuf::from(f[1]))
    })
}

/// `name` on `PATH`, else in the usual system directories.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Why disk faults cannot be used here, if they cannot.
pub(crate) fn unavailable() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not running as root".into());
    }
    for (program, package) in [
        ("losetup", "util-linux"),
        ("mkfs.ext4", "e2fsprogs"),
        ("mount", "mount"),
        ("umount", "mount"),
    ] {
        if tool(program).is_none() {
            return Some(format!(
                "{program} is not installed (Debian package `{package}`)"
            ));
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("/dev/loop-control is missing (no loop-device support)".into());
    }
    match blkio_root() {
        None => Some("no cgroup v1 blkio hierarchy is mounted".into()),
        Some(root) if !root.join("cgroup.procs").exists() => {
            Some(format!("{} has no cgroup.procs", root.display()))
        }
        Some(_) => None,
    }
}

/// Runs a system tool; its stderr becomes the error.
fn run(program: &str, args: &[&str]) -> Result<String> {
    let exe = tool(program).unwrap_or_else(|| PathBuf::from(program));
    let out = Command::new(&exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running {program}"), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(Error::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// A block device's number, as blkio files want it (`MAJ:MIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dev {
    major: u32,
    minor: u32,
}

impl fmt::Display for Dev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl Dev {
    /// The number of `/dev/loopN`, from `/sys/block/loopN/dev`.
    fn of(device: &Path) -> Result<Dev> {
        let name = device
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let sys = PathBuf::from("/sys/block").join(name).join("dev");
        let text = fs::read_to_string(&sys)
            .map_err(|e| Error::io(format!("reading {}", sys.display()), e))?;
        let (major, minor) = text
            .trim()
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            .ok_or_else(|| LocalError::DeviceNumber {
                path: sys.clone(),
                found: text.clone(),
            })?;
        Ok(Dev { major, minor })
    }
}

/// One loop-device filesystem.
#[derive(Debug, Clone)]
pub(crate) struct Volume {
    /// The loop device, `/dev/loopN`.
    pub device: PathBuf,
    /// Its number.
    pub dev: Dev,
    /// Where it is mounted.
    pub mount: PathBuf,
}

impl Volume {
    /// Makes a sparse `backing` file with an ext4 filesystem, attaches it to a
    /// free loop device and mounts it on `mount`, whose root is given to `run_as`.
    fn create(backing: &Path, mount: &Path, run_as: RunAs) -> Result<Volume> {
        let f = fs::File::create(backing)
            .map_err(|e| Error::io(format!("creating {}", backing.display()), e))?;
        f.set_len(SIZE)
            .map_err(|e| Error::io(format!("sizing {}", backing.display()), e))?;
        drop(f);
        let file = backing.display().to_string();
        // Lazy initialisation: mkfs writes a few MB instead of the whole file.
        run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-m",
                "0",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1",
                &file,
            ],
        )?;
        let device = PathBuf::from(run("losetup", &["--find", "--show", &file])?);
        let volume = Dev::of(&device).and_then(|dev| {
            fs::create_dir_all(mount)
                .map_err(|e| Error::io(format!("creating {}", mount.display()), e))?;
            let target = mount.display().to_string();
            run(
                "mount",
                &[
                    "-t",
                    "ext4",
                    "-o",
                    "noatime",
                    &device.display().to_string(),
                    &target,
                ],
            )?;
            Ok(Volume {
                device: device.clone(),
                dev,
                mount: mount.to_path_buf(),
            })
        });
        match volume {
            Ok(v) => {
                // The mount's root only (lost+found stays root's).
                if run_as.switch {
                    std::os::unix::fs::lchown(
                        mount,
                        Some(run_as.uid.as_raw()),
                        Some(run_as.gid.as_raw()),
                    )
                    .map_err(|e| Error::io(format!("chown {}", mount.display()), e))?;
                }
                Ok(v)
            }
            Err(e) => {
                let _ = run("losetup", &["-d", &device.display().to_string()]);
                Err(e)
            }
        }
    }
}

/// One node's filesystems.
#[derive(Debug, Clone)]
pub(crate) struct NodeDisks {
    /// The node's name, also its blkio group's.
    pub name: String,
    /// The data directory's filesystem.
    pub data: Volume,
    /// The WAL's, with a separate WAL.
    pub wal: Option<Volume>,
    /// The data directory.
    pub data_dir: PathBuf,
}

impl NodeDisks {
    /// Points the node's Patroni configuration at its disks: the data
    /// directory, and with a separate WAL, `--waldir` for `pg_basebackup` and
    /// `initdb` (Patroni removes the WAL directory a symlinked `pg_wal` points
    /// to before re-creating a replica).
    pub(crate) fn patch_config(&self, cfg: &mut PatroniConfig) {
        cfg.postgresql.data_dir = self.data_dir.display().to_string();
        if let Some(wal) = &self.wal {
            let waldir = wal.mount.join("pg_wal").display().to_string();
            let option = ToolOption::setting("waldir", &waldir);
            cfg.postgresql.basebackup.push(option.clone());
            cfg.bootstrap.initdb.push(option);
        }
    }
}

impl DiskLimits {
    /// The blkio files and values set.
    fn settings(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("blkio.throttle.read_bps_device", self.read_bps),
            ("blkio.throttle.write_bps_device", self.write_bps),
            ("blkio.throttle.read_iops_device", self.read_iops),
            ("blkio.throttle.write_iops_device", self.write_iops),
        ]
        .into_iter()
        .filter_map(|(f, v)| Some((f, v?)))
    }
}

const THROTTLE_FILES: [&str; 4] = [
    "blkio.throttle.read_bps_device",
    "blkio.throttle.write_bps_device",
    "blkio.throttle.read_iops_device",
    "blkio.throttle.write_iops_device",
];

/// The cluster's disks and blkio groups.
#[derive(Debug)]
pub(crate) struct Disks {
    run_id: String,
    cgroup_dir: PathBuf,
    nodes: Vec<NodeDisks>,
}

impl Disks {
    /// Makes the filesystems of every node (`(name, node dir)`), and a blkio
    /// group per node. On failure removes what it made.
    pub(crate) fn setup(
        run_id: &str,
        run_dir: &Path,
        nodes: &[(String, PathBuf)],
        separate_wal: bool,
        run_as: RunAs,
    ) -> Result<Disks> {
        let res = Self::setup_inner(run_id, run_dir, nodes, separate_wal, run_as);
        if res.is_err() {
            remove_run(run_id);
        }
        res
    }

    fn setup_inner(
        run_id: &str,
        run_dir: &Path,
        nodes: &[(String, PathBuf)],
        separate_wal: bool,
        run_as: RunAs,
    ) -> Result<Disks> {
        let blkio = blkio_root().ok_or(LocalError::NoCgroup {
            hierarchy: "cgroup v1 blkio",
        })?;
        let cgroup_dir = blkio.join(format!("chaos-{run_id}"));
        let images = run_dir.join("disks");
        fs::create_dir_all(&images)
            .map_err(|e| Error::io(format!("creating {}", images.display()), e))?;
        // Every filesystem at once: each takes some tens of milliseconds.
        let made: Vec<Result<NodeDisks>> = std::thread::scope(|s| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|(name, dir)| {
                    let images = &images;
                    s.spawn(move || {
                        let backing =
                            |what: &str| images.join(format!("chaos-{run_id}-{name}-{what}.img"));
                        let (wal_file, data_file) = (backing("wal"), backing("data"));
                        let wal = separate_wal.then(|| {
                            s.spawn(move || Volume::create(&wal_file, &dir.join(WAL_MOUNT), run_as))
                        });
                        let data = Volume::create(&data_file, &dir.join(DATA_MOUNT), run_as);
                        let wal = match wal {
                            Some(h) => Some(h.join().map_err(|p| Error::Panicked {
                                what: "making a WAL filesystem".into(),
                                message: crate::panics::panic_message(p.as_ref()),
                            })??),
                            None => None,
                        };
                        Ok(NodeDisks {
                            name: name.clone(),
                            data: data?,
                            wal,
                            data_dir: data_dir(dir),
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().map_err(|p| Error::Panicked {
                        what: "making a node's filesystems".into(),
                        message: crate::panics::panic_message(p.as_ref()),
                    })?
                })
                .collect()
        });
        let nodes = made.into_iter().collect::<Result<Vec<_>>>()?;
        for n in &nodes {
            let d = cgroup_dir.join(&n.name);
            fs::create_dir_all(&d)
                .map_err(|e| Error::io(format!("creating cgroup {}", d.display()), e))?;
        }
        Ok(Disks {
            run_id: run_id.to_string(),
            cgroup_dir,
            nodes,
        })
    }

    /// Node `name`'s disks.
    pub(crate) fn node(&self, name: &str) -> Option<&NodeDisks> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Whether the WAL has filesystems of its own.
    pub(crate) fn separate_wal(&self) -> bool {
        self.nodes.iter().all(|n| n.wal.is_some())
    }

    /// Moves process `pid` (and so the children it forks later) into node
    /// `name`'s blkio group; other groups (etcd) have none and are left alone.
    pub(crate) fn place(&self, name: &str, pid: u32) -> Result<()> {
        if self.node(name).is_none() {
            return Ok(());
        }
        let procs = self.cgroup_dir.join(name).join("cgroup.procs");
        fs::write(&procs, pid.to_string())
            .map_err(|e| Error::io(format!("writing {}", procs.display()), e))
    }

    /// Limits node `name`'s I/O on `devices`.
    pub(crate) fn throttle(&self, name: &str, devices: &[Dev], limits: &DiskLimits) -> Result<()> {
        let group = self.cgroup_dir.join(name);
        for (file, value) in limits.settings() {
            for dev in devices {
                let path = group.join(file);
                fs::write(&path, format!("{dev} {value}")).map_err(|e| {
                    Error::io(format!("writing {dev} {value} to {}", path.display()), e)
                })?;
            }
        }
        Ok(())
    }

    /// Removes every limit of node `name` on `devices`.
    pub(crate) fn lift(&self, name: &str, devices: &[Dev]) -> Result<()> {
        let group = self.cgroup_dir.join(name);
        let mut first = None;
        for file in THROTTLE_FILES {
            for dev in devices {
                let path = group.join(file);
                if let Err(e) = fs::write(&path, format!("{dev} 0")) {
                    first.get_or_insert(Error::io(
                        format!("writing {dev} 0 to {}", path.display()),
                        e,
                    ));
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Unmounts and removes everything (once the processes are gone).
    pub(crate) fn teardown(&self) {
        remove_run(&self.run_id);
    }
}

/// Decodes the octal escapes (`\040`) of a `/proc/mounts` field.
fn unescape(field: &str) -> String {
    let mut out = Vec::new();
    let b = field.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(digits) = std::str::from_utf8(&b[i + 1..i + 4])
            && let Ok(v) = u8::from_str_radix(digits, 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Loop devices whose backing file is named `chaos-<run_id>-…`, with that file.
fn loop_devices(run_id: &str) -> Vec<(PathBuf, PathBuf)> {
    let prefix = format!("chaos-{run_id}-");
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            if !name.starts_with("loop") {
                return None;
            }
            let back = fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            let back = back.trim_end();
            let back = PathBuf::from(back.strip_suffix(" (deleted)").unwrap_or(back));
            let file = back.file_name()?.to_str()?;
            file.starts_with(&prefix)
                .then(|| (PathBuf::from("/dev").join(&name), back.clone()))
        })
        .collect()
}

/// Removes every filesystem, loop device, backing file and blkio group of run
/// `run_id`: unmounts whatever is mounted below a directory named after it or
/// from one of its loop devices, detaches the loop devices, deletes their
/// backing files and removes the groups. Safe to call when there are none.
pub(crate) fn remove_run(run_id: &str) {
    let loops = loop_devices(run_id);
    let marker = format!("/{run_id}/");
    let mut mounts: Vec<String> = fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (source, target) = (f.next()?, unescape(f.next()?));
            let ours =
                target.contains(&marker) || loops.iter().any(|(dev, _)| Path::new(source) == dev);
            ours.then_some(target)
        })
        .collect();
    // Deepest first.
    mounts.sort_by(|a, b| b.cmp(a));
    mounts.dedup();
    for m in &mounts {
        if let Err(e) = run("umount", &[m]) {
            tracing::warn!(mount = %m, error = %e, "unmount failed; detaching it lazily");
            let _ = run("umount", &["-l", m]);
        }
    }
    for (dev, back) in &loops {
        if let Err(e) = run("losetup", &["-d", &dev.display().to_string()]) {
            tracing::warn!(device = %dev.display(), error = %e, "could not detach a loop device");
        }
        let _ = fs::remove_file(back);
    }
    if let Some(root) = blkio_root() {
        let dir = root.join(format!("chaos-{run_id}"));
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = fs::remove_dir(e.path());
                }
            }
        }
        // cgroup directories are removed with rmdir (their files are virtual).
        let _ = fs::remove_dir(&dir);
    }
}

/// Shell lines for `remove.sh`: the same as [`remove_run`], after the
/// processes are gone.
pub(crate) fn remove_script_lines(run_id: &str) -> String {
    let blkio = blkio_root().map_or_else(String::new, |r| r.display().to_string());
    format!(
        r#"PATH="$PATH:/usr/sbin:/sbin"
while read -r _src mnt _rest; do
  case "$mnt" in */{run_id}/*) umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null ;; esac
done < /proc/mounts
for f in /sys/block/loop*/loop/backing_file; do
  [ -r "$f" ] || continue
  back=$(cat "$f"); back=${{back% (deleted)}}
  case "${{back##*/}}" in
    chaos-{run_id}-*) dev=${{f%/loop/backing_file}}; losetup -d "/dev/${{dev##*/}}" 2>/dev/null; rm -f -- "$back" ;;
  esac
done
if [ -n '{blkio}' ] && [ -d '{blkio}/chaos-{run_id}' ]; then
  for d in '{blkio}/chaos-{run_id}'/*/; do rmdir "$d" 2>/dev/null; done
  rmdir '{blkio}/chaos-{run_id}' 2>/dev/null
fi
"#
    )
}

#[cfg(test)]
mod tests {
    use super::super::config::{NodeConfig, PatroniTimings, SynchronousMode};
    use super::*;

    #[test]
    fn mount_fields_are_unescaped() {
        assert_eq!(unescape(r"/tmp/a\040b/c"), "/tmp/a b/c");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape(r"/end\"), r"/end\");
    }

    #[test]
    fn limits_name_their_blkio_files() {
        let l = DiskLimits {
            write_bps: Some(1 << 20),
            read_iops: Some(50),
            ..DiskLimits::default()
        };
        let set: Vec<_> = l.settings().collect();
        assert_eq!(
            set,
            [
                ("blkio.throttle.write_bps_device", 1 << 20),
                ("blkio.throttle.read_iops_device", 50)
            ]
        );
        assert!(DiskLimits::default().is_empty());
        assert_eq!(Dev { major: 7, minor: 3 }.to_string(), "7:3");
    }

    #[test]
    fn the_config_points_at_the_disks() {
        let vol = |m: &str| Volume {
            device: "/dev/loop9".into(),
            dev: Dev { major: 7, minor: 9 },
            mount: PathBuf::from(m),
        };
        let disks = NodeDisks {
            name: "node1".into(),
            data: vol("/r/node1/data-disk"),
            wal: Some(vol("/r/node1/wal-disk")),
            data_dir: data_dir(Path::new("/r/node1")),
        };
        let mut cfg = NodeConfig {
            scope: "s",
            name: "node1",
            host: "127.0.0.11",
            pg_port: 5000,
            api_port: 8000,
            etcd_client: "127.0.0.1:2379",
            node_dir: Path::new("/r/node1"),
            pg_bin: Path::new("/r/bin"),
            timings: PatroniTimings::for_version((3, 1, 2)),
            synchronous_mode: SynchronousMode::default(),
            extra_parameters: &[],
            template_script: Path::new("/r/bin/pg_ctl"),
        }
        .render();
        assert_eq!(cfg.postgresql.data_dir, "/r/node1/data");
        let (backup, initdb) = (cfg.postgresql.basebackup.len(), cfg.bootstrap.initdb.len());
        disks.patch_config(&mut cfg);
        assert_eq!(cfg.postgresql.data_dir, "/r/node1/data-disk/data");
        let waldir = ToolOption::setting("waldir", "/r/node1/wal-disk/pg_wal");
        assert_eq!(cfg.postgresql.basebackup.len(), backup + 1);
        assert_eq!(cfg.postgresql.basebackup.last(), Some(&waldir));
        assert_eq!(cfg.bootstrap.initdb.len(), initdb + 1);
        assert_eq!(cfg.bootstrap.initdb.last(), Some(&waldir));
        assert_eq!(
            wal_dir(Path::new("/r/node1")),
            Path::new("/r/node1/wal-disk/pg_wal")
        );
    }

    #[test]
    fn the_removal_script_names_only_this_run() {
        let s = remove_script_lines("00112233445566aa");
        assert!(s.contains("*/00112233445566aa/*"), "{s}");
        assert!(s.contains("chaos-00112233445566aa-*"), "{s}");
        assert!(!s.contains("chaos-*"), "{s}");
    }
}
