//! Reading a log back batch by batch: how every piece of state that lives in a log is rebuilt
//! (the metadata image, idempotent producer state, group coordinators).

use fjord_types::Offset;

use crate::batch::{Batches, RecordBatch};
use crate::error::Error;
use crate::log::Log;

/// How much of the log one read of a replay takes.
const REPLAY_CHUNK_BYTES: u64 = 4 * 1024 * 1024;

impl Log {
    /// Visits, in order, every batch holding offsets from `from` (raised to the log start) to
    /// `until` (exclusive; the log end if `None`), reading the log in chunks of a few MiB.
    ///
    /// Batches are never split, so the first one may start below `from`: a caller that must
    /// not see those records skips them by [`crate::Record::offset`]. Stops at the first batch
    /// that cannot be read, or the first error of `visit`. Returns the offset after the last
    /// batch visited.
    pub fn batches_from<E: From<Error>>(
        &self,
        from: Offset,
        until: Option<Offset>,
        mut visit: impl FnMut(&RecordBatch<'_>) -> Result<(), E>,
    ) -> Result<Offset, E> {
        let end = until.map_or(self.log_end_offset(), |u| u.min(self.log_end_offset()));
        let mut next = from.max(self.log_start_offset());
        while next < end {
            let bytes = self.read_bytes(next, REPLAY_CHUNK_BYTES, Some(end))?;
            let before = next;
            for batch in Batches::new(&bytes) {
                let batch = batch?;
                visit(&batch)?;
                next = batch.next_offset();
            }
            if next == before {
                // Nothing readable below `end` (its batches are past it): done.
                break;
            }
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use fjord_types::{LeaderEpoch, Timestamp};

    use crate::{AppendMode, BatchBuilder, Log, LogConfig, OpenOptions};

    use super::*;

    #[test]
    fn replay_visits_every_batch_in_range_across_chunks_and_segments() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 64 * 1024, ..LogConfig::default() };
        let mut log = Log::open(dir.path(), config, OpenOptions::default(), Timestamp(0)).unwrap();
        let value = vec![7u8; 1000];
        for _ in 0..300 {
            let mut batch = BatchBuilder::new();
            batch.push(Timestamp(1), None, Some(&value), &[]);
            batch.push(Timestamp(1), None, Some(&value), &[]);
            let bytes = batch.build().unwrap();
            log.append(&bytes, AppendMode::Leader { leader_epoch: LeaderEpoch(0) }, Timestamp(0)).unwrap();
        }
        assert!(log.segment_count() > 1);
        let mut bases = Vec::new();
        let end = log
            .batches_from::<Error>(Offset(0), None, |b| {
                bases.push(b.base_offset().0);
                Ok(())
            })
            .unwrap();
        assert_eq!(end, Offset(600));
        assert_eq!(bases, (0..300).map(|i| i * 2).collect::<Vec<_>>());
        // From the middle of a batch, up to a bound: the batch holding `from` comes first.
        let mut bases = Vec::new();
        let end = log
            .batches_from::<Error>(Offset(11), Some(Offset(20)), |b| {
                bases.push(b.base_offset().0);
                Ok(())
            })
            .unwrap();
        assert_eq!((bases, end), (vec![10, 12, 14, 16, 18], Offset(20)));
    }
}
