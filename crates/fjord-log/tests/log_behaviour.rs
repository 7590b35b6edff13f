//! The log's behaviour as a Kafka user or the broker relies on it.

mod common;

use common::*;
use fjord_log::{
    AppendMode, Batches, CLEAN_SHUTDOWN_FILE, Compression, DumpOptions, Error, LogConfig, RecordBatch, TimestampType,
    dump_file,
};
use fjord_types::{LeaderEpoch, Offset, Timestamp};

#[test]
fn offsets_are_assigned_by_the_log_across_batches_of_one_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut records = batch(3, 10, 1_000);
    records.extend(batch(2, 10, 2_000));
    // The producer's base offsets are ignored by a leader.
    fjord_log::RecordBatchMut::parse(&mut records).unwrap().set_base_offset(Offset(777));
    let info = log.append(&records, LEADER, Timestamp(5)).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (Offset(0), Offset(4)));
    assert_eq!(info.batch_count, 2);
    assert_eq!(info.max_timestamp, Timestamp(2_001));
    assert_eq!(info.offset_of_max_timestamp, Offset(4));
    assert_eq!(info.log_append_time, Timestamp::NONE);
    assert_eq!(log.log_end_offset(), Offset(5));
    let info = log.append(&batch(1, 10, 3_000), LEADER, Timestamp(5)).unwrap();
    assert_eq!(info.first_offset, Offset(5));

    let stored = log.read_bytes(Offset(0), 1 << 20, None).unwrap();
    let bases: Vec<_> =
        Batches::new(&stored).map(|b| b.unwrap()).map(|b| (b.base_offset(), b.partition_leader_epoch())).collect();
    assert_eq!(bases, vec![(Offset(0), LeaderEpoch(3)), (Offset(3), LeaderEpoch(3)), (Offset(5), LeaderEpoch(3))]);
    for batch in Batches::new(&stored) {
        batch.unwrap().validate().unwrap();
    }
}

#[test]
fn a_corrupt_or_oversized_append_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig { max_message_bytes: 2_000, ..LogConfig::default() });
    let good = batch(2, 10, 1);
    let mut bad = batch(2, 10, 1);
    let at = bad.len() - 3;
    bad[at] ^= 1;
    let mut both = good.clone();
    both.extend_from_slice(&bad);
    assert!(matches!(log.append(&both, LEADER, Timestamp(0)), Err(Error::CorruptBatch { .. })));
    assert!(matches!(log.append(&batch(10, 500, 1), LEADER, Timestamp(0)), Err(Error::BatchTooLarge { .. })));
    let partial = good[..good.len() - 1].to_vec();
    assert!(log.append(&partial, LEADER, Timestamp(0)).is_err());
    assert!(log.append(&[], LEADER, Timestamp(0)).is_err());
    assert_eq!(log.log_end_offset(), Offset(0));
    assert_eq!(log.size_bytes(), 0);
    log.append(&good, LEADER, Timestamp(0)).unwrap();
    assert_eq!(log.log_end_offset(), Offset(2));
}

#[test]
fn log_append_time_stamps_the_broker_clock() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { message_timestamp_type: TimestampType::LogAppendTime, ..LogConfig::default() };
    let mut log = open(dir.path(), config);
    let info = log.append(&batch(3, 10, 1_000), LEADER, Timestamp(99_000)).unwrap();
    assert_eq!(info.log_append_time, Timestamp(99_000));
    let stored = log.read_bytes(Offset(0), 1 << 20, None).unwrap();
    let batch = RecordBatch::parse_valid(&stored).unwrap();
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(batch.max_timestamp(), Timestamp(99_000));
    assert!(batch.records().unwrap().all(|r| r.unwrap().timestamp() == Timestamp(99_000)));
}

#[test]
fn segments_roll_by_size_with_kafka_file_names_and_trimmed_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let mut log = open(dir.path(), config.clone());
    for i in 0..40 {
        log.append(&batch(5, 40, i * 10), LEADER, Timestamp(0)).unwrap();
    }
    assert!(log.segment_count() > 3);
    let segments = log.segments();
    for pair in segments.windows(2) {
        assert_eq!(pair[0].next_offset, pair[1].base_offset);
        assert!(pair[0].size_bytes <= config.segment_bytes);
        let index = dir.path().join(fjord_log::segment_file_name(pair[0].base_offset, ".index"));
        let len = std::fs::metadata(index).unwrap().len();
        assert!(len.is_multiple_of(8) && len < config.segment_index_bytes as u64, "closed index trimmed to {len}");
    }
    let active = segments.last().unwrap();
    assert!(active.is_active);
    let active_index = dir.path().join(fjord_log::segment_file_name(active.base_offset, ".index"));
    assert_eq!(std::fs::metadata(&active_index).unwrap().len(), config.segment_index_bytes as u64, "preallocated");
    let names = file_names(dir.path());
    assert!(names.contains(&"00000000000000000000.log".to_owned()));
    assert!(names.contains(&"00000000000000000000.index".to_owned()));
    assert!(names.contains(&"00000000000000000000.timeindex".to_owned()));
    assert_eq!(read_all(&log, Offset(0)).len() as u64, log.size_bytes());
}

#[test]
fn segments_roll_by_age_of_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig { segment_ms: 1_000, ..LogConfig::default() });
    log.append(&batch(1, 10, 10_000), LEADER, Timestamp(10_000)).unwrap();
    log.append(&batch(1, 10, 10_900), LEADER, Timestamp(10_900)).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&batch(1, 10, 11_500), LEADER, Timestamp(11_500)).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.segments()[1].base_offset, Offset(2));
}

#[test]
fn segments_roll_when_the_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    // Room for 4 offset index entries, one every batch.
    let config = LogConfig { segment_index_bytes: 48, index_interval_bytes: 1, ..LogConfig::default() };
    let mut log = open(dir.path(), config);
    for i in 0..20 {
        log.append(&batch(1, 10, i), LEADER, Timestamp(0)).unwrap();
    }
    assert!(log.segment_count() >= 4, "{} segments", log.segment_count());
    assert_eq!(read_all(&log, Offset(0)).len() as u64, log.size_bytes());
}

#[test]
fn reads_return_whole_batches_within_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig { index_interval_bytes: 100, ..LogConfig::default() });
    let mut sizes = Vec::new();
    for i in 0..10 {
        let b = batch(4, 30, i * 100);
        sizes.push(b.len() as u64);
        log.append(&b, LEADER, Timestamp(0)).unwrap();
    }
    // A limit between batch boundaries returns the whole batches below it.
    let range = log.read(Offset(0), sizes[0] + sizes[1] + 10, None, false).unwrap().unwrap();
    assert_eq!(range.len, sizes[0] + sizes[1]);
    // A first batch larger than the limit: nothing, or the whole batch with min_one_batch.
    assert!(log.read(Offset(0), 10, None, false).unwrap().is_none());
    assert_eq!(log.read(Offset(0), 10, None, true).unwrap().unwrap().len, sizes[0]);
    // A read from inside a batch starts at that batch.
    let range = log.read(Offset(6), 1 << 20, None, true).unwrap().unwrap();
    assert_eq!(range.position, sizes[0]);
    // The high watermark bounds what is returned.
    let range = log.read(Offset(0), 1 << 20, Some(Offset(8)), true).unwrap().unwrap();
    assert_eq!(range.len, sizes[0] + sizes[1]);
    assert!(log.read(Offset(8), 1 << 20, Some(Offset(8)), true).unwrap().is_none());
    // At the log end: nothing; beyond it or below the start: out of range.
    assert!(log.read(Offset(40), 1 << 20, None, true).unwrap().is_none());
    assert!(matches!(log.read(Offset(41), 1, None, true), Err(Error::OffsetOutOfRange { .. })));
    log.increment_log_start_offset(Offset(12)).unwrap();
    assert!(matches!(log.read(Offset(11), 1, None, true), Err(Error::OffsetOutOfRange { .. })));
    assert!(log.read(Offset(12), 1 << 20, None, true).unwrap().is_some());
}

#[test]
fn timestamps_are_searched_as_list_offsets_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    // Out-of-order timestamps, a compressed batch, several segments.
    let stamps = [500, 100, 900, 300, 1_200, 1_100];
    for (i, &t) in stamps.iter().enumerate() {
        let codec = if i % 2 == 0 { Compression::Lz4 } else { Compression::None };
        let b = batch_with(20, 50, |j| t + j as i64, codec);
        log.append(&b, LEADER, Timestamp(0)).unwrap();
    }
    assert!(log.segment_count() > 1);
    let find = |t: i64| log.offset_for_timestamp(Timestamp(t)).unwrap().map(|f| (f.timestamp.0, f.offset.0));
    assert_eq!(find(0), Some((500, 0)));
    assert_eq!(find(510), Some((510, 10)));
    assert_eq!(find(600), Some((900, 40)));
    assert_eq!(find(1_215), Some((1_215, 95)));
    assert_eq!(find(5_000), None);
    let max = log.max_timestamp_record().unwrap().unwrap();
    assert_eq!((max.timestamp.0, max.offset.0), (1_219, 99));
}

#[test]
fn a_replica_keeps_the_leaders_offsets_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut b = batch(3, 10, 1);
    fjord_log::RecordBatchMut::parse(&mut b).unwrap().set_base_offset(Offset(0));
    log.append(&b, AppendMode::Replica, Timestamp(0)).unwrap();
    let mut stale = batch(1, 10, 1);
    fjord_log::RecordBatchMut::parse(&mut stale).unwrap().set_base_offset(Offset(2));
    assert!(matches!(log.append(&stale, AppendMode::Replica, Timestamp(0)), Err(Error::OffsetsOutOfOrder { .. })));
    let mut next = batch(2, 10, 1);
    fjord_log::RecordBatchMut::parse(&mut next).unwrap().set_base_offset(Offset(3));
    let info = log.append(&next, AppendMode::Replica, Timestamp(0)).unwrap();
    assert_eq!((info.first_offset, log.log_end_offset()), (Offset(3), Offset(5)));
}

#[test]
fn truncation_removes_whole_batches_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let mut log = open(dir.path(), config.clone());
    for i in 0..30 {
        log.append(&batch(4, 40, i), LEADER, Timestamp(0)).unwrap();
    }
    let before = log.read_bytes(Offset(0), 1 << 20, None).unwrap();
    let segments_before = log.segment_count();
    assert!(log.truncate_to(Offset(40), Timestamp(0)).unwrap());
    assert_eq!(log.log_end_offset(), Offset(40));
    assert!(log.segment_count() < segments_before);
    log.validate().unwrap();
    // Truncating inside a batch removes the whole batch.
    assert!(log.truncate_to(Offset(38), Timestamp(0)).unwrap());
    assert_eq!(log.log_end_offset(), Offset(36));
    assert!(!log.truncate_to(Offset(100), Timestamp(0)).unwrap());
    let info = log.append(&batch(1, 10, 0), LEADER, Timestamp(0)).unwrap();
    assert_eq!(info.first_offset, Offset(36));
    drop(log);
    let log = reopen(dir.path(), config, Offset(0));
    assert_eq!(log.log_end_offset(), Offset(37));
    let after = read_all(&log, Offset(0));
    let kept = after.len() - log.read_bytes(Offset(36), 1 << 20, None).unwrap().len();
    assert_eq!(after[..kept], before[..kept.min(before.len())]);
}

#[test]
fn truncate_fully_restarts_the_log_at_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    for i in 0..20 {
        log.append(&batch(4, 40, i), LEADER, Timestamp(0)).unwrap();
    }
    log.truncate_fully_and_start_at(Offset(1_000), Timestamp(0)).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (Offset(1_000), Offset(1_000)));
    assert_eq!(
        file_names(dir.path()),
        vec!["00000000000000001000.index", "00000000000000001000.log", "00000000000000001000.timeindex"]
    );
    assert_eq!(log.append(&batch(1, 1, 0), LEADER, Timestamp(0)).unwrap().first_offset, Offset(1_000));
}

#[test]
fn deleted_segments_stay_readable_until_removed() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let mut log = open(dir.path(), config.clone());
    for i in 0..80 {
        log.append(&batch(4, 40, i), LEADER, Timestamp(0)).unwrap();
    }
    let in_flight = log.read(Offset(0), 1 << 20, None, true).unwrap().unwrap();
    let expected = in_flight.read_to_vec().unwrap();
    let second = log.segments()[2].base_offset;
    let deleted = log.delete_segments_before(second).unwrap();
    assert_eq!(deleted.len(), 2);
    assert_eq!(log.log_start_offset(), second);
    assert!(file_names(dir.path()).iter().any(|n| n.ends_with(".log.deleted")));
    assert_eq!(in_flight.read_to_vec().unwrap(), expected, "a read in flight finishes");
    // Never the active segment.
    let active = log.segments().last().unwrap().base_offset;
    let more = log.delete_segments_before(Offset(i64::MAX)).unwrap();
    assert!(more.iter().all(|d| d.base_offset < active));
    assert_eq!(log.segment_count(), 1);
    for d in deleted {
        d.remove().unwrap();
    }
    drop(log);
    // Files left `.deleted` by a crash are cleaned up at open.
    let log = reopen(dir.path(), config, Offset(0));
    assert!(!file_names(dir.path()).iter().any(|n| n.ends_with(".deleted")));
    assert_eq!(log.log_start_offset(), active);
}

#[test]
fn flush_policy_moves_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig { flush_messages: 10, flush_ms: 1_000, ..LogConfig::default() });
    log.append(&batch(6, 10, 0), LEADER, Timestamp(0)).unwrap();
    assert_eq!(log.recovery_point(), Offset(0));
    log.append(&batch(6, 10, 0), LEADER, Timestamp(0)).unwrap();
    assert_eq!(log.recovery_point(), Offset(12));
    log.append(&batch(1, 10, 0), LEADER, Timestamp(100)).unwrap();
    assert!(!log.maybe_flush(Timestamp(500)).unwrap());
    assert!(log.maybe_flush(Timestamp(1_500)).unwrap());
    assert_eq!(log.recovery_point(), Offset(13));
}

#[test]
fn a_clean_shutdown_skips_recovery_and_an_unclean_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let mut log = open(dir.path(), config.clone());
    for i in 0..30 {
        log.append(&batch(4, 40, i), LEADER, Timestamp(0)).unwrap();
    }
    let written = read_all(&log, Offset(0));
    log.close().unwrap();
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());

    let mut log = reopen(dir.path(), config.clone(), Offset(0));
    assert!(log.open_report().clean_shutdown);
    assert!(log.open_report().recovered_segments.is_empty());
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists(), "marker consumed at open");
    assert_eq!(read_all(&log, Offset(0)), written);
    assert_eq!(log.recovery_point(), log.log_end_offset());
    log.append(&batch(1, 10, 0), LEADER, Timestamp(0)).unwrap();
    let end = log.log_end_offset();
    drop(log); // a crash

    let log = reopen(dir.path(), config, Offset(60));
    let report = log.open_report();
    assert!(!report.clean_shutdown);
    assert!(!report.recovered_segments.is_empty());
    assert!(report.recovered_segments.iter().all(|&b| b >= Offset(56)), "{report:?}");
    assert_eq!(log.log_end_offset(), end);
    log.validate().unwrap();
}

#[test]
fn a_rolled_segment_that_lost_its_tail_cuts_the_log_there() {
    // The page cache wrote a later segment but not the end of an earlier one, then the machine
    // went down: keeping the later segment would leave a hole in the offsets.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let mut log = open(dir.path(), config.clone());
    let mut firsts = Vec::new();
    for i in 0..60 {
        firsts.push(log.append(&batch(4, 40, i), LEADER, Timestamp(0)).unwrap().first_offset);
    }
    let segments: Vec<Offset> = log.segments().iter().map(|s| s.base_offset).collect();
    assert!(segments.len() >= 3, "{segments:?}");
    let written = read_all(&log, Offset(0));
    drop(log); // a crash, nothing flushed

    // Segment 1 keeps only its first batch; segment 2 and later survived whole.
    let second = segments[1];
    let lost_from = *firsts.iter().find(|&&f| f > second).unwrap();
    let file = dir.path().join(fjord_log::segment_file_name(second, ".log"));
    let first_batch = fjord_log::Batches::new(&std::fs::read(&file).unwrap()).next().unwrap().unwrap().size();
    std::fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(first_batch as u64).unwrap();

    let log = reopen(dir.path(), config, Offset(0));
    let report = log.open_report();
    assert_eq!(log.log_end_offset(), lost_from, "{report:?}");
    assert!(report.reason.as_deref().is_some_and(|r| r.contains("tail was lost")), "{report:?}");
    assert_eq!(report.deleted_segments, segments[2..].to_vec());
    let kept = read_all(&log, Offset(0));
    assert_eq!(kept[..], written[..kept.len()], "what is left is a prefix");
    log.validate().unwrap();
}

#[test]
fn a_flushed_segment_ending_short_is_kept_when_its_index_is_rebuilt() {
    // A jump past 2^31 offsets starts the next segment at the batch, so the first segment ends
    // short of it. Flushed, that is no lost tail: rebuilding a damaged index must keep it all.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let mut log = open(dir.path(), config.clone());
    for base in [0, 3 << 31] {
        let mut b = batch(4, 40, 0);
        fjord_log::RecordBatchMut::parse(&mut b).unwrap().set_base_offset(Offset(base));
        log.append(&b, AppendMode::Replica, Timestamp(0)).unwrap();
    }
    assert_eq!(log.segments().len(), 2);
    log.flush(Timestamp(0)).unwrap();
    let (end, written) = (log.log_end_offset(), read_all(&log, Offset(0)));
    drop(log); // a crash after the flush
    let index = dir.path().join(fjord_log::segment_file_name(Offset(0), ".index"));
    std::fs::write(&index, [1u8; 16]).unwrap(); // damaged: forces a recovery scan below the recovery point

    let log = reopen(dir.path(), config, end);
    assert!(log.open_report().recovered_segments.contains(&Offset(0)), "{:?}", log.open_report());
    assert_eq!(log.open_report().reason, None);
    assert_eq!((log.log_end_offset(), read_all(&log, Offset(0))), (end, written));
}

#[test]
fn a_replica_rolls_at_its_log_end_across_a_leaders_gap() {
    // A compacted leader sends batches with gaps between them. The replica's segments still
    // meet exactly, so recovering them after a crash keeps every batch.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let mut log = open(dir.path(), config.clone());
    let mut base = 0;
    for i in 0..60 {
        let mut b = batch(4, 40, i);
        fjord_log::RecordBatchMut::parse(&mut b).unwrap().set_base_offset(Offset(base));
        log.append(&b, AppendMode::Replica, Timestamp(0)).unwrap();
        base += 10; // six offsets compacted away after every batch
    }
    let segments = log.segments();
    assert!(segments.len() >= 3);
    for pair in segments.windows(2) {
        // The batch after the roll starts at 10k, but the segment at the end of the one before.
        assert_eq!(pair[1].base_offset.0 % 10, 4, "{segments:?}");
    }
    let (end, written) = (log.log_end_offset(), read_all(&log, Offset(0)));
    drop(log); // a crash

    let log = reopen(dir.path(), config, Offset(0));
    assert_eq!(log.open_report().reason, None);
    assert_eq!((log.log_end_offset(), read_all(&log, Offset(0))), (end, written));
}

#[test]
fn dump_prints_what_kafka_dump_log_prints() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut builder =
        fjord_log::BatchBuilder::new().producer(fjord_types::ProducerId(7), fjord_types::ProducerEpoch(0), 0);
    builder.push(
        Timestamp(1_700_000_000_000),
        Some(b"k"),
        Some(b"hello"),
        &[fjord_log::Header { key: b"a", value: Some(b"1") }, fjord_log::Header { key: b"b", value: None }],
    );
    builder.push(Timestamp(1_700_000_000_001), None, Some(b"world"), &[]);
    let bytes = builder.build().unwrap();
    log.append(&bytes, LEADER, Timestamp(0)).unwrap();
    let stored = RecordBatch::parse(&bytes).unwrap();
    let path = dir.path().join("00000000000000000000.log");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let options = DumpOptions { print_data_log: true, ..DumpOptions::default() };
    let report = dump_file(&path, options, &mut out, &mut err).unwrap();
    assert!(report.is_clean());
    let out = String::from_utf8(out).unwrap();
    let expected = format!(
        "Dumping {}\nLog starting offset: 0\n\
         baseOffset: 0 lastOffset: 1 count: 2 baseSequence: 0 lastSequence: 1 producerId: 7 producerEpoch: 0 \
         partitionLeaderEpoch: 3 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty \
         position: 0 CreateTime: 1700000000001 size: {} magic: 2 compresscodec: none crc: {} isvalid: true\n\
         | offset: 0 CreateTime: 1700000000000 keySize: 1 valueSize: 5 sequence: 0 headerKeys: [a,b] key: k payload: hello\n\
         | offset: 1 CreateTime: 1700000000001 keySize: -1 valueSize: 5 sequence: 1 headerKeys: [] payload: world\n",
        path.display(),
        bytes.len(),
        stored.crc(),
    );
    assert_eq!(out, expected);
    // Garbage after the last batch is reported, as Kafka does.
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"garbage!!!").unwrap();
    let mut out = Vec::new();
    let report = dump_file(&path, DumpOptions::default(), &mut out, &mut Vec::new()).unwrap();
    assert_eq!(report.trailing_invalid_bytes, 10);
    assert!(
        String::from_utf8(out).unwrap().ends_with("Found 10 invalid bytes at the end of 00000000000000000000.log\n")
    );
}

#[test]
fn dump_verifies_indexes_against_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig { index_interval_bytes: 100, ..LogConfig::default() });
    for i in 0..10 {
        log.append(&batch(3, 50, i * 10), LEADER, Timestamp(0)).unwrap();
    }
    log.close().unwrap();
    let index = dir.path().join("00000000000000000000.index");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let report = dump_file(&index, DumpOptions::default(), &mut out, &mut err).unwrap();
    assert!(report.is_clean(), "{}", String::from_utf8_lossy(&err));
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out.lines().filter(|l| l.starts_with("offset: ")).count(), 9, "{out}");
    let timeindex = dir.path().join("00000000000000000000.timeindex");
    let report = dump_file(&timeindex, DumpOptions::default(), &mut Vec::new(), &mut err).unwrap();
    assert!(report.is_clean(), "{}", String::from_utf8_lossy(&err));
    // A wrong entry is reported as a mismatch.
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[3] ^= 1;
    std::fs::write(&index, bytes).unwrap();
    let mut err = Vec::new();
    let report =
        dump_file(&index, DumpOptions { verify_index_only: true, ..DumpOptions::default() }, &mut Vec::new(), &mut err)
            .unwrap();
    assert_eq!(report.index_mismatches, 1);
    assert!(String::from_utf8(err).unwrap().starts_with("Mismatches in :"));
}

use std::io::Write;

/// Resident KiB of this process's mappings of files in `dir` ending in `suffix` (Linux smaps).
fn resident_kib(dir: &std::path::Path, suffix: &str) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let prefix = dir.to_string_lossy().into_owned();
    let mut total = 0;
    let mut counting = false;
    for line in smaps.lines() {
        if let Some(path) = line.split_whitespace().nth(5).filter(|_| line.contains('-') && !line.starts_with("Rss")) {
            counting = path.starts_with(&prefix) && path.ends_with(suffix);
        } else if let Some(rss) = line.strip_prefix("Rss:")
            && counting
        {
            total += rss.trim().trim_end_matches(" kB").trim().parse::<u64>().unwrap();
        }
    }
    total
}

#[test]
fn preallocated_indexes_stay_out_of_memory() {
    // The active segment's indexes are preallocated to segment.index.bytes (10 MiB) and mapped;
    // creating, rebuilding or reopening them must not touch the empty part.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let mut log = open(dir.path(), config.clone());
    log.append(&batch(10, 100, 1_000), AppendMode::Leader { leader_epoch: LeaderEpoch(0) }, Timestamp(1_000)).unwrap();
    for suffix in [".index", ".timeindex"] {
        assert!(resident_kib(dir.path(), suffix) < 512, "{suffix}: {} KiB resident", resident_kib(dir.path(), suffix));
    }
    drop(log); // unclean: the next open rebuilds the active segment's indexes
    let log = reopen(dir.path(), config, Offset(0));
    assert_eq!(log.log_end_offset(), Offset(10));
    for suffix in [".index", ".timeindex"] {
        assert!(resident_kib(dir.path(), suffix) < 512, "{suffix}: {} KiB resident", resident_kib(dir.path(), suffix));
    }
}
