//! A partition's replica and the broker's set of them (Kafka's `ReplicaManager`, `Partition`,
//! `UnifiedLog`'s leader-side validation, `ProducerStateManager`, `LeaderEpochFileCache`,
//! `DelayedProduce`/`DelayedFetch` and their purgatories, and the checkpoint files).
//!
//! - [`ReplicaState`]: the pure core of one replica — role, leader and partition epochs,
//!   replicas and ISR, what each follower holds, and the high watermark, which moves only
//!   here, by Kafka's rule.
//! - [`Partition`]: one replica with its [`fjord_log::Log`]: validating produced batches
//!   (structure, CRC, timestamps, idempotent sequences), appending them with the leader's
//!   epoch, reads up to the high watermark, the leader epoch cache behind
//!   OffsetForLeaderEpoch, and `min.insync.replicas` for `acks=all`.
//! - [`ReplicaManager`]: the hosted replicas. [`local_changes`] turns the metadata's changes
//!   into this broker's (lead, follow, stop, reconfigure) as a pure function; the manager
//!   carries them out.
//! - [`Purgatory`], [`DelayedProduce`], [`DelayedFetch`]: requests waiting on partitions,
//!   woken when those partitions change and no others.
//!
//! No I/O beyond the partitions' own files, no clock (`now` is passed in), no threads, no
//! async runtime: waiting is a plain `Future` the caller drives. Depends on `fjord-types` and
//! `fjord-log` only, never on the metadata, the coordinator or the broker.

#![warn(missing_docs)]

#[cfg(test)]
mod bugs;
mod checkpoint;
mod delayed;
mod error;
mod leader_epoch;
mod partition;
mod producer_snapshot;
mod producer_state;
mod purgatory;
mod replica_manager;
mod replica_state;
#[cfg(test)]
mod sim_tests;

pub use checkpoint::{
    LEADER_EPOCH_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT, OffsetCheckpoint, RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT, read_epoch_checkpoint, write_epoch_checkpoint,
};
pub use delayed::{AcksError, DelayedFetch, DelayedOperation, DelayedProduce, FetchPartition};
pub use error::{AppendError, ReadError, RecordError};
pub use leader_epoch::{EpochEntry, LeaderEpochCache};
pub use partition::{AppendResult, Partition, PartitionConfig, ReadResult, ReplicaAnswer, ReplicaRead};
pub use producer_snapshot::{SNAPSHOT_SUFFIX, SnapshotEntry};
pub use producer_state::{BatchMetadata, ProducerStateManager, SequenceCheck};
pub use purgatory::{Purgatory, Watch};
pub use replica_manager::{
    PartitionChange, PartitionHandle, ReplicaChange, ReplicaError, ReplicaManager, local_changes,
};
pub use replica_state::{DEFAULT_REPLICA_LAG_TIME_MAX_MS, RemoteReplica, ReplicaState, Role, StateError};
