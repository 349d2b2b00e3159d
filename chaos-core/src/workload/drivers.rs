//! The errors of the pools and drivers applications use, classified into
//! [`WorkloadError`] so that an operation can use `?` on them.
//!
//! One question decides the class: could the operation have taken effect?
//! An error that comes before anything of the operation reached the server
//! (a pool that could not hand out a connection, a connection refused, a bad
//! argument) or one the server sent instead of a result (an error with a
//! SQLSTATE: the statement, or its transaction, was rolled back) is
//! [`WorkloadError::Failed`]. An error after the request was sent and before
//! its reply was complete (the connection closed or reset mid-query, a reply
//! that could not be read) is [`WorkloadError::Indeterminate`]: a commit may
//! have happened without its acknowledgement. When in doubt, indeterminate:
//! an indeterminate write is never counted as acknowledged, and never claimed
//! not to have happened.
//!
//! A driver's error cannot always say *when* it happened. An operation that
//! takes a connection from a pool and then runs its statement knows better:
//! map the error of the acquisition with [`WorkloadError::failed`] (nothing
//! of the operation was sent), and let `?` classify the statement's.
//!
//! Like every client, a driver that does not surface the server's warnings
//! (sqlx logs them) reports success for a commit whose wait for the
//! synchronous standby was cancelled — committed locally, perhaps not
//! replicated. The library counts what the application was told.

#[cfg(any(feature = "sqlx", feature = "deadpool"))]
use super::WorkloadError;

/// SQLSTATEs with which the server ends a session (`admin_shutdown`,
/// `crash_shutdown`): during a commit they can come after the local commit,
/// while it waited for the synchronous standby.
#[cfg(feature = "sqlx")]
const SESSION_ENDED: [&str; 2] = ["57P01", "57P02"];

/// sqlx's errors, by when they happen:
///
/// - **Failed** — the server's error with a SQLSTATE (constraint violation,
///   read-only transaction, `cannot_connect_now` …: the statement was rolled
///   back), except the codes that end the session (below); the pool timed out
///   or is closed (no connection, nothing sent); the connection could not be
///   made (an I/O error *refused*, *unreachable*, *address not available*,
///   *not found*; TLS; configuration); an argument that could not be encoded
///   or a type that does not exist (found out before the statement runs);
///   `RowNotFound` (the statement completed and wrote no row the operation
///   could name); the transaction could not begin.
/// - **Indeterminate** — any other I/O error (connection reset or closed,
///   end of stream, broken pipe, a socket time-out: the reply may be lost); a
///   SQLSTATE that ends the session, `57P01` (`admin_shutdown`) and `57P02`
///   (`crash_shutdown`), which a commit can receive after committing locally
///   while it waited for the synchronous standby; a protocol error or a
///   crashed connection worker; a reply that could not be decoded (the
///   statement ran; whether its transaction committed depends on the code
///   around it); any variant added to sqlx later.
///
/// With `&PgPool` as executor, sqlx connects inside the query call, so an
/// I/O error of a connection that a proxy accepted and then closed (HAProxy
/// with no primary behind it) is indeterminate although nothing was sent;
/// `pool.acquire().await.map_err(WorkloadError::failed)?` first makes such
/// errors failures.
#[cfg(feature = "sqlx")]
impl From<sqlx::Error> for WorkloadError {
    fn from(e: sqlx::Error) -> Self {
        use std::io::ErrorKind as Io;
        match &e {
            sqlx::Error::Database(db) => {
                let text = match db.code() {
                    Some(code) => format!("{e} (SQLSTATE {code})"),
                    None => e.to_string(),
                };
                if db.code().is_some_and(|c| SESSION_ENDED.contains(&&*c)) {
                    WorkloadError::Indeterminate(text)
                } else {
                    WorkloadError::Failed(text)
                }
            }
            sqlx::Error::Io(io) => match io.kind() {
                Io::ConnectionRefused
                | Io::AddrNotAvailable
                | Io::HostUnreachable
                | Io::NetworkUnreachable
                | Io::NotFound => WorkloadError::Failed(e.to_string()),
                _ => WorkloadError::Indeterminate(e.to_string()),
            },
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Configuration(_)
            | sqlx::Error::InvalidArgument(_)
            | sqlx::Error::Encode(_)
            | sqlx::Error::TypeNotFound { .. }
            | sqlx::Error::RowNotFound
            | sqlx::Error::InvalidSavePointStatement
            | sqlx::Error::BeginFailed => WorkloadError::Failed(e.to_string()),
            _ => WorkloadError::Indeterminate(e.to_string()),
        }
    }
}

/// deadpool-postgres's pool errors are always **Failed**: they come from
/// `pool.get()`, before the operation has a connection — a slot, a new
/// connection or a recycled one not ready in time (`Timeout`), a connection
/// that could not be made (`Backend`: refused, no server accepting writes
/// among the hosts, the server's `cannot_connect_now`), a closed pool, a
/// failed `post_create` hook. (A recycled connection that fails its check is
/// dropped and replaced inside `get()`, not returned as an error.) The
/// statements' own errors are `tokio_postgres::Error`s, classified by
/// `From<tokio_postgres::Error>`.
#[cfg(feature = "deadpool")]
impl From<deadpool_postgres::PoolError> for WorkloadError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        WorkloadError::Failed(match &e {
            PoolError::Backend(pg) => {
                format!("the pool could not connect: {}", crate::error::describe(pg))
            }
            other => format!(
                "the pool gave no connection: {}",
                other.to_string().trim_end()
            ),
        })
    }
}

#[cfg(test)]
#[cfg(any(feature = "sqlx", feature = "deadpool"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn failed(e: &WorkloadError) -> bool {
        matches!(e, WorkloadError::Failed(_))
    }

    #[cfg(feature = "sqlx")]
    mod sqlx_errors {
        use std::borrow::Cow;
        use std::io;

        use super::*;

        /// A server error with a SQLSTATE, as sqlx's Postgres driver gives it.
        #[derive(Debug)]
        struct ServerSaid(&'static str);

        impl std::fmt::Display for ServerSaid {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "the server said {}", self.0)
            }
        }

        impl std::error::Error for ServerSaid {}

        impl sqlx::error::DatabaseError for ServerSaid {
            fn message(&self) -> &str {
                "the server said no"
            }
            fn code(&self) -> Option<Cow<'_, str>> {
                Some(Cow::Borrowed(self.0))
            }
            fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
                self
            }
            fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
                self
            }
            fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
                self
            }
            fn kind(&self) -> sqlx::error::ErrorKind {
                sqlx::error::ErrorKind::Other
            }
        }

        fn server(code: &'static str) -> WorkloadError {
            sqlx::Error::Database(Box::new(ServerSaid(code))).into()
        }

        fn io(kind: io::ErrorKind) -> WorkloadError {
            sqlx::Error::Io(io::Error::new(kind, "boom")).into()
        }

        #[test]
        fn a_server_error_is_a_failure_with_its_sqlstate() {
            for code in ["25006", "23505", "40001", "57P03", "57014"] {
                let e = server(code);
                assert!(failed(&e), "{code}: {e:?}");
                assert!(e.message().contains(code), "{e:?}");
            }
        }

        #[test]
        fn the_server_ending_the_session_is_indeterminate() {
            for code in ["57P01", "57P02"] {
                assert!(!failed(&server(code)), "{code}");
            }
        }

        #[test]
        fn a_connection_that_was_never_made_is_a_failure() {
            use io::ErrorKind::*;
            for kind in [
                ConnectionRefused,
                AddrNotAvailable,
                HostUnreachable,
                NetworkUnreachable,
                NotFound,
            ] {
                assert!(failed(&io(kind)), "{kind:?}");
            }
        }

        #[test]
        fn a_connection_lost_mid_query_is_indeterminate() {
            use io::ErrorKind::*;
            for kind in [
                UnexpectedEof,
                ConnectionReset,
                ConnectionAborted,
                BrokenPipe,
                TimedOut,
                Other,
            ] {
                let e = io(kind);
                assert!(!failed(&e), "{kind:?}");
                assert!(e.message().contains("boom"), "{e:?}");
            }
        }

        #[test]
        fn pool_and_client_side_errors_are_failures() {
            for e in [
                sqlx::Error::PoolTimedOut,
                sqlx::Error::PoolClosed,
                sqlx::Error::RowNotFound,
                sqlx::Error::InvalidArgument("bad".into()),
                sqlx::Error::Configuration("bad".into()),
                sqlx::Error::Tls("bad".into()),
                sqlx::Error::Encode("bad".into()),
                sqlx::Error::TypeNotFound {
                    type_name: "order_state".into(),
                },
                sqlx::Error::BeginFailed,
            ] {
                let text = e.to_string();
                let w = WorkloadError::from(e);
                assert!(failed(&w), "{w:?}");
                assert_eq!(w.message(), text);
            }
        }

        #[test]
        fn a_reply_that_did_not_arrive_whole_is_indeterminate() {
            for e in [
                sqlx::Error::Protocol("unexpected message".into()),
                sqlx::Error::WorkerCrashed,
                sqlx::Error::Decode("bad".into()),
                sqlx::Error::ColumnNotFound("id".into()),
                sqlx::Error::ColumnIndexOutOfBounds { index: 1, len: 1 },
            ] {
                assert!(!failed(&WorkloadError::from(e)));
            }
        }

        #[test]
        fn question_mark_works_in_an_operation() {
            fn op() -> Result<Option<String>, WorkloadError> {
                Err(sqlx::Error::PoolTimedOut)?;
                Ok(None)
            }
            assert!(failed(&op().unwrap_err()));
        }
    }

    #[cfg(feature = "deadpool")]
    mod deadpool_errors {
        use deadpool_postgres::{HookError, PoolError, TimeoutType};

        use super::*;

        fn pg_error() -> deadpool_postgres::tokio_postgres::Error {
            "port=not-a-number"
                .parse::<deadpool_postgres::tokio_postgres::Config>()
                .unwrap_err()
        }

        #[test]
        fn every_pool_error_is_a_failure() {
            for e in [
                PoolError::Timeout(TimeoutType::Wait),
                PoolError::Timeout(TimeoutType::Create),
                PoolError::Timeout(TimeoutType::Recycle),
                PoolError::Backend(pg_error()),
                PoolError::Closed,
                PoolError::NoRuntimeSpecified,
                PoolError::PostCreateHook(HookError::Message("no".into())),
            ] {
                let w = WorkloadError::from(e);
                assert!(failed(&w), "{w:?}");
                assert!(!w.message().ends_with('\n'), "{w:?}");
            }
        }

        #[test]
        fn a_connect_error_keeps_its_cause() {
            let w = WorkloadError::from(PoolError::Backend(pg_error()));
            assert!(
                w.message().starts_with("the pool could not connect: "),
                "{w:?}"
            );
            assert!(w.message().contains("port"), "{w:?}");
        }

        #[test]
        fn question_mark_works_in_an_operation() {
            fn op() -> Result<Option<String>, WorkloadError> {
                Err(PoolError::Closed)?;
                Ok(None)
            }
            assert!(failed(&op().unwrap_err()));
        }
    }
}
