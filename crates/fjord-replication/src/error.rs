//! Why an append or a read was refused. The broker maps each to a Kafka error code.

use fjord_types::{LeaderEpoch, Offset};

/// A refused produce for one partition.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Bytes that are not valid record batches (CORRUPT_MESSAGE).
    #[error("corrupt records: {0}")]
    Corrupt(String),
    /// A record batch that parses but breaks a record-level rule (INVALID_RECORD).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
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
    /// A CreateTime timestamp outside the allowed window (INVALID_TIMESTAMP).
    #[error("timestamp {timestamp} of offset delta {offset_delta} is out of range")]
    InvalidTimestamp {
        /// The record's timestamp.
        timestamp: i64,
        /// Its offset delta in the batch.
        offset_delta: i64,
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
    /// The log failed (KAFKA_STORAGE_ERROR).
    #[error(transparent)]
    Storage(fjord_log::Error),
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
    /// The log failed (KAFKA_STORAGE_ERROR).
    #[error(transparent)]
    Storage(#[from] fjord_log::Error),
}
