//! Follower replication on a partition: the leader's side of a replica fetch (divergence
//! checks, the follower's progress), and the follower's side (appending the leader's
//! batches as they are, truncating to the leader's log, taking its high watermark). Kafka's
//! `Partition.fetchRecords` and `AbstractFetcherThread`'s truncation rules (KIP-101, KIP-279,
//! KIP-320).

use fjord_log::{AppendMode, Batches, FileRange};
use fjord_types::{BrokerId, LeaderEpoch, Offset, Timestamp};

use super::{Partition, metadata_of};
use crate::error::{AppendError, ReadError};
use crate::producer_state::ProducerStateManager;
use crate::replica_state::Role;

/// The leader's answer to one partition of a replica fetch.
#[derive(Debug, Clone)]
pub enum ReplicaAnswer {
    /// The follower's log diverges from the leader's after `end_offset`: the leader's log holds
    /// `epoch` (the largest at or below the follower's last fetched epoch) up to `end_offset`.
    /// No records come with it, and the follower's progress is not counted.
    Diverging {
        /// The leader's epoch at or below the follower's.
        epoch: LeaderEpoch,
        /// Where that epoch ends in the leader's log.
        end_offset: Offset,
    },
    /// Whole batches from the fetch offset (none if the follower is at the log end).
    Records(Option<FileRange>),
}

/// A replica fetch answered by the leader.
#[derive(Debug, Clone)]
pub struct ReplicaRead {
    /// Records or a divergence.
    pub answer: ReplicaAnswer,
    /// The leader's high watermark.
    pub high_watermark: Offset,
    /// The leader's log start offset.
    pub log_start_offset: Offset,
    /// The leader's log end offset.
    pub log_end_offset: Offset,
    /// Whether this fetch moved the leader's high watermark (delayed produces and fetches of
    /// the partition may complete).
    pub high_watermark_moved: bool,
}

impl Partition {
    /// Answers a follower's fetch (Kafka's `fetchRecords` for a replica): the leader and epoch
    /// checks first (KAFKA-14078), then that `replica` holds a replica, then, with the
    /// follower's `last_fetched_epoch`, whether its log diverges from this one (KIP-320). Only
    /// a fetch that does not diverge counts as the follower's progress; it may move the high
    /// watermark. Batches are read from `fetch_offset` to the log end, not capped at the high
    /// watermark. `eligible` says whether the follower's broker may be in the ISR (active,
    /// under the broker epoch it fetched with, KIP-841/903).
    #[allow(clippy::too_many_arguments)]
    pub fn read_for_replica(
        &mut self,
        replica: BrokerId,
        fetch_offset: Offset,
        last_fetched_epoch: Option<LeaderEpoch>,
        current_leader_epoch: Option<LeaderEpoch>,
        max_bytes: u64,
        eligible: bool,
        now: Timestamp,
    ) -> Result<ReplicaRead, ReadError> {
        self.check_leader_epoch(current_leader_epoch)?;
        self.require_leader()?;
        if !self.state.replicas().contains(&replica) {
            // KAFKA-13837: a broker that is not a replica learns that its view is stale.
            return Err(match current_leader_epoch {
                Some(epoch) => ReadError::UnknownLeaderEpoch { requested: epoch, current: self.leader_epoch() },
                None => ReadError::NotLeader { leader: self.state.local() },
            });
        }
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        let out_of_range =
            ReadError::OffsetOutOfRange { offset: fetch_offset, log_start_offset: start, log_end_offset: end };
        if fetch_offset < start {
            return Err(out_of_range);
        }
        if let Some(last_epoch) = last_fetched_epoch.filter(|e| !e.is_none()) {
            let Some((epoch, end_offset)) = self.epochs.end_offset_for(last_epoch, end) else {
                return Err(out_of_range);
            };
            if epoch < last_epoch || end_offset < fetch_offset {
                #[cfg(test)]
                if crate::bugs::active(crate::bugs::Bug::CountDivergingFetch) {
                    self.state.on_follower_fetch_from(replica, fetch_offset, now, eligible);
                }
                return Ok(ReplicaRead {
                    answer: ReplicaAnswer::Diverging { epoch, end_offset },
                    high_watermark: self.state.high_watermark(),
                    log_start_offset: start,
                    log_end_offset: end,
                    high_watermark_moved: false,
                });
            }
        } else if fetch_offset > end {
            return Err(out_of_range);
        }
        // The log end before the read is what the follower's progress is measured against.
        let high_watermark_moved = self.state.on_follower_fetch_from(replica, fetch_offset, now, eligible);
        let range = self.log.read(fetch_offset, max_bytes, None, true)?;
        Ok(ReplicaRead {
            answer: ReplicaAnswer::Records(range),
            high_watermark: self.state.high_watermark(),
            log_start_offset: start,
            log_end_offset: end,
            high_watermark_moved,
        })
    }

    /// The epoch a follower names as its last fetched one: the latest in its epoch cache.
    pub fn last_fetched_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.latest_epoch()
    }

    /// Where a follower truncates on the leader's `Diverging { epoch, end_offset }` (KIP-279):
    /// if it knows that epoch, to the smaller of its own end of it and the leader's; if it only
    /// knows older epochs, to the end of its latest one (its next fetch names that one and
    /// the leader answers again); if none, to the leader's end offset. Never past its own log
    /// end.
    pub fn divergence_truncation_offset(&self, epoch: LeaderEpoch, end_offset: Offset) -> Offset {
        let log_end = self.log.log_end_offset();
        let target = match self.epochs.end_offset_for(epoch, log_end) {
            Some((own_epoch, own_end)) if own_epoch == epoch => {
                #[cfg(test)]
                if crate::bugs::active(crate::bugs::Bug::TruncateAtEpochStart) {
                    let start = self.epochs.entries().iter().find(|e| e.epoch == epoch).map(|e| e.start_offset);
                    return start.unwrap_or(own_end).min(log_end);
                }
                own_end.min(end_offset)
            }
            Some((_, own_end)) => own_end,
            None => end_offset,
        };
        target.min(log_end)
    }

    /// Appends the leader's batches as they are (offsets, epochs and timestamps kept), as a
    /// follower. The batches are checked for structure and CRC by the log; the idempotent
    /// producers' state and the epoch cache follow them, so a follower that becomes leader
    /// deduplicates retries as the old leader did.
    pub fn append_as_follower(&mut self, records: &[u8], now: Timestamp) -> Result<(), AppendError> {
        if self.state.role() == Role::Leader {
            return Err(AppendError::Corrupt("a leader does not append as a follower".into()));
        }
        if records.is_empty() {
            return Ok(());
        }
        let active_base = self.log.active_segment_base();
        self.log.append(records, AppendMode::Replica, now).map_err(|e| match e {
            e @ (fjord_log::Error::CorruptBatch { .. } | fjord_log::Error::OffsetsOutOfOrder { .. }) => {
                AppendError::Corrupt(e.to_string())
            }
            e => AppendError::Storage(e),
        })?;
        if self.log.active_segment_base() != active_base {
            let first = Batches::new(records).next().and_then(|b| b.ok()).map(|b| b.base_offset());
            let _ = self.snapshot_producers(first.unwrap_or(active_base));
        }
        // The batches carry their own offsets (a compacted leader's may leave gaps between
        // them), so producer state is taken from each header as recovery does.
        for batch in Batches::new(records) {
            let batch = batch.map_err(AppendError::Storage)?;
            if !batch.partition_leader_epoch().is_none() {
                self.epochs_dirty |= self.epochs.assign(batch.partition_leader_epoch(), batch.base_offset());
            }
            if !batch.producer_id().is_none() && batch.base_sequence() >= 0 {
                self.producers.update(batch.producer_id(), batch.producer_epoch(), metadata_of(&batch));
            }
        }
        self.state.on_local_append(self.log.log_end_offset());
        Ok(())
    }

    /// Cuts the log back to `offset` (a follower matching its leader). The epoch cache, the
    /// producer state and the high watermark follow. Returns whether anything was removed.
    pub fn truncate_to(&mut self, offset: Offset, now: Timestamp) -> Result<bool, fjord_log::Error> {
        if offset >= self.log.log_end_offset() {
            // No record goes, but an epoch this replica started at its log end without
            // writing to it (it led briefly) does: otherwise it would name that epoch again
            // and diverge forever.
            if self.epochs.entries().iter().any(|e| e.start_offset >= offset) {
                self.epochs.truncate_from_end(offset);
                self.epochs_dirty = true;
            }
            return Ok(false);
        }
        if offset < self.log.log_start_offset() {
            self.truncate_fully_and_start_at(offset, now)?;
            return Ok(true);
        }
        self.log.truncate_to(offset, now)?;
        let end = self.log.log_end_offset();
        self.epochs.truncate_from_end(end);
        self.epochs_dirty = true;
        self.reload_producers()?;
        self.state.on_truncate(end);
        Ok(true)
    }

    /// Empties the log and restarts it at `offset`: a follower whose log ends below the leader's
    /// log start. Its high watermark restarts there too (KAFKA-9491).
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset, now: Timestamp) -> Result<(), fjord_log::Error> {
        self.log.truncate_fully_and_start_at(offset, now)?;
        self.epochs.truncate_from_end(Offset(0));
        self.epochs_dirty = true;
        self.reload_producers()?;
        self.state.on_reset(offset);
        Ok(())
    }

    fn reload_producers(&mut self) -> Result<(), fjord_log::Error> {
        self.producers = ProducerStateManager::default();
        let from = self.load_producer_snapshot();
        self.rebuild_state(None, from)
    }

    /// Takes the leader's high watermark and log start offset from a fetch answer, after any
    /// truncation the same answer called for (KAFKA-14704). Returns whether the high watermark
    /// moved.
    pub fn apply_leader_offsets(&mut self, high_watermark: Offset, log_start_offset: Offset) -> bool {
        if log_start_offset > self.log.log_start_offset() && log_start_offset <= self.log.log_end_offset() {
            // Follow the leader's retention and DeleteRecords; the segments below go with the
            // next retention pass.
            if self.log.increment_log_start_offset(log_start_offset).unwrap_or(false) {
                self.state.on_log_start(self.log.log_start_offset());
            }
        }
        self.state.on_leader_high_watermark(high_watermark)
    }
}
