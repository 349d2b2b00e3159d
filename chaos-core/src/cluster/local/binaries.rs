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
        let (patroni, patroni_version) = find_patroni(overrides.patroni.as_deref())?;
        let etcd = find_program(
            "etcd",
            "etcd-server",
            "install the Debian package `etcd-server`",
            "CHAOS_ETCD",
            overrides.etcd.as_deref(),
        )?;
        let haproxy = if haproxy {
            find_haproxy(overrides.haproxy.as_deref())?
        } else {
            None
        };
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
        install: "install the Debian package `postgresql-15`",
        env_var: "CHAOS_PG_BIN",
    }
}

/// The Patroni release the local cluster runs by default.
///
/// Debian 12's Patroni 3.0.2 has the etcd3 `_update_leader` bug: a primary
/// paused past the ttl writes the leader key back over its successor's on
/// resume, and what the successor acknowledged is lost (fixed in 3.0.3,
/// upstream PR #2693; `tests/patroni_versions.rs` shows it). Releases from
/// 3.2.0 on refuse a ttl under 20 s, so a failover takes 20 s or more. 3.1.2
/// has the fix and allows the 5 s ttl a test suite wants.
pub const DEFAULT_PATRONI_VERSION: &str = "3.1.2";

/// Where `ci/install-deps.sh` installs Patroni `version` from PyPI: a
/// virtualenv of its own, `/opt/chaos/patroni-<version>`; this is its
/// `bin/patroni`.
pub fn pinned_patroni(version: &str) -> PathBuf {
    PathBuf::from(format!("/opt/chaos/patroni-{version}/bin/patroni"))
}

/// Patroni versions with the etcd3 leader-takeover bug (before 3.0.3).
pub(crate) fn has_takeover_bug(version: (u32, u32, u32)) -> bool {
    version < (3, 0, 3)
}

const PATRONI_INSTALL: &str = "install Patroni 3.1.2 from PyPI: `ci/install-deps.sh` does, or \
    `python3 -m venv /opt/chaos/patroni-3.1.2 && /opt/chaos/patroni-3.1.2/bin/pip install \
    'patroni[etcd3]==3.1.2' psycopg2-binary`";

/// Patroni and its version: `explicit`, else `$CHAOS_PATRONI` (whatever
/// version they are), else [`pinned_patroni`] of [`DEFAULT_PATRONI_VERSION`],
/// else a `patroni` on the search path that does not have the etcd3 takeover
/// bug. A buggy one found on the path (Debian 12's 3.0.2) is refused with an
/// error saying why and how to use it anyway.
fn find_patroni(explicit: Option<&Path>) -> Result<(PathBuf, (u32, u32, u32))> {
    let given = explicit.is_some() || std::env::var_os("CHAOS_PATRONI").is_some();
    choose_patroni(
        given,
        &pinned_patroni(DEFAULT_PATRONI_VERSION),
        || {
            search_program(
                "patroni",
                "patroni",
                PATRONI_INSTALL,
                "CHAOS_PATRONI",
                explicit,
            )
        },
        patroni_version,
    )
}

/// [`find_patroni`]'s choice, with the search and the version query passed in.
fn choose_patroni(
    given: bool,
    pinned: &Path,
    search: impl FnOnce() -> Result<Option<PathBuf>>,
    version_of: impl Fn(&Path) -> Result<(u32, u32, u32)>,
) -> Result<(PathBuf, (u32, u32, u32))> {
    let found = if !given && pinned.is_file() {
        Some(pinned.to_path_buf())
    } else {
        search()?
    };
    let Some(patroni) = found else {
        return Err(Error::BinaryNotFound {
            program: "patroni",
            searched: format!("{}, {SEARCHED}", pinned.display()),
            package: "patroni",
            install: PATRONI_INSTALL,
            env_var: "CHAOS_PATRONI",
        });
    };
    let version = version_of(&patroni)?;
    if !given && has_takeover_bug(version) {
        let (a, b, c) = version;
        return Err(Error::BinaryNotFound {
            program: "patroni without the etcd3 leader-takeover bug",
            searched: format!(
                "{} is missing; {} is Patroni {a}.{b}.{c}, whose primary paused past the ttl \
                 takes the leader key back and loses its successor's acknowledged writes \
                 (fixed in 3.0.3)",
                pinned.display(),
                patroni.display()
            ),
            package: "patroni",
            install: PATRONI_INSTALL,
            env_var: "CHAOS_PATRONI to that path to measure it anyway",
        });
    }
    Ok((patroni, version))
}

/// Where programs are searched when no path is given.
pub(crate) const SEARCHED: &str = "PATH, /usr/bin, /usr/sbin";

fn find_program(
    name: &'static str,
    package: &'static str,
    install: &'static str,
    env_var: &'static str,
    explicit: Option<&Path>,
) -> Result<PathBuf> {
    search_program(name, package, install, env_var, explicit)?.ok_or(Error::BinaryNotFound {
        program: name,
        searched: SEARCHED.into(),
        package,
        install,
        env_var,
    })
}

/// The `haproxy` executable: `explicit`, else `$CHAOS_HAPROXY`, else the
/// search path; `None` when it is not installed.
///
/// # Errors
/// [`Error::BinaryNotFound`] when a path given is not a file.
pub(crate) fn find_haproxy(explicit: Option<&Path>) -> Result<Option<PathBuf>> {
    search_program(
        "haproxy",
        "haproxy",
        "install the Debian package `haproxy`",
        "CHAOS_HAPROXY",
        explicit,
    )
}

/// `explicit`, else `$env_var` (an error if it is not a file), else the first
/// `name` on `PATH`, `/usr/bin`, `/usr/sbin`, else `None`.
fn search_program(
    name: &'static str,
    package: &'static str,
    install: &'static str,
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
                install,
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
    use super::*;

    #[test]
    fn the_pinned_patroni_comes_first_and_a_buggy_one_is_refused_unless_asked_for() {
        let dir = std::env::temp_dir().join(format!("chaos-binaries-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pinned = dir.join("pinned-patroni");
        let debian = PathBuf::from("/usr/bin/patroni");
        let version = |p: &Path| Ok(if p == debian { (3, 0, 2) } else { (3, 1, 2) });
        let on_path = || Ok(Some(debian.clone()));

        // Pinned missing, Debian's 3.0.2 on PATH: refused, saying why and what to do.
        let err = choose_patroni(false, &pinned, on_path, version).unwrap_err();
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
            msg.contains("Patroni 3.0.2") && msg.contains("takes the leader key back"),
            "{msg}"
        );
        assert!(msg.contains("pip install 'patroni[etcd3]==3.1.2'"), "{msg}");
        assert!(msg.contains("set CHAOS_PATRONI to that path"), "{msg}");
        // Asked for explicitly (CHAOS_PATRONI or the builder): used.
        let (p, v) = choose_patroni(true, &pinned, on_path, version).unwrap();
        assert_eq!((p, v), (debian.clone(), (3, 0, 2)));
        // Nothing anywhere: where it looked and how to install.
        let err = choose_patroni(false, &pinned, || Ok(None), version).unwrap_err();
        assert!(
            err.to_string().contains(&pinned.display().to_string()),
            "{err}"
        );
        // The pinned one, when present, before the search path.
        std::fs::write(&pinned, "").unwrap();
        let (p, v) = choose_patroni(false, &pinned, on_path, version).unwrap();
        assert_eq!((p.as_path(), v), (pinned.as_path(), (3, 1, 2)));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(has_takeover_bug((3, 0, 2)) && !has_takeover_bug((3, 0, 3)));
    }

    #[test]
    fn parses_patroni_versions() {
        assert_eq!(parse_version("patroni 3.0.2\n"), Some((3, 0, 2)));
        assert_eq!(parse_version("patroni 4.0.4"), Some((4, 0, 4)));
        assert_eq!(parse_version("patroni 3.3"), Some((3, 3, 0)));
        assert_eq!(parse_version("patroni 4.1.0rc1"), Some((4, 1, 0)));
        assert_eq!(parse_version("patroni"), None);
    }
}
