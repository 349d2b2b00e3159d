//! Finding the programs the local cluster runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{LazyLock, Mutex};
use std::time::SystemTime;

use crate::{Error, Result};

/// Paths of the programs a local cluster needs, and the Patroni version.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// Directory holding `postgres`, `initdb`, `pg_ctl`, `pg_rewind`.
    pub pg_bin: PathBuf,
    /// The `patroni` executable.
    pub patroni: PathBuf,
    /// The `etcd` executable.
    pub etcd: PathBuf,
    /// The `haproxy` executable, if one was found: the proxy in front of the
    /// cluster (see [`LocalClusterBuilder::proxy`](super::LocalClusterBuilder::proxy)).
    pub haproxy: Option<PathBuf>,
    /// Patroni's version as (major, minor, patch).
    pub patroni_version: (u32, u32, u32),
}

impl Binaries {
    /// Locates every program, honouring `CHAOS_PG_BIN`, `CHAOS_PATRONI`,
    /// `CHAOS_ETCD` and `CHAOS_HAPROXY`. HAProxy is optional: `None` when it is
    /// not installed.
    ///
    /// # Errors
    /// [`Error::BinaryNotFound`] naming the package to install when a program is
    /// missing, or when a path given for HAProxy is not a file.
    pub fn discover() -> Result<Self> {
        Self::discover_with(&Overrides::default())
    }

    /// Like [`discover`](Self::discover), with explicit paths taking precedence.
    ///
    /// # Errors
    /// As [`discover`](Self::discover).
    pub fn discover_with(overrides: &Overrides) -> Result<Self> {
        Self::discover_inner(overrides, true)
    }

    /// Like [`discover_with`](Self::discover_with); HAProxy is looked for only
    /// if `haproxy` is true.
    pub(crate) fn discover_inner(overrides: &Overrides, haproxy: bool) -> Result<Self> {
        let pg_bin = find_pg_bin(overrides.pg_bin.as_deref())?;
        let patroni = find_program(
            "patroni",
            "patroni",
            "CHAOS_PATRONI",
            overrides.patroni.as_deref(),
        )?;
        let etcd = find_program(
            "etcd",
            "etcd-server",
            "CHAOS_ETCD",
            overrides.etcd.as_deref(),
        )?;
        let haproxy = if haproxy {
            find_haproxy(overrides.haproxy.as_deref())?
        } else {
            None
        };
        let patroni_version = patroni_version(&patroni)?;
        Ok(Binaries {
            pg_bin,
            patroni,
            etcd,
            haproxy,
            patroni_version,
        })
    }
}

/// Explicit program locations; `None` means "search".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// PostgreSQL's bin directory.
    pub pg_bin: Option<PathBuf>,
    /// The `patroni` executable.
    pub patroni: Option<PathBuf>,
    /// The `etcd` executable.
    pub etcd: Option<PathBuf>,
    /// The `haproxy` executable.
    pub haproxy: Option<PathBuf>,
}

fn find_pg_bin(explicit: Option<&Path>) -> Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("postgres").is_file() && dir.join("pg_rewind").is_file();
    if let Some(dir) = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CHAOS_PG_BIN").map(PathBuf::from))
    {
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(not_found_pg(format!(
                "{} has no postgres and pg_rewind",
                dir.display()
            )))
        };
    }
    // Newest /usr/lib/postgresql/<major>/bin first: Debian's pg_config may belong to
    // a client-only package.
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, p)| has_server(p))
        .collect();
    majors.sort_by_key(|(m, _)| std::cmp::Reverse(*m));
    if let Some((_, dir)) = majors.into_iter().next() {
        return Ok(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Ok(dir);
        }
    }
    Err(not_found_pg(
        "/usr/lib/postgresql/*/bin and `pg_config --bindir`".into(),
    ))
}

fn not_found_pg(searched: String) -> Error {
    Error::BinaryNotFound {
        program: "PostgreSQL server (postgres, pg_rewind)",
        searched,
        package: "postgresql-15",
        env_var: "CHAOS_PG_BIN",
    }
}

/// Where programs are searched when no path is given.
pub(crate) const SEARCHED: &str = "PATH, /usr/bin, /usr/sbin";

fn find_program(
    name: &'static str,
    package: &'static str,
    env_var: &'static str,
    explicit: Option<&Path>,
) -> Result<PathBuf> {
    search_program(name, package, env_var, explicit)?.ok_or(Error::BinaryNotFound {
        program: name,
        searched: SEARCHED.into(),
        package,
        env_var,
    })
}

/// The `haproxy` executable: `explicit`, else `$CHAOS_HAPROXY`, else the
/// search path; `None` when it is not installed.
///
/// # Errors
/// [`Error::BinaryNotFound`] when a path given is not a file.
pub(crate) fn find_haproxy(explicit: Option<&Path>) -> Result<Option<PathBuf>> {
    search_program("haproxy", "haproxy", "CHAOS_HAPROXY", explicit)
}

/// `explicit`, else `$env_var` (an error if it is not a file), else the first
/// `name` on `PATH`, `/usr/bin`, `/usr/sbin`, else `None`.
fn search_program(
    name: &'static str,
    package: &'static str,
    env_var: &'static str,
    explicit: Option<&Path>,
) -> Result<Option<PathBuf>> {
    if let Some(p) = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(env_var).map(PathBuf::from))
    {
        return if p.is_file() {
            Ok(Some(p))
        } else {
            Err(Error::BinaryNotFound {
                program: name,
                searched: format!("{} is not a file", p.display()),
                package,
                env_var,
            })
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/bin".into(), "/usr/sbin".into()]);
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// Patroni's version; asked once per executable (and modification time) per
/// process: `patroni --version` starts Python, a fifth of a second.
fn patroni_version(patroni: &Path) -> Result<(u32, u32, u32)> {
    type Seen = HashMap<(PathBuf, Option<SystemTime>), (u32, u32, u32)>;
    static SEEN: LazyLock<Mutex<Seen>> = LazyLock::new(Mutex::default);
    let key = (
        patroni.to_path_buf(),
        std::fs::metadata(patroni).and_then(|m| m.modified()).ok(),
    );
    if let Some(v) = SEEN.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(*v);
    }
    let version = ask_patroni_version(patroni)?;
    SEEN.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, version);
    Ok(version)
}

fn ask_patroni_version(patroni: &Path) -> Result<(u32, u32, u32)> {
    let out = Command::new(patroni)
        .arg("--version")
        .output()
        .map_err(|e| Error::io(format!("running {} --version", patroni.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).ok_or_else(|| Error::Config {
        field: "patroni --version",
        expected: "output like `patroni 3.0.2`",
        found: text.trim().to_string(),
    })
}

/// Parses the first `X.Y[.Z]` found in `text`.
pub(crate) fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let word = text
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut parts = word.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn parses_patroni_versions() {
        assert_eq!(parse_version("patroni 3.0.2\n"), Some((3, 0, 2)));
        assert_eq!(parse_version("patroni 4.0.4"), Some((4, 0, 4)));
        assert_eq!(parse_version("patroni 3.3"), Some((3, 3, 0)));
        assert_eq!(parse_version("patroni 4.1.0rc1"), Some((4, 1, 0)));
        assert_eq!(parse_version("patroni"), None);
    }
}
