//! Small helpers around tokio-postgres: bounded connects and error classification.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::{Error, Result};

/// Connects to `dsn` within `deadline`, driving the connection on a background task.
///
/// # Errors
/// [`Error::Postgres`] when the connection fails, [`Error::Timeout`] when it does
/// not complete in time, [`Error::Config`] when `dsn` does not parse.
pub async fn connect(dsn: &str, deadline: Duration) -> Result<Client> {
    let (client, _notices) = connect_with_notices(dsn, deadline).await?;
    Ok(client)
}

/// Like [`connect`], but also returns the server's notices (warnings), which a
/// caller must read to tell a committed write from a non-durable one.
pub(crate) async fn connect_with_notices(
    dsn: &str,
    deadline: Duration,
) -> Result<(
    Client,
    tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::error::DbError>,
)> {
    let config: tokio_postgres::Config = dsn.parse().map_err(|_| Error::Config {
        field: "dsn",
        expected: "a libpq connection string or postgresql:// URL",
        found: crate::report::redact_dsn(dsn),
    })?;
    let (client, mut connection) = tokio::time::timeout(deadline, config.connect(NoTls))
        .await
        .map_err(|_| Error::Timeout {
            what: format!("connecting to {}", crate::report::redact_dsn(dsn)),
            waited: deadline,
            logs: String::new(),
        })?
        .map_err(|e| {
            Error::pg(
                format!("connecting to {}", crate::report::redact_dsn(dsn)),
                e,
            )
        })?;
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
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::QUERY_CANCELED,
    ]
    .contains(code)
}
