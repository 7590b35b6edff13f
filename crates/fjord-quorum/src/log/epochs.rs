//! Where each epoch starts in a log: Kafka's `LeaderEpochFileCache`, kept in memory and rebuilt
//! from the batches when a log is opened.

use fjord_types::{LeaderEpoch, Offset};

use crate::ids::{OffsetAndEpoch, SnapshotId};

/// Epochs and their start offsets, both strictly increasing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<(LeaderEpoch, Offset)>,
}

impl EpochCache {
    /// Records that `epoch` starts at `start` unless it is already the latest epoch.
    pub(crate) fn assign(&mut self, epoch: LeaderEpoch, start: Offset) -> Result<(), String> {
        match self.entries.last() {
            Some(&(last, _)) if last == epoch => Ok(()),
            Some(&(last, last_start)) if last > epoch || last_start >= start => {
                Err(format!("epoch {epoch} at {start} does not follow epoch {last} at {last_start}"))
            }
            _ => {
                self.entries.push((epoch, start));
                Ok(())
            }
        }
    }

    /// Forgets epochs that start at or after `end` (a truncation to `end`).
    pub(crate) fn truncate_from_end(&mut self, end: Offset) {
        while self.entries.last().is_some_and(|&(_, start)| start >= end) {
            self.entries.pop();
        }
    }

    /// Forgets what lies below `start` in a log ending at `end`: the epoch that covers `start`
    /// now starts there (none does when the log is empty from `start`).
    pub(crate) fn truncate_from_start(&mut self, start: Offset, end: Offset) {
        if start >= end {
            self.entries.clear();
            return;
        }
        let keep_from = self.entries.partition_point(|&(_, s)| s <= start).saturating_sub(1);
        self.entries.drain(..keep_from);
        if let Some(first) = self.entries.first_mut()
            && first.1 < start
        {
            first.1 = start;
        }
    }

    /// Empties the cache.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The latest epoch, if the log holds any record.
    pub(crate) fn latest(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// The epoch of the record at `offset`, if the cache covers it (`offset` below the log end
    /// is the caller's to check).
    pub(crate) fn epoch_of(&self, offset: Offset) -> Option<LeaderEpoch> {
        let index = self.entries.partition_point(|&(_, s)| s <= offset);
        index.checked_sub(1).map(|i| self.entries[i].0)
    }

    /// Kafka's `endOffsetForEpoch` for a log ending at `log_end` whose prefix below the first
    /// cached epoch is covered by the snapshot `start_snapshot` (if any): the largest epoch at
    /// most `epoch` and the offset where it ends.
    pub(crate) fn end_offset_for_epoch(
        &self,
        epoch: LeaderEpoch,
        log_end: Offset,
        start_snapshot: Option<SnapshotId>,
    ) -> OffsetAndEpoch {
        // Epochs newer than any we hold end at our log end, in our latest epoch.
        let latest = self.latest().or(start_snapshot.map(|s| s.epoch)).unwrap_or(LeaderEpoch(0));
        if epoch >= latest {
            return OffsetAndEpoch::new(log_end, latest);
        }
        let higher = self.entries.partition_point(|&(e, _)| e <= epoch);
        let end = self.entries.get(higher).map_or(log_end, |&(_, s)| s);
        match higher.checked_sub(1) {
            Some(floor) => OffsetAndEpoch::new(end, self.entries[floor].0),
            // Below every epoch in the log: the snapshot's epoch if it covers `epoch`, else the
            // requested epoch ends where our first one starts (Kafka answers the same).
            None => match start_snapshot {
                Some(snapshot) if snapshot.epoch <= epoch => OffsetAndEpoch::new(end, snapshot.epoch),
                _ => OffsetAndEpoch::new(end, epoch),
            },
        }
    }

    /// The cached entries, oldest first.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[(LeaderEpoch, Offset)] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut cache = EpochCache::default();
        for &(e, s) in entries {
            cache.assign(LeaderEpoch(e), Offset(s)).unwrap();
        }
        cache
    }

    fn oe(offset: i64, epoch: i32) -> OffsetAndEpoch {
        OffsetAndEpoch::new(Offset(offset), LeaderEpoch(epoch))
    }

    #[test]
    fn end_offset_for_epoch_follows_kafka() {
        let c = cache(&[(1, 0), (3, 10), (4, 20)]);
        assert_eq!(c.end_offset_for_epoch(LeaderEpoch(4), Offset(25), None), oe(25, 4));
        assert_eq!(c.end_offset_for_epoch(LeaderEpoch(7), Offset(25), None), oe(25, 4));
        assert_eq!(c.end_offset_for_epoch(LeaderEpoch(3), Offset(25), None), oe(20, 3));
        // Epoch 2 never had records here: it ends where epoch 3 begins, as epoch 1.
        assert_eq!(c.end_offset_for_epoch(LeaderEpoch(2), Offset(25), None), oe(10, 1));
        assert_eq!(c.end_offset_for_epoch(LeaderEpoch(0), Offset(25), None), oe(0, 0));
    }

    #[test]
    fn a_snapshot_stands_for_the_epochs_below_the_log() {
        let c = cache(&[(5, 100)]);
        let snapshot = Some(oe(100, 3));
        assert_eq!(c.end_offset_for_epoch(LeaderEpoch(4), Offset(120), snapshot), oe(100, 3));
        assert_eq!(c.end_offset_for_epoch(LeaderEpoch(3), Offset(120), snapshot), oe(100, 3));
        let empty = EpochCache::default();
        assert_eq!(empty.end_offset_for_epoch(LeaderEpoch(3), Offset(100), snapshot), oe(100, 3));
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (4, 20)]);
        c.truncate_from_end(Offset(20));
        assert_eq!(c.entries(), &[(LeaderEpoch(1), Offset(0)), (LeaderEpoch(3), Offset(10))]);
        c.truncate_from_start(Offset(15), Offset(20));
        let mut empty = c.clone();
        empty.truncate_from_start(Offset(20), Offset(20));
        assert_eq!(empty.latest(), None);
        assert_eq!(c.entries(), &[(LeaderEpoch(3), Offset(15))]);
        assert_eq!(c.epoch_of(Offset(16)), Some(LeaderEpoch(3)));
        assert_eq!(c.epoch_of(Offset(14)), None);
        assert!(c.assign(LeaderEpoch(2), Offset(30)).is_err());
        assert!(c.assign(LeaderEpoch(5), Offset(15)).is_err());
    }
}
