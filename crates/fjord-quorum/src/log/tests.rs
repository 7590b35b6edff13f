//! One test suite for every [`RaftLog`]: each case runs against [`MemoryLog`] and [`FileLog`].

use fjord_log::LogConfig;
use fjord_types::{LeaderEpoch, Offset, Timestamp};

use super::*;
use crate::record::BatchKind;

/// Opens a log and reopens it after a clean stop (everything flushed).
trait Harness {
    type Log: RaftLog;
    fn open(&mut self) -> Self::Log;
    fn reopen(&mut self, log: Self::Log) -> Self::Log;
}

struct Memory;

impl Harness for Memory {
    type Log = MemoryLog;
    fn open(&mut self) -> MemoryLog {
        MemoryLog::new()
    }
    fn reopen(&mut self, mut log: MemoryLog) -> MemoryLog {
        log.crash(0);
        log
    }
}

struct Files(tempfile::TempDir);

impl Harness for Files {
    type Log = FileLog;
    fn open(&mut self) -> FileLog {
        FileLog::open(&self.0.path().join("__cluster_metadata-0"), small_segments()).unwrap()
    }
    fn reopen(&mut self, log: FileLog) -> FileLog {
        drop(log);
        self.open()
    }
}

fn small_segments() -> LogConfig {
    LogConfig { segment_bytes: 400, segment_index_bytes: 4096, ..LogConfig::default() }
}

fn batch(base: i64, epoch: i32, records: usize) -> Batch {
    Batch {
        base_offset: Offset(base),
        epoch: LeaderEpoch(epoch),
        append_timestamp: Timestamp(1_000 + base),
        kind: BatchKind::Data,
        records: (0..records).map(|i| format!("record {}", base + i as i64).into_bytes()).collect(),
    }
}

fn oe(offset: i64, epoch: i32) -> OffsetAndEpoch {
    OffsetAndEpoch::new(Offset(offset), LeaderEpoch(epoch))
}

/// Epoch 1: [0, 6); epoch 3: [6, 10); epoch 4: [10, 13), in batches of 3, 3, 2, 2, 3.
fn fill(log: &mut impl RaftLog) {
    for b in [batch(0, 1, 3), batch(3, 1, 3), batch(6, 3, 2), batch(8, 3, 2), batch(10, 4, 3)] {
        log.append(b).unwrap();
    }
}

fn appends_reads_and_epochs(h: &mut impl Harness) {
    let mut log = h.open();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset(), log.last_fetched_epoch()),
        (Offset(0), Offset(0), LeaderEpoch(0))
    );
    fill(&mut log);
    assert_eq!(log.end_offset(), oe(13, 4));
    assert!(log.append(batch(12, 4, 1)).is_err(), "a gap or overlap is refused");
    assert!(log.append(batch(13, 2, 1)).is_err(), "an older epoch is refused");
    let all = log.read(Offset(0), usize::MAX).unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[2], batch(6, 3, 2));
    // Whole batches from the one holding the offset; at least one even past max_bytes.
    let some = log.read(Offset(7), 1).unwrap();
    assert_eq!(some, vec![batch(6, 3, 2)]);
    assert!(log.read(Offset(13), usize::MAX).unwrap().is_empty());
    assert!(log.read(Offset(14), usize::MAX).is_err());
    assert_eq!(log.epoch_of(Offset(5)), Some(LeaderEpoch(1)));
    assert_eq!(log.epoch_of(Offset(12)), Some(LeaderEpoch(4)));
    assert_eq!(log.epoch_of(Offset(13)), None);
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(1)), oe(6, 1));
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(2)), oe(6, 1));
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(3)), oe(10, 3));
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(9)), oe(13, 4));
}

fn validates_fetch_positions(h: &mut impl Harness) {
    let mut log = h.open();
    fill(&mut log);
    use ValidOffsetAndEpoch::*;
    assert_eq!(log.validate_offset_and_epoch(Offset(0), LeaderEpoch(0)), Valid);
    assert_eq!(log.validate_offset_and_epoch(Offset(6), LeaderEpoch(1)), Valid);
    assert_eq!(log.validate_offset_and_epoch(Offset(13), LeaderEpoch(4)), Valid);
    // A follower with more epoch-1 records than we have diverges at our end of epoch 1.
    assert_eq!(log.validate_offset_and_epoch(Offset(8), LeaderEpoch(1)), Diverging(oe(6, 1)));
    // An epoch we never had: diverge at the end of the epoch before it.
    assert_eq!(log.validate_offset_and_epoch(Offset(8), LeaderEpoch(2)), Diverging(oe(6, 1)));
    // Ahead of us in our own epoch.
    assert_eq!(log.validate_offset_and_epoch(Offset(20), LeaderEpoch(4)), Diverging(oe(13, 4)));
}

fn truncates_whole_batches_durably(h: &mut impl Harness) {
    let mut log = h.open();
    fill(&mut log);
    log.flush().unwrap();
    log.truncate_to(Offset(9)).unwrap();
    assert_eq!(log.end_offset(), oe(8, 3), "the batch holding offset 9 goes entirely");
    log.truncate_to(Offset(6)).unwrap();
    assert_eq!(log.end_offset(), oe(6, 1));
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(3)), oe(6, 1));
    log.append(batch(6, 5, 1)).unwrap();
    log.flush().unwrap();
    let log = h.reopen(log);
    assert_eq!(log.end_offset(), oe(7, 5));
    assert_eq!(log.read(Offset(6), usize::MAX).unwrap(), vec![batch(6, 5, 1)]);
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(4)), oe(6, 1));
}

fn snapshots_trim_the_log(h: &mut impl Harness) {
    let mut log = h.open();
    fill(&mut log);
    log.flush().unwrap();
    let id = oe(10, 3);
    let bytes = encode_snapshot(id, b"state at 10");
    log.write_snapshot(id, &bytes).unwrap();
    assert_eq!((log.earliest_snapshot_id(), log.latest_snapshot_id()), (Some(id), Some(id)));
    let chunk = log.read_snapshot(id, 4, 6).unwrap().unwrap();
    assert_eq!((chunk.bytes.as_slice(), chunk.size), (&bytes[4..10], bytes.len() as u64));
    assert_eq!(log.read_snapshot(oe(9, 3), 0, 10).unwrap(), None);
    log.delete_before_snapshot(id).unwrap();
    assert_eq!((log.log_start_offset(), log.end_offset()), (Offset(10), oe(13, 4)));
    assert_eq!(log.epoch_of(Offset(9)), Some(LeaderEpoch(3)), "the snapshot names the epoch below log start");
    use ValidOffsetAndEpoch::*;
    assert_eq!(log.validate_offset_and_epoch(Offset(4), LeaderEpoch(1)), Snapshot(id));
    assert_eq!(log.validate_offset_and_epoch(Offset(10), LeaderEpoch(2)), Snapshot(id));
    assert_eq!(log.validate_offset_and_epoch(Offset(10), LeaderEpoch(3)), Valid);
    assert_eq!(log.validate_offset_and_epoch(Offset(12), LeaderEpoch(3)), Diverging(oe(10, 3)));
    let log = h.reopen(log);
    assert_eq!((log.log_start_offset(), log.end_offset()), (Offset(10), oe(13, 4)));
    assert_eq!(log.read(Offset(10), usize::MAX).unwrap(), vec![batch(10, 4, 3)]);
    let (read_id, payload) = {
        let chunk = log.read_snapshot(id, 0, usize::MAX).unwrap().unwrap();
        let (read_id, payload) = decode_snapshot(&chunk.bytes).unwrap();
        (read_id, payload.to_vec())
    };
    assert_eq!((read_id, payload.as_slice()), (id, &b"state at 10"[..]));
}

fn downloads_snapshots_in_chunks(h: &mut impl Harness) {
    let mut log = h.open();
    fill(&mut log);
    let id = oe(40, 6);
    let bytes = encode_snapshot(id, &[7; 100]);
    assert!(log.write_partial_snapshot(id, 5, &bytes[..5]).is_err(), "must start at 0");
    assert_eq!(log.write_partial_snapshot(id, 0, &bytes[..50]).unwrap(), 50);
    assert!(log.write_partial_snapshot(id, 10, &bytes[10..]).is_err(), "must continue at the end");
    assert_eq!(log.write_partial_snapshot(id, 50, &bytes[50..]).unwrap(), bytes.len() as u64);
    assert_eq!(log.latest_snapshot_id(), None, "incomplete snapshots are not served");
    log.freeze_snapshot(id).unwrap();
    log.truncate_to_snapshot(id).unwrap();
    assert_eq!((log.log_start_offset(), log.end_offset()), (Offset(40), oe(40, 6)));
    let mut log = h.reopen(log);
    assert_eq!((log.log_start_offset(), log.end_offset()), (Offset(40), oe(40, 6)));
    log.append(batch(40, 7, 2)).unwrap();
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(6)), oe(40, 6));
    // A download abandoned half way is gone after a restart.
    let other = oe(60, 7);
    log.write_partial_snapshot(other, 0, b"half").unwrap();
    log.flush().unwrap();
    let log = h.reopen(log);
    assert_eq!(log.latest_snapshot_id(), Some(id));
}

fn reopen_keeps_flushed_records(h: &mut impl Harness) {
    let mut log = h.open();
    fill(&mut log);
    log.flush().unwrap();
    assert_eq!(log.flushed_end_offset(), Offset(13));
    let log = h.reopen(log);
    assert_eq!(log.end_offset(), oe(13, 4));
    assert_eq!(log.read(Offset(0), usize::MAX).unwrap().len(), 5);
}

macro_rules! suite {
    ($($name:ident),*) => {
        mod memory {
            $(#[test] fn $name() { super::$name(&mut super::Memory); })*
        }
        mod files {
            $(#[test] fn $name() { super::$name(&mut super::Files(tempfile::tempdir().unwrap())); })*
        }
    };
}

suite!(
    appends_reads_and_epochs,
    validates_fetch_positions,
    truncates_whole_batches_durably,
    snapshots_trim_the_log,
    downloads_snapshots_in_chunks,
    reopen_keeps_flushed_records
);

#[test]
fn a_crash_loses_unflushed_batches_but_a_prefix_may_survive() {
    let mut log = MemoryLog::new();
    log.append(batch(0, 1, 2)).unwrap();
    log.flush().unwrap();
    for b in [batch(2, 1, 1), batch(3, 1, 1), batch(4, 2, 1)] {
        log.append(b).unwrap();
    }
    let mut copy = log.clone();
    let report = copy.crash(1);
    assert_eq!(report, CrashReport { lost_batches: 2, torn_write: true, log_end_offset: Offset(3) });
    assert_eq!(copy.end_offset(), oe(3, 1));
    let report = log.crash(0);
    assert_eq!(report.log_end_offset, Offset(2));
    assert_eq!(log.end_offset_for_epoch(LeaderEpoch(2)), oe(2, 1));
}

#[test]
fn file_log_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("__cluster_metadata-0");
    let mut log = FileLog::open(&path, LogConfig::default()).unwrap();
    fill(&mut log);
    log.flush().unwrap();
    drop(log);
    let segment = path.join("00000000000000000000.log");
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(len - 5).unwrap();
    let log = FileLog::open(&path, LogConfig::default()).unwrap();
    assert_eq!(log.end_offset(), oe(10, 3), "the torn last batch is cut by recovery");
}

#[test]
fn snapshot_files_have_kafkas_names() {
    assert_eq!(snapshot_file_name(oe(10, 3)), "00000000000000000010-0000000003.checkpoint");
}
