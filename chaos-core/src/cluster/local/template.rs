//! Data directories for a booting cluster, made once and copied.
//!
//! Every node of a new cluster starts from a copy of one freshly initialised
//! data directory (the "template"): the leader when Patroni runs
//! `pg_ctl initdb` (a shim in the binary directory Patroni is given, see
//! [`write_bin_dir`]), the replicas through a custom replica-creation method.
//! (Patroni's own custom-bootstrap method would do for the leader, but it
//! sleeps a second or restarts PostgreSQL after it.) A replica made this way is a copy of the leader's own starting point, so it
//! streams from the leader's first WAL record instead of waiting for a
//! `pg_basebackup` (checkpoint, copy, WAL catch-up). The methods only serve the
//! first boot: once the cluster is healthy [`close`] turns them off: `initdb` runs for
//! real and Patroni falls back to `pg_basebackup` for any later re-creation.
//!
//! The template is cached between runs (a warm boot skips `initdb`), in
//! `CHAOS_CACHE_DIR`, else `$XDG_CACHE_HOME/chaos`, else `~/.cache/chaos`, under a
//! key naming the PostgreSQL version and the `initdb` options, so a new
//! PostgreSQL or other options make a new template (and remove the old ones).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::RunAs;
use crate::{Error, Result};

/// What `initdb` fixes for the life of a data directory. Part of the cache key.
pub(crate) const INITDB_ARGS: &[&str] = &[
    "--encoding=UTF8",
    "--locale=C",
    "--data-checksums",
    "--username=postgres",
    "--auth=trust",
];

/// Bumped when the way a template is made changes.
const FORMAT: u32 = 1;

/// Prefix of every template in the cache directory.
const PREFIX: &str = "pgdata-";

/// The directory of staged copies, in the cluster directory.
const STAGED: &str = "staged-data";

/// Where the template came from on this boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateSource {
    /// Copied from the cache (warm boot).
    Cached,
    /// Made by `initdb` on this boot, and stored in the cache.
    Created,
    /// Made by `initdb` on this boot; the cache was disabled or unusable.
    Uncached,
}

/// The cache directory, if caching is on and a place for it is known.
pub(crate) fn cache_root() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if std::env::var("CHAOS_NO_CACHE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        return None;
    }
    env("CHAOS_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| env("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("chaos")))
        .or_else(|| env("HOME").map(|d| PathBuf::from(d).join(".cache").join("chaos")))
}

/// The cache key: PostgreSQL's version line and the `initdb` options, as a
/// readable directory name.
pub(crate) fn key(pg_bin: &Path) -> Result<String> {
    let postgres = pg_bin.join("postgres");
    let out = Command::new(&postgres)
        .arg("--version")
        .output()
        .map_err(|e| Error::io(format!("running {} --version", postgres.display()), e))?;
    let version = String::from_utf8_lossy(&out.stdout);
    Ok(key_for(version.trim(), INITDB_ARGS))
}

fn key_for(version: &str, args: &[&str]) -> String {
    let mut raw = format!("{version} {} v{FORMAT}", args.join(" "));
    raw.retain(|c| c != '(' && c != ')');
    let mut out = String::from(PREFIX);
    let mut dash = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
            dash = false;
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Where one node's copy of the template is staged.
#[derive(Debug, Clone)]
pub(crate) struct StageAt {
    /// The pool it is renamed into when complete: the shared
    /// `<run_dir>/staged-data`, or for a node whose data directory has a
    /// filesystem of its own, [`node_pool`] on that filesystem (the shim
    /// renames the copy into place, which cannot cross filesystems).
    pub pool: PathBuf,
    /// With a WAL filesystem of its own: the WAL directory on it, which gets
    /// the copy's `pg_wal`, left as a symbolic link to it.
    pub wal: Option<PathBuf>,
}

impl StageAt {
    /// A copy in the shared pool of `run_dir`.
    pub(crate) fn shared(run_dir: &Path) -> Self {
        StageAt {
            pool: run_dir.join(STAGED),
            wal: None,
        }
    }
}

/// The pool of copies for the node with data directory `data_dir`, beside it
/// (so on its filesystem). The shim looks there, then in the shared pool.
pub(crate) fn node_pool(data_dir: &Path) -> PathBuf {
    data_dir.parent().unwrap_or(data_dir).join(STAGED)
}

/// Makes (or takes from the cache) the template, and stages a copy of it per
/// node, in `<run_dir>/staged-data/<i>` (or the pool `copies` names), for the
/// shim to move into place.
///
/// Blocking; runs beside the starting Patroni processes. On failure it leaves a
/// `template-failed` marker so the scripts give up at once.
pub(crate) fn stage(
    run_dir: &Path,
    copies: &[StageAt],
    pg_bin: &Path,
    run_as: RunAs,
    cache: Option<&Path>,
) -> Result<TemplateSource> {
    let res = stage_inner(run_dir, copies, pg_bin, run_as, cache);
    if let Err(e) = &res {
        // The marker says why, for a kept cluster's post-mortem.
        let _ = fs::write(run_dir.join("template-failed"), format!("{e}\n"));
    }
    res
}

fn stage_inner(
    run_dir: &Path,
    copies: &[StageAt],
    pg_bin: &Path,
    run_as: RunAs,
    cache: Option<&Path>,
) -> Result<TemplateSource> {
    let key = key(pg_bin)?;
    let (source, from) = match cache.map(|c| c.join(&key)).filter(|t| is_complete(t)) {
        Some(template) => (template.join("data"), TemplateSource::Cached),
        None => {
            let dir = run_dir.join("template");
            fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            run_as.own(&dir)?;
            let data = dir.join("data");
            initdb(pg_bin, &data, &dir.join("initdb.log"), run_as)?;
            (data, TemplateSource::Uncached)
        }
    };
    // One copy per node, into a pool: the first node to ask (the one that
    // bootstraps the leader) takes the first copy ready.
    // The pools first, while empty: the shim, running as the database user,
    // renames copies out of them as soon as they appear (owning a pool later
    // would walk copies being moved away).
    for (i, copy) in copies.iter().enumerate() {
        let pool = &copy.pool;
        if copies[..i].iter().any(|c| c.pool == *pool) {
            continue;
        }
        fs::create_dir_all(pool)
            .map_err(|e| Error::io(format!("creating {}", pool.display()), e))?;
        run_as.own(pool)?;
    }
    for (i, copy) in copies.iter().enumerate() {
        let pool = &copy.pool;
        let tmp = pool.join(format!(".{i}.tmp"));
        copy_tree(&source, &tmp)?;
        if let Some(wal) = &copy.wal {
            move_wal(&tmp, wal)?;
            run_as.own(wal)?;
        }
        run_as.own(&tmp)?;
        let staged = pool.join(i.to_string());
        fs::rename(&tmp, &staged).map_err(|e| {
            Error::io(
                format!("renaming {} to {}", tmp.display(), staged.display()),
                e,
            )
        })?;
    }
    if from == TemplateSource::Uncached
        && let Some(cache) = cache
    {
        match store(cache, &key, &source) {
            Ok(()) => return Ok(TemplateSource::Created),
            Err(e) => {
                tracing::warn!(cache = %cache.display(), error = %e, "cannot cache the data-directory template")
            }
        }
    }
    Ok(from)
}

/// Moves `data`'s `pg_wal` to `wal` (on another filesystem) and leaves a
/// symbolic link to it, as `initdb --waldir` does.
fn move_wal(data: &Path, wal: &Path) -> Result<()> {
    let pg_wal = data.join("pg_wal");
    copy_tree(&pg_wal, wal)?;
    fs::remove_dir_all(&pg_wal)
        .map_err(|e| Error::io(format!("removing {}", pg_wal.display()), e))?;
    std::os::unix::fs::symlink(wal, &pg_wal).map_err(|e| {
        Error::io(
            format!("linking {} to {}", pg_wal.display(), wal.display()),
            e,
        )
    })
}

/// Whether a cached template is whole: its `TEMPLATE` file is written last,
/// before the directory is renamed into place.
fn is_complete(template: &Path) -> bool {
    template.join("TEMPLATE").is_file() && template.join("data").join("PG_VERSION").is_file()
}

/// Runs `initdb` as the database user.
fn initdb(pg_bin: &Path, data: &Path, log: &Path, run_as: RunAs) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let out =
        fs::File::create(log).map_err(|e| Error::io(format!("creating {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::io("cloning a log handle", e))?;
    run_as.own(log)?;
    let mut cmd = Command::new(pg_bin.join("initdb"));
    cmd.arg("-D")
        .arg(data)
        .args(INITDB_ARGS)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if run_as.switch {
        cmd.uid(run_as.uid.as_raw()).gid(run_as.gid.as_raw());
    }
    let status = cmd
        .status()
        .map_err(|e| Error::io(format!("running {}/initdb", pg_bin.display()), e))?;
    if !status.success() {
        return Err(Error::Command {
            command: format!("{}/initdb", pg_bin.display()),
            status: status.to_string(),
            stderr: super::cluster::tail(log, 10),
        });
    }
    tracing::debug!(took = ?started.elapsed(), "initdb made the data-directory template");
    Ok(())
}

/// Copies a directory tree with modes and times (`cp -a`).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("running cp -a", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("cp -a {} {}", from.display(), to.display()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Stores `data` in the cache under `key` (staged, then renamed into place), and
/// removes templates of other keys: their PostgreSQL or options are gone.
fn store(cache: &Path, key: &str, data: &Path) -> Result<()> {
    fs::create_dir_all(cache).map_err(|e| Error::io(format!("creating {}", cache.display()), e))?;
    let staging = cache.join(format!(".{key}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)
        .map_err(|e| Error::io(format!("creating {}", staging.display()), e))?;
    let res = copy_tree(data, &staging.join("data")).and_then(|()| {
        let about = format!("{key}\ninitdb {}\n", INITDB_ARGS.join(" "));
        fs::write(staging.join("TEMPLATE"), about)
            .map_err(|e| Error::io(format!("writing {}", staging.display()), e))?;
        match fs::rename(&staging, cache.join(key)) {
            Ok(()) => Ok(()),
            // Another run stored the same template first.
            Err(_) if is_complete(&cache.join(key)) => {
                let _ = fs::remove_dir_all(&staging);
                Ok(())
            }
            Err(e) => Err(Error::io(
                format!("renaming {} into the cache", staging.display()),
                e,
            )),
        }
    });
    if res.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    res?;
    remove_stale(cache, key);
    Ok(())
}

/// Removes cached templates of other keys, and staging directories older than
/// an hour (a run killed while storing).
fn remove_stale(cache: &Path, key: &str) {
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let old_staging = name.starts_with(&format!(".{PREFIX}"))
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(3600));
        if (name.starts_with(PREFIX) && name != key) || old_staging {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Makes the PostgreSQL binary directory Patroni is given: links to every
/// program of `pg_bin`, except three shims that act during the first boot only:
///
/// * `pg_ctl` serves `pg_ctl initdb` from the template (Patroni up to 3.0.2
///   bootstraps a leader with `pg_ctl initdb`) and runs the real `pg_ctl` for
///   everything else; the same script is the first replica-creation method
///   (`--datadir=…`);
/// * `initdb` serves `initdb [OPTIONS] DATADIR` from the template (Patroni
///   3.0.3 and later call `initdb` directly);
/// * `pg_isready` asks a server that is still starting up again for up to a
///   second, where Patroni would sleep a second before asking again.
///
/// The shims move the node's staged copy into place, waiting for it while the
/// template is being made. Once the cluster has booted, or if staging failed,
/// they step aside: `initdb` runs for real and replicas come from
/// `pg_basebackup`. Returns the directory.
pub(crate) fn write_bin_dir(run_dir: &Path, pg_bin: &Path) -> Result<PathBuf> {
    const SHIMS: [&str; 3] = ["pg_ctl", "initdb", "pg_isready"];
    let bin = run_dir.join("bin");
    fs::create_dir_all(&bin).map_err(|e| Error::io(format!("creating {}", bin.display()), e))?;
    let entries =
        fs::read_dir(pg_bin).map_err(|e| Error::io(format!("reading {}", pg_bin.display()), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !SHIMS.iter().any(|s| name == *s) {
            std::os::unix::fs::symlink(entry.path(), bin.join(&name))
                .map_err(|e| Error::io(format!("linking {}", entry.path().display()), e))?;
        }
    }
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let run = quote(run_dir);
    // Moves this node's staged copy into the directory "$1".
    let take = format!(
        r#"run={run}
take() {{
  [ -e "$run/template-closed" ] && return 1
  rmdir "$1" 2>/dev/null
  [ ! -e "$1" ] || {{ echo "$1 exists and is not empty" >&2; return 1; }}
  tries=0
  # A node on a filesystem of its own has its copy beside its data directory.
  own="$(dirname "$1")/{STAGED}"
  while :; do
    # Copies are renamed into the pool when complete; a rename takes one whole.
    for staged in "$own"/[0-9]* "$run/{STAGED}"/[0-9]*; do
      [ -d "$staged" ] && mv -T "$staged" "$1" 2>/dev/null && return 0
    done
    [ -e "$run/template-failed" ] && return 1
    tries=$((tries + 1))
    [ "$tries" -le 3000 ] || {{ echo "no staged data directory in $run/{STAGED}" >&2; return 1; }}
    sleep 0.02
  done
}}"#
    );
    let text = format!(
        r#"#!/bin/sh
# Written by chaos. As `pg_ctl initdb -D DIR ...` (Patroni up to 3.0.2
# bootstrapping a leader) and as a replica-creation method (--datadir=DIR),
# moves this node's staged copy of the data-directory template into DIR;
# during a cluster's first boot only. Anything else goes to the real pg_ctl.
{take}
real={real}
case "$1" in
  initdb)
    [ "$2" = -D ] && take "$3" && exit 0
    exec "$real" "$@" ;;
  --*)
    for arg in "$@"; do
      case "$arg" in --datadir=*) take "${{arg#--datadir=}}"; exit $? ;; esac
    done
    echo "no --datadir given" >&2; exit 1 ;;
  *) exec "$real" "$@" ;;
esac
"#,
        real = quote(&pg_bin.join("pg_ctl")),
    );
    write_executable(&bin.join("pg_ctl"), &text)?;
    let text = format!(
        r#"#!/bin/sh
# Written by chaos. As `initdb [OPTIONS] DIR` (Patroni 3.0.3 and later
# bootstrapping a leader), moves this node's staged copy of the data-directory
# template into DIR, during a cluster's first boot only; made with the same
# options (the template's cache key names them). Otherwise the real initdb.
{take}
real={real}
for dir in "$@"; do :; done
case "$dir" in
  -*|'') ;;
  *) take "$dir" && exit 0 ;;
esac
exec "$real" "$@"
"#,
        real = quote(&pg_bin.join("initdb")),
    );
    write_executable(&bin.join("initdb"), &text)?;
    let text = format!(
        r#"#!/bin/sh
# Written by chaos. During a cluster's first boot, a server that is still
# starting up is asked again every 20 ms for up to a second before the answer
# "rejecting connections" is given: Patroni, told so, waits a whole second
# before it asks again, though the server accepts a few ms later. After the
# boot this is the real pg_isready.
run={run}
real={real}
[ -e "$run/template-closed" ] && exec "$real" "$@"
tries=0
while :; do
  out=$("$real" "$@"); rc=$?
  if [ "$rc" -ne 1 ] || [ "$tries" -ge 50 ]; then
    [ -n "$out" ] && echo "$out"
    exit "$rc"
  fi
  tries=$((tries + 1))
  sleep 0.02
done
"#,
        real = quote(&pg_bin.join("pg_isready")),
    );
    write_executable(&bin.join("pg_isready"), &text)?;
    Ok(bin)
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}

/// Ends the template's use: later data directories come from `initdb` and
/// `pg_basebackup`. Removes copies no node took, also from the pools beside
/// `data_dirs` ([`node_pool`]).
pub(crate) fn close<'a>(run_dir: &Path, data_dirs: impl IntoIterator<Item = &'a Path>) {
    let _ = fs::write(run_dir.join("template-closed"), b"");
    let _ = fs::remove_dir_all(run_dir.join(STAGED));
    for data in data_dirs {
        let _ = fs::remove_dir_all(node_pool(data));
    }
    let _ = fs::remove_dir_all(run_dir.join("template"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_names_the_version_and_the_options() {
        let k = key_for(
            "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)",
            INITDB_ARGS,
        );
        assert!(
            k.starts_with("pgdata-postgres-postgresql-15.18-debian-15.18-0-deb12u1-"),
            "{k}"
        );
        assert!(k.contains("data-checksums") && k.ends_with("-v1"), "{k}");
        assert_ne!(k, key_for("postgres (PostgreSQL) 16.4", INITDB_ARGS));
        assert_ne!(
            k,
            key_for(
                "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)",
                &["--locale=C"]
            )
        );
        assert!(
            k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        );
    }

    #[test]
    fn storing_replaces_templates_of_other_keys() {
        let root =
            Dir(std::env::temp_dir().join(format!("chaos-template-test-{}", std::process::id())));
        let (cache, data) = (
            Dir(root.path().join("cache")),
            Dir(root.path().join("data")),
        );
        fs::create_dir_all(data.path()).unwrap();
        fs::write(data.path().join("PG_VERSION"), "15\n").unwrap();
        fs::create_dir_all(cache.path().join("pgdata-old-v1/data")).unwrap();
        fs::create_dir_all(cache.path().join("unrelated")).unwrap();
        store(cache.path(), "pgdata-new-v1", data.path()).unwrap();
        assert!(cache.path().join("pgdata-new-v1/data/PG_VERSION").is_file());
        assert!(is_complete(&cache.path().join("pgdata-new-v1")));
        // A directory without its TEMPLATE file (a copy cut short) is not used.
        fs::create_dir_all(cache.path().join("pgdata-cut-v1/data")).unwrap();
        fs::write(cache.path().join("pgdata-cut-v1/data/PG_VERSION"), "15\n").unwrap();
        assert!(!is_complete(&cache.path().join("pgdata-cut-v1")));
        assert!(!cache.path().join("pgdata-old-v1").exists());
        assert!(
            cache.path().join("unrelated").exists(),
            "only templates are removed"
        );
        // A second store of the same key (another run won the race) keeps it.
        store(cache.path(), "pgdata-new-v1", data.path()).unwrap();
        assert!(cache.path().join("pgdata-new-v1/data/PG_VERSION").is_file());
    }

    /// A directory removed on drop, also when the test fails.
    struct Dir(PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}
