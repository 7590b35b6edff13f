//! How the controller's records reach the metadata log, and how committed ones come back out.
//!
//! [`MetadataQuorum`] is the controller's side of Kafka's `RaftClient`: propose a batch, learn
//! when it has committed. Committed batches flow to the [`super::loader`] in log order, for
//! every batch, whoever proposed it. [`super::raft::RaftQuorum`] implements it on
//! `fjord-quorum`, for a single voter and for a cluster alike.

use std::future::Future;
use std::pin::Pin;

use fjord_metadata::MetadataRecord;
use fjord_types::{Offset, OffsetAndEpoch};

/// Why a proposal did not commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QuorumError {
    /// This node does not lead the quorum (or no longer does).
    #[error("this node is not the active controller")]
    NotLeader,
    /// The metadata log cannot be written; nothing more will commit here.
    #[error("the metadata log failed: {0}")]
    Storage(String),
    /// The quorum is shutting down.
    #[error("the metadata quorum is shutting down")]
    ShuttingDown,
}

/// The position of a committed batch's last record, or why it did not commit.
pub(crate) type ProposeFuture = Pin<Box<dyn Future<Output = Result<OffsetAndEpoch, QuorumError>> + Send>>;

/// A batch handed to the quorum: where it went, and its commit to wait for.
pub(crate) struct Proposed {
    /// The offset of its first record.
    pub(crate) base_offset: Offset,
    /// Resolves once the batch has committed.
    pub(crate) committed: ProposeFuture,
}

/// The controller's interface to the metadata quorum (the part of Kafka's `RaftClient` the
/// controller uses). The controller is the only proposer, so offsets are known when
/// proposing.
pub(crate) trait MetadataQuorum: Send + Sync + std::fmt::Debug {
    /// Where the next proposed batch will start, and under which epoch.
    fn next_position(&self) -> OffsetAndEpoch;
    /// Proposes `records` as one batch: they commit together or not at all.
    fn propose(&self, records: Vec<MetadataRecord>) -> Result<Proposed, QuorumError>;
}
