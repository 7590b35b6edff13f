//! Why a broker could not start or keep running. Request-level failures are Kafka error codes
//! (see `errors.rs`); this is for the operator.

use std::path::PathBuf;

use fjord_types::TopicPartition;

use crate::config::ConfigError;

/// A broker-level failure: a bad configuration, an unusable data directory, a listener that
/// cannot bind, or storage that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A property Kafka would refuse.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener's address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file or directory of the data directory cannot be used.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory belongs to someone else, or is in use.
    #[error("{0}")]
    DataDir(String),
    /// A partition's log cannot be opened.
    #[error("cannot open partition {partition}: {source}")]
    Partition {
        /// The partition.
        partition: TopicPartition,
        /// Why.
        source: fjord_log::Error,
    },
    /// The metadata log cannot be read or written.
    #[error("metadata: {0}")]
    Metadata(#[from] fjord_metadata::Error),
    /// The controller refused or could not complete a step of start-up.
    #[error("{0}")]
    Controller(String),
    /// A background task ended unexpectedly.
    #[error("a broker task failed: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// The broker's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Error {
        Error::Task(e.to_string())
    }
}
