//! Why an append or a read was refused. The broker maps each to a Kafka error code.

use fjord_types::{BrokerId, LeaderEpoch, Offset};

/// One record of a refused batch and why (KIP-467: Produce v8+ names them, so a client fails
/// exactly those and may resend the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The record's index in its batch.
    pub batch_index: i32,
    /// Why it was refused.
    pub message: String,
}

fn summary(reason: &Option<String>, record_errors: &[RecordError]) -> String {
    match (reason, record_errors.first()) {
        (Some(reason), _) => reason.clone(),
        (None, Some(first)) if record_errors.len() == 1 => first.message.clone(),
        (None, Some(first)) => format!("{} records refused; the first: {}", record_errors.len(), first.message),
        (None, None) => "invalid record".into(),
    }
}

/// A refused produce for one partition.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Bytes that are not valid record batches (CORRUPT_MESSAGE).
    #[error("corrupt records: {0}")]
    Corrupt(String),
    /// A record batch that parses but breaks a record-level rule (INVALID_RECORD): the batch
    /// as a whole (`reason`), or the records named.
    #[error("{}", summary(reason, record_errors))]
    InvalidRecord {
        /// What is wrong with the batch, when it is not one record's fault.
        reason: Option<String>,
        /// The records at fault.
        record_errors: Vec<RecordError>,
    },
    /// Magic 0 or 1 (UNSUPPORTED_FOR_MESSAGE_FORMAT).
    #[error("record batch magic {0} is not supported; use format v2")]
    UnsupportedMagic(u8),
    /// A batch above `max.message.bytes` (MESSAGE_TOO_LARGE).
    #[error("batch of {size} bytes exceeds max.message.bytes {limit}")]
    TooLarge {
        /// The batch size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// CreateTime timestamps outside the allowed window (INVALID_TIMESTAMP).
    #[error("{}", summary(&None, record_errors))]
    InvalidTimestamp {
        /// The records at fault.
        record_errors: Vec<RecordError>,
    },
    /// Fewer in-sync replicas than `min.insync.replicas` for `acks=all` (NOT_ENOUGH_REPLICAS).
    #[error("{isr} in-sync replica(s), {required} required")]
    NotEnoughReplicas {
        /// The ISR size.
        isr: usize,
        /// `min.insync.replicas`.
        required: i32,
    },
    /// A sequence gap or repeat that is not a duplicate of a recent batch (OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error("out of order sequence {first_sequence} from producer {producer_id}, expected {expected}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The batch's first sequence.
        first_sequence: i32,
        /// The sequence the broker expected.
        expected: i32,
    },
    /// An epoch older than the producer's current one (INVALID_PRODUCER_EPOCH).
    #[error("producer {producer_id} epoch {epoch} is older than {current}")]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The current epoch.
        current: i16,
    },
    /// Transactional or control batches from a client, which Fjord does not accept yet
    /// (INVALID_TXN_STATE).
    #[error("transactional produce is not supported yet")]
    Transactional,
    /// This replica does not lead the partition (NOT_LEADER_OR_FOLLOWER).
    #[error("this broker is not the leader; the leader is {leader}")]
    NotLeader {
        /// The leader, if one is known.
        leader: BrokerId,
    },
    /// The log failed (KAFKA_STORAGE_ERROR).
    #[error(transparent)]
    Storage(fjord_log::Error),
}

impl AppendError {
    /// A batch refused as a whole for a record-level rule.
    pub fn invalid_record(reason: impl Into<String>) -> AppendError {
        AppendError::InvalidRecord { reason: Some(reason.into()), record_errors: Vec::new() }
    }

    /// The records named in the refusal, if any.
    pub fn record_errors(&self) -> &[RecordError] {
        match self {
            AppendError::InvalidRecord { record_errors, .. } | AppendError::InvalidTimestamp { record_errors } => {
                record_errors
            }
            _ => &[],
        }
    }
}

/// A refused read for one partition.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Outside `[log start, log end]` (OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: Offset,
        /// The log start offset.
        log_start_offset: Offset,
        /// The log end offset.
        log_end_offset: Offset,
    },
    /// The client's leader epoch is older than ours (FENCED_LEADER_EPOCH).
    #[error("leader epoch {requested} is fenced; the current epoch is {current}")]
    FencedLeaderEpoch {
        /// The client's epoch.
        requested: LeaderEpoch,
        /// Ours.
        current: LeaderEpoch,
    },
    /// The client's leader epoch is newer than ours (UNKNOWN_LEADER_EPOCH).
    #[error("leader epoch {requested} is newer than the current epoch {current}")]
    UnknownLeaderEpoch {
        /// The client's epoch.
        requested: LeaderEpoch,
        /// Ours.
        current: LeaderEpoch,
    },
    /// A new leader's high watermark has not yet reached the start of its epoch, so offsets
    /// it answered now could go back (OFFSET_NOT_AVAILABLE, KIP-207).
    #[error("the high watermark {high_watermark} has not reached the leader epoch's start {epoch_start}")]
    OffsetNotAvailable {
        /// The high watermark.
        high_watermark: Offset,
        /// Where the leader's epoch starts.
        epoch_start: Offset,
    },
    /// This replica does not lead the partition (NOT_LEADER_OR_FOLLOWER).
    #[error("this broker is not the leader; the leader is {leader}")]
    NotLeader {
        /// The leader, if one is known.
        leader: BrokerId,
    },
    /// The log failed (KAFKA_STORAGE_ERROR).
    #[error(transparent)]
    Storage(#[from] fjord_log::Error),
}
