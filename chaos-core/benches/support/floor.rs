//! The floor a booting cluster is compared with: the same PostgreSQL made into
//! a 3-node synchronous cluster by hand, without an HA agent or a DCS —
//! `initdb`, start, two parallel `pg_basebackup`, start the standbys, the
//! first synchronous commit acknowledged.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chaos_core::{Error, Result};

/// Runs a program of `pg_bin` as the database user (`postgres` when root).
fn pg(pg_bin: &Path, program: &str) -> Command {
    let exe = pg_bin.join(program);
    let mut cmd = if nix::unistd::Uid::effective().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    cmd
}

fn check(what: &str, status: std::io::Result<std::process::ExitStatus>) -> Result<()> {
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Error::Command {
            command: format!("floor: {what}"),
            status: s.to_string(),
            stderr: String::new(),
        }),
        Err(e) => Err(Error::io(format!("floor: running {what}"), e)),
    }
}

/// A directory removed on drop, with the servers in it stopped.
struct Dir {
    path: PathBuf,
    pg_bin: PathBuf,
    started: Vec<PathBuf>,
}

impl Drop for Dir {
    fn drop(&mut self) {
        for data in &self.started {
            let _ = pg(&self.pg_bin, "pg_ctl")
                .arg("-D")
                .arg(data)
                .args(["-m", "immediate", "-w", "stop"])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn free_port() -> Result<u16> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("binding a port", e))?;
    Ok(l.local_addr()
        .map_err(|e| Error::io("binding a port", e))?
        .port())
}

/// Boots the hand-made cluster once; returns the seconds to the first
/// acknowledged synchronous commit.
pub async fn boot(pg_bin: &Path) -> Result<f64> {
    let path = std::env::temp_dir().join(format!("chaos-floor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).map_err(|e| Error::io("creating the floor directory", e))?;
    if nix::unistd::Uid::effective().is_root() {
        check(
            "chown",
            Command::new("chown").arg("postgres:").arg(&path).status(),
        )?;
    }
    let mut dir = Dir {
        path: path.clone(),
        pg_bin: pg_bin.to_path_buf(),
        started: Vec::new(),
    };
    let ports = [free_port()?, free_port()?, free_port()?];
    let sock = path.display().to_string();
    let opts = |port: u16| {
        format!(
            "-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c synchronous_standby_names=* \
             -c wal_level=replica -c max_wal_senders=10 -c shared_buffers=32MB -c fsync=on"
        )
    };
    let t = Instant::now();

    let primary = path.join("p");
    check(
        "initdb",
        pg(pg_bin, "initdb")
            .arg("-D")
            .arg(&primary)
            .args([
                "--encoding=UTF8",
                "--locale=C",
                "--data-checksums",
                "--username=postgres",
                "--auth=trust",
            ])
            .stderr(Stdio::null())
            .status(),
    )?;
    let start = |data: &Path, port: u16| {
        pg(pg_bin, "pg_ctl")
            .arg("-D")
            .arg(data)
            .args(["-w", "-l"])
            .arg(data.with_extension("log"))
            .arg("-o")
            .arg(opts(port))
            .arg("start")
            .status()
    };
    check("pg_ctl start (primary)", start(&primary, ports[0]))?;
    dir.started.push(primary.clone());

    let standbys = [path.join("s1"), path.join("s2")];
    let backups: Vec<_> = standbys
        .iter()
        .map(|s| {
            pg(pg_bin, "pg_basebackup")
                .arg("-D")
                .arg(s)
                .args([
                    "-R",
                    "-c",
                    "fast",
                    "-h",
                    &sock,
                    "-p",
                    &ports[0].to_string(),
                    "-U",
                    "postgres",
                ])
                .stderr(Stdio::null())
                .spawn()
        })
        .collect();
    for b in backups {
        let mut child = b.map_err(|e| Error::io("floor: starting pg_basebackup", e))?;
        check("pg_basebackup", child.wait())?;
    }
    for (s, port) in standbys.iter().zip(&ports[1..]) {
        check("pg_ctl start (standby)", start(s, *port))?;
        dir.started.push(s.clone());
    }
    let (client, conn) = chaos_core::tokio_postgres::connect(
        &format!(
            "host={sock} port={} user=postgres dbname=postgres",
            ports[0]
        ),
        chaos_core::tokio_postgres::NoTls,
    )
    .await
    .map_err(|source| Error::Postgres {
        context: "floor: connecting".into(),
        source,
    })?;
    let conn = tokio::spawn(conn);
    // Waits for a standby to confirm the commit (synchronous_standby_names=*).
    tokio::time::timeout(
        Duration::from_secs(30),
        client.execute("SELECT txid_current()", &[]),
    )
    .await
    .map_err(|_| Error::Timeout {
        what: "floor: the first synchronous commit".into(),
        waited: Duration::from_secs(30),
        logs: String::new(),
    })?
    .map_err(|source| Error::Postgres {
        context: "floor: first commit".into(),
        source,
    })?;
    let took = t.elapsed().as_secs_f64();
    drop(client);
    conn.abort();
    drop(dir);
    Ok(took)
}
