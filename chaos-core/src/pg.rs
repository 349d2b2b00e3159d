//! Small helpers around tokio-postgres: bounded connects and error classification.

use std::fmt;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::{Error, Result};

/// Connects to `dsn` within `deadline`, driving the connection on a background task.
///
/// With several hosts (`host=a,b,c`, `postgresql://a,b,c/…`) every host is
/// tried at once, each within `deadline`, and the first to complete a
/// connection that fits `target_session_attrs` is used (see
/// [`Hosts::Race`]): a host that accepts TCP but never answers (a paused or
/// frozen server) delays nothing.
///
/// # Errors
/// [`Error::Postgres`] when the connection fails, [`Error::Timeout`] when it does
/// not complete in time, [`Error::Config`] when `dsn` does not parse.
pub async fn connect(dsn: &str, deadline: Duration) -> Result<Client> {
    let (client, _notices) = connect_with_notices(dsn, deadline, Hosts::Race).await?;
    Ok(client)
}

/// How a connection picks among the hosts of a multi-host DSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hosts {
    /// Every host at once, each within the deadline; the first connection that
    /// fits `target_session_attrs` wins and the others are dropped. How soon
    /// a connection succeeds then depends only on the service (is there a
    /// server that accepts writes?), never on the order of the hosts.
    #[default]
    Race,
    /// One host after the other, as libpq, pgJDBC and tokio-postgres do (in
    /// the DSN's order, or shuffled with `load_balance_hosts=random`): a host
    /// that accepts TCP but never answers holds the attempt for the whole
    /// deadline, and the hosts after it are never reached.
    InTurn,
}

/// Like [`connect`], but also returns the server's notices (warnings), which a
/// caller must read to tell a committed write from a non-durable one.
pub(crate) async fn connect_with_notices(
    dsn: &str,
    deadline: Duration,
    hosts: Hosts,
) -> Result<(
    Client,
    tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::error::DbError>,
)> {
    let config: tokio_postgres::Config = dsn.parse().map_err(|_| Error::Config {
        field: "dsn",
        expected: "a libpq connection string or postgresql:// URL",
        found: crate::dsn::redact(dsn),
    })?;
    let count = config.get_hosts().len().max(config.get_hostaddrs().len());
    let (client, mut connection) = if count > 1 && hosts == Hosts::Race {
        race(&config, count, deadline, dsn).await?
    } else {
        connect_one(&config, deadline, dsn).await?
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        use futures::StreamExt;
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notice(notice)) => {
                    let _ = tx.send(notice);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    Ok((client, rx))
}

type Connection = tokio_postgres::Connection<tokio_postgres::Socket, NoTlsStream>;

/// tokio-postgres' own connect (hosts in turn), bounded by `deadline`.
async fn connect_one(
    config: &tokio_postgres::Config,
    deadline: Duration,
    dsn: &str,
) -> Result<(Client, Connection)> {
    tokio::time::timeout(deadline, config.connect(NoTls))
        .await
        .map_err(|_| Error::Timeout {
            what: format!("connecting to {}", crate::dsn::redact(dsn)),
            waited: deadline,
            logs: String::new(),
        })?
        .map_err(|e| Error::pg(format!("connecting to {}", crate::dsn::redact(dsn)), e))
}

/// How soon [`race`] tries again a host that refused while another host has
/// not answered yet.
const RACE_RETRY: Duration = Duration::from_millis(20);

/// [`Hosts::Race`]: one connection per host at once; the first that succeeds.
/// While a host has not answered at all (it accepted TCP and hangs, or its
/// packets are dropped), the hosts that refused (a standby, a server starting
/// up) are tried again every [`RACE_RETRY`], so that the moment one of them is
/// promoted is not lost waiting for the hung one. When every host has
/// answered with a refusal, or the deadline passed: the error of the first
/// host (in the DSN's order) that a server answered, else the first host's.
async fn race(
    config: &tokio_postgres::Config,
    count: usize,
    deadline: Duration,
    dsn: &str,
) -> Result<(Client, Connection)> {
    use futures::StreamExt;
    let end = tokio::time::Instant::now() + deadline;
    let hosts: Vec<tokio_postgres::Config> = (0..count).map(|i| only_host(config, i)).collect();
    let attempt = |i: usize, delay: Duration| {
        let one = &hosts[i];
        async move {
            tokio::time::sleep(delay).await;
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            (i, connect_one(one, left, dsn).await)
        }
    };
    let mut tries: futures::stream::FuturesUnordered<_> =
        (0..count).map(|i| attempt(i, Duration::ZERO)).collect();
    let mut unanswered = vec![true; count];
    let mut errors: Vec<Option<Error>> = (0..count).map(|_| None).collect();
    while let Some((i, result)) = tries.next().await {
        match result {
            Ok(pair) => return Ok(pair),
            Err(e) => {
                unanswered[i] = false;
                errors[i] = Some(e);
                let time_left = tokio::time::Instant::now() + RACE_RETRY < end;
                if time_left && unanswered.iter().any(|&u| u) {
                    tries.push(attempt(i, RACE_RETRY));
                }
            }
        }
    }
    let mut errors: Vec<Error> = errors.into_iter().flatten().collect();
    let answered = errors
        .iter()
        .position(|e| matches!(e, Error::Postgres { source, .. } if source.code().is_some()));
    Err(errors.swap_remove(answered.unwrap_or(0)))
}

/// `config` with its `i`-th host alone (and that host's port and address).
fn only_host(c: &tokio_postgres::Config, i: usize) -> tokio_postgres::Config {
    use tokio_postgres::config::Host;
    let mut one = tokio_postgres::Config::new();
    if let Some(user) = c.get_user() {
        one.user(user);
    }
    if let Some(password) = c.get_password() {
        one.password(password);
    }
    if let Some(dbname) = c.get_dbname() {
        one.dbname(dbname);
    }
    if let Some(options) = c.get_options() {
        one.options(options);
    }
    if let Some(name) = c.get_application_name() {
        one.application_name(name);
    }
    match c.get_hosts().get(i) {
        Some(Host::Tcp(host)) => {
            one.host(host);
        }
        Some(Host::Unix(path)) => {
            one.host_path(path);
        }
        None => {}
    }
    if let Some(&addr) = c.get_hostaddrs().get(i) {
        one.hostaddr(addr);
    }
    let ports = c.get_ports();
    if let Some(&port) = ports.get(i).or_else(|| ports.first()) {
        one.port(port);
    }
    if let Some(&t) = c.get_connect_timeout() {
        one.connect_timeout(t);
    }
    if let Some(&t) = c.get_tcp_user_timeout() {
        one.tcp_user_timeout(t);
    }
    one.keepalives(c.get_keepalives())
        .keepalives_idle(c.get_keepalives_idle());
    if let Some(t) = c.get_keepalives_interval() {
        one.keepalives_interval(t);
    }
    if let Some(n) = c.get_keepalives_retries() {
        one.keepalives_retries(n);
    }
    one.ssl_mode(c.get_ssl_mode())
        .ssl_negotiation(c.get_ssl_negotiation())
        .channel_binding(c.get_channel_binding())
        .target_session_attrs(c.get_target_session_attrs());
    one
}

/// How a failed statement should be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server said no before committing: the write certainly did not happen.
    Definite,
    /// No reply, or the connection broke: the write may or may not have committed.
    Indeterminate,
}

/// Classifies an error of a single-statement autocommit write, by SQLSTATE and
/// connection state, never by message text.
pub(crate) fn classify(err: &tokio_postgres::Error) -> Failure {
    match err.code() {
        // The backend was terminated while it ran the statement: a commit that
        // was waiting for the synchronous standby has already happened locally
        // (PostgreSQL warns so, but only a client reading notices can tell).
        Some(code) if *code == SqlState::ADMIN_SHUTDOWN || *code == SqlState::CRASH_SHUTDOWN => {
            Failure::Indeterminate
        }
        // The server answered with an error for this statement: with a single
        // autocommit statement an ErrorResponse means the transaction aborted.
        Some(code) if is_definite(code) => Failure::Definite,
        // Any other SQLSTATE is also a server-side rollback of this statement.
        Some(_) => Failure::Definite,
        // No SQLSTATE: I/O error or closed connection while waiting for the reply.
        None => Failure::Indeterminate,
    }
}

fn is_definite(code: &SqlState) -> bool {
    [
        SqlState::READ_ONLY_SQL_TRANSACTION,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::QUERY_CANCELED,
    ]
    .contains(code)
}

/// What the read-write endpoint's server says about writes and synchronous
/// replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryState {
    /// The server is in recovery (a standby).
    pub in_recovery: bool,
    /// `transaction_read_only` is on.
    pub read_only: bool,
    /// `synchronous_standby_names`.
    pub synchronous_standby_names: String,
    /// Standbys streaming with `sync_state` `sync` or `quorum`.
    pub sync_streaming: i64,
}

impl PrimaryState {
    /// Whether synchronous replication is configured.
    pub fn sync_configured(&self) -> bool {
        !self.synchronous_standby_names.trim().is_empty()
    }

    /// Accepts writes and, if synchronous replication is configured, has a
    /// synchronous standby streaming.
    pub fn healthy(&self) -> bool {
        !self.in_recovery && !self.read_only && (!self.sync_configured() || self.sync_streaming > 0)
    }
}

impl fmt::Display for PrimaryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "in recovery: {}, read-only: {}, synchronous_standby_names: {:?}, synchronous standbys streaming: {}",
            self.in_recovery, self.read_only, self.synchronous_standby_names, self.sync_streaming
        )
    }
}

/// Reads [`PrimaryState`] through `rw_dsn`.
///
/// # Errors
/// When the server cannot be reached or queried.
pub async fn primary_state(rw_dsn: &str) -> Result<PrimaryState> {
    let client = connect(rw_dsn, Duration::from_secs(2)).await?;
    let row = tokio::time::timeout(
        Duration::from_secs(3),
        client.query_one(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on', \
                    current_setting('synchronous_standby_names'), \
                    (SELECT count(*) FROM pg_stat_replication \
                      WHERE sync_state IN ('sync', 'quorum') AND state = 'streaming')",
            &[],
        ),
    )
    .await
    .map_err(|_| Error::Timeout {
        what: format!("the replication state of {}", crate::dsn::redact(rw_dsn)),
        waited: Duration::from_secs(3),
        logs: String::new(),
    })?
    .map_err(|e| Error::pg("reading the replication state", e))?;
    let field = |what: &'static str| move |e| Error::pg(format!("reading {what}"), e);
    Ok(PrimaryState {
        in_recovery: row.try_get(0).map_err(field("pg_is_in_recovery()"))?,
        read_only: row.try_get(1).map_err(field("transaction_read_only"))?,
        synchronous_standby_names: row.try_get(2).map_err(field("synchronous_standby_names"))?,
        sync_streaming: row.try_get(3).map_err(field("pg_stat_replication"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_needs_a_sync_standby_only_when_configured() {
        let mut s = PrimaryState {
            in_recovery: false,
            read_only: false,
            synchronous_standby_names: String::new(),
            sync_streaming: 0,
        };
        assert!(s.healthy());
        s.synchronous_standby_names = "ANY 1 (a, b)".into();
        assert!(!s.healthy());
        s.sync_streaming = 1;
        assert!(s.healthy());
        s.in_recovery = true;
        assert!(!s.healthy());
    }
}
