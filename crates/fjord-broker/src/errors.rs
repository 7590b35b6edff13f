//! The one place where the layers' errors become Kafka error codes.

use fjord_metadata::ControllerError;
use fjord_replication::{AppendError, ReadError};
use fjord_types::ErrorCode;

/// The code for a refused produce.
pub(crate) fn append_error(error: &AppendError) -> ErrorCode {
    match error {
        AppendError::Corrupt(_) => ErrorCode::CorruptMessage,
        AppendError::InvalidRecord(_) => ErrorCode::InvalidRecord,
        AppendError::UnsupportedMagic(_) => ErrorCode::UnsupportedForMessageFormat,
        AppendError::TooLarge { .. } => ErrorCode::MessageTooLarge,
        AppendError::InvalidTimestamp { .. } => ErrorCode::InvalidTimestamp,
        AppendError::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
        AppendError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
        AppendError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
        AppendError::Transactional => ErrorCode::InvalidTxnState,
        AppendError::Storage(e) => storage_error(e),
    }
}

/// The code for a coordinator's write to `__consumer_offsets` that failed (Kafka's
/// `GroupMetadataManager` mapping: what a group member can act on).
pub(crate) fn group_write_error(error: &AppendError) -> ErrorCode {
    match error {
        AppendError::TooLarge { .. } => ErrorCode::InvalidCommitOffsetSize,
        AppendError::NotEnoughReplicas { .. } => ErrorCode::CoordinatorNotAvailable,
        _ => ErrorCode::UnknownServerError,
    }
}

/// The code for a refused read.
pub(crate) fn read_error(error: &ReadError) -> ErrorCode {
    match error {
        ReadError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        ReadError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        ReadError::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
        ReadError::Storage(e) => storage_error(e),
    }
}

/// The code for a log failure.
pub(crate) fn storage_error(error: &fjord_log::Error) -> ErrorCode {
    match error {
        fjord_log::Error::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        fjord_log::Error::CorruptBatch { .. } | fjord_log::Error::IncompleteBatch { .. } => ErrorCode::CorruptMessage,
        fjord_log::Error::BatchTooLarge { .. } => ErrorCode::MessageTooLarge,
        _ => ErrorCode::KafkaStorageError,
    }
}

/// The code for a refused admin request.
pub(crate) fn controller_error(error: &ControllerError) -> ErrorCode {
    error.code()
}

/// The code for a metadata log failure.
pub(crate) fn metadata_error(error: &fjord_metadata::Error) -> ErrorCode {
    tracing::error!(error = %error, "metadata update failed");
    ErrorCode::UnknownServerError
}
