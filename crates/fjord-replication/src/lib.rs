//! A partition's replica state (Kafka's `Partition`, `ReplicaManager` append/read paths,
//! `ProducerStateManager`, `LeaderEpochFileCache` and the checkpoint files).
//!
//! [`Partition`] owns a partition's [`fjord_log::Log`] and everything a leader decides about it:
//! validating produced batches (structure, CRC, timestamps, idempotent sequences), appending
//! them with the leader's epoch, the high watermark consumers may read up to, the leader epoch
//! cache behind OffsetForLeaderEpoch, and `min.insync.replicas` for `acks=all`. Today the ISR is
//! the leader alone; followers will fetch through the same state.
//!
//! No I/O beyond the partition's own files, no clock (`now` is passed in), no threads. Waiting
//! (long polls, `acks=all`) belongs to the caller: this crate says whether a request is
//! satisfied.

#![warn(missing_docs)]

mod checkpoint;
mod error;
mod leader_epoch;
mod partition;
mod producer_snapshot;
mod producer_state;

pub use checkpoint::{
    LEADER_EPOCH_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT, OffsetCheckpoint, RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT, read_epoch_checkpoint, write_epoch_checkpoint,
};
pub use error::{AppendError, ReadError};
pub use leader_epoch::{EpochEntry, LeaderEpochCache};
pub use partition::{AppendResult, Partition, PartitionConfig, ReadResult};
pub use producer_snapshot::{SNAPSHOT_SUFFIX, SnapshotEntry};
pub use producer_state::{BatchMetadata, ProducerStateManager, SequenceCheck};
