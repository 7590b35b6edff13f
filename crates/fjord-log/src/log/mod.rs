//! A partition's log: an ordered set of segments in one directory (Kafka's `UnifiedLog` and
//! `LocalLog`, without replication, which lives in `fjord-replication`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use fjord_types::{LeaderEpoch, Offset, Timestamp};

use crate::batch::{RecordBatch, TimestampType};
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::file_range::FileRange;
use crate::segment::{OutgoingBatch, Segment, SegmentRead};
use crate::time_index::TimestampOffset;

/// The marker a clean [`Log::close`] leaves in the partition directory. Its presence at open
/// means every byte was flushed and the indexes were trimmed, so no recovery scan is needed.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

/// Who assigns the offsets of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendMode {
    /// The partition leader: offsets continue from the log end offset, each batch is stamped
    /// with `leader_epoch`, and LogAppendTime topics get the append time.
    Leader {
        /// The leader's epoch, written into each batch's partitionLeaderEpoch.
        leader_epoch: LeaderEpoch,
    },
    /// A follower copying the leader: batches keep their offsets, which must follow the log
    /// end offset in order.
    Replica,
}

/// What an append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// The first offset of the first batch.
    pub first_offset: Offset,
    /// The last offset of the last batch.
    pub last_offset: Offset,
    /// The largest timestamp appended (the append time for LogAppendTime).
    pub max_timestamp: Timestamp,
    /// The last offset of the batch holding `max_timestamp`.
    pub offset_of_max_timestamp: Offset,
    /// The broker time stamped on the batches, or [`Timestamp::NONE`] for CreateTime.
    pub log_append_time: Timestamp,
    /// Batches appended.
    pub batch_count: u32,
    /// Bytes appended.
    pub bytes: u64,
}

/// Where recovery starts when a log is opened after an unclean shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenOptions {
    /// Every offset below this is known to be on stable storage (Kafka keeps it in
    /// `recovery-point-offset-checkpoint`); segments from the one holding it are checked.
    pub recovery_point: Offset,
    /// The log start offset persisted by the caller (`log-start-offset-checkpoint`), which may
    /// lie inside the first segment after DeleteRecords.
    pub log_start_offset: Offset,
}

/// What opening the log found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// Whether the last shutdown was clean (no scan needed).
    pub clean_shutdown: bool,
    /// Base offsets of the segments whose batches were checked.
    pub recovered_segments: Vec<Offset>,
    /// Bytes cut from a torn or corrupt tail.
    pub truncated_bytes: u64,
    /// Segments removed because they followed a corrupt one.
    pub deleted_segments: Vec<Offset>,
    /// Why recovery cut the log, if it did.
    pub reason: Option<String>,
    /// Segments replaced at open by a cleaned segment whose swap a crash interrupted.
    pub swapped_segments: Vec<Offset>,
}

/// A summary of one segment, for retention planning and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment's first offset (its file name).
    pub base_offset: Offset,
    /// The base offset of the next segment, or the log end offset for the active one.
    pub next_offset: Offset,
    /// The log file's size.
    pub size_bytes: u64,
    /// The largest record timestamp; the file's modification time if no record has one
    /// (Kafka's `largestTimestamp`); `None` for an empty segment.
    pub max_timestamp: Option<Timestamp>,
    /// The max timestamp of its first batch, what `max.compaction.lag.ms` counts from.
    pub first_timestamp: Option<Timestamp>,
    /// Whether appends go here; retention never removes it.
    pub is_active: bool,
}

/// A segment taken out of the log and renamed `*.deleted`; its files go when `remove` is called
/// (after `file.delete.delay.ms`, so reads in flight finish).
#[derive(Debug)]
pub struct DeletedSegment {
    /// The segment's base offset.
    pub base_offset: Offset,
    /// Its renamed files.
    pub files: Vec<PathBuf>,
}

impl DeletedSegment {
    /// Unlinks the files.
    pub fn remove(self) -> Result<()> {
        for file in &self.files {
            match std::fs::remove_file(file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(file)(e)),
                _ => {}
            }
        }
        Ok(())
    }
}

/// A partition's log on disk, in Kafka's layout.
///
/// `Log` is single-writer (`&mut self`) and does no locking; the broker wraps it. Reads return
/// [`FileRange`]s that stay valid after the lock is released.
///
/// ```
/// use fjord_log::{AppendMode, BatchBuilder, Log, LogConfig, OpenOptions, RecordBatch};
/// use fjord_types::{LeaderEpoch, Offset, Timestamp};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut log = Log::open(dir.path(), LogConfig::default(), OpenOptions::default(), Timestamp(0)).unwrap();
/// let mut batch = BatchBuilder::new();
/// batch.push(Timestamp(1_000), Some(b"k"), Some(b"v"), &[]);
/// let bytes = batch.build().unwrap();
/// let info = log.append(&bytes, AppendMode::Leader { leader_epoch: LeaderEpoch(7) }, Timestamp(1_000)).unwrap();
/// assert_eq!(info.first_offset, Offset(0));
/// let stored = log.read_bytes(Offset(0), 1 << 20, None).unwrap();
/// let batch = RecordBatch::parse_valid(&stored).unwrap();
/// assert_eq!((batch.base_offset(), batch.partition_leader_epoch()), (Offset(0), LeaderEpoch(7)));
/// // The leader set the offset and its epoch; everything the CRC covers is the producer's.
/// assert_eq!(stored[17..], bytes[17..]);
/// log.close().unwrap();
/// ```
#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) segments: BTreeMap<Offset, Segment>,
    pub(crate) log_start_offset: Offset,
    pub(crate) log_end_offset: Offset,
    pub(crate) recovery_point: Offset,
    pub(crate) unflushed_messages: i64,
    pub(crate) last_flush: Timestamp,
    pub(crate) dir_needs_sync: bool,
    /// Bumped by every truncation, so a flush planned before one does not move the recovery
    /// point over data written after it.
    pub(crate) truncations: u64,
    pub(crate) poisoned: Option<String>,
    pub(crate) open_report: OpenReport,
    /// The batches of the append in progress (kept to reuse its allocation).
    pub(crate) outgoing: Vec<OutgoingBatch>,
}

pub(crate) fn parse_base_offset(name: &str, suffix: &str) -> Option<Offset> {
    let digits = name.strip_suffix(suffix)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok().map(Offset))
        .flatten()
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir))
}

mod trim;

impl Log {
    /// What [`Log::open`] found.
    pub fn open_report(&self) -> &OpenReport {
        &self.open_report
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Changes settings; they apply from the next append (index sizes from the next segment).
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The first offset a consumer can read.
    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }

    /// The offset the next record will get.
    pub fn log_end_offset(&self) -> Offset {
        self.log_end_offset
    }

    /// Offsets below this are on stable storage.
    pub fn recovery_point(&self) -> Offset {
        self.recovery_point
    }

    /// Bytes in all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// The base offset of the active segment (it changes when the log rolls).
    pub fn active_segment_base(&self) -> Offset {
        self.active().base_offset()
    }

    /// The number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Whether an I/O failure has taken the log offline for writes.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    pub(crate) fn active(&self) -> &Segment {
        self.segments.values().next_back().expect("a log always has a segment")
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        self.segments.values_mut().next_back().expect("a log always has a segment")
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(reason) => Err(Error::Poisoned { dir: self.dir.clone(), reason: reason.clone() }),
            None => Ok(()),
        }
    }

    /// Runs a write step; an I/O failure takes the log offline. A full disk does not: the
    /// append that met it undid its write (`Error::NoSpace`), so the log is as it was.
    pub(crate) fn guard<T>(&mut self, step: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.check_poisoned()?;
        let result = step(self);
        if let Err(error @ Error::Io { .. }) = &result {
            self.poisoned = Some(error.to_string());
        }
        result
    }

    /// Appends one or more v2 batches laid end to end (a produce request's records).
    ///
    /// Every batch is checked (structure, CRC, `max.message.bytes`) before anything is written;
    /// a leader then assigns offsets from the log end offset, stamps its epoch and, for
    /// LogAppendTime, the time. Those fields all lie in a batch's 61-byte header, so the leader
    /// writes new headers and the rest of each batch straight from `records` in one vectored
    /// write: `records` is left as it was, and nothing is copied. Per batch, not per record.
    pub fn append(&mut self, records: &[u8], mode: AppendMode, now: Timestamp) -> Result<AppendInfo> {
        self.check_poisoned()?;
        if records.is_empty() {
            return Err(Error::corrupt("an append must hold at least one batch"));
        }
        let log_append_time = match (mode, self.config.message_timestamp_type) {
            (AppendMode::Leader { .. }, TimestampType::LogAppendTime) => Some(now),
            _ => None,
        };
        let mut next = self.log_end_offset;
        let mut first_offset = None;
        let mut max_timestamp = Timestamp::NONE;
        let mut offset_of_max_timestamp = Offset::NONE;
        let mut batches = std::mem::take(&mut self.outgoing);
        batches.clear();
        let mut position = 0;
        while position < records.len() {
            let batch = RecordBatch::parse(&records[position..]).map_err(|e| match e {
                Error::IncompleteBatch { .. } => Error::corrupt(format!("trailing partial batch: {e}")),
                e => e,
            })?;
            batch.validate()?;
            let size = batch.size();
            if size > self.config.max_message_bytes {
                return Err(Error::BatchTooLarge { size, limit: self.config.max_message_bytes });
            }
            let delta = i64::from(batch.last_offset_delta());
            let header = match mode {
                AppendMode::Leader { leader_epoch } => Some(batch.leader_header(next, leader_epoch, log_append_time)),
                AppendMode::Replica => {
                    if batch.base_offset() < next {
                        return Err(Error::OffsetsOutOfOrder {
                            first_offset: batch.base_offset(),
                            log_end_offset: next,
                        });
                    }
                    next = batch.base_offset();
                    None
                }
            };
            first_offset.get_or_insert(next);
            let last_offset = next.plus(delta);
            let batch_max_timestamp = log_append_time.unwrap_or(batch.max_timestamp());
            if batch_max_timestamp > max_timestamp {
                max_timestamp = batch_max_timestamp;
                offset_of_max_timestamp = last_offset;
            }
            batches.push(OutgoingBatch {
                header,
                bytes: position..position + size,
                last_offset,
                max_timestamp: batch_max_timestamp,
            });
            next = last_offset.plus(1);
            position += size;
        }
        let first_offset = first_offset.expect("at least one batch");
        let batch_count = batches.len() as u32;
        let result = self.write_batches(records, &batches, first_offset, max_timestamp, next, now);
        self.outgoing = batches;
        result?;
        let last_offset = next.plus(-1);
        Ok(AppendInfo {
            first_offset,
            last_offset,
            max_timestamp,
            offset_of_max_timestamp,
            log_append_time: log_append_time.unwrap_or(Timestamp::NONE),
            batch_count,
            bytes: records.len() as u64,
        })
    }

    /// The write half of [`Log::append`]: rolls if due, writes, advances the log end offset.
    fn write_batches(
        &mut self,
        records: &[u8],
        batches: &[OutgoingBatch],
        first_offset: Offset,
        max_timestamp: Timestamp,
        next: Offset,
        now: Timestamp,
    ) -> Result<()> {
        let bytes = records.len() as u64;
        if bytes > self.config.segment_bytes {
            return Err(Error::BatchTooLarge { size: records.len(), limit: self.config.segment_bytes as usize });
        }
        let last_offset = next.plus(-1);
        self.guard(|log| {
            if log.active().should_roll(&log.config, bytes, max_timestamp, last_offset, now) {
                // The new segment starts at the log end offset even when a replica's batch
                // jumps ahead (a gap compaction left on the leader), so every segment ends
                // exactly where the next begins: that is how recovery tells a lost tail from
                // a gap (see `Log::open`). Only a jump too far for relative offsets starts
                // the segment at the batch itself.
                let end = log.log_end_offset;
                let base = if last_offset.since(end) > i64::from(i32::MAX) { first_offset } else { end };
                log.roll_at(base, now)?;
            }
            log.active_mut().append_batches(records, batches)
        })?;
        self.log_end_offset = next;
        self.unflushed_messages += last_offset.since(first_offset) + 1;
        if self.unflushed_messages >= self.config.flush_messages {
            self.flush(now)?;
        }
        Ok(())
    }

    /// Closes the active segment and starts a new one at the log end offset (Kafka's `roll`),
    /// unless the active segment is empty.
    pub fn roll(&mut self, now: Timestamp) -> Result<()> {
        let at = self.log_end_offset;
        self.guard(|log| log.roll_at(at, now))
    }

    /// Rolls the active segment if it is older than `segment.ms` (or its index is full) although
    /// nothing was appended, so time retention can act on a quiet partition. Returns whether it
    /// rolled.
    pub fn roll_if_due(&mut self, now: Timestamp) -> Result<bool> {
        let last = Offset(self.log_end_offset.0 - 1);
        if self.active().size() == 0 || !self.active().should_roll(&self.config, 0, now, last, now) {
            return Ok(false);
        }
        self.roll(now)?;
        Ok(true)
    }

    fn roll_at(&mut self, base: Offset, now: Timestamp) -> Result<()> {
        if self.active().size() == 0 {
            if self.active().base_offset() == base {
                return Ok(());
            }
            // An empty active segment at another offset (a replica's first append jumped ahead):
            // replace it.
            let old = self.active().base_offset();
            let mut segment = self.segments.remove(&old).expect("active segment");
            let _ = segment.rename_to_deleted().map(|files| DeletedSegment { base_offset: old, files }.remove());
        } else {
            self.active_mut().on_become_inactive()?;
        }
        let segment = Segment::create(&self.dir, base, &self.config, now)?;
        self.segments.insert(base, segment);
        self.dir_needs_sync = true;
        Ok(())
    }

    /// Whole batches from the one holding `start_offset`, within one segment, at most
    /// `max_bytes` (but the whole first batch if `min_one_batch`), and only batches that end
    /// below `max_offset` (the high watermark) when given. `None` when there is nothing to send.
    pub fn read(
        &self,
        start_offset: Offset,
        max_bytes: u64,
        max_offset: Option<Offset>,
        min_one_batch: bool,
    ) -> Result<Option<FileRange>> {
        if start_offset < self.log_start_offset || start_offset > self.log_end_offset {
            return Err(Error::OffsetOutOfRange {
                offset: start_offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        let upper = max_offset.map_or(self.log_end_offset, |m| m.min(self.log_end_offset));
        if start_offset >= upper {
            return Ok(None);
        }
        let from = self.segments.range(..=start_offset).next_back().map_or(Offset(0), |(base, _)| *base);
        let mut segments = self.segments.range(from..).peekable();
        while let Some((_, segment)) = segments.next() {
            let upper_beyond = segments.peek().is_some_and(|(next_base, _)| **next_base <= upper);
            let max_position = if upper_beyond { segment.size() } else { segment.position_of(upper)? };
            match segment.read(start_offset, max_bytes, max_position, min_one_batch)? {
                SegmentRead::Range(range) => return Ok(Some(range)),
                SegmentRead::Nothing => return Ok(None),
                SegmentRead::NotHere => continue,
            }
        }
        Ok(None)
    }

    /// [`Log::read`] (with `min_one_batch`) copied into memory: for tools and tests.
    pub fn read_bytes(&self, start_offset: Offset, max_bytes: u64, max_offset: Option<Offset>) -> Result<Vec<u8>> {
        match self.read(start_offset, max_bytes, max_offset, true)? {
            None => Ok(Vec::new()),
            Some(range) => range.read_to_vec().map_err(Error::io(self.dir.clone())),
        }
    }

    /// The first record whose timestamp is at least `target`, at or after the log start
    /// offset (ListOffsets by timestamp). `None` if every record is older.
    pub fn offset_for_timestamp(&self, target: Timestamp) -> Result<Option<TimestampOffset>> {
        for segment in self.segments.values() {
            if segment.max_timestamp().is_none_or(|m| m.timestamp < target) {
                continue;
            }
            if let Some(found) = segment.find_offset_by_timestamp(target, self.log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The first record carrying the largest timestamp in the log (ListOffsets -3, KIP-734).
    pub fn max_timestamp_record(&self) -> Result<Option<TimestampOffset>> {
        let mut best: Option<&Segment> = None;
        for segment in self.segments.values() {
            let Some(max) = segment.max_timestamp() else { continue };
            if best.and_then(Segment::max_timestamp).is_none_or(|b| max.timestamp > b.timestamp) {
                best = Some(segment);
            }
        }
        match best {
            Some(segment) => segment.max_timestamp_record(),
            None => Ok(None),
        }
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let bases: Vec<Offset> = self.segments.keys().copied().collect();
        self.segments
            .values()
            .enumerate()
            .map(|(i, segment)| SegmentInfo {
                base_offset: segment.base_offset(),
                next_offset: bases.get(i + 1).copied().unwrap_or(self.log_end_offset),
                size_bytes: segment.size(),
                max_timestamp: match segment.max_timestamp() {
                    Some(max) if max.timestamp.0 >= 0 => Some(max.timestamp),
                    // No record carries a timestamp: the file's modification time stands in,
                    // as in Kafka's `largestTimestamp`.
                    _ if segment.size() > 0 => segment.last_modified(),
                    _ => None,
                },
                first_timestamp: segment.first_batch_timestamp().filter(|t| t.0 >= 0),
                is_active: i + 1 == bases.len(),
            })
            .collect()
    }

    /// A closed segment's whole log file, readable without holding the log: segments never
    /// change once closed, and a range stays readable after its segment is deleted. `None`
    /// for the active segment or an unknown base offset.
    pub fn closed_segment_file(&self, base_offset: Offset) -> Option<FileRange> {
        let active = self.active().base_offset();
        (base_offset != active).then(|| self.segments.get(&base_offset).map(Segment::whole_file)).flatten()
    }

    /// Writes everything appended so far to stable storage and advances the recovery point:
    /// a [`FlushPlan`](crate::FlushPlan) up to the log end, synced while the log is held.
    pub fn flush(&mut self, now: Timestamp) -> Result<()> {
        if let Some(plan) = self.plan_flush(self.log_end_offset)? {
            let synced = plan.sync();
            self.complete_flush(plan, synced, now)?;
        }
        self.unflushed_messages = 0;
        self.last_flush = now;
        Ok(())
    }

    /// Flushes if `flush.ms` has passed since the last flush and there is something to flush,
    /// holding the log while it syncs. Returns whether it flushed.
    pub fn maybe_flush(&mut self, now: Timestamp) -> Result<bool> {
        let Some(plan) = self.plan_flush_if_due(now)? else { return Ok(false) };
        let synced = plan.sync();
        self.complete_flush(plan, synced, now)?;
        Ok(true)
    }

    /// [`Log::maybe_flush`] for a caller that syncs with the log released: a plan up to the
    /// log end if `flush.ms` has passed since the last flush and there is something to flush.
    pub fn plan_flush_if_due(&mut self, now: Timestamp) -> Result<Option<crate::FlushPlan>> {
        let due = now.0.saturating_sub(self.last_flush.0) >= self.config.flush_ms;
        if due && self.recovery_point < self.log_end_offset { self.plan_flush(self.log_end_offset) } else { Ok(None) }
    }

    /// Flushes, trims the active segment's indexes and leaves the clean-shutdown marker, so the
    /// next open skips recovery.
    pub fn close(mut self) -> Result<()> {
        let now = self.last_flush;
        self.flush(now)?;
        self.guard(|log| {
            log.active_mut().on_become_inactive()?;
            for segment in log.segments.values() {
                segment.flush()?;
            }
            let marker = log.dir.join(CLEAN_SHUTDOWN_FILE);
            File::create(&marker).and_then(|f| f.sync_all()).map_err(Error::io(&marker))?;
            sync_dir(&log.dir)
        })
    }

    /// Paths of the segment files, oldest first (log, index, time index per segment).
    pub fn segment_files(&self) -> Vec<PathBuf> {
        self.segments
            .values()
            .flat_map(|s| {
                [
                    s.log_path().to_path_buf(),
                    s.offset_index().file().path().to_path_buf(),
                    s.time_index().file().path().to_path_buf(),
                ]
            })
            .collect()
    }

    /// Checks the invariants tests and the simulator rely on.
    pub fn validate(&self) -> Result<()> {
        let fail = |reason: String| Err(Error::CorruptFile { path: self.dir.clone(), reason });
        if self.log_start_offset > self.log_end_offset {
            return fail(format!("log start {} > log end {}", self.log_start_offset, self.log_end_offset));
        }
        if self.recovery_point > self.log_end_offset {
            return fail(format!("recovery point {} > log end {}", self.recovery_point, self.log_end_offset));
        }
        if self.active().next_offset()? != self.log_end_offset {
            return fail(format!(
                "active segment ends at {} but log end is {}",
                self.active().next_offset()?,
                self.log_end_offset
            ));
        }
        let first = *self.segments.keys().next().expect("a segment");
        if self.log_start_offset < first {
            return fail(format!("log start {} below first segment {first}", self.log_start_offset));
        }
        Ok(())
    }
}
