//! The one place where the layers' errors become Kafka error codes.

use fjord_metadata::ControllerError;
use fjord_replication::{AcksError, AppendError, ReadError};
use fjord_types::ErrorCode;

use crate::metadata::controller::ControllerFailure;
use crate::metadata::quorum::QuorumError;

/// The code for a refused produce.
pub(crate) fn append_error(error: &AppendError) -> ErrorCode {
    match error {
        AppendError::Corrupt(_) => ErrorCode::CorruptMessage,
        AppendError::InvalidRecord { .. } => ErrorCode::InvalidRecord,
        AppendError::UnsupportedMagic(_) => ErrorCode::UnsupportedForMessageFormat,
        AppendError::TooLarge { .. } => ErrorCode::MessageTooLarge,
        AppendError::InvalidTimestamp { .. } => ErrorCode::InvalidTimestamp,
        AppendError::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
        AppendError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
        AppendError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
        AppendError::Transactional => ErrorCode::InvalidTxnState,
        AppendError::NotLeader { .. } => ErrorCode::NotLeaderOrFollower,
        AppendError::Storage(e) => storage_error(e),
    }
}

/// The code for an `acks=all` produce that was appended but not acknowledged.
pub(crate) fn acks_error(error: &AcksError) -> ErrorCode {
    match error {
        AcksError::NotLeader { .. } => ErrorCode::NotLeaderOrFollower,
        AcksError::NotEnoughReplicasAfterAppend { .. } => ErrorCode::NotEnoughReplicasAfterAppend,
        AcksError::TimedOut => ErrorCode::RequestTimedOut,
    }
}

/// The code for a coordinator's write to `__consumer_offsets` that failed, as Kafka's
/// `GroupMetadataManager` maps it for what a member can act on: find the coordinator again,
/// wait for it, or (offset commits only) shrink what it commits.
pub(crate) fn group_write_error(error: &AppendError, offset_commit: bool) -> ErrorCode {
    match error {
        AppendError::TooLarge { .. } if offset_commit => ErrorCode::InvalidCommitOffsetSize,
        AppendError::NotEnoughReplicas { .. } => ErrorCode::CoordinatorNotAvailable,
        AppendError::NotLeader { .. } | AppendError::Storage(_) => ErrorCode::NotCoordinator,
        _ => ErrorCode::UnknownServerError,
    }
}

/// The code for a refused read.
pub(crate) fn read_error(error: &ReadError) -> ErrorCode {
    match error {
        ReadError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        ReadError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        ReadError::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
        ReadError::NotLeader { .. } => ErrorCode::NotLeaderOrFollower,
        ReadError::OffsetNotAvailable { .. } => ErrorCode::OffsetNotAvailable,
        ReadError::Storage(e) => storage_error(e),
    }
}

/// The code for a log directory that cannot be read: clients take it as offline.
pub(crate) fn log_dir_error(_error: &std::io::Error) -> ErrorCode {
    ErrorCode::KafkaStorageError
}

/// The code for a log failure.
/// Logs a log's storage failure at most once every ten seconds: a full disk fails every
/// append until space returns, and each would otherwise write a line (to the same disk, often).
pub(crate) fn warn_storage(error: &fjord_log::Error) {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(i64::MIN);
    let now = crate::Broker::now().0;
    let last = LAST.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 10_000
        && LAST.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    {
        tracing::warn!(error = %error, "a partition's log refused a write (KAFKA_STORAGE_ERROR); refusals are logged every 10 s");
    }
}

pub(crate) fn storage_error(error: &fjord_log::Error) -> ErrorCode {
    match error {
        fjord_log::Error::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        fjord_log::Error::CorruptBatch { .. } | fjord_log::Error::IncompleteBatch { .. } => ErrorCode::CorruptMessage,
        fjord_log::Error::BatchTooLarge { .. } => ErrorCode::MessageTooLarge,
        _ => ErrorCode::KafkaStorageError,
    }
}

/// The code clients expect for a refused admin request.
pub(crate) fn controller_error(error: &ControllerError) -> ErrorCode {
    match error {
        ControllerError::InvalidTopic(_) => ErrorCode::InvalidTopicException,
        ControllerError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
        ControllerError::UnknownTopic(_) => ErrorCode::UnknownTopicOrPartition,
        ControllerError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
        ControllerError::InvalidReplicationFactor(_) => ErrorCode::InvalidReplicationFactor,
        ControllerError::InvalidReplicaAssignment(_) => ErrorCode::InvalidReplicaAssignment,
        ControllerError::InvalidConfig(_) => ErrorCode::InvalidConfig,
        ControllerError::InvalidRequest(_) => ErrorCode::InvalidRequest,
        ControllerError::DuplicateBrokerRegistration(_) => ErrorCode::DuplicateBrokerRegistration,
        ControllerError::StaleBrokerEpoch { .. } => ErrorCode::StaleBrokerEpoch,
        ControllerError::BrokerNotRegistered(_) => ErrorCode::BrokerIdNotRegistered,
    }
}

/// The code for a decision whose records did not take effect.
pub(crate) fn controller_failure(error: &ControllerFailure) -> ErrorCode {
    match error {
        // Not failures: the request goes to the next active controller.
        ControllerFailure::Quorum(QuorumError::NotLeader | QuorumError::ShuttingDown) => {
            tracing::debug!(error = %error, "not the active controller")
        }
        ControllerFailure::Refused(_) => tracing::debug!(error = %error, "the controller refused a request"),
        _ => tracing::error!(error = %error, "metadata update failed"),
    }
    match error {
        ControllerFailure::Quorum(QuorumError::NotLeader) => ErrorCode::NotController,
        ControllerFailure::Quorum(QuorumError::ShuttingDown) => ErrorCode::RequestTimedOut,
        ControllerFailure::Quorum(QuorumError::Storage(_)) => ErrorCode::KafkaStorageError,
        ControllerFailure::Inconsistent(_) => ErrorCode::UnknownServerError,
        ControllerFailure::Refused(e) => controller_error(e),
    }
}
