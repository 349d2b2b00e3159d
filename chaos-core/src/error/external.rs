//! Errors of the external target ([`ExternalCluster`](crate::cluster::external::ExternalCluster)).

/// The external cluster's nodes did not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExternalError {
    /// A node answered the connection but not the query.
    #[error("{dsn} did not answer")]
    NoAnswer {
        /// The node's connection string, password removed.
        dsn: String,
    },

    /// No node of the cluster answered.
    #[error(
        "no node of the external cluster answered ({nodes}); the first one's error: {}",
        crate::error::describe(&**.first)
    )]
    NoNodeAnswered {
        /// The nodes asked, by name, comma-separated.
        nodes: String,
        /// Why the first node did not answer: a [`crate::Error`] (boxed as a
        /// trait object, so that `source()` is the error itself).
        #[source]
        first: Box<dyn std::error::Error + Send + Sync>,
    },
}
