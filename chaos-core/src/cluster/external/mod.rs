//! The external target: a PostgreSQL cluster the library does not manage,
//! given by its read-write DSN and, optionally, one DSN per node.
//!
//! Topology comes from SQL on the node DSNs (`pg_is_in_recovery()`,
//! `pg_stat_replication.sync_state`, the timeline); health means a primary
//! accepts writes and, where synchronous replication is configured, a
//! synchronous standby streams. Faults are [`Shell`](crate::fault::Shell)
//! commands, marked faults, or the built-in faults for which a command was
//! given ([`ExternalClusterBuilder::fault_command`]), so a test written with
//! `DeletePrimary::kill()` runs unchanged against it.
//!
//! ```no_run
//! # async fn demo() -> chaos_core::Result<()> {
//! use chaos_core::cluster::external::ExternalCluster;
//! use chaos_core::fault::FaultKind;
//!
//! let cluster = ExternalCluster::builder("postgresql://app@db-rw:5432/app")
//!     .node_dsn("postgresql://app@db-1:5432/app")
//!     .node_dsn("postgresql://app@db-2:5432/app")
//!     .fault_command(FaultKind::KillPrimary, "kubectl delete pod \"$CHAOS_PRIMARY\" --grace-period=0 --force", None)
//!     .build()?;
//! # Ok(()) }
//! ```

mod faults;
mod sql;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::cluster::{Target, Topology};
use crate::dsn::redact;
use crate::fault_kind::FaultKind;
use crate::timeline::Event;
use crate::{Error, Result};

/// The commands that inject (and optionally heal) a built-in fault.
#[derive(Clone, PartialEq, Eq)]
pub struct FaultCommand {
    /// Run to inject; the fault is in effect when it exits 0.
    pub inject: String,
    /// Run to heal, if anything needs doing.
    pub heal: Option<String>,
}

impl fmt::Debug for FaultCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Commands may carry credentials: show their length only.
        f.debug_struct("FaultCommand")
            .field("inject", &format_args!("<{} bytes>", self.inject.len()))
            .field("heal", &self.heal.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Builder of an [`ExternalCluster`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ExternalClusterBuilder {
    rw_dsn: String,
    node_dsns: Vec<String>,
    commands: BTreeMap<FaultKind, FaultCommand>,
}

impl ExternalClusterBuilder {
    /// Adds the DSN of one node (a single host), for topology and health.
    pub fn node_dsn(mut self, dsn: impl Into<String>) -> Self {
        self.node_dsns.push(dsn.into());
        self
    }

    /// Adds the DSNs of several nodes.
    pub fn node_dsns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, dsns: I) -> Self {
        self.node_dsns.extend(dsns.into_iter().map(Into::into));
        self
    }

    /// The shell command that does the built-in fault `kind` on this cluster
    /// (and the one that heals it), e.g. for [`FaultKind::KillPrimary`]
    /// `kubectl delete pod "$CHAOS_PRIMARY" --grace-period=0 --force`.
    pub fn fault_command(
        mut self,
        kind: FaultKind,
        inject: impl Into<String>,
        heal: Option<String>,
    ) -> Self {
        self.commands.insert(
            kind,
            FaultCommand {
                inject: inject.into(),
                heal,
            },
        );
        self
    }

    /// Checks the DSNs and builds the target (it connects to nothing yet).
    ///
    /// # Errors
    /// [`Error::Config`] for a DSN that does not parse, or a node DSN with
    /// more than one host.
    pub fn build(self) -> Result<ExternalCluster> {
        sql::parse_dsn("rw_dsn", &self.rw_dsn)?;
        let mut nodes = Vec::new();
        for dsn in &self.node_dsns {
            let name = sql::node_name(dsn)?;
            nodes.push(sql::Node {
                name,
                dsn: dsn.clone(),
            });
        }
        Ok(ExternalCluster {
            inner: Arc::new(Inner {
                rw_dsn: self.rw_dsn,
                nodes,
                commands: self.commands,
            }),
        })
    }
}

/// A PostgreSQL cluster the library does not manage. Cloning shares it.
#[derive(Clone)]
pub struct ExternalCluster {
    inner: Arc<Inner>,
}

struct Inner {
    rw_dsn: String,
    nodes: Vec<sql::Node>,
    commands: BTreeMap<FaultKind, FaultCommand>,
}

impl fmt::Debug for ExternalCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalCluster")
            .field("rw_dsn", &redact(&self.inner.rw_dsn))
            .field(
                "nodes",
                &self.inner.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
            )
            .field(
                "fault_commands",
                &self.inner.commands.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The environment variable with the read-write DSN.
pub const ENV_RW_DSN: &str = "CHAOS_RW_DSN";
/// The environment variable with the node DSNs, comma-separated.
pub const ENV_NODE_DSNS: &str = "CHAOS_NODE_DSNS";
/// The environment variable with the command that deletes the primary
/// (an alias of `CHAOS_KILL_PRIMARY_CMD`).
pub const ENV_DELETE_PRIMARY_CMD: &str = "CHAOS_DELETE_PRIMARY_CMD";

impl ExternalCluster {
    /// A builder for the cluster whose read-write endpoint is `rw_dsn`.
    pub fn builder(rw_dsn: impl Into<String>) -> ExternalClusterBuilder {
        ExternalClusterBuilder {
            rw_dsn: rw_dsn.into(),
            node_dsns: Vec::new(),
            commands: BTreeMap::new(),
        }
    }

    /// The cluster described by the environment: `CHAOS_RW_DSN` (required),
    /// `CHAOS_NODE_DSNS` (comma-separated), and a command per built-in fault in
    /// `CHAOS_<FAULT>_CMD` / `CHAOS_<FAULT>_HEAL_CMD` (e.g.
    /// `CHAOS_KILL_PRIMARY_CMD`; `CHAOS_DELETE_PRIMARY_CMD` is the same as
    /// `CHAOS_KILL_PRIMARY_CMD`).
    ///
    /// # Errors
    /// [`Error::Config`] when `CHAOS_RW_DSN` is missing or a DSN is invalid.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// [`from_env`](Self::from_env) with the variables looked up by `var`.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        Self::builder_from_vars(var)?.build()
    }

    /// The builder [`from_vars`](Self::from_vars) builds.
    ///
    /// # Errors
    /// [`Error::Config`] when `CHAOS_RW_DSN` is missing.
    pub fn builder_from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<ExternalClusterBuilder> {
        let rw = var(ENV_RW_DSN).ok_or(Error::Config {
            field: "CHAOS_RW_DSN",
            expected: "the read-write DSN of the cluster (CHAOS_TARGET=external needs it)",
            found: String::new(),
        })?;
        let mut b = Self::builder(rw);
        if let Some(nodes) = var(ENV_NODE_DSNS) {
            b = b.node_dsns(nodes.split(',').map(str::trim).filter(|s| !s.is_empty()));
        }
        for kind in FaultKind::ALL {
            let inject_var = kind.env_var();
            let heal_var = inject_var.replace("_CMD", "_HEAL_CMD");
            let (inject, heal) = match (var(&inject_var), kind) {
                (Some(cmd), _) => (Some(cmd), var(&heal_var)),
                (None, FaultKind::KillPrimary) => (
                    var(ENV_DELETE_PRIMARY_CMD),
                    var("CHAOS_DELETE_PRIMARY_HEAL_CMD"),
                ),
                (None, _) => (None, None),
            };
            if let Some(inject) = inject {
                b = b.fault_command(kind, inject, heal);
            }
        }
        Ok(b)
    }

    /// The read-write DSN as given (may carry a password; see [`redact`]).
    pub fn rw_dsn(&self) -> &str {
        &self.inner.rw_dsn
    }

    /// The names (`host:port`) of the nodes given.
    pub fn node_names(&self) -> Vec<String> {
        self.inner.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// The command for built-in fault `kind`, if one was given.
    pub fn fault_command_for(&self, kind: FaultKind) -> Option<&FaultCommand> {
        self.inner.commands.get(&kind)
    }

    /// The current topology.
    ///
    /// # Errors
    /// When neither the nodes nor the read-write endpoint answer.
    pub async fn topology(&self) -> Result<Topology> {
        sql::topology(&self.inner.rw_dsn, &self.inner.nodes).await
    }

    /// Waits until a primary accepts writes and, if synchronous replication is
    /// configured, a synchronous standby streams.
    ///
    /// # Errors
    /// [`Error::Timeout`] with the last state seen.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<Topology> {
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < timeout {
            match crate::pg::primary_state(&self.inner.rw_dsn).await {
                Ok(s) if s.healthy() => return self.topology().await,
                Ok(s) => last = s.to_string(),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(Error::Timeout {
            what: format!(
                "a healthy cluster at {} (last state: {last})",
                redact(&self.inner.rw_dsn)
            ),
            waited: timeout,
            logs: String::new(),
        })
    }
}

impl Target for ExternalCluster {
    fn kind(&self) -> &'static str {
        "external"
    }

    /// By the command given for the fault ([`ExternalClusterBuilder::fault_command`]),
    /// told the fault's value as `CHAOS_FAULT_ARG`.
    fn inject_builtin(
        &self,
        fault: crate::fault::Builtin,
        arg: Option<String>,
    ) -> BoxFuture<'_, Result<crate::fault::AnyGuard>> {
        Box::pin(faults::inject_builtin(self, fault.kind(), arg))
    }

    fn rw_dsn(&self) -> String {
        self.inner.rw_dsn.clone()
    }

    fn node_count(&self) -> usize {
        self.inner.nodes.len().max(1)
    }

    fn topology(&self) -> BoxFuture<'_, Result<Topology>> {
        Box::pin(ExternalCluster::topology(self))
    }

    fn wait_healthy(&self, timeout: Duration) -> BoxFuture<'_, Result<Topology>> {
        Box::pin(ExternalCluster::wait_healthy(self, timeout))
    }

    /// The node DSN (as given) of the member that is primary now; `None`
    /// without node DSNs or without a single primary.
    fn primary_dsn(&self) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async move {
            if self.inner.nodes.is_empty() {
                return Ok(None);
            }
            let t = ExternalCluster::topology(self).await?;
            Ok(t.primary().and_then(|p| {
                self.inner
                    .nodes
                    .iter()
                    .find(|n| n.name == p.name)
                    .map(|n| n.dsn.clone())
            }))
        })
    }

    fn events(self: Arc<Self>) -> BoxStream<'static, Event> {
        // Every poll opens a connection per node: poll less often than locally.
        super::topology::poll_events(self, Duration::from_millis(200))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn from_env_reads_dsns_and_commands() {
        let c = ExternalCluster::from_vars(vars(&[
            (
                "CHAOS_RW_DSN",
                "postgresql://app:pw@h1:5432,h2:5433/db?target_session_attrs=read-write",
            ),
            (
                "CHAOS_NODE_DSNS",
                "postgresql://app@h1:5432/db, host=h2 port=5433 user=app",
            ),
            ("CHAOS_DELETE_PRIMARY_CMD", "kubectl delete pod x"),
            ("CHAOS_FREEZE_PRIMARY_CMD", "kill -STOP 1"),
            ("CHAOS_FREEZE_PRIMARY_HEAL_CMD", "kill -CONT 1"),
        ]))
        .expect("valid");
        assert_eq!(c.node_names(), vec!["h1:5432", "h2:5433"]);
        assert_eq!(
            c.fault_command_for(FaultKind::KillPrimary)
                .map(|c| c.inject.as_str()),
            Some("kubectl delete pod x")
        );
        assert_eq!(
            c.fault_command_for(FaultKind::FreezePrimary)
                .and_then(|c| c.heal.as_deref()),
            Some("kill -CONT 1")
        );
        assert!(c.fault_command_for(FaultKind::StopPrimary).is_none());
        let debug = format!("{c:?}");
        assert!(!debug.contains("pw"), "no password in Debug: {debug}");
    }

    #[test]
    fn missing_or_bad_settings_are_typed_errors() {
        let err = ExternalCluster::from_vars(vars(&[])).unwrap_err();
        assert!(err.to_string().contains("CHAOS_RW_DSN"), "{err}");
        let err = ExternalCluster::builder("postgresql://h/db")
            .node_dsn("postgresql://a:1,b:2/db")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("one host"), "{err}");
        let err = ExternalCluster::builder("host=h port=notaport")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("rw_dsn"), "{err}");
    }

    #[tokio::test]
    async fn a_builtin_fault_without_a_command_says_how_to_give_one() {
        let c = ExternalCluster::builder("postgresql://h/db")
            .build()
            .expect("valid");
        let err =
            crate::fault::Fault::<ExternalCluster>::inject(crate::fault::DeletePrimary::kill(), &c)
                .await
                .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Unsupported { .. }), "{text}");
        assert!(
            text.contains("kill-primary") && text.contains("CHAOS_KILL_PRIMARY_CMD"),
            "{text}"
        );
    }
}
