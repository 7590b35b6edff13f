//! The log's one error type.

use std::io;
use std::path::PathBuf;

use fjord_types::Offset;

/// What can go wrong reading, writing or recovering a log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes that do not form a valid v2 record batch (bad length, magic, CRC, varint, ...).
    #[error("corrupt record batch: {reason}")]
    CorruptBatch {
        /// What was wrong, for the operator.
        reason: String,
    },
    /// The buffer ends in the middle of a batch.
    #[error("record batch truncated: need {needed} bytes, have {available}")]
    IncompleteBatch {
        /// Bytes the batch's length field claims.
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },
    /// A batch (or an append) larger than `max.message.bytes` or `segment.bytes` allows.
    #[error("record batch of {size} bytes exceeds the limit of {limit} bytes")]
    BatchTooLarge {
        /// The batch's size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A compression codec id outside 0..=4.
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    /// Decompression failed or produced more than the allowed number of bytes.
    #[error("cannot decompress {codec} records: {reason}")]
    Decompression {
        /// The codec's name.
        codec: &'static str,
        /// What the decoder reported.
        reason: String,
    },
    /// An offset below the log start offset or above the log end offset.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: Offset,
        /// The first offset still in the log.
        log_start_offset: Offset,
        /// The next offset to be written.
        log_end_offset: Offset,
    },
    /// A replica append whose offsets do not follow the log end offset in order.
    #[error("append of offsets starting at {first_offset} does not follow log end offset {log_end_offset}")]
    OffsetsOutOfOrder {
        /// The first offset of the append.
        first_offset: Offset,
        /// The log's end offset at the time.
        log_end_offset: Offset,
    },
    /// A segment file or index that cannot be used as it stands.
    #[error("corrupt {path}: {reason}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An earlier I/O failure left the log in an unknown state; it refuses further writes.
    #[error("log in {dir} is offline after an I/O error: {reason}")]
    Poisoned {
        /// The partition directory.
        dir: PathBuf,
        /// The original failure.
        reason: String,
    },
    /// The file system is full (ENOSPC, or EDQUOT for a quota). Nothing of the write stays in
    /// the log and the log keeps taking writes: the next one succeeds once space returns.
    #[error("no space left for {path}; the write was undone")]
    NoSpace {
        /// The file that could not grow.
        path: PathBuf,
    },
    /// The segments a cleaned segment was to replace changed after it was made (retention or
    /// truncation got there first); the log was left as it was.
    #[error("cannot swap in the cleaned segment: {reason}")]
    SegmentsChanged {
        /// What no longer matches.
        reason: String,
    },
    /// A configuration value that Kafka would also refuse.
    #[error("invalid value {value:?} for configuration {name}: {reason}")]
    InvalidConfig {
        /// Kafka's property name.
        name: String,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// An operating-system I/O error, with the file it concerned.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn corrupt(reason: impl Into<String>) -> Error {
        Error::CorruptBatch { reason: reason.into() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// Whether an OS error says the file system (or the user's quota) is full.
    pub(crate) fn is_out_of_space(error: &io::Error) -> bool {
        matches!(error.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
    }
}

/// The log's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
