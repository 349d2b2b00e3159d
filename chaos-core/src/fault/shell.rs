//! Faults given as shell commands: whatever breaks the cluster, on any target.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{FaultGuard, FaultInfo, Healed};
use crate::timeline::{Healing, Timestamp};
use crate::{Error, Result};

/// A fault made of shell commands (`sh -c`): the one that injects it and,
/// optionally, the one that heals it. Works on every target.
///
/// The fault is injected when the inject command **exits 0**; a non-zero exit
/// is an error carrying the command's stderr. Since the command may itself
/// cause the outage while it runs (a promotion, `kubectl delete --wait`), the
/// fault's time — and so its RTO — is taken from the moment the command
/// *started*: an RTO can then include the command's own start-up, never miss
/// part of the outage. The commands see `CHAOS_PRIMARY` (the current
/// primary's name, when the target knows it) and `CHAOS_TARGET_KIND` in their
/// environment. Passwords in the command text are removed before it reaches a
/// report or an error ([`crate::dsn::redact_text`]).
///
/// ```no_run
/// # async fn demo(target: &dyn chaos_core::cluster::Target) -> chaos_core::Result<()> {
/// use chaos_core::fault::{Fault, FaultGuard, Shell};
///
/// let guard = Shell::new("kubectl delete pod \"$CHAOS_PRIMARY\" --grace-period=0 --force")
///     .inject(target)
///     .await?;
/// guard.heal().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Shell {
    pub(crate) inject: String,
    pub(crate) heal: Option<String>,
    pub(crate) name: String,
    pub(crate) timeout: Duration,
    pub(crate) env: Vec<(&'static str, String)>,
}

impl Shell {
    /// A fault injected by running `command`.
    pub fn new(command: impl Into<String>) -> Self {
        Shell {
            inject: command.into(),
            heal: None,
            name: "shell".into(),
            timeout: Duration::from_secs(120),
            env: Vec::new(),
        }
    }

    /// The command that heals the fault (run by `heal()` or on drop).
    pub fn heal(mut self, command: impl Into<String>) -> Self {
        self.heal = Some(command.into());
        self
    }

    /// The fault's kind in the report (default `shell`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// An environment variable both commands see, beside `CHAOS_PRIMARY` and
    /// `CHAOS_TARGET_KIND`.
    pub(crate) fn env(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.env.push((name, value.into()));
        self
    }

    /// How long each command may run (default 120 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Runs `command` with `sh -c` and the given environment, within `timeout`.
pub(crate) async fn run_command(
    command: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<()> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().map_err(|e| {
        Error::io(
            format!("starting `sh -c {}`", crate::dsn::redact_text(command)),
            e,
        )
    })?;
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| Error::Timeout {
            what: format!(
                "the fault command `{}` to exit",
                crate::dsn::redact_text(command)
            ),
            waited: timeout,
            logs: String::new(),
        })?
        .map_err(|e| {
            Error::io(
                format!("running `sh -c {}`", crate::dsn::redact_text(command)),
                e,
            )
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: crate::dsn::redact_text(command),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Guard of [`Shell`]: runs the heal command, if there is one.
#[derive(Debug)]
pub struct ShellGuard {
    pub(crate) info: FaultInfo,
    pub(crate) injected_at: Instant,
    pub(crate) heal: Option<String>,
    pub(crate) env: Vec<(&'static str, String)>,
    pub(crate) timeout: Duration,
}

impl FaultGuard for ShellGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    async fn heal(mut self) -> Result<Healed> {
        let event = match self.heal.take() {
            Some(cmd) => {
                run_command(&cmd, &self.env, self.timeout).await?;
                Healing::Healed
            }
            // Nothing to undo: the fault is over as far as the run is concerned.
            None => Healing::Released,
        };
        Ok(Healed {
            event,
            at: Timestamp::now(),
            detail: Some(self.info.kind.clone()),
        })
    }
}

impl Drop for ShellGuard {
    fn drop(&mut self) {
        let Some(cmd) = self.heal.take() else {
            return;
        };
        // Best effort, without a runtime: run the heal command to completion.
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => tracing::info!(command = %cmd, "fault guard dropped: healed"),
            Ok(s) => {
                tracing::error!(command = %cmd, status = %s, "fault guard dropped: heal command failed")
            }
            Err(e) => {
                tracing::error!(command = %cmd, error = %e, "fault guard dropped: heal command did not start")
            }
        }
    }
}
