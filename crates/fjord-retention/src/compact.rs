//! The compact policy: which part of a log may be cleaned ([`cleanable`]), and the cleaner
//! that keeps only the latest record per key there ([`Cleaner`], Kafka's `LogCleaner`).
//!
//! A log is split at the *first dirty offset* (the cleaner's checkpoint): below it every key
//! appears at most once already; from it up to the *cleanable end* lies the dirty part. The
//! cleanable end is the first segment that is active, reaches the high watermark, or holds a
//! record younger than `min.compaction.lag.ms`. A log is due for cleaning when its dirty part
//! is at least `min.cleanable.dirty.ratio` of the cleanable bytes, or when a dirty record is
//! older than `max.compaction.lag.ms`.
//!
//! Cleaning maps every key of the dirty part to its latest offset ([`OffsetMap`]), then copies
//! the segments below the cleanable end, in groups that fit `segment.bytes`, keeping a record
//! unless a later offset holds its key. Offsets are preserved; batches whose records all stay
//! are copied as they are, the others rewritten with the same codec and header. Tombstones
//! (null values) stay for `delete.retention.ms` after the cleaning that first sees them, which
//! stamps their batch with a delete horizon (KIP-534); a later cleaning drops them. An
//! idempotent producer's last batch keeps at least its header, so its sequence state survives,
//! and so does each segment's last batch, so a cleaned segment still ends where the next one
//! begins: recovery after a crash reads a segment that stops short as a lost tail.
//! Each group is swapped in crash-safely by [`Log::replace_segments`].
//!
//! The work splits into three steps so a broker need not hold the log while cleaning:
//! [`CleanTask::new`] snapshots the closed segments (under the log's lock), [`Cleaner::run`]
//! reads and writes files without it, and the `swap` callback takes the lock again for each
//! group. [`Cleaner::clean`] does all three on a log the caller owns.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fjord_log::{
    BatchBuilder, CleanedSegment, DeletedSegment, FileRange, Header, Log, LogConfig, RecordBatch, batch_size,
};
use fjord_types::{Clock, Offset, Timestamp};

use crate::offset_map::OffsetMap;

mod policy;

pub use policy::{CleanState, Cleanable, CompactionConfig, cleanable, most_due};

/// A cleaner's resources, under Kafka's broker config names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerOptions {
    /// `log.cleaner.dedupe.buffer.size` (divided among the cleaner threads): the most memory
    /// the key map may take (default 128 MiB). The dirty part beyond what fits is left for the
    /// next cleaning.
    pub dedupe_buffer_size: usize,
    /// `log.cleaner.io.max.bytes.per.second`: bytes read and written per second, at most
    /// (default unlimited: `f64::MAX`).
    pub io_max_bytes_per_second: f64,
    /// `log.cleaner.io.buffer.size`: the read buffer, grown for a larger batch (default 512 KiB).
    pub io_buffer_size: usize,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions { dedupe_buffer_size: 128 << 20, io_max_bytes_per_second: f64::MAX, io_buffer_size: 512 << 10 }
    }
}

/// A closed segment as the task saw it.
#[derive(Debug, Clone)]
struct Source {
    base_offset: Offset,
    next_offset: Offset,
    file: FileRange,
}

/// One cleaning of one log: its closed segments up to the cleanable end, snapshotted from the
/// log so the work can proceed without it.
#[derive(Debug, Clone)]
pub struct CleanTask {
    dir: PathBuf,
    log_config: LogConfig,
    sources: Vec<Source>,
    first_dirty: Offset,
    end: Offset,
    config: CompactionConfig,
    keep_batches_ending_at: HashSet<Offset>,
    /// The last offset of each source segment, whose batch keeps at least its header.
    segment_ends: HashSet<Offset>,
    now: Timestamp,
}

impl CleanTask {
    /// Snapshots the segments of `log` below `cleanable.end`. `None` if there are none.
    pub fn new(log: &Log, cleanable: &Cleanable, config: CompactionConfig, now: Timestamp) -> Option<CleanTask> {
        if cleanable.clean_bytes + cleanable.dirty_bytes == 0 {
            return None;
        }
        let sources: Vec<Source> = log
            .segments()
            .into_iter()
            .filter(|s| s.base_offset < cleanable.end)
            .map(|s| {
                let file = log.closed_segment_file(s.base_offset)?;
                Some(Source { base_offset: s.base_offset, next_offset: s.next_offset, file })
            })
            .collect::<Option<_>>()?;
        let segment_ends = sources.iter().map(|s| s.next_offset.plus(-1)).collect();
        Some(CleanTask {
            dir: log.dir().to_path_buf(),
            log_config: log.config().clone(),
            sources,
            first_dirty: cleanable.first_dirty,
            end: cleanable.end,
            config,
            keep_batches_ending_at: HashSet::new(),
            segment_ends,
            now,
        })
    }

    /// Keeps (at least the header of) the batches ending at these offsets: each idempotent
    /// producer's last batch, so its sequence state can be rebuilt from the log.
    pub fn keep_batches_ending_at(mut self, last_offsets: impl IntoIterator<Item = Offset>) -> Self {
        self.keep_batches_ending_at.extend(last_offsets);
        self
    }
}

/// What a cleaning did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanStats {
    /// The new first dirty offset, to checkpoint (`cleaner-offset-checkpoint`).
    pub first_dirty: Offset,
    /// Keys in the map.
    pub keys: usize,
    /// Segments replaced.
    pub segments_replaced: usize,
    /// Segments written.
    pub segments_written: usize,
    /// Bytes read (mapping and copying).
    pub bytes_read: u64,
    /// Bytes of the segments cleaned.
    pub bytes_before: u64,
    /// Bytes of the segments written.
    pub bytes_after: u64,
    /// Records read in the copying pass.
    pub records_read: u64,
    /// Records kept.
    pub records_kept: u64,
    /// Tombstones dropped because their delete horizon passed.
    pub tombstones_dropped: u64,
    /// The earliest delete horizon of a tombstone kept: clean again after it to drop it.
    pub next_delete_horizon: Option<Timestamp>,
    /// Time spent throttled by `log.cleaner.io.max.bytes.per.second`.
    pub throttled: Duration,
}

/// A cleaner's reusable state: the key map and buffers. One per cleaner thread.
#[derive(Debug)]
pub struct Cleaner {
    options: CleanerOptions,
    map: OffsetMap,
    read: Vec<u8>,
    decompressed: Vec<u8>,
    out: Vec<u8>,
    builder: BatchBuilder,
    throttle: Throttle,
}

/// Bound on one decompressed batch while cleaning.
const MAX_DECOMPRESSED: usize = 256 << 20;
/// Output buffered before it is appended to the cleaned segment.
const WRITE_CHUNK: usize = 1 << 20;

impl Cleaner {
    /// A cleaner with the given bounds; memory is taken as logs need it, up to them. Its I/O
    /// throttle (`log.cleaner.io.max.bytes.per.second`) reads and waits on `clock`: the
    /// caller's, so the cleaner itself never reads the time or sleeps.
    pub fn new(options: CleanerOptions, clock: Arc<dyn Clock>) -> Cleaner {
        Cleaner {
            map: OffsetMap::new(options.dedupe_buffer_size),
            read: Vec::new(),
            decompressed: Vec::new(),
            out: Vec::new(),
            builder: BatchBuilder::new(),
            throttle: Throttle::new(options.io_max_bytes_per_second, clock),
            options,
        }
    }

    /// Cleans `log` now if it is due, holding it throughout: the one-call form for a log the
    /// caller owns. Returns what was done and the replaced segments (renamed `*.deleted`) to
    /// remove, or `None` if the log was not due; `state` moves on.
    pub fn clean(
        &mut self,
        log: &mut Log,
        state: &mut CleanState,
        high_watermark: Offset,
        config: &CompactionConfig,
        now: Timestamp,
    ) -> fjord_log::Result<Option<(CleanStats, Vec<DeletedSegment>)>> {
        let found = cleanable(&log.segments(), log.log_start_offset(), state.first_dirty, high_watermark, config, now);
        if !state.is_due(&found, config, now) {
            return Ok(None);
        }
        let Some(task) = CleanTask::new(log, &found, *config, now) else { return Ok(None) };
        let mut deleted = Vec::new();
        let stats = self.run(&task, |cleaned, replaced| {
            deleted.extend(log.replace_segments(cleaned, replaced)?);
            Ok(())
        })?;
        *state = CleanState { first_dirty: stats.first_dirty, next_delete_horizon: stats.next_delete_horizon };
        Ok(Some((stats, deleted)))
    }

    /// Cleans the task's segments without touching the log; each cleaned group is handed to
    /// `swap` with the segments (base offset, size) it replaces, for
    /// [`Log::replace_segments`]. Stops at the first error (a group not swapped is
    /// discarded, its segments left as they were).
    pub fn run(
        &mut self,
        task: &CleanTask,
        mut swap: impl FnMut(CleanedSegment, &[(Offset, u64)]) -> fjord_log::Result<()>,
    ) -> fjord_log::Result<CleanStats> {
        let mut stats = CleanStats::default();
        let map_end = self.build_map(task, &mut stats)?;
        stats.first_dirty = map_end;
        stats.keys = self.map.len();
        let to_clean: Vec<&Source> = task.sources.iter().filter(|s| s.base_offset < map_end).collect();
        let mut start = 0;
        while start < to_clean.len() {
            let group_base = to_clean[start].base_offset;
            let mut end = start + 1;
            let mut size = to_clean[start].file.len;
            while let Some(next) = to_clean.get(end) {
                let fits = size + next.file.len <= task.log_config.segment_bytes
                    && next.next_offset.since(group_base) <= i64::from(i32::MAX);
                if !fits {
                    break;
                }
                size += next.file.len;
                end += 1;
            }
            let group = &to_clean[start..end];
            let cleaned = self.clean_group(task, group, &mut stats)?;
            let replaced: Vec<(Offset, u64)> = group.iter().map(|s| (s.base_offset, s.file.len)).collect();
            stats.bytes_before += size;
            stats.bytes_after += cleaned.size();
            swap(cleaned, &replaced)?;
            stats.segments_replaced += group.len();
            stats.segments_written += 1;
            start = end;
        }
        stats.throttled = self.throttle.throttled;
        self.throttle.throttled = Duration::ZERO;
        Ok(stats)
    }

    /// Maps the dirty part's keys to their latest offsets. Returns where mapping stopped: the
    /// cleanable end, or the first batch that no longer fit in the map.
    fn build_map(&mut self, task: &CleanTask, stats: &mut CleanStats) -> fjord_log::Result<Offset> {
        self.map.clear();
        let dirty = task.sources.iter().filter(|s| s.next_offset > task.first_dirty && s.base_offset < task.end);
        let capacity = self.map.capacity();
        for source in dirty {
            let Cleaner { read, decompressed, map, throttle, options, .. } = self;
            let mut stop = None;
            let bytes_read = for_each_batch(&source.file, read, options.io_buffer_size, throttle, |batch| {
                if batch.last_offset() < task.first_dirty || batch.is_control() {
                    return Ok(Some(0));
                }
                if map.len() + batch.record_count().max(0) as usize > capacity {
                    stop = Some(batch.base_offset());
                    return Ok(None);
                }
                for record in batch.records_in(records_section(batch, decompressed)?) {
                    let record = record?;
                    if let Some(key) = record.key()
                        && record.offset() >= task.first_dirty
                    {
                        map.put(key, record.offset());
                    }
                }
                Ok(Some(0))
            })?;
            stats.bytes_read += bytes_read;
            if let Some(stop) = stop {
                if stop <= task.first_dirty {
                    return Err(fjord_log::Error::InvalidConfig {
                        name: "log.cleaner.dedupe.buffer.size".into(),
                        value: options.dedupe_buffer_size.to_string(),
                        reason: format!("the key map cannot hold the batch at offset {stop}"),
                    });
                }
                return Ok(stop);
            }
        }
        Ok(task.end)
    }

    fn clean_group(
        &mut self,
        task: &CleanTask,
        group: &[&Source],
        stats: &mut CleanStats,
    ) -> fjord_log::Result<CleanedSegment> {
        let mut cleaned = CleanedSegment::create(&task.dir, group[0].base_offset, &task.log_config, task.now)?;
        let horizon = Timestamp(task.now.0.saturating_add(task.config.delete_retention_ms.max(0)));
        self.out.clear();
        for source in group {
            let Cleaner { read, decompressed, out, builder, map, throttle, options } = self;
            let bytes_read = for_each_batch(&source.file, read, options.io_buffer_size, throttle, |batch| {
                keep_from_batch(batch, task, map, decompressed, builder, out, horizon, stats)?;
                if out.len() < WRITE_CHUNK {
                    return Ok(Some(0));
                }
                cleaned.append(out)?;
                let written = out.len() as u64;
                out.clear();
                Ok(Some(written))
            })?;
            stats.bytes_read += bytes_read;
        }
        if !self.out.is_empty() {
            self.throttle.pass(self.out.len() as u64);
            cleaned.append(&self.out)?;
            self.out.clear();
        }
        Ok(cleaned)
    }
}

/// Appends to `out` what cleaning keeps of `batch`.
#[allow(clippy::too_many_arguments)]
fn keep_from_batch(
    batch: &RecordBatch<'_>,
    task: &CleanTask,
    map: &OffsetMap,
    decompressed: &mut Vec<u8>,
    builder: &mut BatchBuilder,
    out: &mut Vec<u8>,
    horizon: Timestamp,
    stats: &mut CleanStats,
) -> fjord_log::Result<()> {
    if batch.is_control() {
        out.extend_from_slice(batch.as_bytes());
        return Ok(());
    }
    // The key map filled up before this batch (`first_dirty` is where mapping stopped), so its
    // keys were not deduplicated this round: it is kept whole, tombstones included, and gets no
    // delete horizon yet. Dropping an expired tombstone here would bring back an older value
    // of its key lying below (Kafka keeps records past the map's latest offset too).
    if batch.base_offset() >= stats.first_dirty {
        let records = batch.record_count().max(0) as u64;
        stats.records_read += records;
        stats.records_kept += records;
        out.extend_from_slice(batch.as_bytes());
        return Ok(());
    }
    let tombstones_expired = batch.delete_horizon().is_some_and(|h| task.now >= h);
    let keep = |key: Option<&[u8]>, value: Option<&[u8]>, offset: Offset| match key {
        None => false, // compacted logs refuse keyless records; any older ones go
        Some(key) if map.get(key).is_some_and(|latest| latest > offset) => false,
        Some(_) => value.is_some() || !tombstones_expired,
    };
    let records = records_section(batch, decompressed)?;
    let (mut kept, mut total, mut tombstones) = (0u64, 0u64, 0u64);
    for record in batch.records_in(records) {
        let record = record?;
        total += 1;
        if keep(record.key(), record.value(), record.offset()) {
            kept += 1;
            tombstones += u64::from(record.value().is_none());
        } else if record.value().is_none() && record.key().is_some() && tombstones_expired {
            stats.tombstones_dropped += 1;
        }
    }
    stats.records_read += total;
    stats.records_kept += kept;
    let needs_horizon = tombstones > 0 && !batch.has_delete_horizon();
    if tombstones > 0 {
        let batch_horizon = batch.delete_horizon().unwrap_or(horizon);
        stats.next_delete_horizon = Some(stats.next_delete_horizon.map_or(batch_horizon, |h| h.min(batch_horizon)));
    }
    if kept == total && !needs_horizon {
        out.extend_from_slice(batch.as_bytes());
    } else if kept == 0 {
        let last = batch.last_offset();
        let producer_state = !batch.producer_id().is_none() && task.keep_batches_ending_at.contains(&last);
        if producer_state || task.segment_ends.contains(&last) {
            batch.write_empty_copy(out);
        }
    } else {
        builder.reset_like(batch);
        if needs_horizon {
            builder.set_delete_horizon(Some(horizon));
        }
        let mut headers: Vec<Header<'_>> = Vec::new();
        for record in batch.records_in(records) {
            let record = record?;
            if !keep(record.key(), record.value(), record.offset()) {
                continue;
            }
            headers.clear();
            for header in record.headers() {
                headers.push(header?);
            }
            let delta = record.offset().since(batch.base_offset()) as i32;
            builder.push_at(delta, record.timestamp(), record.key(), record.value(), &headers);
        }
        builder.build_into(out)?;
    }
    Ok(())
}

/// The records section of `batch`, decompressed into `scratch` if need be.
fn records_section<'a>(batch: &RecordBatch<'a>, scratch: &'a mut Vec<u8>) -> fjord_log::Result<&'a [u8]> {
    if batch.compression() == fjord_log::Compression::None {
        return Ok(batch.records_bytes());
    }
    scratch.clear();
    batch.decompress_records(scratch, MAX_DECOMPRESSED)?;
    Ok(scratch)
}

/// Reads a segment file through `buf` and calls `visit` with each whole batch until it
/// returns `None`; otherwise it returns the bytes it wrote, which count against the I/O limit
/// with the bytes read. Returns the bytes read. A torn batch is an error: closed segments were
/// checked at open.
fn for_each_batch(
    file: &FileRange,
    buf: &mut Vec<u8>,
    chunk: usize,
    throttle: &mut Throttle,
    mut visit: impl FnMut(&RecordBatch<'_>) -> fjord_log::Result<Option<u64>>,
) -> fjord_log::Result<u64> {
    let io = |e: std::io::Error| fjord_log::Error::Io { path: PathBuf::from("(segment being cleaned)"), source: e };
    let chunk = chunk.max(64 << 10);
    let end = file.position + file.len;
    let mut position = file.position; // file position of buf[0]
    let mut filled = 0usize;
    let mut cursor = 0usize;
    let mut bytes_read = 0u64;
    loop {
        // Whole batches in buf[cursor..filled].
        while let Some(size) = batch_size(&buf[cursor..filled]) {
            let size = size?;
            if filled - cursor < size {
                break;
            }
            let batch = RecordBatch::parse(&buf[cursor..cursor + size])?;
            let visited = visit(&batch)?;
            cursor += size;
            match visited {
                Some(written) => throttle.pass(written),
                None => return Ok(bytes_read),
            }
        }
        let file_left = end - (position + filled as u64);
        if file_left == 0 {
            if cursor != filled {
                let reason = format!("partial batch at the end of a closed segment ({} bytes)", filled - cursor);
                return Err(fjord_log::Error::CorruptBatch { reason });
            }
            return Ok(bytes_read);
        }
        // Keep the partial batch, then read more: at least the rest of it.
        buf.copy_within(cursor..filled, 0);
        position += cursor as u64;
        filled -= cursor;
        cursor = 0;
        let needed = match batch_size(&buf[..filled]) {
            Some(size) => size?,
            None => 0,
        };
        let want = chunk.max(needed).min((filled as u64 + file_left) as usize);
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let n = (want - filled).min(file_left as usize);
        file.file.read_exact_at(&mut buf[filled..filled + n], position + filled as u64).map_err(io)?;
        filled += n;
        bytes_read += n as u64;
        throttle.pass(n as u64);
    }
}

/// Holds the cleaner's I/O to a rate by waiting on its clock (Kafka's `Throttler`).
struct Throttle {
    bytes_per_second: f64,
    clock: Arc<dyn Clock>,
    window_start: Timestamp,
    window_bytes: u64,
    throttled: Duration,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle").field("bytes_per_second", &self.bytes_per_second).finish_non_exhaustive()
    }
}

impl Throttle {
    fn new(bytes_per_second: f64, clock: Arc<dyn Clock>) -> Throttle {
        let window_start = clock.now();
        Throttle { bytes_per_second, clock, window_start, window_bytes: 0, throttled: Duration::ZERO }
    }

    fn unlimited(&self) -> bool {
        !self.bytes_per_second.is_finite() || self.bytes_per_second <= 0.0
    }

    /// Counts `bytes` and, once the window holds more than the rate allows, waits out the
    /// excess.
    fn pass(&mut self, bytes: u64) {
        if self.unlimited() {
            return;
        }
        self.window_bytes += bytes;
        let elapsed_ms = self.clock.now().0.saturating_sub(self.window_start.0).max(0) as f64;
        let allowed_ms = self.window_bytes as f64 * 1_000.0 / self.bytes_per_second;
        if allowed_ms > elapsed_ms + 10.0 {
            let pause = Duration::from_secs_f64((allowed_ms - elapsed_ms) / 1_000.0);
            self.clock.sleep(pause);
            self.throttled += pause;
        }
        if elapsed_ms >= 1_000.0 {
            self.window_start = self.clock.now();
            self.window_bytes = 0;
        }
    }
}
