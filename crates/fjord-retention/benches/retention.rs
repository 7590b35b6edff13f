//! fjord-retention benchmarks: the retention check's cost per segment (it must be O(segments),
//! never O(records)).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fjord_log::SegmentInfo;
use fjord_retention::{RetentionConfig, plan};
use fjord_types::{Offset, Timestamp};

fn segments(count: i64) -> Vec<SegmentInfo> {
    (0..count)
        .map(|i| SegmentInfo {
            base_offset: Offset(i * 1_000_000),
            next_offset: Offset((i + 1) * 1_000_000),
            size_bytes: 1 << 30,
            max_timestamp: Some(Timestamp(i)),
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

criterion_group!(benches, bench);
criterion_main!(benches);
