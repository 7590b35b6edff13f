//! The replicated log behind the quorum: Kafka's `ReplicatedLog` as a trait, with an in-memory
//! implementation ([`MemoryLog`], for tests and the simulator) and one on `fjord-log`
//! ([`FileLog`], for the broker).
//!
//! Every call is synchronous: the node appends, truncates and flushes while it handles an input,
//! so when it counts an entry as its own (its fetch offset, its own end offset as leader) the
//! entry is already durable.

mod epochs;
mod file;
mod memory;
mod snapshot_file;
#[cfg(test)]
mod tests;

pub use file::{FileLog, SNAPSHOT_PARTIAL_SUFFIX, SNAPSHOT_SUFFIX, snapshot_file_name};
pub use memory::{CrashReport, MemoryLog};
pub use snapshot_file::{SnapshotFileError, decode_snapshot, encode_snapshot};

pub(crate) use epochs::EpochCache;

use fjord_types::{LeaderEpoch, Offset};

use crate::error::StorageError;
use crate::ids::{OffsetAndEpoch, SnapshotId};
use crate::record::Batch;

/// A slice of a snapshot file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SnapshotChunk {
    /// The bytes from the requested position.
    pub bytes: Vec<u8>,
    /// The snapshot's whole size.
    pub size: u64,
}

/// How a fetch position relates to the leader's log (Kafka's `ValidOffsetAndEpoch`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ValidOffsetAndEpoch {
    /// The fetcher's log matches ours up to the fetch offset.
    Valid,
    /// The fetcher's log diverges: its records in this epoch end here.
    Diverging(OffsetAndEpoch),
    /// The fetcher needs this snapshot first.
    Snapshot(SnapshotId),
}

/// The storage a [`RaftNode`](crate::RaftNode) replicates into.
///
/// Offsets are assigned by the node: `append` takes batches whose base offset is the log end
/// offset. "Durable" means it survives a crash of the process and of the machine.
pub trait RaftLog {
    /// The first offset still in the log; below it the log is covered by the snapshot at log
    /// start. 0 for a log that was never trimmed.
    fn log_start_offset(&self) -> Offset;
    /// The offset the next record will get.
    fn log_end_offset(&self) -> Offset;
    /// Everything below this offset is durable.
    fn flushed_end_offset(&self) -> Offset;
    /// The epoch of the last record, or of the snapshot at log start when the log is empty,
    /// or 0.
    fn last_fetched_epoch(&self) -> LeaderEpoch;
    /// The epoch of the record at `offset` (also `log start - 1`, the snapshot's last record),
    /// if the log knows it.
    fn epoch_of(&self, offset: Offset) -> Option<LeaderEpoch>;
    /// Kafka's `endOffsetForEpoch`: the largest epoch at most `epoch` that the log holds, and
    /// the offset where its records end.
    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> OffsetAndEpoch;
    /// Appends one batch at the log end offset. Not yet durable.
    fn append(&mut self, batch: Batch) -> Result<(), StorageError>;
    /// Whole batches from the one holding `from`, at least one if there is one, then as many as
    /// fit in `max_bytes`. `from` must lie in `[log start, log end]`.
    fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Batch>, StorageError>;
    /// Removes every batch with a record at or above `offset`. Durable when it returns.
    fn truncate_to(&mut self, offset: Offset) -> Result<(), StorageError>;
    /// Makes everything appended durable.
    fn flush(&mut self) -> Result<(), StorageError>;

    /// The newest complete snapshot.
    fn latest_snapshot_id(&self) -> Option<SnapshotId>;
    /// The oldest complete snapshot (the one at log start once the log is trimmed).
    fn earliest_snapshot_id(&self) -> Option<SnapshotId>;
    /// Up to `max_bytes` of a complete snapshot from `position`; `None` if there is no such
    /// snapshot.
    fn read_snapshot(
        &self,
        id: SnapshotId,
        position: u64,
        max_bytes: usize,
    ) -> Result<Option<SnapshotChunk>, StorageError>;
    /// Writes `bytes` at `position` of the incomplete snapshot `id` (a `.checkpoint.part`),
    /// creating it at position 0; `position` must be its current size. Returns the new size.
    fn write_partial_snapshot(&mut self, id: SnapshotId, position: u64, bytes: &[u8]) -> Result<u64, StorageError>;
    /// Makes the incomplete snapshot `id` complete and durable.
    fn freeze_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError>;
    /// Drops an incomplete snapshot, if there is one.
    fn discard_partial_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError>;
    /// Moves the log start to the snapshot's end offset (at most the log end), dropping the
    /// batches wholly below it and every older snapshot. Durable when it returns.
    fn delete_before_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError>;
    /// Empties the log so that it continues at the snapshot's end offset, and drops every older
    /// snapshot (a follower that has just downloaded `id`). Durable when it returns.
    fn truncate_to_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError>;

    /// The log end offset with the last record's epoch.
    fn end_offset(&self) -> OffsetAndEpoch {
        OffsetAndEpoch::new(self.log_end_offset(), self.last_fetched_epoch())
    }

    /// Writes a complete snapshot made here, durably.
    fn write_snapshot(&mut self, id: SnapshotId, bytes: &[u8]) -> Result<(), StorageError> {
        self.discard_partial_snapshot(id)?;
        self.write_partial_snapshot(id, 0, bytes)?;
        self.freeze_snapshot(id)
    }

    /// Kafka's `validateOffsetAndEpoch`: whether a fetcher at (`offset`, last epoch `epoch`)
    /// matches this log, diverges from it, or must load a snapshot first (KAFKA-15076: the
    /// latest snapshot, not the oldest).
    fn validate_offset_and_epoch(&self, offset: Offset, epoch: LeaderEpoch) -> ValidOffsetAndEpoch {
        let start = self.log_start_offset();
        if start == Offset(0) && offset == Offset(0) {
            return ValidOffsetAndEpoch::Valid;
        }
        if let Some(earliest) = self.earliest_snapshot_id()
            && (offset < start || (offset == start && epoch != earliest.epoch) || epoch < earliest.epoch)
            && let Some(latest) = self.latest_snapshot_id()
        {
            return ValidOffsetAndEpoch::Snapshot(latest);
        }
        let end = self.end_offset_for_epoch(epoch);
        if end.epoch != epoch || end.offset < offset {
            ValidOffsetAndEpoch::Diverging(end)
        } else {
            ValidOffsetAndEpoch::Valid
        }
    }
}
