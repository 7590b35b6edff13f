//! Helpers shared by the log's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use fjord_log::{AppendMode, BatchBuilder, Compression, Log, LogConfig, OpenOptions};
use fjord_types::{LeaderEpoch, Offset, Timestamp};

pub const LEADER: AppendMode = AppendMode::Leader { leader_epoch: LeaderEpoch(3) };

/// A batch of `count` records with `value_size`-byte values, timestamps from `timestamp`.
pub fn batch(count: usize, value_size: usize, timestamp: i64) -> Vec<u8> {
    batch_with(count, value_size, |i| timestamp + i as i64, Compression::None)
}

pub fn batch_with(
    count: usize,
    value_size: usize,
    timestamp: impl Fn(usize) -> i64,
    compression: Compression,
) -> Vec<u8> {
    let mut builder = BatchBuilder::new().compression(compression);
    let value = vec![b'v'; value_size];
    for i in 0..count {
        let key = format!("key-{i}");
        builder.push(Timestamp(timestamp(i)), Some(key.as_bytes()), Some(&value), &[]);
    }
    builder.build().unwrap()
}

pub fn small_config() -> LogConfig {
    LogConfig { segment_bytes: 4096, index_interval_bytes: 256, segment_index_bytes: 4096, ..LogConfig::default() }
}

pub fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, OpenOptions::default(), Timestamp(0)).unwrap()
}

pub fn reopen(dir: &Path, config: LogConfig, recovery_point: Offset) -> Log {
    Log::open(dir, config, OpenOptions { recovery_point, log_start_offset: Offset(0) }, Timestamp(0)).unwrap()
}

/// Reads the whole log from `from` by repeated reads, as a consumer would.
pub fn read_all(log: &Log, from: Offset) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.log_end_offset() {
        let bytes = log.read_bytes(next, 1 << 20, None).unwrap();
        assert!(!bytes.is_empty(), "no progress reading at {next}");
        let mut last = next;
        for batch in fjord_log::Batches::new(&bytes) {
            last = batch.unwrap().next_offset();
        }
        out.extend_from_slice(&bytes);
        next = last;
    }
    out
}

pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// `bytes` (batches end to end) as a [`LEADER`] append stores them from `first_offset`: the
/// log writes its own headers and leaves the caller's buffer as it was.
pub fn as_written(bytes: &[u8], first_offset: Offset) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let (mut position, mut next) = (0, first_offset);
    while position < out.len() {
        let mut batch = fjord_log::RecordBatchMut::parse(&mut out[position..]).unwrap();
        batch.set_base_offset(next);
        batch.set_partition_leader_epoch(LeaderEpoch(3));
        next = batch.as_ref().next_offset();
        position += batch.as_ref().size();
    }
    out
}
