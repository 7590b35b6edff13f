//! One partition's replica, as its leader (Kafka's `Partition` with `UnifiedLog`'s leader-side
//! validation, `LogValidator`).

use std::path::{Path, PathBuf};

use fjord_log::{AppendMode, Batches, Compression, FileRange, Log, LogConfig, OpenOptions, RecordBatch, TimestampType};
use fjord_types::{BrokerId, LeaderEpoch, Offset, ProducerEpoch, ProducerId, Timestamp, TopicPartition};

use crate::checkpoint::{LEADER_EPOCH_CHECKPOINT, read_epoch_checkpoint, write_epoch_checkpoint};
use crate::error::{AppendError, ReadError};
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_snapshot;
use crate::producer_state::{BatchMetadata, ProducerStateManager, SequenceCheck};

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
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            log: LogConfig::default(),
            min_insync_replicas: 1,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            compacted: false,
        }
    }
}

/// What a produce to this partition got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// The first offset of the appended (or, for a retry, originally appended) records.
    pub base_offset: Offset,
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

/// Bound on a batch's decompressed records while validating (Kafka has none; this keeps a
/// small hostile batch from claiming gigabytes).
const MAX_DECOMPRESSED_FACTOR: usize = 256;

/// A partition replica led by this broker.
#[derive(Debug)]
pub struct Partition {
    tp: TopicPartition,
    dir: PathBuf,
    log: Log,
    config: PartitionConfig,
    leader_epoch: LeaderEpoch,
    replicas: Vec<BrokerId>,
    isr: Vec<BrokerId>,
    high_watermark: Offset,
    producers: ProducerStateManager,
    /// The offset of the newest producer snapshot written or loaded.
    last_snapshot: Option<Offset>,
    epochs: LeaderEpochCache,
    epochs_dirty: bool,
    scratch: Vec<u8>,
}

impl Partition {
    /// Opens the partition's log in `dir` (recovering it if needed) and rebuilds the producer
    /// state and leader epoch cache from it, as leader at `leader_epoch`.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        dir: &Path,
        tp: TopicPartition,
        config: PartitionConfig,
        options: OpenOptions,
        leader_epoch: LeaderEpoch,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        now: Timestamp,
    ) -> Result<Partition, fjord_log::Error> {
        let log = Log::open(dir, config.log.clone(), options, now)?;
        let saved_epochs = read_epoch_checkpoint(&dir.join(LEADER_EPOCH_CHECKPOINT)).unwrap_or_default();
        let mut partition = Partition {
            tp,
            dir: dir.to_path_buf(),
            log,
            config,
            leader_epoch,
            replicas,
            isr,
            high_watermark: Offset(0),
            producers: ProducerStateManager::default(),
            last_snapshot: None,
            epochs: LeaderEpochCache::new(saved_epochs.clone()),
            epochs_dirty: false,
            scratch: Vec::new(),
        };
        let snapshot_offset = partition.load_producer_snapshot();
        partition.rebuild_state(saved_epochs.is_empty(), snapshot_offset)?;
        partition.epochs.truncate_from_end(partition.log.log_end_offset().plus(1));
        partition.maybe_advance_high_watermark();
        Ok(partition)
    }

    /// Loads the newest producer snapshot at or below the log end (removing any beyond it,
    /// left by a truncation). Returns the offset it covers, or the log start offset if there
    /// is none.
    fn load_producer_snapshot(&mut self) -> Offset {
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
    fn snapshot_producers(&mut self, at: Offset) -> std::io::Result<()> {
        if self.last_snapshot == Some(at) {
            return Ok(());
        }
        producer_snapshot::write_snapshot(&self.dir, at, &self.producers.snapshot_entries())?;
        self.last_snapshot = Some(at);
        Ok(())
    }

    /// Replays batch headers from `producers_from` to rebuild idempotent producer state (and,
    /// if the checkpoint was missing, the whole epoch cache).
    fn rebuild_state(&mut self, rebuild_epochs: bool, producers_from: Offset) -> Result<(), fjord_log::Error> {
        let mut next = if rebuild_epochs { self.log.log_start_offset() } else { producers_from };
        while next < self.log.log_end_offset() {
            let bytes = self.log.read_bytes(next, 4 * 1024 * 1024, None)?;
            if bytes.is_empty() {
                break;
            }
            for batch in Batches::new(&bytes) {
                let batch = batch?;
                if rebuild_epochs && !batch.partition_leader_epoch().is_none() {
                    self.epochs_dirty |= self.epochs.assign(batch.partition_leader_epoch(), batch.base_offset());
                }
                if !batch.producer_id().is_none() && batch.base_sequence() >= 0 && batch.base_offset() >= producers_from
                {
                    self.producers.update(batch.producer_id(), batch.producer_epoch(), metadata_of(&batch));
                }
                next = batch.next_offset();
            }
        }
        Ok(())
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

    /// The current leader epoch.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    /// The high watermark: consumers read below it.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
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
        (&self.replicas, &self.isr)
    }

    /// The settings.
    pub fn config(&self) -> &PartitionConfig {
        &self.config
    }

    /// The log, for inspection.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The log, for maintenance that only moves its start (retention). Appends must go through
    /// [`Partition::append_as_leader`].
    pub fn log_mut(&mut self) -> &mut Log {
        &mut self.log
    }

    /// Applies changed settings (AlterConfigs) from the next append on.
    pub fn set_config(&mut self, config: PartitionConfig) {
        self.log.set_config(config.log.clone());
        self.config = config;
    }

    /// With every replica in the ISR caught up, the high watermark is the lowest log end offset
    /// in the ISR; for an ISR of one, the leader's own.
    fn maybe_advance_high_watermark(&mut self) {
        self.high_watermark = self.high_watermark.max(self.log.log_end_offset());
    }

    /// Validates and appends a produce request's records for this partition.
    ///
    /// Checks, per batch: format v2, CRC, size, no transactional or control batches, record
    /// structure (decompressing), CreateTime timestamps within the allowed window, and the
    /// producer's sequence. A retry of one of the producer's last five batches is answered with
    /// the original offsets and not written.
    pub fn append_as_leader(&mut self, records: &[u8], acks: i16, now: Timestamp) -> Result<AppendResult, AppendError> {
        if acks == -1 && (self.isr.len() as i32) < self.config.min_insync_replicas {
            return Err(AppendError::NotEnoughReplicas {
                isr: self.isr.len(),
                required: self.config.min_insync_replicas,
            });
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
                log_append_time: Timestamp::NONE,
                log_start_offset: self.log.log_start_offset(),
                duplicate: true,
            });
        }
        let active_base = self.log.active_segment_base();
        let info = self.log.append(records, AppendMode::Leader { leader_epoch: self.leader_epoch }, now).map_err(
            |e| match e {
                e @ fjord_log::Error::CorruptBatch { .. } => AppendError::Corrupt(e.to_string()),
                e => AppendError::Storage(e),
            },
        )?;
        if self.log.active_segment_base() != active_base {
            // The log rolled: snapshot the state of everything before this append, as Kafka
            // does at each roll, so it survives the deletion of the segments that built it. A
            // failed write costs only replay time at the next open (the older snapshot stays),
            // so it does not fail the append.
            let _ = self.snapshot_producers(info.first_offset);
        }
        // The request's bytes keep the producer's offsets (the log wrote the leader's headers),
        // so the offsets are laid out again here the way the log assigned them.
        let mut base_offset = info.first_offset;
        for batch in Batches::new(records) {
            let batch = batch.map_err(AppendError::Storage)?;
            if !batch.producer_id().is_none() {
                let mut metadata = metadata_of(&batch);
                metadata.first_offset = base_offset;
                metadata.last_offset = base_offset.plus(i64::from(batch.last_offset_delta()));
                if info.log_append_time != Timestamp::NONE {
                    metadata.timestamp = info.log_append_time;
                }
                self.producers.update(batch.producer_id(), batch.producer_epoch(), metadata);
            }
            base_offset = base_offset.plus(i64::from(batch.last_offset_delta()) + 1);
        }
        self.epochs_dirty |= self.epochs.assign(self.leader_epoch, info.first_offset);
        self.maybe_advance_high_watermark();
        Ok(AppendResult {
            base_offset: info.first_offset,
            log_append_time: info.log_append_time,
            log_start_offset: self.log.log_start_offset(),
            duplicate: false,
        })
    }

    /// Runs the leader's checks; returns the duplicate's metadata if the append is a retry.
    fn check_batches(
        &self,
        records: &[u8],
        scratch: &mut Vec<u8>,
        now: Timestamp,
    ) -> Result<Option<BatchMetadata>, AppendError> {
        let mut position = 0;
        let mut pending: Vec<(ProducerId, ProducerEpoch, BatchMetadata)> = Vec::new();
        while position < records.len() {
            let rest = &records[position..];
            if rest.len() > 16 && rest[16] != fjord_log::MAGIC_V2 {
                return Err(AppendError::UnsupportedMagic(rest[16]));
            }
            let batch = RecordBatch::parse(rest).map_err(|e| AppendError::Corrupt(e.to_string()))?;
            let checked = self.check_batch(&batch, &mut pending, scratch, now);
            // The log checks every CRC as it writes. Here the CRCs are checked only when the
            // append goes no further (refused, or a retry answered from memory), so that a
            // damaged batch is reported as damaged, not as whatever its damage looks like.
            if !matches!(checked, Ok(None)) {
                for batch in Batches::new(&records[..position + batch.size()]) {
                    let batch = batch.map_err(|e| AppendError::Corrupt(e.to_string()))?;
                    batch.validate().map_err(|e| AppendError::Corrupt(e.to_string()))?;
                }
            }
            if let Some(duplicate) = checked? {
                return Ok(Some(duplicate));
            }
            position += batch.size();
        }
        Ok(None)
    }

    /// The leader's checks of one batch (all but its CRC); returns the original's metadata if
    /// the batch is a retry of one already appended.
    fn check_batch(
        &self,
        batch: &RecordBatch<'_>,
        pending: &mut Vec<(ProducerId, ProducerEpoch, BatchMetadata)>,
        scratch: &mut Vec<u8>,
        now: Timestamp,
    ) -> Result<Option<BatchMetadata>, AppendError> {
        if batch.size() > self.config.log.max_message_bytes {
            return Err(AppendError::TooLarge { size: batch.size(), limit: self.config.log.max_message_bytes });
        }
        if batch.is_transactional() || batch.is_control() {
            return Err(AppendError::Transactional);
        }
        self.check_records(batch, scratch, now)?;
        if batch.producer_id().is_none() {
            return Ok(None);
        }
        if batch.base_sequence() < 0 {
            return Err(AppendError::InvalidRecord("idempotent batch without a base sequence".into()));
        }
        // Batches earlier in this append count as appended for the later ones' checks.
        let mut state = (!pending.is_empty()).then(|| self.producers.clone());
        let state = match state.as_mut() {
            Some(state) => {
                for (producer, epoch, meta) in pending.iter() {
                    state.update(*producer, *epoch, *meta);
                }
                &*state
            }
            None => &self.producers,
        };
        match state.check(batch.producer_id(), batch.producer_epoch(), batch.base_sequence(), batch.last_sequence())? {
            SequenceCheck::Duplicate(original) => Ok(Some(original)),
            SequenceCheck::Append => {
                pending.push((batch.producer_id(), batch.producer_epoch(), metadata_of(batch)));
                Ok(None)
            }
        }
    }

    /// Walks every record: structure, offset deltas, and CreateTime timestamps.
    fn check_records(&self, batch: &RecordBatch<'_>, scratch: &mut Vec<u8>, now: Timestamp) -> Result<(), AppendError> {
        scratch.clear();
        let bytes = if batch.compression() == Compression::None {
            batch.records_bytes()
        } else {
            let limit = self.config.log.max_message_bytes.saturating_mul(MAX_DECOMPRESSED_FACTOR);
            batch.decompress_records(scratch, limit).map_err(|e| AppendError::Corrupt(e.to_string()))?;
            &scratch[..]
        };
        let create_time = batch.timestamp_type() == TimestampType::CreateTime;
        let earliest = now.0.saturating_sub(self.config.timestamp_before_max_ms);
        let latest = now.0.saturating_add(self.config.timestamp_after_max_ms);
        let mut records = batch.records_in(bytes);
        let mut previous_delta = -1i64;
        let mut count = 0;
        for record in records.by_ref() {
            let record = record.map_err(|e| AppendError::InvalidRecord(e.to_string()))?;
            let delta = record.offset().since(batch.base_offset());
            if delta <= previous_delta || delta > i64::from(batch.last_offset_delta()) {
                return Err(AppendError::InvalidRecord(format!("offset delta {delta} out of order")));
            }
            previous_delta = delta;
            for header in record.headers() {
                header.map_err(|e| AppendError::InvalidRecord(e.to_string()))?;
            }
            if self.config.compacted && record.key().is_none() {
                // Compaction keeps the latest record per key; a record without one has no place.
                return Err(AppendError::InvalidRecord(format!(
                    "Compacted topic cannot accept message without key in topic partition {}",
                    self.tp
                )));
            }
            if create_time && (record.timestamp().0 < earliest || record.timestamp().0 > latest) {
                return Err(AppendError::InvalidTimestamp { timestamp: record.timestamp().0, offset_delta: delta });
            }
            count += 1;
        }
        if count != batch.record_count() || !records.remaining_bytes().is_empty() {
            return Err(AppendError::InvalidRecord(format!(
                "batch claims {} records but holds {count} and {} stray bytes",
                batch.record_count(),
                records.remaining_bytes().len()
            )));
        }
        Ok(())
    }

    fn check_leader_epoch(&self, requested: Option<LeaderEpoch>) -> Result<(), ReadError> {
        match requested {
            Some(epoch) if !epoch.is_none() && epoch < self.leader_epoch => {
                Err(ReadError::FencedLeaderEpoch { requested: epoch, current: self.leader_epoch })
            }
            Some(epoch) if epoch > self.leader_epoch => {
                Err(ReadError::UnknownLeaderEpoch { requested: epoch, current: self.leader_epoch })
            }
            _ => Ok(()),
        }
    }

    /// Reads for a consumer: whole batches from the one holding `fetch_offset`, below the high
    /// watermark, at most `max_bytes` unless `min_one_batch`.
    pub fn read(
        &self,
        fetch_offset: Offset,
        max_bytes: u64,
        min_one_batch: bool,
        current_leader_epoch: Option<LeaderEpoch>,
    ) -> Result<ReadResult, ReadError> {
        self.check_leader_epoch(current_leader_epoch)?;
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        if fetch_offset < start || fetch_offset > end {
            return Err(ReadError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        let range = self.log.read(fetch_offset, max_bytes, Some(self.high_watermark), min_one_batch)?;
        Ok(ReadResult {
            range,
            high_watermark: self.high_watermark,
            last_stable_offset: self.high_watermark,
            log_start_offset: start,
        })
    }

    /// ListOffsets: the offset (and its timestamp and epoch) for `timestamp`, or one of
    /// Kafka's sentinels (-1 latest, -2 earliest, -3 max timestamp). `None` if no record at or
    /// below the high watermark qualifies.
    pub fn list_offset(
        &self,
        timestamp: Timestamp,
        current_leader_epoch: Option<LeaderEpoch>,
    ) -> Result<Option<(Timestamp, Offset, LeaderEpoch)>, ReadError> {
        self.check_leader_epoch(current_leader_epoch)?;
        let found = match timestamp {
            Timestamp::LATEST => Some((Timestamp::NONE, self.high_watermark)),
            Timestamp::EARLIEST => Some((Timestamp::NONE, self.log.log_start_offset())),
            Timestamp::MAX_TIMESTAMP => self.log.max_timestamp_record()?.map(|f| (f.timestamp, f.offset)),
            _ => self.log.offset_for_timestamp(timestamp)?.map(|f| (f.timestamp, f.offset)),
        };
        let fetchable = |offset: Offset| offset <= self.high_watermark && offset >= self.log.log_start_offset();
        Ok(found.filter(|(ts, offset)| fetchable(*offset) && (ts.is_none() || *offset < self.high_watermark)).map(
            |(ts, offset)| {
                let epoch = if offset == self.high_watermark { self.leader_epoch } else { self.epoch_for(offset) };
                (ts, offset, epoch)
            },
        ))
    }

    /// The epoch under which `offset` was written.
    fn epoch_for(&self, offset: Offset) -> LeaderEpoch {
        self.epochs.entries().iter().rev().find(|e| e.start_offset <= offset).map_or(LeaderEpoch::NONE, |e| e.epoch)
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` and where it ends.
    pub fn end_offset_for_epoch(
        &self,
        epoch: LeaderEpoch,
        current_leader_epoch: Option<LeaderEpoch>,
    ) -> Result<Option<(LeaderEpoch, Offset)>, ReadError> {
        self.check_leader_epoch(current_leader_epoch)?;
        Ok(self.epochs.end_offset_for(epoch, self.log.log_end_offset()))
    }

    /// DeleteRecords: raises the log start offset to `offset` (-1: the high watermark) and drops
    /// the segments wholly below it. Returns the new low watermark.
    pub fn delete_records(&mut self, offset: Offset) -> Result<Offset, ReadError> {
        let target = if offset == Offset(-1) { self.high_watermark } else { offset };
        if target < Offset(0) || target > self.high_watermark {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log.log_start_offset(),
                log_end_offset: self.high_watermark,
            });
        }
        self.log.increment_log_start_offset(target)?;
        let start = self.log.log_start_offset();
        let below: Option<Offset> = self
            .log
            .segments()
            .iter()
            .take_while(|s| s.next_offset <= start && !s.is_active)
            .last()
            .map(|s| s.next_offset);
        if let Some(first_kept) = below {
            for segment in self.log.delete_segments_before(first_kept)? {
                segment.remove()?;
            }
        }
        Ok(start)
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

    /// Checks the invariants: log start <= high watermark <= log end; leader in the ISR.
    pub fn validate(&self) -> Result<(), String> {
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        if !(start <= self.high_watermark && self.high_watermark <= end) {
            return Err(format!(
                "{}: log start {start} <= hw {} <= log end {end} violated",
                self.tp, self.high_watermark
            ));
        }
        self.log.validate().map_err(|e| e.to_string())
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
#[path = "partition_tests.rs"]
mod tests;
