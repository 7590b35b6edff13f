//! One segment of a partition's log: `<base>.log` with its `.index` and `.timeindex`
//! (Kafka's `LogSegment`).

use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fjord_types::{Offset, Timestamp};

use crate::batch::{BATCH_HEADER_SIZE, Batches, HeaderInfo, LOG_OVERHEAD, RecordBatch, batch_size, parse_header};
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::file_range::FileRange;
use crate::offset_index::OffsetIndex;
use crate::scan::{ScanEnd, scan_batches};
use crate::time_index::{TimeIndex, TimestampOffset};

/// File name suffixes, as Kafka names them.
pub const LOG_SUFFIX: &str = ".log";
/// The offset index's suffix.
pub const INDEX_SUFFIX: &str = ".index";
/// The time index's suffix.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Added to a segment's files when retention removes it, before they are unlinked.
pub const DELETED_SUFFIX: &str = ".deleted";
/// Added to the files of a segment the cleaner is still writing; a crash leaves them to be
/// removed at the next open.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Added to the files of a complete cleaned segment while it replaces the segments it was
/// made from; at the next open it wins over them.
pub const SWAP_SUFFIX: &str = ".swap";

/// Bound on a decompressed batch when the log itself looks inside one (timestamp search).
pub(crate) const MAX_DECOMPRESSED_BATCH: usize = 256 * 1024 * 1024;

/// One batch of an append, as the segment writes and indexes it.
#[derive(Debug)]
pub(crate) struct OutgoingBatch {
    /// A header to write in place of the batch's own (a leader's offsets and epoch).
    pub(crate) header: Option<[u8; BATCH_HEADER_SIZE]>,
    /// Where the batch lies in the appended bytes.
    pub(crate) bytes: Range<usize>,
    pub(crate) last_offset: Offset,
    pub(crate) max_timestamp: Timestamp,
}

/// Writes every slice at `position` with `pwritev`, retrying after short writes. Positioned,
/// so readers sharing the file (fetches holding a `FileRange`) never see the writer move a
/// cursor.
fn write_all_vectored_at(file: &File, mut slices: &mut [IoSlice<'_>], mut position: u64) -> std::io::Result<()> {
    while !slices.is_empty() {
        match rustix::io::pwritev(file, slices, position) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                IoSlice::advance_slices(&mut slices, written);
                position += written as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Slices per `pwritev` (Linux allows up to 1024).
const SLICES_PER_WRITE: usize = 64;

/// A segment file's name: the base offset as 20 zero-padded digits, then the suffix.
pub fn segment_file_name(base_offset: Offset, suffix: &str) -> String {
    format!("{:020}{suffix}", base_offset.0)
}

/// Where a batch starts and what its header says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchPosition {
    pub(crate) position: u64,
    pub(crate) header: HeaderInfo,
}

/// What a read of one segment found.
#[derive(Debug)]
pub(crate) enum SegmentRead {
    /// The offset lies after this segment's last batch.
    NotHere,
    /// The offset is here, but nothing may be returned (bounds or size).
    Nothing,
    /// Whole batches.
    Range(FileRange),
}

/// What recovering a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentRecovery {
    /// Bytes cut from the end of the log file.
    pub(crate) truncated_bytes: u64,
    /// The offset after the last valid batch, if there is one.
    pub(crate) next_offset: Option<Offset>,
    /// Why the scan stopped early, if it did.
    pub(crate) reason: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: Offset,
    log_path: PathBuf,
    log: Arc<File>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    index_interval_bytes: u64,
    segment_index_bytes: usize,
    bytes_since_last_index_entry: u64,
    max_timestamp: Option<TimestampOffset>,
    rolling_timestamp: Option<Timestamp>,
    created: Timestamp,
}

fn open_log_file(path: &Path, create: bool) -> Result<File> {
    OpenOptions::new().read(true).write(true).create(create).truncate(false).open(path).map_err(Error::io(path))
}

mod files;
mod timestamps;

impl Segment {
    /// Creates a new, empty active segment.
    pub(crate) fn create(dir: &Path, base_offset: Offset, config: &LogConfig, now: Timestamp) -> Result<Segment> {
        Segment::create_named(dir, base_offset, "", config, now)
    }

    /// Creates a new, empty segment whose file names carry `suffix` after the usual one
    /// (`.cleaned` for a segment the cleaner writes).
    pub(crate) fn create_named(
        dir: &Path,
        base_offset: Offset,
        suffix: &str,
        config: &LogConfig,
        now: Timestamp,
    ) -> Result<Segment> {
        let log_path = dir.join(segment_file_name(base_offset, LOG_SUFFIX) + suffix);
        let log = open_log_file(&log_path, true)?;
        if log.metadata().map_err(Error::io(&log_path))?.len() != 0 {
            return Err(Error::CorruptFile {
                path: log_path,
                reason: "a new segment's file already holds data".into(),
            });
        }
        // An empty log opens as a segment with nothing to check; index files left by an
        // earlier segment at this offset are cleared.
        let (mut segment, _) = Segment::open_named(dir, base_offset, suffix, config, true, now)?;
        segment.offset_index.clear();
        segment.time_index.clear();
        Ok(segment)
    }

    /// Opens an existing segment. Returns whether its indexes are damaged or do not match the
    /// log, in which case the caller must [`Segment::recover`] it.
    pub(crate) fn open(
        dir: &Path,
        base_offset: Offset,
        config: &LogConfig,
        active: bool,
        now: Timestamp,
    ) -> Result<(Segment, bool)> {
        Segment::open_named(dir, base_offset, "", config, active, now)
    }

    /// [`Segment::open`] for files whose names carry `suffix` (`.swap` at load).
    pub(crate) fn open_named(
        dir: &Path,
        base_offset: Offset,
        suffix: &str,
        config: &LogConfig,
        active: bool,
        now: Timestamp,
    ) -> Result<(Segment, bool)> {
        let log_path = dir.join(segment_file_name(base_offset, LOG_SUFFIX) + suffix);
        let log = open_log_file(&log_path, false)?;
        let size = log.metadata().map_err(Error::io(&log_path))?.len();
        if size > i32::MAX as u64 {
            return Err(Error::CorruptFile {
                path: log_path,
                reason: format!("segment of {size} bytes exceeds 2 GiB"),
            });
        }
        let index_path = dir.join(segment_file_name(base_offset, INDEX_SUFFIX) + suffix);
        let time_index_path = dir.join(segment_file_name(base_offset, TIME_INDEX_SUFFIX) + suffix);
        let index_missing = !index_path.exists() || !time_index_path.exists();
        let (offset_index, offset_damaged) =
            OffsetIndex::open(index_path, base_offset, config.segment_index_bytes, active, size)?;
        let (time_index, time_damaged) =
            TimeIndex::open(time_index_path, base_offset, config.segment_index_bytes, active)?;
        let mut segment = Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            size,
            offset_index,
            time_index,
            index_interval_bytes: config.index_interval_bytes,
            segment_index_bytes: config.segment_index_bytes,
            bytes_since_last_index_entry: 0,
            max_timestamp: None,
            rolling_timestamp: None,
            created: now,
        };
        let mut needs_recovery = index_missing || offset_damaged || time_damaged;
        // The last index entries must point at batches that end at their offsets, and nothing
        // in the time index may lie beyond the log.
        if let Some(last) = segment.offset_index.last_entry() {
            match segment.header_if_sound(u64::from(last.position))? {
                Some(header) if header.last_offset == last.offset => {}
                _ => needs_recovery = true,
            }
        }
        if !needs_recovery {
            match segment.scan_tail()? {
                Some(tail_end) => {
                    if let Some(entry) = segment.time_index.last_entry() {
                        needs_recovery |= entry.offset >= tail_end;
                    }
                }
                None => needs_recovery = true,
            }
        }
        if size > 0 && !needs_recovery {
            // The tail scan starts at the last index entry, so the first batch is checked here.
            match segment.header_if_sound(0)? {
                Some(header) => segment.rolling_timestamp = Some(header.max_timestamp),
                None => needs_recovery = true,
            }
        }
        Ok((segment, needs_recovery))
    }

    /// Walks the batches after the last offset index entry to learn the segment's max timestamp,
    /// next offset and index state cheaply. Returns the next offset, or `None` if the tail does
    /// not parse or lacks an index entry the append rule would have written.
    fn scan_tail(&mut self) -> Result<Option<Offset>> {
        self.max_timestamp = self.time_index.last_entry();
        let (mut position, mut next, mut bytes_since_entry) = match self.offset_index.last_entry() {
            None => (0, self.base_offset, 0),
            Some(entry) => {
                let Some(header) = self.header_if_sound(u64::from(entry.position))? else { return Ok(None) };
                self.observe_max_timestamp(header.max_timestamp, header.last_offset);
                (u64::from(entry.position) + header.size as u64, entry.offset.plus(1), header.size as u64)
            }
        };
        while position < self.size {
            let Some(header) = self.header_if_sound(position)? else { return Ok(None) };
            let missing_entry = bytes_since_entry > self.index_interval_bytes;
            if position + header.size as u64 > self.size || header.base_offset < next || missing_entry {
                return Ok(None);
            }
            self.observe_max_timestamp(header.max_timestamp, header.last_offset);
            next = header.last_offset.plus(1);
            bytes_since_entry += header.size as u64;
            position += header.size as u64;
        }
        self.bytes_since_last_index_entry = bytes_since_entry;
        Ok(Some(next))
    }

    fn observe_max_timestamp(&mut self, timestamp: Timestamp, last_offset: Offset) {
        if self.max_timestamp.is_none_or(|m| timestamp > m.timestamp) {
            self.max_timestamp = Some(TimestampOffset { timestamp, offset: last_offset });
        }
    }

    pub(crate) fn base_offset(&self) -> Offset {
        self.base_offset
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The whole log file as a range (for the cleaner, which reads closed segments without
    /// holding the log).
    pub(crate) fn whole_file(&self) -> FileRange {
        FileRange { file: Arc::clone(&self.log), position: 0, len: self.size }
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The largest record timestamp in the segment and the last offset of its batch.
    /// The max timestamp of the first batch (what `segment.ms` and `max.compaction.lag.ms` count
    /// from), if the segment holds a batch.
    pub(crate) fn first_batch_timestamp(&self) -> Option<Timestamp> {
        self.rolling_timestamp
    }

    /// The log file's modification time, in milliseconds since the epoch.
    pub(crate) fn last_modified(&self) -> Option<Timestamp> {
        let modified = self.log.metadata().and_then(|m| m.modified()).ok()?;
        let millis = modified.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
        Some(Timestamp(i64::try_from(millis).ok()?))
    }

    pub(crate) fn max_timestamp(&self) -> Option<TimestampOffset> {
        self.max_timestamp
    }

    /// The offset index entries, for dumping and tests.
    pub(crate) fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }

    pub(crate) fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }

    /// Reads and checks the header of the batch at `position`; `None` past the end of the data.
    pub(crate) fn read_header_at(&self, position: u64) -> Result<Option<HeaderInfo>> {
        if position + BATCH_HEADER_SIZE as u64 > self.size {
            return Ok(None);
        }
        let mut header = [0u8; BATCH_HEADER_SIZE];
        self.log.read_exact_at(&mut header, position).map_err(Error::io(&self.log_path))?;
        match parse_header(&header) {
            Ok(info) => Ok(Some(info)),
            Err(e) => {
                Err(Error::CorruptFile { path: self.log_path.clone(), reason: format!("at position {position}: {e}") })
            }
        }
    }

    /// [`Segment::read_header_at`], but a damaged header is `None` too: when opening, damage
    /// means recovery, not failure. I/O errors still fail.
    fn header_if_sound(&self, position: u64) -> Result<Option<HeaderInfo>> {
        match self.read_header_at(position) {
            Err(Error::CorruptFile { .. }) => Ok(None),
            result => result,
        }
    }

    /// Whether the next append (of `append_bytes`, newest timestamp `max_timestamp`, last
    /// offset `last_offset`) must go to a new segment (Kafka's `shouldRoll`).
    pub(crate) fn should_roll(
        &self,
        config: &LogConfig,
        append_bytes: u64,
        max_timestamp: Timestamp,
        last_offset: Offset,
        now: Timestamp,
    ) -> bool {
        let waited = match self.rolling_timestamp {
            Some(first) if first.0 >= 0 => max_timestamp.0.saturating_sub(first.0),
            _ => now.0.saturating_sub(self.created.0),
        };
        let relative_overflow = last_offset.since(self.base_offset) > i64::from(i32::MAX);
        (self.size > 0 && (self.size + append_bytes > config.segment_bytes || waited > config.segment_ms))
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || relative_overflow
    }

    /// Appends whole, already validated batches, laid end to end with their final offsets, at
    /// the end of the segment.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let mut batches = Vec::new();
        let mut position = 0;
        for batch in Batches::new(bytes) {
            let batch = batch.expect("append() is given validated batches");
            let end = position + batch.size();
            batches.push(OutgoingBatch {
                header: None,
                bytes: position..end,
                last_offset: batch.last_offset(),
                max_timestamp: batch.max_timestamp(),
            });
            position = end;
        }
        self.append_batches(bytes, &batches)
    }

    /// Appends validated batches taken from `records` at the end of the segment, each with
    /// its replacement header if it has one, in one positioned vectored write.
    pub(crate) fn append_batches(&mut self, records: &[u8], batches: &[OutgoingBatch]) -> Result<()> {
        // Index slots first (at most one entry per batch in each, and the time index's closing
        // entry): once the bytes are in the log, indexing them must not fail.
        self.offset_index.file_mut().reserve(batches.len() + 1)?;
        self.time_index.file_mut().reserve(batches.len() + 1)?;
        // The slices live on the stack, a few batches at a time: an append allocates nothing.
        let mut position = self.size;
        for group in batches.chunks(SLICES_PER_WRITE / 2) {
            let mut slices = [IoSlice::new(&[]); SLICES_PER_WRITE];
            let mut used = 0;
            for batch in group {
                match &batch.header {
                    Some(header) => {
                        slices[used] = IoSlice::new(header);
                        slices[used + 1] =
                            IoSlice::new(&records[batch.bytes.start + BATCH_HEADER_SIZE..batch.bytes.end]);
                        used += 2;
                    }
                    None => {
                        slices[used] = IoSlice::new(&records[batch.bytes.clone()]);
                        used += 1;
                    }
                }
            }
            if let Err(e) = write_all_vectored_at(&self.log, &mut slices[..used], position) {
                // A full disk: cut off whatever part of this append reached the file, so the
                // segment ends where it did and the next append can try again.
                if Error::is_out_of_space(&e) && self.log.set_len(self.size).is_ok() {
                    return Err(Error::NoSpace { path: self.log_path.clone() });
                }
                return Err(Error::io(&self.log_path)(e));
            }
            position += group.iter().map(|b| b.bytes.len() as u64).sum::<u64>();
        }
        let mut position = self.size;
        for batch in batches {
            let size = batch.bytes.len() as u64;
            self.index_batch(position, batch.last_offset, batch.max_timestamp, size);
            position += size;
        }
        self.size = position;
        Ok(())
    }

    /// Updates the indexes for a batch just written at `position`.
    fn index_batch(&mut self, position: u64, last_offset: Offset, max_timestamp: Timestamp, size: u64) {
        if self.rolling_timestamp.is_none() {
            self.rolling_timestamp = Some(max_timestamp);
        }
        self.observe_max_timestamp(max_timestamp, last_offset);
        // A full index (only possible if segment.index.bytes shrank since the segment was
        // written) just stops growing: lookups scan a little further.
        if self.bytes_since_last_index_entry > self.index_interval_bytes && !self.offset_index.is_full() {
            self.offset_index.append(last_offset, position as u32);
            if let Some(max) = self.max_timestamp {
                self.time_index.maybe_append(max.timestamp, max.offset, false);
            }
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += size;
    }

    /// Finds the first batch whose last offset is at least `target`, starting no earlier
    /// than `start_position`.
    pub(crate) fn translate_offset(&self, target: Offset, start_position: u64) -> Result<Option<BatchPosition>> {
        let mut position = u64::from(self.offset_index.lookup(target).position).max(start_position);
        while let Some(header) = self.read_header_at(position)? {
            if header.last_offset >= target {
                return Ok(Some(BatchPosition { position, header }));
            }
            position += header.size as u64;
        }
        Ok(None)
    }

    /// The length of the batch at `position`, if one starts there.
    fn batch_size_at(&self, position: u64) -> Result<Option<u64>> {
        if position + LOG_OVERHEAD as u64 > self.size {
            return Ok(None);
        }
        let mut head = [0u8; LOG_OVERHEAD];
        self.log.read_exact_at(&mut head, position).map_err(Error::io(&self.log_path))?;
        Ok(batch_size(&head).and_then(|size| size.ok()).map(|size| size as u64))
    }

    /// Whole batches from the one holding `start_offset`, at most `max_bytes` (but at least
    /// the first batch when `min_one_batch`), ending at or before `max_position`.
    pub(crate) fn read(
        &self,
        start_offset: Offset,
        max_bytes: u64,
        max_position: u64,
        min_one_batch: bool,
    ) -> Result<SegmentRead> {
        let Some(first) = self.translate_offset(start_offset, 0)? else { return Ok(SegmentRead::NotHere) };
        let start = first.position;
        let max_position = max_position.min(self.size);
        let first_end = start + first.header.size as u64;
        if first_end > max_position {
            return Ok(SegmentRead::Nothing);
        }
        let limit = start.saturating_add(max_bytes).min(max_position);
        if first_end > limit && !min_one_batch {
            return Ok(SegmentRead::Nothing);
        }
        let mut end = first_end;
        // An index entry's position is a batch boundary: jump to the last one within the limit,
        // then walk batch lengths until the next batch would cross it.
        if let Some(entry) = self.offset_index.lookup_position(limit.min(u64::from(u32::MAX)) as u32) {
            end = end.max(u64::from(entry.position));
        }
        while let Some(size) = self.batch_size_at(end)? {
            if end + size > limit {
                break;
            }
            end += size;
        }
        Ok(SegmentRead::Range(FileRange { file: Arc::clone(&self.log), position: start, len: end - start }))
    }

    /// The position of the first batch holding `offset` or later; the segment size if none.
    pub(crate) fn position_of(&self, offset: Offset) -> Result<u64> {
        Ok(self.translate_offset(offset, 0)?.map_or(self.size, |found| found.position))
    }

    /// Rebuilds the indexes from the log, checking every batch (length, CRC, offsets
    /// increasing from `expected_next`), and cuts the log at the first bad batch.
    pub(crate) fn recover(&mut self, expected_next: Offset) -> Result<SegmentRecovery> {
        // A closed segment's indexes were trimmed to their entries; the rebuild may need more.
        self.offset_index.file_mut().resize(self.segment_index_bytes)?;
        self.time_index.file_mut().resize(self.segment_index_bytes)?;
        self.offset_index.clear();
        self.time_index.clear();
        let most_entries = (self.size / self.index_interval_bytes.max(1)) as usize + 2;
        self.offset_index.file_mut().reserve(most_entries)?;
        self.time_index.file_mut().reserve(most_entries)?;
        self.max_timestamp = None;
        self.rolling_timestamp = None;
        self.bytes_since_last_index_entry = 0;
        let base_offset = self.base_offset;
        let mut next = expected_next.max(base_offset);
        let mut last_valid: Option<Offset> = None;
        let log = Arc::clone(&self.log);
        let path = self.log_path.clone();
        let end = scan_batches(&log, &path, 0, self.size, |position, bytes| {
            let batch = RecordBatch::parse_valid(bytes).map_err(|e| e.to_string())?;
            if batch.base_offset() < next {
                return Err(format!("batch at offset {} does not follow offset {}", batch.base_offset(), next.0 - 1));
            }
            if batch.last_offset().since(base_offset) > i64::from(i32::MAX) {
                return Err(format!("offset {} too far from segment base {base_offset}", batch.last_offset()));
            }
            next = batch.next_offset();
            last_valid = Some(next);
            self.index_batch(position, batch.last_offset(), batch.max_timestamp(), batch.size() as u64);
            Ok(())
        })?;
        let (valid_bytes, reason) = match end {
            ScanEnd::Complete => (self.size, None),
            ScanEnd::Invalid { position, reason } => (position, Some(reason)),
        };
        let truncated_bytes = self.size - valid_bytes;
        if truncated_bytes > 0 {
            self.log.set_len(valid_bytes).map_err(Error::io(&self.log_path))?;
            self.size = valid_bytes;
        }
        Ok(SegmentRecovery { truncated_bytes, next_offset: last_valid, reason })
    }

    /// Removes every batch holding `offset` or later. Returns the bytes removed.
    pub(crate) fn truncate_to(&mut self, offset: Offset) -> Result<u64> {
        let position = self.position_of(offset)?;
        let removed = self.size - position;
        self.offset_index.truncate_to(offset);
        self.time_index.truncate_to(offset);
        if removed > 0 {
            self.log.set_len(position).map_err(Error::io(&self.log_path))?;
            self.size = position;
        }
        if self.size == 0 {
            self.rolling_timestamp = None;
        }
        self.scan_tail()?;
        Ok(removed)
    }

    /// The offset after the last batch (the base offset for an empty segment).
    pub(crate) fn next_offset(&self) -> Result<Offset> {
        let last = self.offset_index.last_entry();
        let mut position = last.map_or(0, |e| u64::from(e.position));
        let mut next = last.map_or(self.base_offset, |e| e.offset.plus(1));
        while let Some(header) = self.read_header_at(position)? {
            next = header.last_offset.plus(1);
            position += header.size as u64;
        }
        Ok(next)
    }

    /// Grows the indexes back to `segment.index.bytes` so the segment can take appends again.
    pub(crate) fn make_active(&mut self, config: &LogConfig) -> Result<()> {
        self.offset_index.file_mut().resize(config.segment_index_bytes)?;
        self.time_index.file_mut().resize(config.segment_index_bytes)?;
        Ok(())
    }

    /// Called when a newer segment takes over appends: records the final time index entry
    /// and trims both indexes to their entries.
    pub(crate) fn on_become_inactive(&mut self) -> Result<()> {
        if let Some(max) = self.max_timestamp {
            self.time_index.maybe_append(max.timestamp, max.offset, true);
        }
        self.offset_index.file_mut().trim_to_entries()?;
        self.time_index.file_mut().trim_to_entries()?;
        Ok(())
    }
}
