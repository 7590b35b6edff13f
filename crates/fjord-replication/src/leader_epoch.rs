//! Where each leader epoch starts in the log (Kafka's `LeaderEpochFileCache`, KIP-101/279):
//! OffsetForLeaderEpoch answers from it, and a follower uses the answer to truncate.

use fjord_types::{LeaderEpoch, Offset};

/// The first offset written under an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: LeaderEpoch,
    /// Its first offset.
    pub start_offset: Offset,
}

/// Epoch start offsets, ascending in both epoch and offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// A cache holding `entries` (from the checkpoint), keeping only an ascending run.
    pub fn new(entries: Vec<EpochEntry>) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for entry in entries {
            cache.assign(entry.epoch, entry.start_offset);
        }
        cache
    }

    /// The entries.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`; ignored unless both move forward.
    /// Returns whether the cache changed.
    pub fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) -> bool {
        match self.entries.last() {
            Some(last) if epoch <= last.epoch || start_offset < last.start_offset => false,
            _ => {
                self.entries.push(EpochEntry { epoch, start_offset });
                true
            }
        }
    }

    /// The largest epoch at or below `requested` and the offset where the next epoch starts
    /// (or `log_end_offset` for the latest): Kafka's `endOffsetFor`. For an epoch older than
    /// every entry, `requested` itself ending where the earliest entry starts (so a follower
    /// holding only records of that older epoch truncates them); `None` with no entries.
    pub fn end_offset_for(&self, requested: LeaderEpoch, log_end_offset: Offset) -> Option<(LeaderEpoch, Offset)> {
        let Some(position) = self.entries.iter().rposition(|e| e.epoch <= requested) else {
            return self.entries.first().map(|first| (requested, first.start_offset));
        };
        let end = self.entries.get(position + 1).map_or(log_end_offset, |next| next.start_offset);
        Some((self.entries[position].epoch, end))
    }

    /// Forgets epochs that start at or after `offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, offset: Offset) {
        self.entries.retain(|e| e.start_offset < offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kafkas_rules() {
        let mut cache = LeaderEpochCache::default();
        assert!(cache.assign(LeaderEpoch(1), Offset(0)));
        assert!(!cache.assign(LeaderEpoch(1), Offset(5)), "same epoch again");
        assert!(cache.assign(LeaderEpoch(3), Offset(10)));
        assert_eq!(cache.end_offset_for(LeaderEpoch(1), Offset(20)), Some((LeaderEpoch(1), Offset(10))));
        assert_eq!(cache.end_offset_for(LeaderEpoch(2), Offset(20)), Some((LeaderEpoch(1), Offset(10))));
        assert_eq!(cache.end_offset_for(LeaderEpoch(3), Offset(20)), Some((LeaderEpoch(3), Offset(20))));
        assert_eq!(cache.end_offset_for(LeaderEpoch(9), Offset(20)), Some((LeaderEpoch(3), Offset(20))));
        assert_eq!(
            cache.end_offset_for(LeaderEpoch(0), Offset(20)),
            Some((LeaderEpoch(0), Offset(0))),
            "older than every entry: it ends where the earliest starts"
        );
        assert_eq!(LeaderEpochCache::default().end_offset_for(LeaderEpoch(0), Offset(20)), None);
        cache.truncate_from_end(Offset(10));
        assert_eq!(cache.latest_epoch(), Some(LeaderEpoch(1)));
    }
}
