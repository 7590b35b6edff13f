//! Crash tests: after appending, the files are cut or corrupted the way a crash or a failing
//! disk leaves them, and the log is reopened. It must come back as a valid prefix of what was
//! written, keep everything below the recovery point, and have indexes that match a full scan.
//!
//! Bits are flipped only in bytes the batch CRC covers or in the length field: the base offset
//! and partition leader epoch are outside the CRC by Kafka's design (the leader patches them in
//! place), so damage there is not detectable from the batch alone (see docs/log-format.md).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use fjord_log::{Batches, Log, LogConfig, OpenOptions, segment_file_name};
use fjord_types::{Offset, Timestamp};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Damage {
    /// The active segment loses its tail at this fraction of the unflushed bytes.
    TornTail(f64),
    /// A bit flips at this fraction of the unflushed bytes.
    FlipBit(f64, u8),
    /// Garbage lands after the last batch.
    Garbage(Vec<u8>),
    /// A segment's offset index is zeroed.
    ZeroIndex(usize),
    /// A segment's offset index is cut short.
    TruncateIndex(usize, f64),
    /// A segment's time index disappears.
    DeleteTimeIndex(usize),
}

fn arb_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0f64..1.0).prop_map(Damage::TornTail),
        ((0.0f64..1.0), 0u8..8).prop_map(|(at, bit)| Damage::FlipBit(at, bit)),
        prop::collection::vec(any::<u8>(), 1..200).prop_map(Damage::Garbage),
        any::<usize>().prop_map(Damage::ZeroIndex),
        (any::<usize>(), 0.0f64..1.0).prop_map(|(s, at)| Damage::TruncateIndex(s, at)),
        any::<usize>().prop_map(Damage::DeleteTimeIndex),
    ]
}

/// A byte of the log: which file, where, and whether it is a batch's unprotected header field.
struct LogByte {
    file: PathBuf,
    position: u64,
    unprotected: bool,
}

/// Every byte from `from` (a file and position) to the end of the log, in order.
fn bytes_after(dir: &Path, segments: &[Offset], from: (Offset, u64)) -> Vec<LogByte> {
    let mut out = Vec::new();
    for &base in segments.iter().filter(|&&b| b >= from.0) {
        let file = dir.join(segment_file_name(base, ".log"));
        let data = std::fs::read(&file).unwrap();
        let mut batch_start = 0u64;
        for batch in Batches::new(&data) {
            let size = batch.unwrap().size() as u64;
            let start = if base == from.0 { from.1.max(batch_start) } else { batch_start };
            for position in start..batch_start + size {
                let rel = position - batch_start;
                let unprotected = rel < 8 || (12..16).contains(&rel);
                out.push(LogByte { file: file.clone(), position, unprotected });
            }
            batch_start += size;
        }
    }
    out
}

/// The offset index entries Kafka's append rule gives for a log file's batches.
fn expected_index(log_file: &Path, base: Offset, interval: u64) -> Vec<(i64, u32)> {
    let data = std::fs::read(log_file).unwrap();
    let (mut entries, mut since, mut position) = (Vec::new(), 0u64, 0u32);
    for batch in Batches::new(&data) {
        let batch = batch.unwrap();
        if since > interval {
            entries.push((batch.last_offset().since(base), position));
            since = 0;
        }
        since += batch.size() as u64;
        position += batch.size() as u32;
    }
    entries
}

fn index_entries(path: &Path) -> Vec<(i64, u32)> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(8)
        .map(|e| {
            (u32::from_be_bytes(e[0..4].try_into().unwrap()) as i64, u32::from_be_bytes(e[4..8].try_into().unwrap()))
        })
        .take_while(|&e| e != (0, 0))
        .collect()
}

fn config() -> LogConfig {
    LogConfig { segment_bytes: 3_000, index_interval_bytes: 300, segment_index_bytes: 1_024, ..LogConfig::default() }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn reopened_log_is_a_valid_prefix(
        batches in prop::collection::vec((1usize..6, 0usize..150), 5..60),
        flush_after in 0usize..60,
        damage in arb_damage(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config());
        let mut written: Vec<(Offset, Vec<u8>)> = Vec::new();
        let mut recovery_point = Offset(0);
        for (i, &(count, size)) in batches.iter().enumerate() {
            let bytes = batch(count, size, i as i64 * 10);
            let info = log.append(&bytes, LEADER, Timestamp(0)).unwrap();
            written.push((info.first_offset, as_written(&bytes, info.first_offset)));
            if i + 1 == flush_after {
                log.flush(Timestamp(0)).unwrap();
                recovery_point = log.recovery_point();
            }
        }
        let end = log.log_end_offset();
        let segments: Vec<Offset> = log.segments().iter().map(|s| s.base_offset).collect();
        // Where the recovery point sits in the files.
        let rp_segment = *segments.iter().rfind(|&&b| b <= recovery_point).unwrap();
        let rp_position = match log.read(recovery_point, 1, None, true).unwrap() {
            Some(range) => range.position,
            None => std::fs::metadata(dir.path().join(segment_file_name(rp_segment, ".log"))).unwrap().len(),
        };
        drop(log); // the crash: no clean shutdown marker

        let unflushed = bytes_after(dir.path(), &segments, (rp_segment, rp_position));
        let pick = |i: usize| segments[i % segments.len()];
        let mut index_damaged = false;
        match &damage {
            Damage::TornTail(at) => {
                if let Some(byte) = unflushed.get((*at * unflushed.len() as f64) as usize) {
                    let f = std::fs::OpenOptions::new().write(true).open(&byte.file).unwrap();
                    f.set_len(byte.position).unwrap();
                }
            }
            Damage::FlipBit(at, bit) => {
                let candidates: Vec<&LogByte> = unflushed.iter().filter(|b| !b.unprotected).collect();
                if let Some(byte) = candidates.get((*at * candidates.len() as f64) as usize) {
                    let mut data = std::fs::read(&byte.file).unwrap();
                    data[byte.position as usize] ^= 1 << bit;
                    std::fs::write(&byte.file, data).unwrap();
                }
            }
            Damage::Garbage(garbage) => {
                use std::io::Write;
                let active = dir.path().join(segment_file_name(*segments.last().unwrap(), ".log"));
                std::fs::OpenOptions::new().append(true).open(active).unwrap().write_all(garbage).unwrap();
            }
            Damage::ZeroIndex(i) => {
                let path = dir.path().join(segment_file_name(pick(*i), ".index"));
                let len = std::fs::metadata(&path).unwrap().len();
                std::fs::write(&path, vec![0u8; len as usize]).unwrap();
                index_damaged = true;
            }
            Damage::TruncateIndex(i, at) => {
                let path = dir.path().join(segment_file_name(pick(*i), ".index"));
                let len = std::fs::metadata(&path).unwrap().len();
                let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                f.set_len((len as f64 * at) as u64).unwrap();
                index_damaged = true;
            }
            Damage::DeleteTimeIndex(i) => {
                std::fs::remove_file(dir.path().join(segment_file_name(pick(*i), ".timeindex"))).unwrap();
                index_damaged = true;
            }
        }

        let log = Log::open(dir.path(), config(), OpenOptions { recovery_point, log_start_offset: Offset(0) }, Timestamp(0)).unwrap();
        let report = log.open_report().clone();
        prop_assert!(log.log_end_offset() >= recovery_point, "lost flushed data: {:?}", report);
        if index_damaged {
            prop_assert_eq!(log.log_end_offset(), end, "index damage must not lose data");
        }
        // A valid prefix, batch for batch.
        let stored = read_all(&log, Offset(0));
        let kept = written.iter().take_while(|(base, _)| *base < log.log_end_offset()).count();
        let prefix: Vec<u8> = written[..kept].iter().flat_map(|(_, b)| b.iter().copied()).collect();
        prop_assert!(stored == prefix, "stored bytes are not the first {} batches: {:?}", kept, report);
        let expected_end = written.get(kept).map_or(end, |(base, _)| *base);
        prop_assert_eq!(log.log_end_offset(), expected_end);
        log.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Indexes match what a full scan gives.
        for segment in log.segments() {
            let log_file = dir.path().join(segment_file_name(segment.base_offset, ".log"));
            let index = dir.path().join(segment_file_name(segment.base_offset, ".index"));
            prop_assert_eq!(
                index_entries(&index),
                expected_index(&log_file, segment.base_offset, config().index_interval_bytes),
                "index of segment {} after {:?}", segment.base_offset, damage
            );
        }
        // And the log takes appends again, at the next offset.
        let mut log = log;
        let info = log.append(&batch(1, 10, 0), LEADER, Timestamp(0)).unwrap();
        prop_assert_eq!(info.first_offset, expected_end);
    }
}
