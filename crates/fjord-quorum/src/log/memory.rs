//! A log in memory that knows which part of it would survive a crash.

use std::collections::{BTreeMap, VecDeque};

use fjord_types::{LeaderEpoch, Offset};

use crate::error::StorageError;
use crate::ids::{OffsetAndEpoch, SnapshotId};
use crate::log::{EpochCache, RaftLog, SnapshotChunk};
use crate::record::Batch;

/// A [`RaftLog`] in memory, for tests, benchmarks and the simulator.
///
/// It keeps track of its durable prefix: [`MemoryLog::crash`] forgets what a machine crash
/// would (batches appended since the last flush, except a prefix of them the "operating system"
/// happened to write back, and partial snapshots), so a restarted node sees exactly the disk a
/// real one would. Truncations, snapshots and log-start moves are durable when they return, as
/// the trait promises.
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    batches: VecDeque<Batch>,
    log_start: Offset,
    log_end: Offset,
    flushed_end: Offset,
    epochs: EpochCache,
    snapshots: BTreeMap<SnapshotId, Vec<u8>>,
    partial: Option<(SnapshotId, Vec<u8>)>,
}

/// What a simulated crash took away.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CrashReport {
    /// Unflushed batches lost.
    pub lost_batches: usize,
    /// Whether the last write that reached the disk was torn (a batch partly written, which
    /// recovery then cut off).
    pub torn_write: bool,
    /// The log end offset after the crash.
    pub log_end_offset: Offset,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> MemoryLog {
        MemoryLog::default()
    }

    /// Simulates a crash of the machine: of the batches appended since the last flush, the
    /// first `surviving` reached the disk anyway, the next one (if any) was torn in the middle
    /// and is cut off by recovery, and the rest are lost.
    pub fn crash(&mut self, surviving: usize) -> CrashReport {
        self.partial = None;
        let first_unflushed = self.batches.partition_point(|b| b.next_offset() <= self.flushed_end);
        let unflushed = self.batches.len() - first_unflushed;
        let keep = first_unflushed + surviving.min(unflushed);
        let lost = self.batches.len() - keep;
        self.batches.truncate(keep);
        self.log_end = self.batches.back().map_or(self.log_start, Batch::next_offset);
        self.flushed_end = self.log_end;
        self.rebuild_epochs();
        CrashReport { lost_batches: lost, torn_write: lost > 0, log_end_offset: self.log_end }
    }

    /// Every batch in the log, oldest first (for checkers).
    pub fn batches(&self) -> impl Iterator<Item = &Batch> + '_ {
        self.batches.iter()
    }

    /// Complete snapshots, oldest first, with their bytes (for checkers).
    pub fn snapshots(&self) -> impl Iterator<Item = (&SnapshotId, &Vec<u8>)> + '_ {
        self.snapshots.iter()
    }

    fn rebuild_epochs(&mut self) {
        self.epochs.clear();
        for batch in &self.batches {
            // The batches were accepted in order, so this cannot fail.
            let _ = self.epochs.assign(batch.epoch, batch.base_offset);
        }
    }

    fn index_of(&self, offset: Offset) -> usize {
        self.batches.partition_point(|b| b.next_offset() <= offset)
    }

    fn start_snapshot(&self) -> Option<SnapshotId> {
        self.snapshots.keys().next().copied().filter(|s| s.offset == self.log_start)
    }
}

impl RaftLog for MemoryLog {
    fn log_start_offset(&self) -> Offset {
        self.log_start
    }

    fn log_end_offset(&self) -> Offset {
        self.log_end
    }

    fn flushed_end_offset(&self) -> Offset {
        self.flushed_end
    }

    fn last_fetched_epoch(&self) -> LeaderEpoch {
        self.epochs.latest().or(self.start_snapshot().map(|s| s.epoch)).unwrap_or(LeaderEpoch(0))
    }

    fn epoch_of(&self, offset: Offset) -> Option<LeaderEpoch> {
        if offset >= self.log_end {
            return None;
        }
        if offset.plus(1) == self.log_start {
            return self.start_snapshot().map(|s| s.epoch);
        }
        if offset < self.log_start {
            return None;
        }
        self.epochs.epoch_of(offset)
    }

    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> OffsetAndEpoch {
        self.epochs.end_offset_for_epoch(epoch, self.log_end, self.start_snapshot())
    }

    fn append(&mut self, batch: Batch) -> Result<(), StorageError> {
        if batch.base_offset != self.log_end {
            return Err(StorageError::Refused(format!(
                "batch at {} does not start at the log end {}",
                batch.base_offset, self.log_end
            )));
        }
        if batch.records.is_empty() {
            return Err(StorageError::Refused("empty batch".into()));
        }
        self.epochs.assign(batch.epoch, batch.base_offset).map_err(StorageError::Refused)?;
        self.log_end = batch.next_offset();
        self.batches.push_back(batch);
        Ok(())
    }

    fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Batch>, StorageError> {
        if from < self.log_start || from > self.log_end {
            return Err(StorageError::Refused(format!(
                "read at {from} outside [{}, {}]",
                self.log_start, self.log_end
            )));
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for batch in self.batches.range(self.index_of(from)..) {
            bytes += batch.size_bytes();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(batch.clone());
        }
        Ok(out)
    }

    fn truncate_to(&mut self, offset: Offset) -> Result<(), StorageError> {
        if offset >= self.log_end {
            return Ok(());
        }
        if offset < self.log_start {
            return Err(StorageError::Refused(format!("truncation to {offset} below log start {}", self.log_start)));
        }
        // Whole batches: a batch holding `offset` goes entirely.
        let keep = self.batches.partition_point(|b| b.last_offset() < offset);
        self.batches.truncate(keep);
        self.log_end = self.batches.back().map_or(self.log_start, Batch::next_offset);
        self.flushed_end = self.flushed_end.min(self.log_end);
        self.epochs.truncate_from_end(self.log_end);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        self.flushed_end = self.log_end;
        Ok(())
    }

    fn latest_snapshot_id(&self) -> Option<SnapshotId> {
        self.snapshots.keys().next_back().copied()
    }

    fn earliest_snapshot_id(&self) -> Option<SnapshotId> {
        self.snapshots.keys().next().copied()
    }

    fn read_snapshot(
        &self,
        id: SnapshotId,
        position: u64,
        max_bytes: usize,
    ) -> Result<Option<SnapshotChunk>, StorageError> {
        let Some(bytes) = self.snapshots.get(&id) else { return Ok(None) };
        let start = (position as usize).min(bytes.len());
        let end = start.saturating_add(max_bytes).min(bytes.len());
        Ok(Some(SnapshotChunk { bytes: bytes[start..end].to_vec(), size: bytes.len() as u64 }))
    }

    fn write_partial_snapshot(&mut self, id: SnapshotId, position: u64, bytes: &[u8]) -> Result<u64, StorageError> {
        match &mut self.partial {
            Some((partial_id, data)) if *partial_id == id => {
                if data.len() as u64 != position {
                    return Err(StorageError::Refused(format!(
                        "snapshot write at {position}, but {} bytes are there",
                        data.len()
                    )));
                }
                data.extend_from_slice(bytes);
                Ok(data.len() as u64)
            }
            _ if position == 0 => {
                self.partial = Some((id, bytes.to_vec()));
                Ok(bytes.len() as u64)
            }
            _ => Err(StorageError::Refused(format!("no partial snapshot {id:?} to write at {position}"))),
        }
    }

    fn freeze_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        match self.partial.take() {
            Some((partial_id, data)) if partial_id == id => {
                self.snapshots.insert(id, data);
                Ok(())
            }
            other => {
                self.partial = other;
                Err(StorageError::Refused(format!("no partial snapshot {id:?} to freeze")))
            }
        }
    }

    fn discard_partial_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        if self.partial.as_ref().is_some_and(|(partial_id, _)| *partial_id == id) {
            self.partial = None;
        }
        Ok(())
    }

    fn delete_before_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        if !self.snapshots.contains_key(&id) {
            return Err(StorageError::Refused(format!("no snapshot {id:?}")));
        }
        if id.offset > self.log_end || id.offset < self.log_start {
            return Err(StorageError::Refused(format!(
                "snapshot {id:?} outside the log [{}, {}]",
                self.log_start, self.log_end
            )));
        }
        let drop = self.batches.partition_point(|b| b.next_offset() <= id.offset);
        self.batches.drain(..drop);
        self.log_start = id.offset;
        // Below the log start the durable snapshot stands in for the records.
        self.flushed_end = self.flushed_end.max(id.offset);
        self.epochs.truncate_from_start(id.offset, self.log_end);
        self.snapshots.retain(|s, _| *s >= id);
        Ok(())
    }

    fn truncate_to_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        if !self.snapshots.contains_key(&id) {
            return Err(StorageError::Refused(format!("no snapshot {id:?}")));
        }
        self.batches.clear();
        self.epochs.clear();
        self.log_start = id.offset;
        self.log_end = id.offset;
        self.flushed_end = id.offset;
        self.snapshots.retain(|s, _| *s >= id);
        Ok(())
    }
}
