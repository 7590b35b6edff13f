//! One partition's replica (Kafka's `Partition`, with `UnifiedLog`'s leader-side validation
//! from `LogValidator` in `validator.rs`, producer state recovery in `producers.rs`, and the
//! offset look-ups in `offsets.rs`).

mod follower;
mod offsets;
mod producers;
mod validator;

use std::path::{Path, PathBuf};

use fjord_log::{AppendMode, FileRange, Log, LogConfig, OpenOptions, RecordBatch};
use fjord_types::{BrokerId, LeaderEpoch, Offset, PartitionRegistration, Timestamp, TopicPartition};

use crate::checkpoint::{LEADER_EPOCH_CHECKPOINT, read_epoch_checkpoint, write_epoch_checkpoint};
use crate::error::{AppendError, ReadError};
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::{BatchMetadata, ProducerStateManager};
use crate::replica_state::{ReplicaState, Role, StateError};

pub use follower::{ReplicaAnswer, ReplicaRead};

/// The settings of a partition beyond its log's.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionConfig {
    /// Segmenting, indexing, flushing, `max.message.bytes`, `message.timestamp.type`.
    pub log: LogConfig,
    /// `min.insync.replicas`: the ISR size `acks=all` requires.
    pub min_insync_replicas: i32,
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub compacted: bool,
    /// `replica.lag.time.max.ms` (a broker setting): how long an ISR member may lag before
    /// the leader proposes to drop it.
    pub replica_lag_time_max_ms: i64,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            log: LogConfig::default(),
            min_insync_replicas: 1,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compacted: false,
            replica_lag_time_max_ms: crate::replica_state::DEFAULT_REPLICA_LAG_TIME_MAX_MS,
        }
    }
}

/// What a produce to this partition got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// The first offset of the appended (or, for a retry, originally appended) records.
    pub base_offset: Offset,
    /// The offset after the appended records: `acks=all` waits for the high watermark to
    /// reach it.
    pub next_offset: Offset,
    /// The broker time stamped on LogAppendTime batches, else `Timestamp::NONE`.
    pub log_append_time: Timestamp,
    /// The partition's log start offset.
    pub log_start_offset: Offset,
    /// Whether this was a retry answered from the producer state without writing.
    pub duplicate: bool,
}

/// What a fetch from this partition got.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches to send, if any.
    pub range: Option<FileRange>,
    /// The high watermark.
    pub high_watermark: Offset,
    /// The last stable offset (the high watermark, with no transactions).
    pub last_stable_offset: Offset,
    /// The log start offset.
    pub log_start_offset: Offset,
}

/// A partition's replica on this broker: its log, its replica state, and the leader's
/// bookkeeping (idempotent producers, the leader epoch cache).
#[derive(Debug)]
pub struct Partition {
    tp: TopicPartition,
    dir: PathBuf,
    log: Log,
    config: PartitionConfig,
    state: ReplicaState,
    producers: ProducerStateManager,
    /// The offset of the newest producer snapshot written or loaded.
    last_snapshot: Option<Offset>,
    epochs: LeaderEpochCache,
    epochs_dirty: bool,
    scratch: Vec<u8>,
}

impl Partition {
    /// Opens the partition's log in `dir` (recovering it if needed) on broker `local`, and
    /// rebuilds the producer state and leader epoch cache from it. `high_watermark` is the
    /// last one checkpointed (`replication-offset-checkpoint`). The replica neither leads nor
    /// follows until [`Partition::make_leader`] or [`Partition::make_follower`].
    pub fn open(
        dir: &Path,
        tp: TopicPartition,
        config: PartitionConfig,
        options: OpenOptions,
        local: BrokerId,
        high_watermark: Offset,
        now: Timestamp,
    ) -> Result<Partition, fjord_log::Error> {
        let log = Log::open(dir, config.log.clone(), options, now)?;
        let saved_epochs = read_epoch_checkpoint(&dir.join(LEADER_EPOCH_CHECKPOINT)).unwrap_or_default();
        let mut state = ReplicaState::new(local, log.log_start_offset(), log.log_end_offset(), high_watermark);
        state.configure(config.min_insync_replicas, config.replica_lag_time_max_ms);
        let mut partition = Partition {
            tp,
            dir: dir.to_path_buf(),
            log,
            config,
            state,
            producers: ProducerStateManager::default(),
            last_snapshot: None,
            epochs: LeaderEpochCache::new(saved_epochs.clone()),
            epochs_dirty: false,
            scratch: Vec::new(),
        };
        let snapshot_offset = partition.load_producer_snapshot();
        // The checkpoint is written now and then, so batches after its last epoch's start may
        // carry epochs it never saw (a crash before the next write): replay from there.
        let epochs_from = saved_epochs.last().map_or(partition.log.log_start_offset(), |e| e.start_offset);
        partition.rebuild_state(Some(epochs_from), snapshot_offset)?;
        partition.epochs.truncate_from_end(partition.log.log_end_offset().plus(1));
        Ok(partition)
    }

    /// Makes this replica the leader under `registration` (Kafka's `makeLeader`). A new
    /// leader epoch starts at the log end offset and is recorded in the epoch cache; within
    /// the same epoch only the ISR and replicas change. Returns whether the epoch is new.
    pub fn make_leader(&mut self, registration: &PartitionRegistration, now: Timestamp) -> Result<bool, StateError> {
        let new_epoch = self.state.become_leader(registration, now)?;
        if new_epoch {
            self.epochs_dirty |= self.epochs.assign(registration.leader_epoch, self.log.log_end_offset());
        }
        Ok(new_epoch)
    }

    /// Makes this replica a follower under `registration` (Kafka's `makeFollower`). Returns
    /// whether the leader or its epoch changed.
    pub fn make_follower(&mut self, registration: &PartitionRegistration) -> Result<bool, StateError> {
        self.state.become_follower(registration)
    }

    /// The last offset of each idempotent producer's last batch, which the log cleaner keeps.
    pub fn producer_last_batch_offsets(&self) -> Vec<Offset> {
        self.producers.last_batch_offsets().collect()
    }

    /// The topic partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The replica state: role, epochs, ISR, high watermark.
    pub fn state(&self) -> &ReplicaState {
        &self.state
    }

    /// Records an ISR change proposed to the controller (see
    /// [`ReplicaState::begin_isr_change`]). Returns whether the high watermark moved.
    pub fn begin_isr_change(&mut self, isr: Vec<BrokerId>) -> bool {
        self.state.begin_isr_change(isr)
    }

    /// Forgets a proposed ISR change the controller refused. Returns whether the high
    /// watermark moved.
    pub fn abort_isr_change(&mut self) -> bool {
        self.state.abort_isr_change()
    }

    /// Leader or follower.
    pub fn role(&self) -> Role {
        self.state.role()
    }

    /// The current leader epoch.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.state.leader_epoch()
    }

    /// The high watermark: consumers read below it.
    pub fn high_watermark(&self) -> Offset {
        self.state.high_watermark()
    }

    /// The next offset to be written.
    pub fn log_end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// The first readable offset.
    pub fn log_start_offset(&self) -> Offset {
        self.log.log_start_offset()
    }

    /// Offsets below this are on stable storage.
    pub fn recovery_point(&self) -> Offset {
        self.log.recovery_point()
    }

    /// The replicas and the in-sync ones.
    pub fn replicas(&self) -> (&[BrokerId], &[BrokerId]) {
        (self.state.replicas(), self.state.isr())
    }

    /// The settings.
    pub fn config(&self) -> &PartitionConfig {
        &self.config
    }

    /// The log, for inspection.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Runs maintenance on the log that may move its start but never its end: retention,
    /// flushing, the cleaner's segment swaps. Appends go through
    /// [`Partition::append_as_leader`]. The replica state follows the new log start.
    pub fn maintain<T>(&mut self, work: impl FnOnce(&mut Log) -> T) -> T {
        let end = self.log.log_end_offset();
        let result = work(&mut self.log);
        debug_assert_eq!(end, self.log.log_end_offset(), "maintenance does not append or truncate");
        self.state.on_log_start(self.log.log_start_offset());
        result
    }

    /// Applies changed settings (AlterConfigs) from the next append on.
    pub fn set_config(&mut self, config: PartitionConfig) {
        self.log.set_config(config.log.clone());
        self.state.configure(config.min_insync_replicas, config.replica_lag_time_max_ms);
        self.config = config;
    }

    fn require_leader(&self) -> Result<(), ReadError> {
        match self.state.role() {
            Role::Leader => Ok(()),
            Role::Follower { leader } => Err(ReadError::NotLeader { leader }),
        }
    }

    /// Validates and appends a produce request's records for this partition.
    ///
    /// Refused unless this replica leads, and with `acks=all` unless the ISR has at least
    /// `min.insync.replicas` members. Checks, per batch: format v2, CRC, size, no
    /// transactional or control batches, record structure (decompressing), CreateTime
    /// timestamps within the allowed window, and the producer's sequence. A retry of one of
    /// the producer's last five batches is answered with the original offsets and not written.
    pub fn append_as_leader(&mut self, records: &[u8], acks: i16, now: Timestamp) -> Result<AppendResult, AppendError> {
        if let Role::Follower { leader } = self.state.role() {
            return Err(AppendError::NotLeader { leader });
        }
        let isr = self.state.isr().len();
        if acks == -1 && (isr as i32) < self.config.min_insync_replicas {
            return Err(AppendError::NotEnoughReplicas { isr, required: self.config.min_insync_replicas });
        }
        if records.is_empty() {
            return Err(AppendError::Corrupt("no record batches".into()));
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let checked = self.check_batches(records, &mut scratch, now);
        self.scratch = scratch;
        if let Some(duplicate) = checked? {
            return Ok(AppendResult {
                base_offset: duplicate.first_offset,
                next_offset: duplicate.last_offset.plus(1),
                log_append_time: Timestamp::NONE,
                log_start_offset: self.log.log_start_offset(),
                duplicate: true,
            });
        }
        let active_base = self.log.active_segment_base();
        let leader_epoch = self.state.leader_epoch();
        let info = self.log.append(records, AppendMode::Leader { leader_epoch }, now).map_err(|e| match e {
            e @ fjord_log::Error::CorruptBatch { .. } => AppendError::Corrupt(e.to_string()),
            e => AppendError::Storage(e),
        })?;
        if self.log.active_segment_base() != active_base {
            // The log rolled: snapshot the state of everything before this append, as Kafka
            // does at each roll, so it survives the deletion of the segments that built it. A
            // failed write costs only replay time at the next open (the older snapshot stays),
            // so it does not fail the append.
            let _ = self.snapshot_producers(info.first_offset);
        }
        self.record_producers(records, info.first_offset, info.log_append_time)?;
        self.epochs_dirty |= self.epochs.assign(leader_epoch, info.first_offset);
        self.state.on_local_append(self.log.log_end_offset());
        Ok(AppendResult {
            base_offset: info.first_offset,
            next_offset: self.log.log_end_offset(),
            log_append_time: info.log_append_time,
            log_start_offset: self.log.log_start_offset(),
            duplicate: false,
        })
    }

    fn check_leader_epoch(&self, requested: Option<LeaderEpoch>) -> Result<(), ReadError> {
        let current = self.state.leader_epoch();
        match requested {
            Some(epoch) if !epoch.is_none() && epoch < current => {
                Err(ReadError::FencedLeaderEpoch { requested: epoch, current })
            }
            Some(epoch) if epoch > current => Err(ReadError::UnknownLeaderEpoch { requested: epoch, current }),
            _ => Ok(()),
        }
    }

    /// Reads for a consumer: whole batches from the one holding `fetch_offset`, below the high
    /// watermark, at most `max_bytes` unless `min_one_batch`. Only the leader serves consumers.
    pub fn read(
        &self,
        fetch_offset: Offset,
        max_bytes: u64,
        min_one_batch: bool,
        current_leader_epoch: Option<LeaderEpoch>,
    ) -> Result<ReadResult, ReadError> {
        self.check_leader_epoch(current_leader_epoch)?;
        self.require_leader()?;
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        if fetch_offset < start || fetch_offset > end {
            return Err(ReadError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        let high_watermark = self.state.high_watermark();
        let range = self.log.read(fetch_offset, max_bytes, Some(high_watermark), min_one_batch)?;
        Ok(ReadResult { range, high_watermark, last_stable_offset: high_watermark, log_start_offset: start })
    }

    /// Flushes the log (the recovery point moves to the log end).
    pub fn flush(&mut self, now: Timestamp) -> Result<(), fjord_log::Error> {
        self.log.flush(now)
    }

    /// Flushes if `flush.ms` has passed.
    pub fn maybe_flush(&mut self, now: Timestamp) -> Result<bool, fjord_log::Error> {
        self.log.maybe_flush(now)
    }

    /// Writes `leader-epoch-checkpoint` if the cache changed.
    pub fn checkpoint_epochs(&mut self) -> std::io::Result<()> {
        if self.epochs_dirty {
            write_epoch_checkpoint(&self.dir.join(LEADER_EPOCH_CHECKPOINT), self.epochs.entries())?;
            self.epochs_dirty = false;
        }
        Ok(())
    }

    /// Flushes, checkpoints the epochs, snapshots the producer state and closes the log
    /// cleanly.
    pub fn close(mut self) -> Result<(), fjord_log::Error> {
        self.checkpoint_epochs().map_err(|e| fjord_log::Error::Io { path: self.dir.clone(), source: e })?;
        self.snapshot_producers(self.log.log_end_offset())
            .map_err(|e| fjord_log::Error::Io { path: self.dir.clone(), source: e })?;
        self.log.close()
    }

    /// Checks the invariants: the replica state's (log start <= high watermark <= log end, a
    /// leader in its ISR, ...), that it agrees with the log's offsets, and the log's own.
    pub fn validate(&self) -> Result<(), String> {
        let fail = |e: String| format!("{}: {e}", self.tp);
        self.state.validate().map_err(fail)?;
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        if (start, end) != (self.state.log_start_offset(), self.state.log_end_offset()) {
            return Err(fail(format!(
                "the log holds [{start}, {end}) but the replica state says [{}, {})",
                self.state.log_start_offset(),
                self.state.log_end_offset()
            )));
        }
        self.log.validate().map_err(|e| fail(e.to_string()))
    }
}

fn metadata_of(batch: &RecordBatch<'_>) -> BatchMetadata {
    BatchMetadata {
        first_sequence: batch.base_sequence(),
        last_sequence: batch.last_sequence(),
        first_offset: batch.base_offset(),
        last_offset: batch.last_offset(),
        timestamp: batch.max_timestamp(),
    }
}

#[cfg(test)]
mod tests;
