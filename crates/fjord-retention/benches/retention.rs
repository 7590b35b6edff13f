//! fjord-retention benchmarks: the retention check's cost per segment (it must be O(segments),
//! never O(records)), and the cleaner's throughput on 100-byte keyed records (target: at least
//! 200 MB/s of log cleaned, from the page cache).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fjord_log::{AppendMode, BatchBuilder, Log, LogConfig, OpenOptions, SegmentInfo};
use fjord_retention::{CleanTask, Cleaner, CleanerOptions, CompactionConfig, RetentionConfig, cleanable, plan};
use fjord_types::{LeaderEpoch, Offset, Timestamp};

fn segments(count: i64) -> Vec<SegmentInfo> {
    (0..count)
        .map(|i| SegmentInfo {
            base_offset: Offset(i * 1_000_000),
            next_offset: Offset((i + 1) * 1_000_000),
            size_bytes: 1 << 30,
            max_timestamp: Some(Timestamp(i)),
            first_timestamp: Some(Timestamp(i)),
            is_active: i + 1 == count,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    for count in [10i64, 10_000] {
        let segs = segments(count);
        let end = segs.last().unwrap().next_offset;
        // Nothing breached: the planner stops at the first segment (the common case).
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(format!("{count}-segments/nothing-due"), |b| {
            b.iter(|| plan(black_box(&segs), Offset(0), end, &RetentionConfig::default(), Timestamp(1_000)))
        });
        // Everything but the active segment breached by size: a full walk.
        let tight = RetentionConfig { retention_ms: -1, retention_bytes: 0 };
        group.bench_function(format!("{count}-segments/all-due"), |b| {
            b.iter(|| plan(black_box(&segs), Offset(0), end, &tight, Timestamp(1_000)))
        });
    }
    group.finish();
}

/// A log of `records` 100-byte records over `keys` keys (so each key is written
/// `records / keys` times), in batches of 100, all in closed segments.
fn keyed_log(dir: &std::path::Path, records: usize, keys: usize) -> Log {
    let mut log = Log::open(dir, LogConfig::default(), OpenOptions::default(), Timestamp(0)).unwrap();
    let value = [b'v'; 76];
    let mut builder = BatchBuilder::new();
    for start in (0..records).step_by(100) {
        builder.clear();
        for i in start..(start + 100).min(records) {
            let key = format!("key-{:012}", (i * 7919) % keys);
            builder.push(Timestamp(1_000), Some(key.as_bytes()), Some(&value), &[]);
        }
        let bytes = builder.build().unwrap();
        log.append(&bytes, AppendMode::Leader { leader_epoch: LeaderEpoch(0) }, Timestamp(1_000)).unwrap();
    }
    log.roll(Timestamp(1_000)).unwrap();
    log
}

fn cleaner(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = keyed_log(dir.path(), 500_000, 50_000);
    let config = CompactionConfig::default();
    let found =
        cleanable(&log.segments(), log.log_start_offset(), Offset(0), log.log_end_offset(), &config, Timestamp(2_000));
    let task = CleanTask::new(&log, &found, config, Timestamp(2_000)).unwrap();
    let mut cleaner = Cleaner::new(CleanerOptions::default(), std::sync::Arc::new(fjord_types::SystemClock));
    let mut group = c.benchmark_group("cleaner");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(log.size_bytes()));
    // The whole cleaning but the swap: map the keys, copy the latest records into a cleaned
    // segment (written and discarded each time, so the log stays dirty for the next run).
    group.bench_function("500k-records-100B-10-writes-per-key", |b| {
        b.iter(|| {
            cleaner
                .run(&task, |cleaned, _| {
                    black_box(cleaned.size());
                    Ok(())
                })
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench, cleaner);
criterion_main!(benches);
