//! Idempotent producers' sequence state (Kafka's `ProducerStateManager`/`ProducerAppendInfo`).
//!
//! Per producer id the broker keeps the epoch and the metadata of the last five batches. A batch
//! whose sequences match one of those is a retry: it is answered with the original offsets and
//! not written again. Otherwise its first sequence must follow the last one (or be 0 under a new
//! epoch); an older epoch is fenced.

use std::collections::{HashMap, VecDeque};

use fjord_types::{Offset, ProducerEpoch, ProducerId, Timestamp};

use crate::error::AppendError;

/// Batches remembered per producer for duplicate detection, as Kafka keeps.
pub(crate) const BATCHES_RETAINED: usize = 5;

/// What the broker remembers of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// The batch's first sequence.
    pub first_sequence: i32,
    /// Its last sequence.
    pub last_sequence: i32,
    /// Its first offset.
    pub first_offset: Offset,
    /// Its last offset.
    pub last_offset: Offset,
    /// Its max timestamp.
    pub timestamp: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: ProducerEpoch,
    batches: VecDeque<BatchMetadata>,
}

/// The verdict on a producer's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New and in order: append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets.
    Duplicate(BatchMetadata),
}

/// Sequence state of every idempotent producer of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<ProducerId, ProducerEntry>,
}

/// `next` follows `last` (wrapping at `i32::MAX`).
fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

impl ProducerStateManager {
    /// Producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The last offset of each producer's last batch: the batches compaction must keep (at
    /// least their headers) so this state can be rebuilt from the log.
    pub fn last_batch_offsets(&self) -> impl Iterator<Item = Offset> + '_ {
        self.producers.values().filter_map(|entry| entry.batches.back().map(|b| b.last_offset))
    }

    /// Each producer's epoch and last batch, for a snapshot.
    pub fn snapshot_entries(&self) -> Vec<crate::SnapshotEntry> {
        let mut entries: Vec<crate::SnapshotEntry> = self
            .producers
            .iter()
            .filter_map(|(id, entry)| {
                entry.batches.back().map(|last| crate::SnapshotEntry {
                    producer_id: *id,
                    epoch: entry.epoch,
                    last_batch: *last,
                })
            })
            .collect();
        entries.sort_by_key(|e| e.producer_id.0);
        entries
    }

    /// Judges a batch from `producer` at `epoch` with sequences `first..=last`.
    pub fn check(
        &self,
        producer: ProducerId,
        epoch: ProducerEpoch,
        first_sequence: i32,
        last_sequence: i32,
    ) -> Result<SequenceCheck, AppendError> {
        let Some(entry) = self.producers.get(&producer) else {
            // Unknown producer (new, or its state expired with the segments that held it):
            // accept any sequence, as Kafka does when it has no state.
            return Ok(SequenceCheck::Append);
        };
        if epoch < entry.epoch {
            return Err(AppendError::InvalidProducerEpoch {
                producer_id: producer.0,
                epoch: epoch.0,
                current: entry.epoch.0,
            });
        }
        if epoch > entry.epoch {
            if first_sequence != 0 {
                return Err(AppendError::OutOfOrderSequence { producer_id: producer.0, first_sequence, expected: 0 });
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(batch) =
            entry.batches.iter().find(|b| b.first_sequence == first_sequence && b.last_sequence == last_sequence)
        {
            return Ok(SequenceCheck::Duplicate(*batch));
        }
        match entry.batches.back() {
            Some(last) if !in_sequence(last.last_sequence, first_sequence) => Err(AppendError::OutOfOrderSequence {
                producer_id: producer.0,
                first_sequence,
                expected: last.last_sequence.wrapping_add(1),
            }),
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records an appended batch (also used when rebuilding from the log).
    pub fn update(&mut self, producer: ProducerId, epoch: ProducerEpoch, batch: BatchMetadata) {
        let entry = self.producers.entry(producer).or_insert(ProducerEntry { epoch, batches: VecDeque::new() });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if epoch < entry.epoch {
            return;
        }
        if entry.batches.len() == BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(first: i32, last: i32, offset: i64) -> BatchMetadata {
        BatchMetadata {
            first_sequence: first,
            last_sequence: last,
            first_offset: Offset(offset),
            last_offset: Offset(offset + i64::from(last - first)),
            timestamp: Timestamp(0),
        }
    }

    const P: ProducerId = ProducerId(7);
    const E0: ProducerEpoch = ProducerEpoch(0);

    #[test]
    fn sequences_must_follow_and_retries_are_recognised() {
        let mut state = ProducerStateManager::default();
        assert_eq!(state.check(P, E0, 0, 4).unwrap(), SequenceCheck::Append);
        state.update(P, E0, meta(0, 4, 0));
        assert_eq!(state.check(P, E0, 5, 9).unwrap(), SequenceCheck::Append);
        state.update(P, E0, meta(5, 9, 5));
        assert_eq!(state.check(P, E0, 0, 4).unwrap(), SequenceCheck::Duplicate(meta(0, 4, 0)));
        assert!(matches!(state.check(P, E0, 11, 12), Err(AppendError::OutOfOrderSequence { expected: 10, .. })));
        assert!(matches!(state.check(P, E0, 3, 6), Err(AppendError::OutOfOrderSequence { .. })));
        // A new epoch starts again at 0; an old one is fenced.
        assert!(state.check(P, ProducerEpoch(1), 3, 3).is_err());
        assert_eq!(state.check(P, ProducerEpoch(1), 0, 0).unwrap(), SequenceCheck::Append);
        state.update(P, ProducerEpoch(1), meta(0, 0, 10));
        assert!(matches!(state.check(P, E0, 10, 10), Err(AppendError::InvalidProducerEpoch { .. })));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut state = ProducerStateManager::default();
        state.update(P, E0, meta(i32::MAX - 1, i32::MAX, 0));
        assert_eq!(state.check(P, E0, 0, 3).unwrap(), SequenceCheck::Append);
    }

    proptest! {
        /// Against a model: a producer that sends batches in order, with random retries of any
        /// of its last five batches, has every retry recognised and never a false duplicate.
        #[test]
        fn retries_of_recent_batches_are_duplicates(sizes in prop::collection::vec(1i32..10, 1..30), retries in prop::collection::vec(0usize..5, 0..30)) {
            let mut state = ProducerStateManager::default();
            let mut sent: Vec<BatchMetadata> = Vec::new();
            let mut next_sequence = 0;
            let mut offset = 0i64;
            for (i, size) in sizes.iter().enumerate() {
                let batch = meta(next_sequence, next_sequence + size - 1, offset);
                prop_assert_eq!(state.check(P, E0, batch.first_sequence, batch.last_sequence).unwrap(), SequenceCheck::Append);
                state.update(P, E0, batch);
                sent.push(batch);
                next_sequence += size;
                offset += i64::from(*size);
                if let Some(&back) = retries.get(i)
                    && back < sent.len()
                    && back < BATCHES_RETAINED
                {
                    let retry = sent[sent.len() - 1 - back];
                    prop_assert_eq!(
                        state.check(P, E0, retry.first_sequence, retry.last_sequence).unwrap(),
                        SequenceCheck::Duplicate(retry)
                    );
                }
            }
        }
    }
}
