//! The write probe: paced writers that timestamp and classify every commit.
//!
//! Each writer inserts rows `(run_id, writer, seq)` through the read-write
//! endpoint, one single-statement autocommit `INSERT` at a time, and records
//! when it started, when the reply came and what the reply was. The statement
//! goes over the simple-query protocol, where PostgreSQL commits (including the
//! wait for the synchronous standby) *before* it sends `CommandComplete`, so a
//! success reply really means "committed". Deadlines are client-side; the probe
//! never relies on `statement_timeout`, which does not bound a synchronous
//! replication wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

pub use crate::pg::Hosts;
use crate::pg::{self, Failure};
use crate::{Error, Result};

/// The table the probe writes to.
pub const PROBE_TABLE: &str = "chaos_probe";

/// What became of one write attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The commit returned success: the row must survive any failover.
    Acknowledged {
        /// `address:port` of the server that took the write.
        server: String,
        /// That server's timeline when it took the write.
        timeline: u32,
    },
    /// A definite error: the write certainly did not commit.
    Failed {
        /// SQLSTATE if the server sent one (`None`: could not connect).
        sqlstate: Option<String>,
    },
    /// No usable reply: the write may or may not have committed.
    Indeterminate {
        /// Why the outcome is unknown.
        reason: IndeterminateReason,
    },
}

/// Why a write's outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndeterminateReason {
    /// The connection broke while the write was in flight.
    ConnectionLost,
    /// The client-side commit deadline passed without a reply.
    Deadline,
    /// The server warned during the write, e.g. "canceling wait for synchronous
    /// replication": committed locally but perhaps not replicated.
    ServerWarning,
}

/// One write attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Which writer made it.
    pub writer: u32,
    /// The writer's sequence number (unique per writer, from 1).
    pub seq: u64,
    /// Monotonic time the attempt started.
    pub started: Instant,
    /// Monotonic time the outcome was known.
    pub finished: Instant,
    /// What happened.
    pub outcome: Outcome,
    /// When the attempt had to open a connection first: the moment it was
    /// established (the pipeline's `routing` phase ends at the connection that
    /// carried the first acknowledged write after a fault).
    pub connected: Option<Instant>,
}

impl Attempt {
    /// Whether the commit was acknowledged.
    pub fn is_acknowledged(&self) -> bool {
        matches!(self.outcome, Outcome::Acknowledged { .. })
    }
}

/// Everything a probe recorded.
#[derive(Debug, Clone)]
pub struct History {
    /// The run id written into every row.
    pub run_id: String,
    /// The pacing interval of each writer.
    pub interval: Duration,
    /// A monotonic instant and the wall-clock time that corresponds to it.
    pub origin: (Instant, SystemTime),
    /// All attempts, in no particular order.
    pub attempts: Vec<Attempt>,
}

impl History {
    /// Wall-clock time of a monotonic instant recorded in this history.
    pub fn wall(&self, at: Instant) -> SystemTime {
        let (mono, wall) = self.origin;
        if at >= mono {
            wall + (at - mono)
        } else {
            wall - (mono - at)
        }
    }
}

/// The default number of probe writers.
pub const DEFAULT_WRITERS: u32 = 2;
/// The default pacing interval of each probe writer.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(10);

/// Settings of a [`WriteProbe`]. `Default`: [`DEFAULT_WRITERS`] writers, one
/// write every [`DEFAULT_INTERVAL`] each, each writer on one connection it
/// keeps until a write fails; a writer that (re)connects through a multi-host
/// DSN tries every host at once and writes through the first that accepts
/// writes ([`Hosts::Race`]), so that the RTO it measures is the service's, not
/// the host order's. What an application's own client does instead (hosts in
/// turn, a hung host first) is measured by a [`Workload`](crate::workload::Workload)
/// that connects as the application does, or by [`ProbeConfig::hosts`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ProbeConfig {
    writers: u32,
    interval: Duration,
    connect_timeout: Duration,
    commit_timeout: Duration,
    reconnect_each_write: bool,
    load_balance_hosts: bool,
    hosts: Hosts,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            writers: DEFAULT_WRITERS,
            interval: DEFAULT_INTERVAL,
            connect_timeout: Duration::from_secs(2),
            commit_timeout: Duration::from_secs(5),
            reconnect_each_write: false,
            load_balance_hosts: false,
            hosts: Hosts::Race,
        }
    }
}

impl ProbeConfig {
    /// Number of concurrent writers (default 2).
    pub fn writers(mut self, writers: u32) -> Self {
        self.writers = writers;
        self
    }

    /// Time between the starts of a writer's consecutive writes (default 10 ms).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Client-side deadline for (re)connecting to each host (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Client-side deadline for a commit's reply; past it the write is
    /// indeterminate (default 5 s).
    pub fn commit_timeout(mut self, timeout: Duration) -> Self {
        self.commit_timeout = timeout;
        self
    }

    /// Whether each write opens a connection of its own and closes it after
    /// the reply, as applications without a connection pool do (CGI and PHP
    /// pages, serverless functions, cron jobs, shell scripts) (default off:
    /// a writer keeps its connection until a write fails). Every write then
    /// goes through host selection again: with a multi-host DSN it reaches
    /// whichever server accepts writes *now*, so if two do at once (a
    /// split-brain), writes reach both, and the report counts the
    /// acknowledgements on the older timeline. Each write's latency includes
    /// the connection set-up.
    pub fn reconnect_each_write(mut self, enabled: bool) -> Self {
        self.reconnect_each_write = enabled;
        self
    }

    /// Whether a writer tries the hosts of a multi-host DSN one after the
    /// other in random order whenever it connects (default off): libpq's
    /// `load_balance_hosts=random` (PostgreSQL 16 clients, pgJDBC's
    /// `loadBalanceHosts`), which the probe adds to the DSN; implies
    /// [`Hosts::InTurn`]. With `target_session_attrs=read-write` a connection
    /// still ends on a server that accepts writes, but on any of them when
    /// there are several. Combine with
    /// [`reconnect_each_write`](Self::reconnect_each_write) to spread every
    /// write.
    pub fn load_balance_hosts(mut self, enabled: bool) -> Self {
        self.load_balance_hosts = enabled;
        if enabled {
            self.hosts = Hosts::InTurn;
        }
        self
    }

    /// How a writer picks among the hosts of a multi-host DSN when it
    /// (re)connects (default [`Hosts::Race`]: all at once, the first that
    /// accepts writes). [`Hosts::InTurn`] connects as libpq does, one host
    /// after the other: a paused or frozen host listed first then holds every
    /// attempt for [`connect_timeout`](Self::connect_timeout), and the RTO
    /// depends on where the primary was in the list.
    pub fn hosts(mut self, hosts: Hosts) -> Self {
        self.hosts = hosts;
        self
    }

    /// Creates the probe table if needed and starts the writers on `rw_dsn`.
    ///
    /// # Errors
    /// [`Error::Config`] for zero writers or a zero interval, and connection
    /// errors when the table cannot be created.
    pub async fn start(self, rw_dsn: &str) -> Result<WriteProbe> {
        WriteProbe::start(rw_dsn, self).await
    }
}

/// Live counters of a running probe.
#[derive(Debug)]
pub struct Counters {
    origin: Instant,
    /// Start of the latest-started acknowledged write, in ns after `origin` (+1).
    last_ack_started: AtomicU64,
    /// Start of the latest-started unacknowledged write, in ns after `origin` (+1).
    last_miss_started: AtomicU64,
    /// Attempts made.
    pub attempted: AtomicU64,
    /// Attempts acknowledged.
    pub acknowledged: AtomicU64,
    /// Attempts that certainly failed.
    pub failed: AtomicU64,
    /// Attempts with unknown outcome.
    pub indeterminate: AtomicU64,
}

impl Counters {
    pub(crate) fn new(origin: Instant) -> Self {
        Counters {
            origin,
            last_ack_started: AtomicU64::new(0),
            last_miss_started: AtomicU64::new(0),
            attempted: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            indeterminate: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, started: Instant, acknowledged: bool) {
        let ns = started.saturating_duration_since(self.origin).as_nanos() as u64 + 1;
        let slot = if acknowledged {
            &self.last_ack_started
        } else {
            &self.last_miss_started
        };
        slot.fetch_max(ns, Ordering::SeqCst);
    }

    fn instant(&self, slot: &AtomicU64) -> Option<Instant> {
        match slot.load(Ordering::SeqCst) {
            0 => None,
            ns => Some(self.origin + Duration::from_nanos(ns - 1)),
        }
    }

    /// Whether the service looks recovered from a fault at `at`: a write that
    /// started after `at` and after the latest unacknowledged write was
    /// acknowledged, and either the latest failure after `at` is half a second
    /// old (a single writer's blip while another still commits on a primary
    /// about to stop is not recovery) or a second has passed without any
    /// failure (the fault caused none).
    pub fn recovered_since(&self, at: Instant) -> bool {
        let last_ack = self.instant(&self.last_ack_started);
        let last_miss = self.instant(&self.last_miss_started).filter(|&m| m >= at);
        match (last_ack, last_miss) {
            (Some(ack), Some(miss)) => ack > miss && miss.elapsed() >= Duration::from_millis(500),
            (Some(ack), None) => ack >= at && at.elapsed() >= Duration::from_secs(1),
            (None, _) => false,
        }
    }

    /// Whether a write that started at or after `at` has been acknowledged: the
    /// service is back.
    pub fn acknowledged_since(&self, at: Instant) -> bool {
        self.instant(&self.last_ack_started)
            .is_some_and(|t| t >= at)
    }

    /// A snapshot `(attempted, acknowledged, failed, indeterminate)`.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.attempted.load(Ordering::Relaxed),
            self.acknowledged.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.indeterminate.load(Ordering::Relaxed),
        )
    }
}

/// A running write probe; [`stop`](Self::stop) it to get its [`History`].
#[derive(Debug)]
pub struct WriteProbe {
    run_id: String,
    interval: Duration,
    origin: (Instant, SystemTime),
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    writers: Vec<JoinHandle<Vec<Attempt>>>,
}

impl WriteProbe {
    /// A probe configuration with the defaults.
    pub fn builder() -> ProbeConfig {
        ProbeConfig::default()
    }

    async fn start(rw_dsn: &str, config: ProbeConfig) -> Result<Self> {
        if config.writers == 0 {
            return Err(Error::Config {
                field: "writers",
                expected: "at least 1 writer",
                found: "0".into(),
            });
        }
        if config.interval.is_zero() {
            return Err(Error::Config {
                field: "interval",
                expected: "a pacing interval above zero",
                found: "0s".into(),
            });
        }
        let client = pg::connect(rw_dsn, config.connect_timeout).await?;
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (
                    run_id text NOT NULL,
                    writer int NOT NULL,
                    seq bigint NOT NULL,
                    written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                    PRIMARY KEY (run_id, writer, seq))"
            ))
            .await
            .map_err(|e| Error::pg("creating the probe table", e))?;
        check_probe_table(&client).await?;
        drop(client);

        let dsn = if config.load_balance_hosts {
            with_random_host_order(rw_dsn)
        } else {
            rw_dsn.to_string()
        };
        let run_id = crate::run_id::new_run_id();
        let stop = Arc::new(AtomicBool::new(false));
        let origin = (Instant::now(), SystemTime::now());
        let counters = Arc::new(Counters::new(origin.0));
        let writers = (1..=config.writers)
            .map(|w| {
                let writer = Writer {
                    id: w,
                    run_id: run_id.clone(),
                    dsn: dsn.clone(),
                    config: config.clone(),
                    stop: stop.clone(),
                    counters: counters.clone(),
                };
                tokio::spawn(writer.run())
            })
            .collect();
        Ok(WriteProbe {
            run_id,
            interval: config.interval,
            origin,
            stop,
            counters,
            writers,
        })
    }

    /// The run id in every row this probe writes.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Live counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Shared handle to the live counters.
    pub fn counters_handle(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops the writers (each finishes its write in flight) and returns the history.
    pub async fn stop(mut self) -> History {
        self.stop.store(true, Ordering::SeqCst);
        let mut attempts = Vec::new();
        for w in std::mem::take(&mut self.writers) {
            match w.await {
                Ok(a) => attempts.extend(a),
                Err(e) => tracing::error!(error = %e, "probe writer task failed"),
            }
        }
        History {
            run_id: self.run_id.clone(),
            interval: self.interval,
            origin: self.origin,
            attempts,
        }
    }
}

impl Drop for WriteProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Writer {
    id: u32,
    run_id: String,
    dsn: String,
    config: ProbeConfig,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

type Session = (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::error::DbError>,
);

impl Writer {
    async fn run(self) -> Vec<Attempt> {
        let mut attempts = Vec::new();
        let mut session: Option<Session> = None;
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0u64;
        while !self.stop.load(Ordering::SeqCst) {
            ticker.tick().await;
            seq += 1;
            let started = Instant::now();
            self.counters.attempted.fetch_add(1, Ordering::Relaxed);
            let (outcome, connected) = self.attempt(&mut session, seq).await;
            let counter = match &outcome {
                Outcome::Acknowledged { .. } => &self.counters.acknowledged,
                Outcome::Failed { .. } => &self.counters.failed,
                Outcome::Indeterminate { .. } => &self.counters.indeterminate,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            self.counters
                .record(started, matches!(outcome, Outcome::Acknowledged { .. }));
            attempts.push(Attempt {
                writer: self.id,
                seq,
                started,
                finished: Instant::now(),
                outcome,
                connected,
            });
        }
        attempts
    }

    async fn attempt(&self, session: &mut Option<Session>, seq: u64) -> (Outcome, Option<Instant>) {
        let mut connected = None;
        if session.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            match pg::connect_with_notices(
                &self.dsn,
                self.config.connect_timeout,
                self.config.hosts,
            )
            .await
            {
                Ok(s) => {
                    *session = Some(s);
                    connected = Some(Instant::now());
                }
                Err(e) => {
                    let sqlstate = match &e {
                        Error::Postgres { source, .. } => {
                            source.code().map(|c| c.code().to_string())
                        }
                        _ => None,
                    };
                    return (Outcome::Failed { sqlstate }, None);
                }
            }
        }
        let Some((client, notices)) = session.as_mut() else {
            return (Outcome::Failed { sqlstate: None }, connected);
        };
        while notices.try_recv().is_ok() {}
        // The run id is ours (hex), the numbers are integers: nothing to escape.
        let sql = format!(
            "INSERT INTO {PROBE_TABLE} (run_id, writer, seq) VALUES ('{}', {}, {seq}) \
             RETURNING host(inet_server_addr()) || ':' || current_setting('port'), \
                       ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int",
            self.run_id, self.id
        );
        let reply =
            tokio::time::timeout(self.config.commit_timeout, client.simple_query(&sql)).await;
        // Severity as the server sent it unlocalised (`V` field): the localised
        // one (`S`) reads "WARNUNG", "ATTENTION", … on translated servers.
        let warned = std::iter::from_fn(|| notices.try_recv().ok()).any(|n| {
            n.parsed_severity() == Some(tokio_postgres::error::Severity::Warning)
                || n.code().code().starts_with("57")
        });
        let outcome = match reply {
            Err(_) => Outcome::Indeterminate {
                reason: IndeterminateReason::Deadline,
            },
            Ok(_) if warned => Outcome::Indeterminate {
                reason: IndeterminateReason::ServerWarning,
            },
            Ok(Ok(messages)) => ack_from(&messages).unwrap_or(Outcome::Indeterminate {
                reason: IndeterminateReason::ConnectionLost,
            }),
            Ok(Err(e)) => match pg::classify(&e) {
                Failure::Definite => Outcome::Failed {
                    sqlstate: e.code().map(|c| c.code().to_string()),
                },
                Failure::Indeterminate => Outcome::Indeterminate {
                    reason: IndeterminateReason::ConnectionLost,
                },
            },
        };
        if self.config.reconnect_each_write || !matches!(outcome, Outcome::Acknowledged { .. }) {
            // Start afresh: the connection may point at a demoted or dead server.
            *session = None;
        }
        (outcome, connected)
    }
}

/// `dsn` with `load_balance_hosts=random` added, in its own syntax (URL or
/// `key=value` pairs).
fn with_random_host_order(dsn: &str) -> String {
    const PARAM: &str = "load_balance_hosts=random";
    if dsn.contains("://") {
        let sep = if dsn.contains('?') { '&' } else { '?' };
        format!("{dsn}{sep}{PARAM}")
    } else {
        format!("{} {PARAM}", dsn.trim_end())
    }
}

/// The probe table's columns and types, as the probe writes and reads them.
const PROBE_COLUMNS: [(&str, &str); 3] =
    [("run_id", "text"), ("writer", "integer"), ("seq", "bigint")];

/// Fails with a clear error when a `chaos_probe` table of another shape exists.
pub(crate) async fn check_probe_table(client: &tokio_postgres::Client) -> Result<()> {
    match probe_table_misfit(client).await? {
        None => Ok(()),
        Some(misfit) => Err(misfit),
    }
}

/// Whether a `chaos_probe` table of another shape exists: `Some` with the
/// error that says so ([`Error::ProbeTableShape`]: waiting will not change
/// it), `None` when there is none or it fits.
///
/// # Errors
/// When the table's columns cannot be read.
pub(crate) async fn probe_table_misfit(client: &tokio_postgres::Client) -> Result<Option<Error>> {
    let rows = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
              WHERE table_name = $1 AND table_schema = current_schema()",
            &[&PROBE_TABLE],
        )
        .await
        .map_err(|e| Error::pg("reading the probe table's columns", e))?;
    let found: Vec<(String, String)> = rows
        .iter()
        .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
        .collect();
    let fits = PROBE_COLUMNS
        .iter()
        .all(|(c, t)| found.iter().any(|(fc, ft)| fc == c && ft == t));
    if fits {
        return Ok(None);
    }
    let shape = |cols: &mut dyn Iterator<Item = (&str, &str)>| {
        cols.map(|(c, t)| format!("{c} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(Some(Error::ProbeTableShape {
        table: PROBE_TABLE,
        found: shape(&mut found.iter().map(|(c, t)| (c.as_str(), t.as_str()))),
        needed: shape(&mut PROBE_COLUMNS.iter().copied()),
    }))
}

fn ack_from(messages: &[tokio_postgres::SimpleQueryMessage]) -> Option<Outcome> {
    messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => {
            let server = row.get(0)?.to_string();
            let timeline = row.get(1)?.parse().ok()?;
            Some(Outcome::Acknowledged { server, timeline })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::LoadBalanceHosts;

    #[test]
    fn random_host_order_is_added_in_the_dsn_s_own_syntax() {
        for (dsn, want) in [
            (
                "postgresql://u@h1:1,h2:2/db?target_session_attrs=read-write",
                "postgresql://u@h1:1,h2:2/db?target_session_attrs=read-write&load_balance_hosts=random",
            ),
            (
                "postgresql://u@h1:1,h2:2/db",
                "postgresql://u@h1:1,h2:2/db?load_balance_hosts=random",
            ),
            (
                "host=h1,h2 port=1,2 user=u",
                "host=h1,h2 port=1,2 user=u load_balance_hosts=random",
            ),
        ] {
            let out = with_random_host_order(dsn);
            assert_eq!(out, want);
            let parsed: tokio_postgres::Config = out.parse().unwrap();
            assert_eq!(parsed.get_load_balance_hosts(), LoadBalanceHosts::Random);
        }
    }

    #[test]
    fn the_default_probe_keeps_its_connections_and_host_order() {
        let c = ProbeConfig::default();
        assert!(!c.reconnect_each_write && !c.load_balance_hosts && c.hosts == Hosts::Race);
        let c = c.reconnect_each_write(true).load_balance_hosts(true);
        assert!(c.reconnect_each_write && c.load_balance_hosts);
    }
}
