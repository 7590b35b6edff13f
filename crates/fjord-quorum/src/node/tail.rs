//! The batches a node appended last, kept in memory so fetch answers and the commit upcall read
//! them without decoding them back from the log: a leader reads each new batch once per follower
//! and once more to commit it, and decoding a batch from `FileLog` costs several times copying it.
//!
//! Every change to the log goes through the node, which mirrors it here, so the cache always
//! ends where the log ends.

use std::collections::VecDeque;

use fjord_types::Offset;

use crate::record::Batch;

/// Bytes of batches kept.
const TAIL_CACHE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
pub(crate) struct TailCache {
    batches: VecDeque<Batch>,
    bytes: usize,
}

impl TailCache {
    /// Remembers a batch just appended to the log.
    pub(crate) fn push(&mut self, batch: Batch) {
        if self.batches.back().is_some_and(|b| b.next_offset() != batch.base_offset) {
            self.clear();
        }
        self.bytes += batch.size_bytes();
        self.batches.push_back(batch);
        while self.bytes > TAIL_CACHE_BYTES && self.batches.len() > 1 {
            if let Some(old) = self.batches.pop_front() {
                self.bytes -= old.size_bytes();
            }
        }
    }

    /// Mirrors `RaftLog::truncate_to`: whole batches holding a record at or above `offset` go.
    pub(crate) fn truncate_to(&mut self, offset: Offset) {
        while self.batches.back().is_some_and(|b| b.last_offset() >= offset) {
            if let Some(gone) = self.batches.pop_back() {
                self.bytes -= gone.size_bytes();
            }
        }
    }

    /// Mirrors `RaftLog::delete_before_snapshot`: batches wholly below `start` go.
    pub(crate) fn drop_below(&mut self, start: Offset) {
        while self.batches.front().is_some_and(|b| b.next_offset() <= start) {
            if let Some(gone) = self.batches.pop_front() {
                self.bytes -= gone.size_bytes();
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }

    /// What `RaftLog::read` would return, if the cache holds it.
    pub(crate) fn read(&self, from: Offset, max_bytes: usize) -> Option<Vec<Batch>> {
        let first = self.batches.front()?;
        let last = self.batches.back()?;
        if from < first.base_offset || from > last.next_offset() {
            return None;
        }
        let start = self.batches.partition_point(|b| b.next_offset() <= from);
        let mut out = Vec::new();
        let mut bytes = 0;
        for batch in self.batches.range(start..) {
            bytes += batch.size_bytes();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(batch.clone());
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use fjord_types::{LeaderEpoch, Timestamp};

    use super::*;
    use crate::record::BatchKind;

    fn batch(base: i64, records: usize) -> Batch {
        Batch {
            base_offset: Offset(base),
            epoch: LeaderEpoch(1),
            append_timestamp: Timestamp(0),
            kind: BatchKind::Data,
            records: vec![vec![0; 10]; records],
        }
    }

    #[test]
    fn reads_like_the_log_and_follows_its_truncations() {
        let mut cache = TailCache::default();
        assert_eq!(cache.read(Offset(0), 100), None);
        for b in [batch(0, 2), batch(2, 3), batch(5, 1)] {
            cache.push(b);
        }
        assert_eq!(cache.read(Offset(3), usize::MAX), Some(vec![batch(2, 3), batch(5, 1)]));
        assert_eq!(cache.read(Offset(3), 1), Some(vec![batch(2, 3)]), "at least one batch");
        assert_eq!(cache.read(Offset(6), 100), Some(vec![]), "at the end: nothing new");
        assert_eq!(cache.read(Offset(7), 100), None);
        cache.truncate_to(Offset(3));
        assert_eq!(cache.read(Offset(0), usize::MAX), Some(vec![batch(0, 2)]));
        cache.push(batch(9, 1));
        assert_eq!(cache.read(Offset(0), usize::MAX), None, "a gap starts the cache over");
        assert_eq!(cache.read(Offset(9), usize::MAX), Some(vec![batch(9, 1)]));
        cache.push(batch(10, 2));
        cache.drop_below(Offset(10));
        assert_eq!(cache.read(Offset(9), usize::MAX), None);
        assert_eq!(cache.read(Offset(10), usize::MAX), Some(vec![batch(10, 2)]));
    }
}
