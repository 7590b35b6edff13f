//! The crate's errors. Kafka error codes only travel inside [`Message`](crate::Message)s; mapping
//! these to a client-facing code is the broker's job.

use std::path::{Path, PathBuf};

use fjord_types::LeaderEpoch;

use crate::ids::NodeId;

/// What went wrong in a `fjord-quorum` call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `propose` on a node that is not the leader; the caller should retry at `leader`.
    #[error("not the leader (epoch {epoch}, leader {leader:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<NodeId>,
        /// This node's epoch.
        epoch: LeaderEpoch,
    },
    /// `propose` on a leader that has not yet announced itself: its epoch's LeaderChange
    /// record is not committed, so its state machine may not be current and records proposed
    /// now could be decided on stale state (or, had the LeaderChange not been appended, precede
    /// it). Not fatal: retry when the leader announces itself (`Effect::LeaderChange`).
    #[error("leader of epoch {epoch} not ready: its LeaderChange record at {epoch_start_offset} is not committed yet")]
    LeaderNotReady {
        /// The epoch this node leads.
        epoch: LeaderEpoch,
        /// Where its LeaderChange record is (or goes).
        epoch_start_offset: fjord_types::Offset,
    },
    /// A proposal with no records, or more than the log takes in one batch.
    #[error("invalid proposal: {0}")]
    InvalidProposal(String),
    /// A snapshot that does not fit the log (beyond the high watermark, unknown epoch, ...).
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// The log or the quorum-state store failed. The node stops: an unknown durable state must
    /// not be built on (Kafka exits the process on a failed flush).
    #[error("storage failed: {0}")]
    Storage(#[from] StorageError),
    /// A safety invariant would have been broken (the leader asked for a truncation below the
    /// high watermark, the high watermark went back, ...). The node stops rather than diverge.
    #[error("invariant violated: {0}")]
    InvariantViolated(String),
    /// The node failed earlier (see the first error) and takes no more input.
    #[error("the node failed earlier and refuses input: {0}")]
    Failed(String),
    /// A configuration that cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Error {
    /// Whether the node is finished: the process should restart it from durable state.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Storage(_) | Error::InvariantViolated(_) | Error::Failed(_))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure of durable storage: the log, its snapshots or the quorum-state file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// An operating-system error.
    #[error("{path}: {reason}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS's description.
        reason: String,
    },
    /// Bytes on disk that do not decode.
    #[error("{path}: corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `quorum-state` file of a `data_version` this build does not know (KAFKA-15412).
    #[error("{path}: unknown quorum-state data_version {version}")]
    UnknownDataVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: i64,
    },
    /// The log refused an operation (out of order, out of range): a bug in the caller.
    #[error("log: {0}")]
    Refused(String),
    /// A failure injected by a test or the simulator.
    #[error("injected fault: {0}")]
    Injected(String),
}

impl StorageError {
    /// A closure turning an `io::Error` on `path` into a `StorageError`.
    pub fn io(path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> StorageError {
        let path = path.as_ref().to_path_buf();
        move |e| StorageError::Io { path, reason: e.to_string() }
    }
}

impl From<fjord_log::Error> for StorageError {
    fn from(e: fjord_log::Error) -> StorageError {
        match e {
            fjord_log::Error::CorruptFile { path, reason } => StorageError::Corrupt { path, reason },
            fjord_log::Error::Io { path, source } => StorageError::Io { path, reason: source.to_string() },
            other => StorageError::Refused(other.to_string()),
        }
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `controller.quorum.voters` that does not parse or is empty.
    #[error("controller.quorum.voters: {0}")]
    InvalidVoters(String),
    /// A `host:port` that does not parse.
    #[error("invalid endpoint {text:?}: {reason}")]
    InvalidEndpoint {
        /// The text.
        text: String,
        /// Why.
        reason: String,
    },
    /// A property with a value Kafka would refuse.
    #[error("invalid value {value:?} for {name}: {reason}")]
    InvalidValue {
        /// The property name.
        name: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
}
