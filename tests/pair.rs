//! A plain PostgreSQL primary and a streaming standby (no HA agent), booted in
//! a private temporary directory, for tests of the external target and of the
//! command line. Everything is blocking and uses the PostgreSQL programs
//! (`initdb`, `pg_ctl`, `pg_basebackup`, `psql`).
//!
//! The servers run as `postgres` when the caller is root (PostgreSQL refuses
//! to run as root), listen on 127.0.0.1 only, and trust every local
//! connection. Dropping the [`Pair`] stops both servers and removes the
//! directory; [`Pair::start`] also sweeps what killed runs left behind.

use std::fs;
use std::io::{self, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User};

/// Prefix of every pair's directory in the temporary directory.
const PREFIX: &str = "chaos-pair-";
/// The file in a pair's directory naming the process that owns it.
const OWNER_FILE: &str = "owner";
/// The standby's name: its `application_name` on the primary.
const STANDBY_NAME: &str = "standby1";
/// The nodes' data directories, primary first.
const NODES: [&str; 2] = ["primary", "standby"];
/// How long a server may take to start, stream or promote.
const WAIT: Duration = Duration::from_secs(30);
/// The script behind [`Pair::promote_cmd`].
const PROMOTE_SCRIPT: &str = "promote.sh";
/// The script behind [`Pair::detach_standby_cmd`].
const DETACH_SCRIPT: &str = "detach-standby.sh";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running primary and its streaming standby, in a temporary directory
/// `chaos-pair-<pid>-<counter>` that is removed on drop.
#[derive(Debug)]
pub struct Pair {
    dir: PathBuf,
    bin: PathBuf,
    /// Ports of the primary and of the standby.
    ports: [u16; 2],
    /// Whether the servers run as `postgres` through `setpriv` (we are root).
    switch_user: bool,
}

impl Pair {
    /// Boots a primary (`initdb -N`, listening on 127.0.0.1, `wal_level =
    /// replica`) and a standby made with `pg_basebackup -X stream -c fast -R`
    /// (`application_name=standby1`, `connect_timeout=2` in its
    /// `primary_conninfo`), both on free ports, and waits until the standby
    /// streams. With `sync`, the primary gets `synchronous_standby_names =
    /// 'standby1'` and this waits until the standby's `sync_state` is `sync`.
    ///
    /// Before that, removes the directories of earlier pairs whose owning
    /// process is dead, stopping their servers.
    ///
    /// # Errors
    /// When a program is missing or fails, or the standby does not stream
    /// within 30 s; the message carries the servers' log tails.
    pub fn start(sync: bool) -> io::Result<Pair> {
        sweep();
        let bin = pg_bin()?;
        let switch_user = Uid::effective().is_root();
        let owner = if switch_user {
            let user = User::from_name("postgres")
                .map_err(|e| io::Error::other(format!("looking up the user `postgres`: {e}")))?
                .ok_or_else(|| {
                    io::Error::other(
                        "PostgreSQL refuses to run as root and there is no `postgres` user \
                         (install the postgresql package)",
                    )
                })?;
            Some((user.uid.as_raw(), user.gid.as_raw()))
        } else {
            None
        };
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}-{n}", std::process::id()));
        if dir.exists() {
            // Left by an earlier process that had our pid.
            destroy(&dir);
        }
        fs::create_dir(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
        // From here on, a failure drops `pair`, which cleans up.
        let mut pair = Pair {
            dir,
            bin,
            ports: [0, 0],
            switch_user,
        };
        fs::write(pair.dir.join(OWNER_FILE), owner_record(std::process::id()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&pair.dir, Some(uid), Some(gid))?;
        }
        let [a, b] = free_ports(2)?[..] else {
            return Err(io::Error::other("no free ports"));
        };
        pair.ports = [a, b];
        pair.boot(sync)?;
        Ok(pair)
    }

    /// `postgresql://postgres@127.0.0.1:A,127.0.0.1:B/postgres?target_session_attrs=read-write&connect_timeout=2`:
    /// whichever node accepts writes.
    pub fn rw_dsn(&self) -> String {
        let [a, b] = self.ports;
        format!(
            "postgresql://postgres@127.0.0.1:{a},127.0.0.1:{b}/postgres\
             ?target_session_attrs=read-write&connect_timeout=2"
        )
    }

    /// One single-host DSN per node, the primary first.
    pub fn node_dsns(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("postgresql://postgres@127.0.0.1:{p}/postgres?connect_timeout=2"))
            .collect()
    }

    /// A shell command (for `sh -c`) that stops the primary with `pg_ctl -m
    /// immediate stop` (if it runs) and promotes the standby with `pg_ctl
    /// promote -w`, and exits 0 once the standby accepts writes (non-zero,
    /// with a message on stderr, otherwise). It switches to `postgres` itself
    /// when the caller is root. (It runs a script in the pair's directory,
    /// `promote.sh`, so that reports show a short command.)
    pub fn promote_cmd(&self) -> String {
        format!(
            "sh {}",
            sh_quote(&self.dir.join(PROMOTE_SCRIPT).display().to_string())
        )
    }

    /// A shell command that detaches the standby from the primary: it empties
    /// the standby's `primary_conninfo` (`ALTER SYSTEM` and a reload), which
    /// stops its WAL receiver for good, and exits 0 once no WAL receiver runs
    /// on the standby. The standby stays in recovery, with everything it had
    /// received, and can be promoted afterwards. (A script in the pair's
    /// directory, `detach-standby.sh`.)
    pub fn detach_standby_cmd(&self) -> String {
        format!(
            "sh {}",
            sh_quote(&self.dir.join(DETACH_SCRIPT).display().to_string())
        )
    }

    /// Data directory of the (old) primary.
    pub fn primary_data_dir(&self) -> PathBuf {
        self.node_dir(0)
    }

    /// Starts the old primary's data directory again on its old port, as a
    /// standalone server (after [`promote_cmd`](Self::promote_cmd) stopped
    /// it), so that a test can read what it had. It runs with
    /// `default_transaction_read_only = on`: it takes no writes, and
    /// [`rw_dsn`](Self::rw_dsn) (`target_session_attrs=read-write`) still
    /// leads to the promoted standby.
    ///
    /// # Errors
    /// When it does not start (e.g. it still runs, or its port was taken).
    pub fn restart_old_primary(&self) -> io::Result<()> {
        self.pg_ctl_start(0, &["-o", "-c default_transaction_read_only=on"])
    }

    fn promote_script(&self) -> String {
        let pg_ctl = self.shell_pg_ctl();
        let primary = sh_quote(&self.node_dir(0).display().to_string());
        let standby = sh_quote(&self.node_dir(1).display().to_string());
        let psql = self.shell_psql(self.ports[1]);
        let port = self.ports[1];
        format!(
            "# Stops the primary (immediate) and promotes the standby on port {port}.\n\
             set -e\n\
             cd /\n\
             if {pg_ctl} -D {primary} status >/dev/null 2>&1; then\n\
             \x20 {pg_ctl} -D {primary} -m immediate -w -t 30 stop >/dev/null\n\
             fi\n\
             {pg_ctl} -D {standby} -w -t 30 promote >/dev/null\n\
             i=0\n\
             until [ \"$({psql} -c 'SELECT pg_is_in_recovery()' 2>/dev/null)\" = f ]; do\n\
             \x20 i=$((i+1))\n\
             \x20 if [ $i -ge 300 ]; then\n\
             \x20   echo 'the promoted standby on port {port} does not accept writes' >&2\n\
             \x20   exit 1\n\
             \x20 fi\n\
             \x20 sleep 0.1\n\
             done\n"
        )
    }

    fn detach_script(&self) -> String {
        let psql = self.shell_psql(self.ports[1]);
        let port = self.ports[1];
        format!(
            "# Detaches the standby on port {port}: no WAL receiver, no WAL.\n\
             set -e\n\
             cd /\n\
             {psql} -c \"ALTER SYSTEM SET primary_conninfo = ''\" -c 'SELECT pg_reload_conf()' >/dev/null\n\
             i=0\n\
             until [ \"$({psql} -c 'SELECT count(*) FROM pg_stat_wal_receiver' 2>/dev/null)\" = 0 ]; do\n\
             \x20 i=$((i+1))\n\
             \x20 if [ $i -ge 100 ]; then\n\
             \x20   echo 'the WAL receiver of the standby on port {port} still runs' >&2\n\
             \x20   exit 1\n\
             \x20 fi\n\
             \x20 sleep 0.1\n\
             done\n"
        )
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(NODES[i])
    }

    fn log_file(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", NODES[i]))
    }

    fn boot(&mut self, sync: bool) -> io::Result<()> {
        let [a, _] = self.ports;
        let primary = self.node_dir(0);
        let mut initdb = self.pg_command("initdb");
        initdb
            .arg("-D")
            .arg(&primary)
            .args(["-N", "-U", "postgres", "-A", "trust", "--no-locale", "-E"])
            .arg("UTF8");
        run(initdb, "initdb")?;
        append(
            &primary.join("postgresql.conf"),
            &format!(
                "\n# chaos-tests pair\n\
                 listen_addresses = '127.0.0.1'\n\
                 port = {a}\n\
                 unix_socket_directories = '{}'\n\
                 wal_level = replica\n\
                 max_wal_senders = 5\n\
                 hot_standby = on\n\
                 wal_sender_timeout = 10s\n\
                 shared_buffers = 16MB\n\
                 max_connections = 50\n",
                self.dir.display()
            ),
        )?;
        self.start_node(0)?;

        let mut basebackup = self.pg_command("pg_basebackup");
        basebackup
            .arg("-D")
            .arg(self.node_dir(1))
            .args(["-X", "stream", "-c", "fast", "-R", "-N", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={a} user=postgres application_name={STANDBY_NAME} \
                 connect_timeout=2"
            ));
        run(basebackup, "pg_basebackup")?;
        let auto_conf = fs::read_to_string(self.node_dir(1).join("postgresql.auto.conf"))?;
        if !auto_conf.contains(&format!("application_name={STANDBY_NAME}")) {
            return Err(io::Error::other(format!(
                "pg_basebackup -R wrote no application_name={STANDBY_NAME}: {auto_conf}"
            )));
        }
        append(
            &self.node_dir(1).join("postgresql.conf"),
            &format!("port = {}\n", self.ports[1]),
        )?;
        self.start_node(1)?;

        let state = format!(
            "SELECT state || '/' || sync_state FROM pg_stat_replication \
              WHERE application_name = '{STANDBY_NAME}'"
        );
        self.wait_for("the standby to stream", || {
            self.psql(a, &state)
                .is_ok_and(|s| s.starts_with("streaming/"))
        })?;
        if sync {
            self.psql(
                a,
                &format!("ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'"),
            )?;
            self.psql(a, "SELECT pg_reload_conf()")?;
            self.wait_for("the standby to be synchronous", || {
                self.psql(a, &state).is_ok_and(|s| s == "streaming/sync")
            })?;
        }
        // The ports are final now.
        fs::write(self.dir.join(PROMOTE_SCRIPT), self.promote_script())?;
        fs::write(self.dir.join(DETACH_SCRIPT), self.detach_script())?;
        Ok(())
    }

    /// Starts node `i`; if its port was taken meanwhile, moves it to another.
    fn start_node(&mut self, i: usize) -> io::Result<()> {
        for attempt in 0..3 {
            match self.pg_ctl_start(i, &[]) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let log = fs::read_to_string(self.log_file(i)).unwrap_or_default();
                    if attempt == 2 || !log.contains("Address already in use") {
                        return Err(e);
                    }
                    let port = free_ports(1)?[0];
                    append(
                        &self.node_dir(i).join("postgresql.conf"),
                        &format!("port = {port}\n"),
                    )?;
                    self.ports[i] = port;
                }
            }
        }
        Err(io::Error::other("unreachable: start_node gave up"))
    }

    fn pg_ctl_start(&self, i: usize, extra: &[&str]) -> io::Result<()> {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D")
            .arg(self.node_dir(i))
            .arg("-l")
            .arg(self.log_file(i))
            .args(["-w", "-t", "30"])
            .args(extra)
            .arg("start");
        run(cmd, &format!("pg_ctl start of the {}", NODES[i])).map_err(|e| {
            io::Error::other(format!(
                "{e}\n--- {} log ---\n{}",
                NODES[i],
                self.log_tail(i)
            ))
        })?;
        Ok(())
    }

    /// A PostgreSQL program run as the servers' user.
    fn pg_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = if self.switch_user {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                .arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.current_dir(&self.dir).env("HOME", &self.dir);
        clean_env(&mut cmd);
        cmd
    }

    /// `pg_ctl` for a shell command line.
    fn shell_pg_ctl(&self) -> String {
        let pg_ctl = sh_quote(&self.bin.join("pg_ctl").display().to_string());
        if self.switch_user {
            format!("setpriv --reuid=postgres --regid=postgres --init-groups {pg_ctl}")
        } else {
            pg_ctl
        }
    }

    /// `psql` on `port` for a shell command line: unaligned, tuples only.
    fn shell_psql(&self, port: u16) -> String {
        format!(
            "PGCONNECT_TIMEOUT=2 {} -X -A -t -h 127.0.0.1 -p {port} -U postgres -d postgres",
            sh_quote(&self.bin.join("psql").display().to_string())
        )
    }

    /// Runs `sql` on the server at `port`; returns its output, trimmed.
    fn psql(&self, port: u16, sql: &str) -> io::Result<String> {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
        ])
        .arg(port.to_string())
        .args(["-U", "postgres", "-d", "postgres", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "2")
        .current_dir(&self.dir);
        clean_env(&mut cmd);
        run(cmd, "psql").map(|s| s.trim().to_string())
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) -> io::Result<()> {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if cond() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "timed out after {WAIT:?} waiting for {what}\n--- primary log ---\n{}\n\
                 --- standby log ---\n{}",
                self.log_tail(0),
                self.log_tail(1)
            ),
        ))
    }

    fn log_tail(&self, i: usize) -> String {
        let log = fs::read_to_string(self.log_file(i)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        destroy(&self.dir);
    }
}

/// Stops the servers of a pair's directory (`pg_ctl -m immediate stop`, then
/// SIGKILL of any process whose command line mentions it) and removes it.
fn destroy(dir: &Path) {
    if let Ok(bin) = pg_bin() {
        for node in NODES {
            let data = dir.join(node);
            if !data.join("postmaster.pid").exists() {
                continue;
            }
            let mut cmd = if Uid::effective().is_root() {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
                    .arg(bin.join("pg_ctl"));
                c
            } else {
                Command::new(bin.join("pg_ctl"))
            };
            cmd.arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "-t", "10", "stop"])
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = cmd.status();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = crate::processes_of(dir);
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        for pid in left {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = fs::remove_dir_all(dir);
}

/// Removes the directories of pairs whose owning process is dead.
fn sweep() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        // Directories only, never through a symbolic link.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = entry.path();
        if !owner_alive(&dir, rest) {
            destroy(&dir);
        }
    }
}

/// Whether the process that made `dir` still runs. Its owner file holds its
/// pid and start time (so that a reused pid does not count); a directory
/// without one is being created if it is young, else judged by the pid in its
/// name.
fn owner_alive(dir: &Path, name_rest: &str) -> bool {
    match fs::read_to_string(dir.join(OWNER_FILE)) {
        Ok(text) => {
            let mut fields = text.split_whitespace();
            let pid: Option<u32> = fields.next().and_then(|p| p.parse().ok());
            let started = fields.next().map(str::to_string);
            match pid {
                Some(pid) => match (start_time(pid), started) {
                    (None, _) => false,
                    (Some(now), Some(then)) => now == then,
                    (Some(_), None) => true,
                },
                None => false,
            }
        }
        Err(_) => {
            let young = fs::metadata(dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_none_or(|age| age < Duration::from_secs(30));
            young
                || name_rest
                    .split('-')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .is_some_and(|pid| start_time(pid).is_some())
        }
    }
}

/// `<pid> <start time>` of process `pid`, for the owner file.
fn owner_record(pid: u32) -> String {
    format!("{pid} {}\n", start_time(pid).unwrap_or_default())
}

/// The start time of `pid` (field 22 of `/proc/<pid>/stat`), if it runs.
fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace();
    // Fields from the state (3rd) on: the start time is the 22nd.
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(22 - 4).map(str::to_string)
}

/// The directory of the PostgreSQL server programs: `CHAOS_PG_BIN`, else the
/// newest `/usr/lib/postgresql/<major>/bin`, else `pg_config --bindir`.
fn pg_bin() -> io::Result<PathBuf> {
    let usable = |d: &Path| d.join("pg_ctl").is_file() && d.join("initdb").is_file();
    if let Some(dir) = std::env::var_os("CHAOS_PG_BIN").map(PathBuf::from) {
        return if usable(&dir) {
            Ok(dir)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("CHAOS_PG_BIN={} has no pg_ctl and initdb", dir.display()),
            ))
        };
    }
    let mut majors: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d)| usable(d))
        .collect();
    majors.sort_by_key(|(m, _)| std::cmp::Reverse(*m));
    if let Some((_, dir)) = majors.into_iter().next() {
        return Ok(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && usable(&dir) {
            return Ok(dir);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no PostgreSQL server programs in /usr/lib/postgresql/*/bin or `pg_config --bindir` \
         (install postgresql, or set CHAOS_PG_BIN)",
    ))
}

/// `n` distinct ports that were free on 127.0.0.1 a moment ago.
fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// Runs `cmd` to completion; its stdout, or an error with its output.
fn run(mut cmd: Command, what: &str) -> io::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("starting {what}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )))
    }
}

/// Appends `text` to `file` (keeping its owner).
fn append(file: &Path, text: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| io::Error::new(e.kind(), format!("appending to {}: {e}", file.display())))
}

/// Removes the libpq variables of the environment that would redirect the
/// programs elsewhere.
fn clean_env(cmd: &mut Command) {
    for var in [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGOPTIONS",
        "PGSERVICE",
        "PGTARGETSESSIONATTRS",
        "PGDATA",
    ] {
        cmd.env_remove(var);
    }
}

/// `s` single-quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
