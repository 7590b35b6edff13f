//! Idempotent producer state on disk and in the log: snapshots (`<offset>.snapshot`) written at
//! each roll and at close, loaded at open, and the batches after the newest snapshot replayed
//! (Kafka's `ProducerStateManager` recovery in `UnifiedLog`).

use fjord_log::Batches;
use fjord_types::{Offset, Timestamp};

use super::{Partition, metadata_of};
use crate::error::AppendError;
use crate::producer_snapshot;

impl Partition {
    /// Loads the newest producer snapshot at or below the log end (removing any beyond it,
    /// left by a truncation). Returns the offset it covers, or the log start offset if there
    /// is none.
    pub(super) fn load_producer_snapshot(&mut self) -> Offset {
        let log_end = self.log.log_end_offset();
        let mut loaded = None;
        for (offset, path) in producer_snapshot::list_snapshots(&self.dir).into_iter().rev() {
            if offset > log_end || loaded.is_some() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            match producer_snapshot::read_snapshot(&path) {
                Ok(entries) => {
                    for e in entries {
                        self.producers.update(e.producer_id, e.epoch, e.last_batch);
                    }
                    loaded = Some(offset);
                }
                Err(_) => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        self.last_snapshot = loaded;
        loaded.unwrap_or(self.log.log_start_offset()).max(self.log.log_start_offset())
    }

    /// Writes a producer snapshot covering the batches below `at`, unless one is there already.
    pub(super) fn snapshot_producers(&mut self, at: Offset) -> std::io::Result<()> {
        if self.last_snapshot == Some(at) {
            return Ok(());
        }
        producer_snapshot::write_snapshot(&self.dir, at, &self.producers.snapshot_entries())?;
        self.last_snapshot = Some(at);
        Ok(())
    }

    /// Replays batch headers from `producers_from` to rebuild idempotent producer state, and
    /// from `epochs_from` (if given) to add the epochs of batches the epoch cache does not
    /// know yet: the whole log without a checkpoint, the tail written after the last one.
    pub(super) fn rebuild_state(
        &mut self,
        epochs_from: Option<Offset>,
        producers_from: Offset,
    ) -> Result<(), fjord_log::Error> {
        let epochs_from = epochs_from.map(|o| o.max(self.log.log_start_offset()));
        let from = epochs_from.map_or(producers_from, |e| e.min(producers_from));
        let (epochs, producers, dirty) = (&mut self.epochs, &mut self.producers, &mut self.epochs_dirty);
        self.log.batches_from(from, None, |batch| {
            if epochs_from.is_some_and(|e| batch.base_offset() >= e) && !batch.partition_leader_epoch().is_none() {
                *dirty |= epochs.assign(batch.partition_leader_epoch(), batch.base_offset());
            }
            if !batch.producer_id().is_none() && batch.base_sequence() >= 0 && batch.base_offset() >= producers_from {
                producers.update(batch.producer_id(), batch.producer_epoch(), metadata_of(batch));
            }
            Ok::<(), fjord_log::Error>(())
        })?;
        Ok(())
    }

    /// Records the idempotent batches of an append that the log wrote from `first_offset`.
    /// The request's bytes keep the producer's offsets (the log wrote the leader's headers),
    /// so the offsets are laid out again here the way the log assigned them.
    pub(super) fn record_producers(
        &mut self,
        records: &[u8],
        first_offset: Offset,
        log_append_time: Timestamp,
    ) -> Result<(), AppendError> {
        let mut base_offset = first_offset;
        for batch in Batches::new(records) {
            let batch = batch.map_err(AppendError::Storage)?;
            if !batch.producer_id().is_none() {
                let mut metadata = metadata_of(&batch);
                metadata.first_offset = base_offset;
                metadata.last_offset = base_offset.plus(i64::from(batch.last_offset_delta()));
                if log_append_time != Timestamp::NONE {
                    metadata.timestamp = log_append_time;
                }
                self.producers.update(batch.producer_id(), batch.producer_epoch(), metadata);
            }
            base_offset = base_offset.plus(i64::from(batch.last_offset_delta()) + 1);
        }
        Ok(())
    }
}
