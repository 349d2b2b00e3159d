//! A fault of your own, measured like the built-in ones: `CrashPostgres` stops
//! the primary's PostgreSQL with `pg_ctl stop -m immediate` (a crash: no
//! checkpoint, every backend gone) and leaves its Patroni running. Patroni
//! notices at its next loop; the local cluster sets `primary_start_timeout: 0`,
//! so rather than restart the crashed primary in place it hands the leader
//! lock to the synchronous standby at once and restarts the crashed node as a
//! replica. Unlike `DeletePrimary::kill()`, nobody waits for the leader key's
//! ttl to expire: the RTO is Patroni's reaction to a crash (about 2.3 s on a
//! 2-core VM), not its ttl (about 5 s).
//!
//! ```text
//! cargo run --example custom_fault -- [--max-rto 10s] [--rpo 0] [--warmup 2s]
//! ```
//!
//! Exits 0 when the SLO holds, 1 when it is violated, 2 on set-up errors. The
//! guide that explains every line is `chaos_core::guide::custom_faults`
//! (`chaos-core/docs/custom-faults.md`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chaos_core::cluster::local::LocalCluster;
use chaos_core::error::LocalError;
use chaos_core::fault::{FaultInfo, Healed};
use chaos_core::prelude::*;
use chaos_core::timeline::Timestamp;
use chaos_examples::{duration, exit_code, init_tracing};
use clap::Parser;

/// Crashes the primary's PostgreSQL (`pg_ctl stop -m immediate`), leaving its
/// Patroni running to react. Local clusters only.
#[derive(Debug, Clone)]
#[must_use]
pub struct CrashPostgres {
    back_timeout: Duration,
}

impl CrashPostgres {
    /// A crash of the current primary's PostgreSQL.
    pub fn new() -> Self {
        CrashPostgres {
            back_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for CrashPostgres {
    fn default() -> Self {
        Self::new()
    }
}

impl Fault<LocalCluster> for CrashPostgres {
    type Guard = CrashGuard;

    async fn inject(self, cluster: &LocalCluster) -> Result<CrashGuard> {
        // Resolve the victim now: the node that leads at injection time.
        let name = cluster.primary().await?;
        let node = cluster
            .node(&name)
            .ok_or_else(|| LocalError::NoSuchNode { name: name.clone() })?;
        let old_pid = cluster.postmaster_pid(&name)?;

        // `command` runs as the user PostgreSQL runs as (`postgres` when we are
        // root: pg_ctl refuses to run as root) with PostgreSQL's bin directory
        // first on PATH. `-w` makes pg_ctl return once the postmaster is gone.
        let mut cmd = cluster.command("pg_ctl");
        cmd.args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(node.data_dir())
            .current_dir(node.data_dir());
        let out = tokio::process::Command::from(cmd)
            .output()
            .await
            .map_err(|source| Error::Io {
                context: "running pg_ctl stop".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Command {
                command: format!("pg_ctl stop -m immediate -D {}", node.data_dir().display()),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        // Only now is the fault in effect: pg_ctl has returned, the postmaster
        // and its backends are gone. Both clocks are read here, after it.
        let injected_at = Instant::now();
        let wall = Timestamp::now();
        Ok(CrashGuard {
            cluster: cluster.clone(),
            info: FaultInfo {
                kind: "crash-postgres".into(),
                mode: "pg_ctl stop -m immediate".into(),
                victim: Some(name.clone()),
                injected_at: wall,
            },
            node: name,
            old_pid,
            injected_at,
            back_timeout: self.back_timeout,
            healed: false,
        })
    }
}

/// On any target, as `Scenario::run` and `ctx.inject` want: find the local
/// cluster, or say that this fault needs one.
impl Fault<dyn Target> for CrashPostgres {
    type Guard = CrashGuard;

    async fn inject(self, target: &dyn Target) -> Result<CrashGuard> {
        match target.downcast_ref::<LocalCluster>() {
            Some(cluster) => Fault::<LocalCluster>::inject(self, cluster).await,
            None => Err(Error::Unsupported {
                fault: "crash-postgres".into(),
                target: target.kind().into(),
                supported_by: "local".into(),
            }),
        }
    }
}

/// Guard of [`CrashPostgres`]. Nothing to undo (Patroni restarts PostgreSQL);
/// healing waits until the crashed node runs a new postmaster, is a serving
/// member again and answers a query.
#[derive(Debug)]
pub struct CrashGuard {
    cluster: LocalCluster,
    info: FaultInfo,
    node: String,
    old_pid: i32,
    injected_at: Instant,
    back_timeout: Duration,
    healed: bool,
}

impl CrashGuard {
    /// Whether the node runs a new postmaster, is a serving member and answers.
    async fn is_back(&self) -> Option<Role> {
        let pid = self.cluster.postmaster_pid(&self.node).ok()?;
        if pid == self.old_pid {
            return None;
        }
        let topology = self.cluster.topology().await.ok()?;
        let member = topology.members.iter().find(|m| m.name == self.node)?;
        if !member.is_up() {
            return None;
        }
        let dsn = self.cluster.node(&self.node)?.dsn();
        let client = chaos_core::pg::connect(&dsn, Duration::from_secs(2))
            .await
            .ok()?;
        client.simple_query("SELECT 1").await.ok()?;
        Some(member.role)
    }
}

impl FaultGuard for CrashGuard {
    fn info(&self) -> &FaultInfo {
        &self.info
    }

    fn injected_at(&self) -> Instant {
        self.injected_at
    }

    async fn heal(mut self) -> Result<Healed> {
        self.healed = true;
        let deadline = Instant::now() + self.back_timeout;
        loop {
            if let Some(role) = self.is_back().await {
                return Ok(Healed {
                    event: "postgres restarted".into(),
                    at: Timestamp::now(),
                    detail: Some(format!("{} as {role:?}", self.node)),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{} to run PostgreSQL again", self.node),
                    waited: self.back_timeout,
                    logs: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for CrashGuard {
    /// Best effort, never panics, no runtime needed: Patroni restarts
    /// PostgreSQL by itself; only a node whose Patroni is gone is started again.
    fn drop(&mut self) {
        if self.healed || self.cluster.patroni_pid(&self.node).is_some() {
            return;
        }
        if let Err(e) = self.cluster.start_node(&self.node) {
            eprintln!(
                "crash-postgres guard dropped: cannot restart {}: {e}",
                self.node
            );
        }
    }
}

/// Boot a local HA cluster, crash its primary's PostgreSQL, measure RTO and RPO.
#[derive(Parser, Debug)]
#[command(name = "custom_fault")]
struct Args {
    /// Longest acceptable RTO.
    #[arg(long, default_value = "10s", value_parser = duration)]
    max_rto: Duration,
    /// Acknowledged writes that may be lost.
    #[arg(long, default_value_t = 0)]
    rpo: u64,
    /// How long the probe writes before the fault.
    #[arg(long, default_value = "2s", value_parser = duration)]
    warmup: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing("warn");
    let args = Args::parse();
    exit_code(run(args).await)
}

async fn run(args: Args) -> Result<bool> {
    eprintln!("booting a 3-node Patroni + etcd + PostgreSQL cluster…");
    let cluster = LocalCluster::builder().nodes(3).start().await?;
    let report = Scenario::new("custom_fault")
        .slo(Slo::max_rto(args.max_rto).max_lost_writes(args.rpo))
        .warmup(args.warmup)
        .configure(|e| e.print_summary(false))
        .run(&cluster, CrashPostgres::new())
        .await?;
    println!("{report}");
    cluster.stop();
    Ok(report.passed())
}
