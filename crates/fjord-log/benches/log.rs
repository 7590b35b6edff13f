//! fjord-log benchmarks. `cargo xtask bench` runs them next to `dd` on the same bytes and
//! reports ratios; `cargo bench -p fjord-log` runs them alone.
//!
//! - `append/16KiB-batches`: leader appends of 16 KiB batches of 100-byte records into the page
//!   cache (validation, offset assignment, segment writes, index updates, rolls).
//! - `read/file-ranges`: a consumer's sequential reads through the file-range API, copying each
//!   range into a reused buffer with `pread` (what a broker without `sendfile` does).
//! - `recovery/full-scan`: opening a log after an unclean shutdown with recovery point 0: every
//!   batch is read, CRC-checked and indexed.
//! - `batch/*`: the per-batch costs on their own.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fjord_log::{AppendMode, BatchBuilder, Log, LogConfig, OpenOptions, RecordBatch};
use fjord_types::{LeaderEpoch, Offset, Timestamp};

const LEADER: AppendMode = AppendMode::Leader { leader_epoch: LeaderEpoch(0) };
const MIB: u64 = 1024 * 1024;

fn mib_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A batch of 100-byte records filling (just under) 16 KiB.
fn batch_16k() -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    let value = [b'x'; 100];
    let mut i = 0u64;
    while builder.uncompressed_size() + 120 <= 16 * 1024 {
        let key = i.to_be_bytes();
        builder.push(Timestamp(1_700_000_000_000 + i as i64), Some(&key), Some(&value), &[]);
        i += 1;
    }
    builder.build().unwrap()
}

fn config() -> LogConfig {
    // Kafka's defaults apart from the segment size, so a run crosses a few rolls.
    LogConfig { segment_bytes: 256 * MIB, ..LogConfig::default() }
}

fn fill(dir: &Path, total: u64) -> Log {
    let mut log = Log::open(dir, config(), OpenOptions::default(), Timestamp(0)).unwrap();
    let batch = batch_16k();
    let mut written = 0;
    while written < total {
        log.append(&batch, LEADER, Timestamp(0)).unwrap();
        written += batch.len() as u64;
    }
    log
}

fn append(c: &mut Criterion) {
    let total = mib_from_env("FJORD_BENCH_APPEND_MIB", 512) * MIB;
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(total));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("16KiB-batches", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let dir = tempfile::tempdir().unwrap();
                let mut log = Log::open(dir.path(), config(), OpenOptions::default(), Timestamp(0)).unwrap();
                let batch = batch_16k();
                let start = Instant::now();
                let mut written = 0;
                while written < total {
                    log.append(&batch, LEADER, Timestamp(0)).unwrap();
                    written += batch.len() as u64;
                }
                elapsed += start.elapsed();
                drop(log);
            }
            elapsed
        })
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let total = mib_from_env("FJORD_BENCH_READ_MIB", 512) * MIB;
    let dir = tempfile::tempdir().unwrap();
    let log = fill(dir.path(), total);
    let size = log.size_bytes();
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(size));
    group.sample_size(10);
    let mut buf = vec![0u8; 1 << 20];
    group.bench_function("file-ranges", |b| {
        b.iter(|| {
            let mut offset = Offset(0);
            let mut copied = 0u64;
            while offset < log.log_end_offset() {
                let range = log.read(offset, 1 << 20, None, true).unwrap().unwrap();
                range.read_into(&mut buf[..range.len as usize]).unwrap();
                copied += range.len;
                // The next read starts after the last batch of this range.
                let last = last_batch_next_offset(&buf[..range.len as usize]);
                offset = last;
            }
            assert_eq!(copied, size);
        })
    });
    group.bench_function("ranges-only", |b| {
        // The index and header work of a read, without touching the record bytes: what a
        // zero-copy send adds on top of the kernel's copy.
        let ranges: Vec<(Offset, Offset)> = {
            let mut v = Vec::new();
            let mut offset = Offset(0);
            while offset < log.log_end_offset() {
                let range = log.read(offset, 1 << 20, None, true).unwrap().unwrap();
                let bytes = range.read_to_vec().unwrap();
                let next = last_batch_next_offset(&bytes);
                v.push((offset, next));
                offset = next;
            }
            v
        };
        b.iter(|| {
            for &(offset, _) in &ranges {
                black_box(log.read(offset, 1 << 20, None, true).unwrap());
            }
        })
    });
    group.finish();
}

fn last_batch_next_offset(bytes: &[u8]) -> Offset {
    let mut next = Offset(0);
    for batch in fjord_log::Batches::new(bytes) {
        next = batch.unwrap().next_offset();
    }
    next
}

fn recovery(c: &mut Criterion) {
    let total = mib_from_env("FJORD_BENCH_RECOVERY_MIB", 1024) * MIB;
    let dir = tempfile::tempdir().unwrap();
    let size = {
        let log = fill(dir.path(), total);
        log.size_bytes()
        // Dropped without close(): no clean-shutdown marker, so every open recovers.
    };
    let mut group = c.benchmark_group("recovery");
    group.throughput(Throughput::Bytes(size));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("full-scan", |b| {
        b.iter(|| {
            let log = Log::open(dir.path(), config(), OpenOptions::default(), Timestamp(0)).unwrap();
            assert_eq!(log.open_report().recovered_segments.len(), log.segment_count());
            assert_eq!(log.size_bytes(), size);
        })
    });
    group.finish();
}

fn batch(c: &mut Criterion) {
    let bytes = batch_16k();
    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("validate-crc", |b| b.iter(|| RecordBatch::parse_valid(black_box(&bytes)).unwrap()));
    let mut scratch = Vec::new();
    group.bench_function("validate-records", |b| {
        b.iter(|| RecordBatch::parse(black_box(&bytes)).unwrap().validate_records(&mut scratch, 1 << 20).unwrap())
    });
    group.finish();
}

criterion_group!(benches, append, read, recovery, batch);
criterion_main!(benches);
