//! What the `chaos` command-line tests share: the binary in a clean
//! environment, its output, and directories for its reports.
// Each test binary uses only some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The variables that would change what `chaos` does, removed from the child.
pub fn is_chaos_setting(var: &str) -> bool {
    var == "CHAOS_RW_DSN"
        || var == "CHAOS_NODE_DSNS"
        || var == "CHAOS_REPORT_DIR"
        || var == "CHAOS_ALLOW"
        || var == "CHAOS_DRY_RUN"
        || var.starts_with("CHAOS_KUBE_")
        || var.starts_with("CHAOS_CNPG_")
        || (var.starts_with("CHAOS_") && var.ends_with("_CMD"))
}

/// `chaos` with `args`, in an environment without chaos settings.
pub fn chaos(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chaos"));
    cmd.args(args);
    for (var, _) in std::env::vars_os() {
        if var.to_str().is_some_and(is_chaos_setting) {
            cmd.env_remove(var);
        }
    }
    cmd
}

/// Runs `cmd` to its end: its exit code (-1 if killed), stdout and stderr.
pub fn run(mut cmd: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the chaos binary runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A test's own directory under the temp dir, removed when it is dropped:
/// when the test ends, passed or failed (its panic unwinds through it).
pub struct TestDir(pub PathBuf);

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An empty directory for one test's reports (see [`TestDir`]).
pub fn report_dir(name: &str) -> TestDir {
    let dir = std::env::temp_dir().join(format!("chaos-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("report dir");
    TestDir(dir)
}

/// The JSON report at `path`, parsed; panics naming it if missing.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("report {} missing: {e}", path.display()));
    serde_json::from_str(&text).expect("the JSON report parses")
}
