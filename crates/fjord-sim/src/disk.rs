//! The simulated disk of one node: a [`MemoryLog`] and a quorum-state store that survive the
//! node's crashes, with injected fsync and write failures, and a journal of what the node did
//! to them for the checkers.

use std::cell::RefCell;
use std::rc::Rc;

use fjord_quorum::{
    Batch, ElectionState, MemoryLog, MemoryQuorumStateStore, OffsetAndEpoch, QuorumStateStore, RaftLog, SnapshotChunk,
    SnapshotId, StorageError,
};
use fjord_types::{LeaderEpoch, Offset};

use crate::kv::batch_hash;

/// An append, as the log-matching checker needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AppendRecord {
    /// The batch's first offset and epoch.
    pub(crate) base: OffsetAndEpoch,
    /// Offset after it.
    pub(crate) next_offset: Offset,
    /// Its contents' hash.
    pub(crate) hash: u64,
    /// The epoch of the record just before it in this log (the snapshot's, at the log start).
    pub(crate) previous_epoch: Option<LeaderEpoch>,
}

/// A truncation, as the checkers need it: where the log was cut and what it lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TruncationRecord {
    /// The new log end.
    pub(crate) offset: Offset,
    /// The batches removed at or above it: (base offset and epoch, next offset, hash).
    pub(crate) removed: Vec<(OffsetAndEpoch, Offset, u64)>,
    /// Whether it emptied the log down to a downloaded snapshot (`truncate_to_snapshot`).
    pub(crate) to_snapshot: bool,
}

/// What the world controls about a disk and what it learns from it.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// The next flush fails (one shot).
    pub(crate) fail_flush: bool,
    /// The next quorum-state write fails (one shot).
    pub(crate) fail_store_write: bool,
    /// Appends since the world last looked.
    pub(crate) appends: Vec<AppendRecord>,
    /// Truncations since the world last looked.
    pub(crate) truncations: Vec<TruncationRecord>,
}

/// The shared handle.
pub(crate) type SharedProbe = Rc<RefCell<Probe>>;

/// A node's log on the simulated disk.
#[derive(Debug)]
pub(crate) struct SimLog {
    /// The log itself.
    pub(crate) inner: MemoryLog,
    probe: SharedProbe,
}

impl SimLog {
    /// A log over `inner`, reporting to `probe`.
    pub(crate) fn new(inner: MemoryLog, probe: SharedProbe) -> SimLog {
        SimLog { inner, probe }
    }

    /// Journals a cut at `offset`, with the batches it is about to remove.
    fn journal_truncation(&self, offset: Offset, to_snapshot: bool) {
        let removed = self
            .inner
            .batches()
            .filter(|b| b.next_offset() > offset)
            .map(|b| (OffsetAndEpoch::new(b.base_offset, b.epoch), b.next_offset(), batch_hash(b)))
            .collect();
        self.probe.borrow_mut().truncations.push(TruncationRecord { offset, removed, to_snapshot });
    }
}

impl RaftLog for SimLog {
    fn log_start_offset(&self) -> Offset {
        self.inner.log_start_offset()
    }
    fn log_end_offset(&self) -> Offset {
        self.inner.log_end_offset()
    }
    fn flushed_end_offset(&self) -> Offset {
        self.inner.flushed_end_offset()
    }
    fn last_fetched_epoch(&self) -> LeaderEpoch {
        self.inner.last_fetched_epoch()
    }
    fn epoch_of(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.inner.epoch_of(offset)
    }
    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> OffsetAndEpoch {
        self.inner.end_offset_for_epoch(epoch)
    }
    fn append(&mut self, batch: Batch) -> Result<(), StorageError> {
        let record = AppendRecord {
            base: OffsetAndEpoch::new(batch.base_offset, batch.epoch),
            next_offset: batch.next_offset(),
            hash: batch_hash(&batch),
            previous_epoch: if batch.base_offset == Offset(0) {
                None
            } else {
                self.inner.epoch_of(batch.base_offset.plus(-1))
            },
        };
        self.inner.append(batch)?;
        self.probe.borrow_mut().appends.push(record);
        Ok(())
    }
    fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Batch>, StorageError> {
        self.inner.read(from, max_bytes)
    }
    fn truncate_to(&mut self, offset: Offset) -> Result<(), StorageError> {
        if offset < self.inner.log_end_offset() {
            self.journal_truncation(offset, false);
        }
        self.inner.truncate_to(offset)
    }
    fn flush(&mut self) -> Result<(), StorageError> {
        let mut probe = self.probe.borrow_mut();
        if probe.fail_flush {
            probe.fail_flush = false;
            return Err(StorageError::Injected("fsync failed".into()));
        }
        self.inner.flush()
    }
    fn latest_snapshot_id(&self) -> Option<SnapshotId> {
        self.inner.latest_snapshot_id()
    }
    fn earliest_snapshot_id(&self) -> Option<SnapshotId> {
        self.inner.earliest_snapshot_id()
    }
    fn read_snapshot(
        &self,
        id: SnapshotId,
        position: u64,
        max_bytes: usize,
    ) -> Result<Option<SnapshotChunk>, StorageError> {
        self.inner.read_snapshot(id, position, max_bytes)
    }
    fn write_partial_snapshot(&mut self, id: SnapshotId, position: u64, bytes: &[u8]) -> Result<u64, StorageError> {
        self.inner.write_partial_snapshot(id, position, bytes)
    }
    fn freeze_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        self.inner.freeze_snapshot(id)
    }
    fn discard_partial_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        self.inner.discard_partial_snapshot(id)
    }
    fn delete_before_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        self.inner.delete_before_snapshot(id)
    }
    fn truncate_to_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        // What lies below the snapshot is covered by it; what lies at or above it is lost.
        if id.offset < self.inner.log_end_offset() {
            self.journal_truncation(id.offset, true);
        }
        self.inner.truncate_to_snapshot(id)
    }
}

/// A node's quorum-state store on the simulated disk: a write either completes (durably) or
/// fails leaving the old state, as temp + fsync + rename + fsync does.
#[derive(Debug)]
pub(crate) struct SimStore {
    /// The stored state.
    pub(crate) inner: MemoryQuorumStateStore,
    probe: SharedProbe,
}

impl SimStore {
    /// A store over `inner`, reporting to `probe`.
    pub(crate) fn new(inner: MemoryQuorumStateStore, probe: SharedProbe) -> SimStore {
        SimStore { inner, probe }
    }
}

impl QuorumStateStore for SimStore {
    fn read(&self) -> Result<Option<ElectionState>, StorageError> {
        self.inner.read()
    }

    fn write(&mut self, state: &ElectionState) -> Result<(), StorageError> {
        let mut probe = self.probe.borrow_mut();
        if probe.fail_store_write {
            probe.fail_store_write = false;
            return Err(StorageError::Injected("quorum-state write failed".into()));
        }
        self.inner.write(state)
    }
}
