use fjord_log::{AppendMode, BatchBuilder, LogConfig, OpenOptions};
use fjord_types::LeaderEpoch;
use proptest::prelude::*;

use super::*;

/// Kafka's procedure, written the way Kafka runs it: three passes, each deleting the prefix
/// of what is left that breaches one limit.
fn model(
    segments: &[SegmentInfo],
    log_start: Offset,
    hw: Offset,
    config: &RetentionConfig,
    now: Timestamp,
) -> Vec<Offset> {
    let mut left: Vec<SegmentInfo> = segments.to_vec();
    let mut deleted = Vec::new();
    let deletable = |s: &SegmentInfo| !s.is_active && s.next_offset <= hw;
    let mut pass = |left: &mut Vec<SegmentInfo>, breach: &mut dyn FnMut(&SegmentInfo) -> bool| {
        while let Some(first) = left.first() {
            if !deletable(first) || !breach(first) {
                break;
            }
            deleted.push(first.base_offset);
            left.remove(0);
        }
    };
    if config.retention_ms >= 0 {
        pass(&mut left, &mut |s| s.max_timestamp.is_some_and(|t| now.0 - t.0 > config.retention_ms));
    }
    if config.retention_bytes >= 0 {
        let mut diff = left.iter().map(|s| s.size_bytes as i64).sum::<i64>() - config.retention_bytes;
        pass(&mut left, &mut |s| {
            if diff - s.size_bytes as i64 >= 0 {
                diff -= s.size_bytes as i64;
                true
            } else {
                false
            }
        });
    }
    pass(&mut left, &mut |s| s.next_offset <= log_start);
    deleted
}

fn arb_segments() -> impl Strategy<Value = Vec<SegmentInfo>> {
    prop::collection::vec((1u64..50, 0u64..5_000, prop::option::weighted(0.9, 0i64..100_000)), 1..12).prop_map(
        |specs| {
            let mut base = 0i64;
            let count = specs.len();
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (records, size, max_ts))| {
                    let segment = SegmentInfo {
                        base_offset: Offset(base),
                        next_offset: Offset(base + records as i64),
                        size_bytes: size,
                        max_timestamp: max_ts.map(Timestamp),
                        first_timestamp: max_ts.map(Timestamp),
                        is_active: i + 1 == count,
                    };
                    base += records as i64;
                    segment
                })
                .collect()
        },
    )
}

proptest! {
    /// For any segments, limits, log start and high watermark, the planner deletes exactly
    /// what Kafka's three passes delete, and the reasons are the limits actually breached.
    #[test]
    fn the_plan_matches_kafkas_procedure(
        segments in arb_segments(),
        retention_ms in prop_oneof![Just(-1i64), 0i64..100_000],
        retention_bytes in prop_oneof![Just(-1i64), 0i64..20_000],
        start_pick in 0usize..12,
        hw_pick in 0usize..13,
        now in 0i64..200_000,
    ) {
        let end = segments.last().unwrap().next_offset;
        let log_start = Offset((start_pick as i64 * 7).min(end.0));
        let hw = Offset((hw_pick as i64 * 9).min(end.0).max(log_start.0));
        let config = RetentionConfig { retention_ms, retention_bytes };
        let planned = plan(&segments, log_start, hw, &config, Timestamp(now));
        let want = model(&segments, log_start, hw, &config, Timestamp(now));
        let got: Vec<Offset> = planned.segments.iter().map(|(b, _)| *b).collect();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(planned.delete_before, got.last().map(|b| segments.iter().find(|s| s.base_offset == *b).unwrap().next_offset));
        for (base, reason) in &planned.segments {
            let s = segments.iter().find(|s| s.base_offset == *base).unwrap();
            prop_assert!(!s.is_active && s.next_offset <= hw);
            match reason {
                Reason::Time => prop_assert!(now - s.max_timestamp.unwrap().0 > retention_ms && retention_ms >= 0),
                Reason::Size => prop_assert!(retention_bytes >= 0),
                Reason::LogStart => prop_assert!(s.next_offset <= log_start),
            }
        }
    }
}

fn append(log: &mut Log, count: usize, timestamp: i64) {
    let mut batch = BatchBuilder::new();
    for i in 0..count {
        batch.push(Timestamp(timestamp), Some(format!("k{i}").as_bytes()), Some(&[b'v'; 100]), &[]);
    }
    let bytes = batch.build().unwrap();
    log.append(&bytes, AppendMode::Leader { leader_epoch: LeaderEpoch(0) }, Timestamp(timestamp)).unwrap();
}

#[test]
fn enforce_deletes_expired_segments_and_rolls_a_quiet_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 2_000, segment_ms: 10_000, ..LogConfig::default() };
    let mut log = Log::open(dir.path(), config, OpenOptions::default(), Timestamp(0)).unwrap();
    for i in 0..10 {
        append(&mut log, 10, 1_000 + i);
    }
    append(&mut log, 10, 50_000);
    let segments = log.segments();
    assert!(segments.len() >= 4, "{segments:?}");
    let retention = RetentionConfig { retention_ms: 30_000, retention_bytes: -1 };
    let hw = log.log_end_offset();

    // At 40 s the old segments are past retention.ms; the newest (written at 50 s) is not.
    let (planned, deleted) = enforce(&mut log, hw, &retention, Timestamp(40_000)).unwrap();
    assert!(planned.segments.iter().all(|(_, r)| *r == Reason::Time));
    assert_eq!(deleted.len(), planned.segments.len());
    assert!(deleted.iter().all(|d| d.files.iter().all(|f| f.to_string_lossy().ends_with(".deleted"))));
    assert_eq!(Some(log.log_start_offset()), planned.delete_before);
    assert_eq!(log.log_start_offset(), Offset(100), "the ten batches written at 1 s are gone");
    assert!(!log.read_bytes(Offset(100), 1 << 20, None).unwrap().is_empty(), "the 50 s batch stays");
    for d in deleted {
        d.remove().unwrap();
    }

    // Quiet until 100 s: the active segment rolls by segment.ms, and then everything but the
    // new empty active segment goes.
    let (planned, deleted) = enforce(&mut log, hw, &retention, Timestamp(100_000)).unwrap();
    assert!(!planned.segments.is_empty());
    assert_eq!(log.segments().len(), 1);
    assert_eq!(log.log_start_offset(), hw, "nothing below the end remains");
    assert_eq!(log.log_end_offset(), hw);
    drop(deleted);
}

#[test]
fn nothing_goes_under_the_defaults_or_with_unlimited_retention() {
    let info = |base: i64, next: i64, active: bool| SegmentInfo {
        base_offset: Offset(base),
        next_offset: Offset(next),
        size_bytes: 1 << 30,
        max_timestamp: Some(Timestamp(0)),
        first_timestamp: Some(Timestamp(0)),
        is_active: active,
    };
    let segments = [info(0, 10, false), info(10, 20, false), info(20, 25, true)];
    let forever = RetentionConfig { retention_ms: -1, retention_bytes: -1 };
    assert_eq!(plan(&segments, Offset(0), Offset(25), &forever, Timestamp(i64::MAX)), Plan::default());
    let week = RetentionConfig::default();
    assert_eq!(plan(&segments, Offset(0), Offset(25), &week, Timestamp(1_000)), Plan::default());
    // Below the log start offset (DeleteRecords) goes even with unlimited retention.
    let planned = plan(&segments, Offset(12), Offset(25), &forever, Timestamp(0));
    assert_eq!(planned.segments, vec![(Offset(0), Reason::LogStart)]);
    // Nothing at or above the high watermark.
    let planned =
        plan(&segments, Offset(0), Offset(15), &RetentionConfig { retention_ms: 0, retention_bytes: -1 }, Timestamp(9));
    assert_eq!(planned.delete_before, Some(Offset(10)));
}

/// Records without timestamps (-1) must not look infinitely old: the segment file's
/// modification time stands in, as in Kafka.
#[test]
fn segments_without_timestamps_age_by_their_file_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_bytes: 2_000, ..LogConfig::default() };
    let mut log = Log::open(dir.path(), config, OpenOptions::default(), Timestamp(0)).unwrap();
    for _ in 0..5 {
        append(&mut log, 10, -1);
    }
    let written = log.segments()[0].max_timestamp.expect("the file time");
    assert!(written.0 > 1_600_000_000_000, "a wall-clock file time, not -1: {written:?}");
    let retention = RetentionConfig { retention_ms: 60_000, retention_bytes: -1 };
    let hw = log.log_end_offset();
    let (planned, _) = enforce(&mut log, hw, &retention, Timestamp(written.0 + 1_000)).unwrap();
    assert!(planned.segments.is_empty(), "freshly written: kept");
    let (planned, _) = enforce(&mut log, hw, &retention, Timestamp(written.0 + 61_000)).unwrap();
    assert!(!planned.segments.is_empty(), "a minute after the file was written: gone");
}
