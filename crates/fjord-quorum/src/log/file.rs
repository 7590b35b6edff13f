//! The log on disk: `fjord-log` segments plus KIP-630 snapshot files, in the layout of Kafka's
//! `__cluster_metadata-0` directory (`KafkaMetadataLog`, `Snapshots`).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use fjord_log::{AppendMode, BatchBuilder, Batches, Log, LogConfig, RecordBatch, segment_file_name};
use fjord_types::{LeaderEpoch, Offset, Timestamp};

use crate::error::StorageError;
use crate::ids::{OffsetAndEpoch, SnapshotId};
use crate::log::{EpochCache, RaftLog, SnapshotChunk};
use crate::record::{Batch, BatchKind};

/// The suffix of a complete snapshot file.
pub const SNAPSHOT_SUFFIX: &str = ".checkpoint";
/// The suffix of a snapshot still being written or downloaded.
pub const SNAPSHOT_PARTIAL_SUFFIX: &str = ".checkpoint.part";
const SNAPSHOT_DELETED_SUFFIX: &str = ".checkpoint.deleted";
/// Bytes read per step when scanning the log at open.
const SCAN_BYTES: u64 = 8 * 1024 * 1024;

/// A snapshot's file name: `<20-digit end offset>-<10-digit epoch>.checkpoint`.
pub fn snapshot_file_name(id: SnapshotId) -> String {
    format!("{:020}-{:010}{SNAPSHOT_SUFFIX}", id.offset.0, id.epoch.0)
}

fn parse_snapshot_name(name: &str) -> Option<SnapshotId> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    let (offset, epoch) = stem.split_once('-')?;
    if offset.len() != 20 || epoch.len() != 10 {
        return None;
    }
    Some(SnapshotId::new(Offset(offset.parse().ok()?), LeaderEpoch(epoch.parse().ok()?)))
}

/// A [`RaftLog`] on disk. Records are stored as Kafka v2 record batches (control batches carry
/// the control bit and Kafka's control-record key), each batch's leader epoch in its
/// `partitionLeaderEpoch`, so Kafka's tools read the directory.
///
/// At open, the log start moves to the newest snapshot's end offset and older snapshots and
/// incomplete downloads are removed: the newest snapshot covers everything below it.
///
/// A flush after appends syncs only the segment files that received them (and the directory
/// after a roll), not their offset and time indexes: this log always opens with recovery from
/// offset 0 and never leaves a clean-shutdown marker, so `fjord-log` rebuilds every index at
/// open and only the records must be durable. That is one fdatasync per flush instead of three.
/// Truncations and trims use `fjord-log`'s full flush.
#[derive(Debug)]
pub struct FileLog {
    dir: PathBuf,
    log: Log,
    epochs: EpochCache,
    snapshots: BTreeSet<SnapshotId>,
    partial: Option<(SnapshotId, File, u64)>,
    flushed_end: Offset,
    /// The active segment when the log was last flushed, with a handle to sync it by. Forgotten
    /// whenever segments are removed: a truncation at a segment's base replaces its file by a
    /// new one of the same name, and syncing the old handle would sync a deleted file.
    synced_segment: Option<(Offset, File)>,
    now: Timestamp,
}

impl FileLog {
    /// Opens (or creates) the log in `dir`, the partition directory (Kafka names it
    /// `__cluster_metadata-0`), recovering a torn tail.
    pub fn open(dir: &Path, config: LogConfig) -> Result<FileLog, StorageError> {
        fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
        let mut snapshots = BTreeSet::new();
        for entry in fs::read_dir(dir).map_err(StorageError::io(dir))? {
            let path = entry.map_err(StorageError::io(dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if name.ends_with(SNAPSHOT_PARTIAL_SUFFIX) || name.ends_with(SNAPSHOT_DELETED_SUFFIX) {
                fs::remove_file(&path).map_err(StorageError::io(&path))?;
            } else if let Some(id) = parse_snapshot_name(&name) {
                snapshots.insert(id);
            }
        }
        let log = Log::open(dir, config, fjord_log::OpenOptions::default(), Timestamp(0))?;
        let flushed_end = log.log_end_offset();
        let mut file_log = FileLog {
            dir: dir.to_path_buf(),
            log,
            epochs: EpochCache::default(),
            snapshots,
            partial: None,
            flushed_end,
            synced_segment: None,
            now: Timestamp(0),
        };
        file_log.rebuild_epochs()?;
        if let Some(latest) = file_log.snapshots.last().copied() {
            if latest.offset > file_log.log.log_end_offset() {
                file_log.log.truncate_fully_and_start_at(latest.offset, file_log.now)?;
                file_log.epochs.clear();
                file_log.log.flush(file_log.now)?;
            } else if latest.offset > file_log.log.log_start_offset() {
                file_log.trim_to(latest.offset)?;
            }
            file_log.delete_snapshots_before(latest)?;
        }
        // What recovery kept may sit only in the page cache (the process died, the machine did
        // not): sync it before this node acknowledges any of it.
        file_log.log.flush(file_log.now)?;
        file_log.flushed_end = file_log.log.log_end_offset();
        Ok(file_log)
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn rebuild_epochs(&mut self) -> Result<(), StorageError> {
        self.epochs.clear();
        let mut next = self.log.log_start_offset();
        while next < self.log.log_end_offset() {
            let bytes = self.log.read_bytes(next, SCAN_BYTES, None)?;
            if bytes.is_empty() {
                break;
            }
            for batch in Batches::new(&bytes) {
                let batch = batch?;
                self.epochs
                    .assign(batch.partition_leader_epoch(), batch.base_offset())
                    .map_err(|reason| StorageError::Corrupt { path: self.dir.clone(), reason })?;
                next = batch.next_offset();
            }
        }
        Ok(())
    }

    fn trim_to(&mut self, offset: Offset) -> Result<(), StorageError> {
        self.synced_segment = None;
        self.log.increment_log_start_offset(offset)?;
        for segment in self.log.delete_segments_before(offset)? {
            segment.remove()?;
        }
        self.epochs.truncate_from_start(offset, self.log.log_end_offset());
        Ok(())
    }

    fn snapshot_path(&self, id: SnapshotId) -> PathBuf {
        self.dir.join(snapshot_file_name(id))
    }

    fn partial_path(&self, id: SnapshotId) -> PathBuf {
        self.dir.join(format!("{:020}-{:010}{SNAPSHOT_PARTIAL_SUFFIX}", id.offset.0, id.epoch.0))
    }

    fn delete_snapshots_before(&mut self, keep: SnapshotId) -> Result<(), StorageError> {
        let doomed: Vec<SnapshotId> = self.snapshots.range(..keep).copied().collect();
        for id in doomed {
            let path = self.snapshot_path(id);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(StorageError::io(&path)(e)),
                _ => {}
            }
            self.snapshots.remove(&id);
        }
        sync_dir(&self.dir)
    }

    fn start_snapshot(&self) -> Option<SnapshotId> {
        self.snapshots.first().copied().filter(|s| s.offset == self.log.log_start_offset())
    }

    fn encode(batch: &Batch) -> Result<Vec<u8>, StorageError> {
        let mut builder = BatchBuilder::new()
            .base_offset(batch.base_offset)
            .partition_leader_epoch(batch.epoch)
            .control(batch.kind == BatchKind::Control);
        for record in &batch.records {
            match batch.kind {
                BatchKind::Data => builder.push(batch.append_timestamp, None, Some(record), &[]),
                BatchKind::Control => {
                    // Kafka's control records keep their type in a 4-byte key.
                    let (key, value) = record.split_at(record.len().min(4));
                    builder.push(batch.append_timestamp, Some(key), Some(value), &[])
                }
            };
        }
        Ok(builder.build()?)
    }

    fn decode(&self, stored: &RecordBatch<'_>) -> Result<Batch, StorageError> {
        let corrupt = |reason: String| StorageError::Corrupt { path: self.dir.clone(), reason };
        stored.validate().map_err(|e| corrupt(e.to_string()))?;
        let kind = if stored.is_control() { BatchKind::Control } else { BatchKind::Data };
        let mut records = Vec::with_capacity(stored.record_count().max(0) as usize);
        for record in stored.records().map_err(|e| corrupt(e.to_string()))? {
            let record = record.map_err(|e| corrupt(e.to_string()))?;
            let value = record.value().unwrap_or_default();
            records.push(match kind {
                BatchKind::Data => value.to_vec(),
                BatchKind::Control => [record.key().unwrap_or_default(), value].concat(),
            });
        }
        if records.len() as i64 != stored.next_offset().since(stored.base_offset()) {
            return Err(corrupt(format!("batch at {} holds {} records", stored.base_offset(), records.len())));
        }
        Ok(Batch {
            base_offset: stored.base_offset(),
            epoch: stored.partition_leader_epoch(),
            append_timestamp: stored.max_timestamp(),
            kind,
            records,
        })
    }
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StorageError::io(dir))
}

impl RaftLog for FileLog {
    fn log_start_offset(&self) -> Offset {
        self.log.log_start_offset()
    }

    fn log_end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    fn flushed_end_offset(&self) -> Offset {
        self.flushed_end
    }

    fn last_fetched_epoch(&self) -> LeaderEpoch {
        self.epochs.latest().or(self.start_snapshot().map(|s| s.epoch)).unwrap_or(LeaderEpoch(0))
    }

    fn epoch_of(&self, offset: Offset) -> Option<LeaderEpoch> {
        let start = self.log.log_start_offset();
        if offset >= self.log.log_end_offset() {
            return None;
        }
        if offset.plus(1) == start {
            return self.start_snapshot().map(|s| s.epoch);
        }
        if offset < start {
            return None;
        }
        self.epochs.epoch_of(offset)
    }

    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> OffsetAndEpoch {
        self.epochs.end_offset_for_epoch(epoch, self.log.log_end_offset(), self.start_snapshot())
    }

    fn append(&mut self, batch: Batch) -> Result<(), StorageError> {
        if batch.base_offset != self.log.log_end_offset() || batch.records.is_empty() {
            return Err(StorageError::Refused(format!(
                "batch of {} records at {} does not start at the log end {}",
                batch.records.len(),
                batch.base_offset,
                self.log.log_end_offset()
            )));
        }
        let mut epochs = self.epochs.clone();
        epochs.assign(batch.epoch, batch.base_offset).map_err(StorageError::Refused)?;
        let bytes = FileLog::encode(&batch)?;
        self.now = self.now.max(batch.append_timestamp);
        self.log.append(&bytes, AppendMode::Replica, self.now)?;
        self.epochs = epochs;
        Ok(())
    }

    fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Batch>, StorageError> {
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        if from < start || from > end {
            return Err(StorageError::Refused(format!("read at {from} outside [{start}, {end}]")));
        }
        // fjord-log reads within one segment; go on into the next ones while there is room.
        let mut out = Vec::new();
        let mut next = from;
        let mut used = 0usize;
        while next < self.log.log_end_offset() && used < max_bytes {
            let bytes = self.log.read_bytes(next, (max_bytes - used) as u64, None)?;
            if bytes.is_empty() {
                break;
            }
            for stored in Batches::new(&bytes) {
                let stored =
                    stored.map_err(|e| StorageError::Corrupt { path: self.dir.clone(), reason: e.to_string() })?;
                let batch = self.decode(&stored)?;
                used += batch.size_bytes();
                if !out.is_empty() && used > max_bytes {
                    return Ok(out);
                }
                next = batch.next_offset();
                out.push(batch);
            }
        }
        Ok(out)
    }

    fn truncate_to(&mut self, offset: Offset) -> Result<(), StorageError> {
        if offset >= self.log.log_end_offset() {
            return Ok(());
        }
        if offset < self.log.log_start_offset() {
            return Err(StorageError::Refused(format!(
                "truncation to {offset} below log start {}",
                self.log.log_start_offset()
            )));
        }
        self.synced_segment = None;
        self.log.truncate_to(offset, self.now)?;
        // The trait promises a durable truncation: a crash must not bring the records back.
        self.log.flush(self.now)?;
        self.epochs.truncate_from_end(self.log.log_end_offset());
        self.flushed_end = self.log.log_end_offset();
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        let end = self.log.log_end_offset();
        if end == self.flushed_end {
            return Ok(());
        }
        let active = self.log.active_segment_base();
        if self.synced_segment.as_ref().is_none_or(|(base, _)| *base != active) {
            // A roll (or the first flush): sync every segment that may hold unsynced records,
            // with fjord-log's full flush, which also syncs the directory's new entries.
            self.log.flush(self.now)?;
            let path = self.dir.join(segment_file_name(active, fjord_log::LOG_SUFFIX));
            let file = File::open(&path).map_err(StorageError::io(&path))?;
            self.synced_segment = Some((active, file));
        } else if let Some((base, file)) = &self.synced_segment {
            let path = self.dir.join(segment_file_name(*base, fjord_log::LOG_SUFFIX));
            file.sync_data().map_err(StorageError::io(&path))?;
        }
        self.flushed_end = end;
        Ok(())
    }

    fn latest_snapshot_id(&self) -> Option<SnapshotId> {
        self.snapshots.last().copied()
    }

    fn earliest_snapshot_id(&self) -> Option<SnapshotId> {
        self.snapshots.first().copied()
    }

    fn read_snapshot(
        &self,
        id: SnapshotId,
        position: u64,
        max_bytes: usize,
    ) -> Result<Option<SnapshotChunk>, StorageError> {
        if !self.snapshots.contains(&id) {
            return Ok(None);
        }
        let path = self.snapshot_path(id);
        let mut file = File::open(&path).map_err(StorageError::io(&path))?;
        let size = file.metadata().map_err(StorageError::io(&path))?.len();
        let start = position.min(size);
        let len = (size - start).min(max_bytes as u64) as usize;
        file.seek(SeekFrom::Start(start)).map_err(StorageError::io(&path))?;
        let mut bytes = vec![0; len];
        file.read_exact(&mut bytes).map_err(StorageError::io(&path))?;
        Ok(Some(SnapshotChunk { bytes, size }))
    }

    fn write_partial_snapshot(&mut self, id: SnapshotId, position: u64, bytes: &[u8]) -> Result<u64, StorageError> {
        if position == 0 && self.partial.as_ref().is_none_or(|(partial, _, _)| *partial != id) {
            self.partial = None;
            let path = self.partial_path(id);
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)
                .map_err(StorageError::io(&path))?;
            self.partial = Some((id, file, 0));
        }
        let path = self.partial_path(id);
        match &mut self.partial {
            Some((partial, file, size)) if *partial == id && *size == position => {
                file.write_all(bytes).map_err(StorageError::io(&path))?;
                *size += bytes.len() as u64;
                Ok(*size)
            }
            _ => Err(StorageError::Refused(format!("no partial snapshot {id:?} of {position} bytes"))),
        }
    }

    fn freeze_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        let file = match self.partial.take() {
            Some((partial, file, _)) if partial == id => file,
            other => {
                self.partial = other;
                return Err(StorageError::Refused(format!("no partial snapshot {id:?} to freeze")));
            }
        };
        // Sync, then rename, then sync the directory (KAFKA-15312): a crash leaves either no
        // snapshot or a whole one, never an empty file under the final name.
        let from = self.partial_path(id);
        file.sync_all().map_err(StorageError::io(&from))?;
        drop(file);
        let to = self.snapshot_path(id);
        fs::rename(&from, &to).map_err(StorageError::io(&to))?;
        sync_dir(&self.dir)?;
        self.snapshots.insert(id);
        Ok(())
    }

    fn discard_partial_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        if self.partial.as_ref().is_some_and(|(partial, _, _)| *partial == id) {
            self.partial = None;
            let path = self.partial_path(id);
            fs::remove_file(&path).map_err(StorageError::io(&path))?;
        }
        Ok(())
    }

    fn delete_before_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        if !self.snapshots.contains(&id) {
            return Err(StorageError::Refused(format!("no snapshot {id:?}")));
        }
        if id.offset > self.log.log_end_offset() || id.offset < self.log.log_start_offset() {
            return Err(StorageError::Refused(format!(
                "snapshot {id:?} outside the log [{}, {}]",
                self.log.log_start_offset(),
                self.log.log_end_offset()
            )));
        }
        self.trim_to(id.offset)?;
        self.delete_snapshots_before(id)
    }

    fn truncate_to_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        if !self.snapshots.contains(&id) {
            return Err(StorageError::Refused(format!("no snapshot {id:?}")));
        }
        self.synced_segment = None;
        self.log.truncate_fully_and_start_at(id.offset, self.now)?;
        self.log.flush(self.now)?;
        self.epochs.clear();
        self.flushed_end = id.offset;
        self.delete_snapshots_before(id)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    /// Whether the handle a flush syncs by (if any) is the file now at its segment's path.
    fn synced_segment_is_live(log: &FileLog) -> bool {
        let Some((base, file)) = &log.synced_segment else { return true };
        let path = log.dir.join(segment_file_name(*base, fjord_log::LOG_SUFFIX));
        match (file.metadata(), fs::metadata(&path)) {
            (Ok(held), Ok(live)) => (held.dev(), held.ino()) == (live.dev(), live.ino()),
            _ => false,
        }
    }

    fn batch(base: i64) -> Batch {
        Batch {
            base_offset: Offset(base),
            epoch: LeaderEpoch(1),
            append_timestamp: Timestamp(1_000 + base),
            kind: BatchKind::Data,
            records: vec![vec![b'x'; 100]],
        }
    }

    #[test]
    fn a_flush_after_a_truncation_at_a_segment_base_syncs_the_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 400, segment_index_bytes: 4096, ..LogConfig::default() };
        let mut log = FileLog::open(&dir.path().join("__cluster_metadata-0"), config).unwrap();
        let mut next = 0;
        while log.log.active_segment_base() == Offset(0) || log.log.active_segment_base() == Offset(next - 1) {
            log.append(batch(next)).unwrap();
            log.flush().unwrap();
            next += 1;
        }
        let base = log.log.active_segment_base();
        assert!(base > Offset(0) && base < Offset(next), "a roll happened");
        assert!(synced_segment_is_live(&log));
        // Cut at the active segment's base: its file goes, and the next append rolls a new file
        // of the same name.
        log.truncate_to(base).unwrap();
        log.append(batch(base.0)).unwrap();
        assert_eq!(log.log.active_segment_base(), base, "a new segment at the same base");
        log.flush().unwrap();
        assert!(synced_segment_is_live(&log), "the flush synced the segment that holds the records");
        assert_eq!(log.flushed_end_offset(), base.plus(1));
        // The same after emptying the log down to a snapshot at the base of the active segment.
        let id = SnapshotId::new(log.log.active_segment_base(), LeaderEpoch(1));
        log.write_snapshot(id, b"snapshot").unwrap();
        log.truncate_to_snapshot(id).unwrap();
        log.append(batch(id.offset.0)).unwrap();
        log.flush().unwrap();
        assert!(synced_segment_is_live(&log));
    }
}
