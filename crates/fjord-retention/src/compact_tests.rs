//! The cleaner against a model: whatever is written, cleaned, reopened or crashed mid-swap, the
//! log keeps every key's latest record, and once fully cleaned holds nothing else.

use std::collections::BTreeMap;
use std::sync::Arc;

use fjord_log::{AppendMode, BatchBuilder, Compression, Log, LogConfig, OpenOptions, RecordBatch};
use fjord_types::{Clock, LeaderEpoch, ManualClock, Offset, ProducerEpoch, ProducerId, Timestamp};
use proptest::prelude::*;

use crate::compact::{CleanState, CleanTask, Cleaner, CleanerOptions, CompactionConfig, cleanable};

/// A record as read back: key, value (None for a tombstone).
type Kv = (Vec<u8>, Option<Vec<u8>>);

#[derive(Debug, Clone)]
enum Op {
    /// A batch of (key, value) writes; value None is a tombstone.
    Write(Vec<(u8, Option<u16>)>, bool),
    Roll,
    Clean,
    /// Cleans, "crashing" after this many swap steps, and reopens.
    CrashClean(usize),
    Reopen,
    Sleep(i64),
}

fn arb_op(keys: u8) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec((0..keys, prop::option::weighted(0.85, any::<u16>())), 1..8), any::<bool>())
            .prop_map(|(records, compressed)| Op::Write(records, compressed)),
        1 => Just(Op::Roll),
        2 => Just(Op::Clean),
        1 => (1usize..4).prop_map(Op::CrashClean),
        1 => Just(Op::Reopen),
        1 => (0i64..3_000).prop_map(Op::Sleep),
    ]
}

const DELETE_RETENTION_MS: i64 = 1_000;

struct Harness {
    dir: tempfile::TempDir,
    log: Option<Log>,
    config: LogConfig,
    state: CleanState,
    cleaner: Cleaner,
    now: i64,
    /// Every record written: offset → (key, value).
    written: BTreeMap<i64, Kv>,
}

impl Harness {
    fn new(dedupe_buffer_size: usize) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes: 700, ..LogConfig::default() };
        let log = Log::open(dir.path(), config.clone(), OpenOptions::default(), Timestamp(0)).unwrap();
        Harness {
            dir,
            log: Some(log),
            config,
            state: CleanState::default(),
            cleaner: Cleaner::new(
                CleanerOptions { dedupe_buffer_size, ..CleanerOptions::default() },
                Arc::new(ManualClock::new(Timestamp(0))),
            ),
            now: 1_000,
            written: BTreeMap::new(),
        }
    }

    fn log(&mut self) -> &mut Log {
        self.log.as_mut().unwrap()
    }

    fn compaction() -> CompactionConfig {
        CompactionConfig {
            delete_retention_ms: DELETE_RETENTION_MS,
            min_cleanable_dirty_ratio: 0.0,
            ..CompactionConfig::default()
        }
    }

    fn write(&mut self, records: &[(u8, Option<u16>)], compressed: bool) {
        let mut builder = BatchBuilder::new()
            .compression(if compressed { Compression::Lz4 } else { Compression::None })
            .producer(ProducerId(1), ProducerEpoch(0), 0);
        let start = self.log().log_end_offset().0;
        for (i, (key, value)) in records.iter().enumerate() {
            let key = format!("key-{key}").into_bytes();
            let value = value.map(|v| format!("value-{v}-at-{}", start + i as i64).into_bytes());
            builder.push(Timestamp(self.now), Some(&key), value.as_deref(), &[]);
            self.written.insert(start + i as i64, (key, value));
        }
        let bytes = builder.build().unwrap();
        let now = Timestamp(self.now);
        self.log().append(&bytes, AppendMode::Leader { leader_epoch: LeaderEpoch(0) }, now).unwrap();
    }

    fn clean(&mut self) {
        let hw = self.log().log_end_offset();
        let now = Timestamp(self.now);
        let mut state = self.state;
        let log = self.log.as_mut().unwrap();
        if let Some((stats, deleted)) = self.cleaner.clean(log, &mut state, hw, &Harness::compaction(), now).unwrap() {
            assert!(stats.records_kept <= stats.records_read, "{stats:?}");
            for d in deleted {
                d.remove().unwrap();
            }
        }
        self.state = state;
    }

    /// Runs a cleaning whose first swap stops after `steps` steps, drops the log as a crash
    /// would, and reopens it.
    fn crash_clean(&mut self, steps: usize) {
        let mut log = self.log.take().unwrap();
        let now = Timestamp(self.now);
        let found = cleanable(
            &log.segments(),
            log.log_start_offset(),
            self.state.first_dirty,
            log.log_end_offset(),
            &Harness::compaction(),
            now,
        );
        if let Some(task) = CleanTask::new(&log, &found, Harness::compaction(), now) {
            let result = self.cleaner.run(&task, |cleaned, replaced| {
                log.replace_segments_until(cleaned, replaced, steps)?;
                Err(fjord_log::Error::SegmentsChanged { reason: "crash".into() })
            });
            assert!(result.is_err());
        }
        std::mem::forget(log); // no destructor runs, as under kill -9
        self.reopen_unclean();
    }

    fn reopen(&mut self) {
        self.log.take().unwrap().close().unwrap();
        self.reopen_unclean();
    }

    fn reopen_unclean(&mut self) {
        let log = Log::open(self.dir.path(), self.config.clone(), OpenOptions::default(), Timestamp(self.now)).unwrap();
        log.validate().unwrap();
        self.log = Some(log);
    }

    /// Every record in the log, by offset.
    fn read_all(&mut self) -> BTreeMap<i64, Kv> {
        let log = self.log.as_ref().unwrap();
        let mut records = BTreeMap::new();
        let mut next = log.log_start_offset();
        let mut last = Offset(-1);
        while next < log.log_end_offset() {
            let bytes = log.read_bytes(next, 1 << 20, None).unwrap();
            if bytes.is_empty() {
                break;
            }
            for batch in fjord_log::Batches::new(&bytes) {
                let batch: RecordBatch<'_> = batch.unwrap();
                batch.validate().unwrap();
                assert!(batch.base_offset() > last, "batches out of order");
                last = batch.last_offset();
                let mut scratch = Vec::new();
                batch.decompress_records(&mut scratch, 1 << 20).unwrap();
                for record in batch.records_in(&scratch) {
                    let record = record.unwrap();
                    records.insert(
                        record.offset().0,
                        (record.key().unwrap().to_vec(), record.value().map(<[u8]>::to_vec)),
                    );
                }
                next = batch.next_offset();
            }
        }
        records
    }

    /// The latest write of every key.
    fn latest(&self) -> BTreeMap<i64, Kv> {
        let mut by_key: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for (offset, (key, _)) in &self.written {
            by_key.insert(key.clone(), *offset);
        }
        by_key.values().map(|o| (*o, self.written[o].clone())).collect()
    }

    /// What must hold at any time: every record read was written at that offset, and every
    /// key's latest value is there (a tombstone may already be gone).
    fn check_safe(&mut self) {
        let read = self.read_all();
        for (offset, kv) in &read {
            assert_eq!(self.written.get(offset), Some(kv), "record at {offset} was never written so");
        }
        for (offset, (key, value)) in self.latest() {
            if value.is_some() {
                assert_eq!(read.get(&offset), Some(&(key.clone(), value)), "latest value of {key:?} lost");
            }
        }
        let active_base = self.log().segments().last().unwrap().base_offset;
        for (offset, kv) in self.written.clone() {
            if offset >= active_base.0 {
                assert_eq!(read.get(&offset), Some(&kv), "the active segment is never cleaned");
            }
        }
    }
}

fn run(ops: Vec<Op>, dedupe_buffer_size: usize) {
    let mut h = Harness::new(dedupe_buffer_size);
    for op in ops {
        match op {
            Op::Write(records, compressed) => h.write(&records, compressed),
            Op::Roll => {
                let now = Timestamp(h.now);
                h.log().roll(now).unwrap();
            }
            Op::Clean => h.clean(),
            Op::CrashClean(steps) => h.crash_clean(steps),
            Op::Reopen => h.reopen(),
            Op::Sleep(ms) => h.now += ms,
        }
        h.check_safe();
    }
    // Clean everything: roll, clean until nothing is dirty, then once more after the delete
    // horizon so the tombstones go.
    let now = Timestamp(h.now);
    h.log().roll(now).unwrap();
    for _ in 0..100 {
        h.clean();
        let log = h.log.as_ref().unwrap();
        let found = cleanable(
            &log.segments(),
            log.log_start_offset(),
            h.state.first_dirty,
            log.log_end_offset(),
            &Harness::compaction(),
            Timestamp(h.now),
        );
        if found.dirty_bytes == 0 {
            break;
        }
    }
    h.now += DELETE_RETENTION_MS;
    h.clean();
    h.check_safe();
    let want: BTreeMap<i64, Kv> = h.latest().into_iter().filter(|(_, (_, v))| v.is_some()).collect();
    assert_eq!(h.read_all(), want, "a fully cleaned log holds exactly the latest live value per key");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn cleaning_keeps_exactly_the_latest_per_key(ops in prop::collection::vec(arb_op(10), 1..60)) {
        run(ops, 128 << 20);
    }

    /// With a key map too small for the dirty part, cleaning proceeds in several rounds.
    #[test]
    fn a_small_key_map_cleans_in_rounds(ops in prop::collection::vec(arb_op(40), 1..60)) {
        run(ops, 16 * 24);
    }
}

#[test]
fn a_crash_at_every_swap_step_keeps_every_latest_value() {
    for steps in 1..=4 {
        let mut h = Harness::new(128 << 20);
        for round in 0..20u16 {
            h.write(&[(0, Some(round)), (1, Some(round)), ((round % 5) as u8 + 2, None)], round % 2 == 0);
        }
        let now = Timestamp(h.now);
        h.log().roll(now).unwrap();
        let bytes_before = h.log().size_bytes();
        h.crash_clean(steps);
        h.check_safe();
        let files: Vec<String> =
            std::fs::read_dir(h.dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(files.iter().all(|f| !f.ends_with(".cleaned") && !f.ends_with(".swap")), "{files:?}");
        if steps >= 2 {
            // From step 2 the cleaned segment is complete and replaces the old ones at open.
            assert!(h.log().size_bytes() < bytes_before, "step {steps}: {files:?}");
        } else {
            assert_eq!(h.log().size_bytes(), bytes_before, "step {steps}");
        }
    }
}

#[test]
fn tombstones_stay_for_delete_retention_then_go() {
    let mut h = Harness::new(128 << 20);
    h.write(&[(1, Some(1)), (2, Some(1))], false);
    h.write(&[(1, None)], false);
    let now = Timestamp(h.now);
    h.log().roll(now).unwrap();
    h.clean();
    let read = h.read_all();
    assert_eq!(read.len(), 2, "key 1's value is gone, its tombstone and key 2 remain: {read:?}");
    assert!(read.values().any(|(k, v)| k == b"key-1" && v.is_none()));
    let horizon = h.state.next_delete_horizon.expect("a tombstone was kept");
    assert_eq!(horizon, Timestamp(h.now + DELETE_RETENTION_MS));
    // Not yet: the tombstone stays.
    h.now += DELETE_RETENTION_MS - 1;
    h.clean();
    assert_eq!(h.read_all().len(), 2);
    h.now += 1;
    h.clean();
    let read = h.read_all();
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(h.state.next_delete_horizon, None);
}

#[test]
fn a_producers_last_batch_keeps_its_header() {
    let mut h = Harness::new(128 << 20);
    h.write(&[(1, Some(1))], false);
    let producer_last = h.log().log_end_offset().plus(-1);
    h.write(&[(1, Some(2))], false); // supersedes it; written by the same producer in the harness
    let now = Timestamp(h.now);
    h.log().roll(now).unwrap();
    let log = h.log.take().unwrap();
    let found = cleanable(
        &log.segments(),
        log.log_start_offset(),
        Offset(0),
        log.log_end_offset(),
        &Harness::compaction(),
        now,
    );
    let task =
        CleanTask::new(&log, &found, Harness::compaction(), now).unwrap().keep_batches_ending_at([producer_last]);
    let mut log = log;
    h.cleaner.run(&task, |cleaned, replaced| log.replace_segments(cleaned, replaced).map(drop)).unwrap();
    let bytes = log.read_bytes(Offset(0), 1 << 20, None).unwrap();
    let batches: Vec<RecordBatch<'_>> = fjord_log::Batches::new(&bytes).map(Result::unwrap).collect();
    assert_eq!(batches.len(), 2, "the superseded batch left its header");
    assert_eq!((batches[0].base_offset(), batches[0].record_count()), (producer_last, 0));
    assert_eq!(batches[0].producer_id(), ProducerId(1));
    batches[0].validate().unwrap();
    assert_eq!(batches[1].record_count(), 1);
}

#[test]
fn the_io_throttle_waits_on_the_callers_clock() {
    let mut harness = Harness::new(1 << 20);
    for round in 0..40u16 {
        harness.write(&[(0, Some(round)), (1, Some(round))], false);
    }
    let now = Timestamp(harness.now);
    harness.log().roll(now).unwrap();
    let clock = ManualClock::new(Timestamp(0));
    let rate = 20_000.0;
    let options = CleanerOptions { io_max_bytes_per_second: rate, ..CleanerOptions::default() };
    let mut cleaner = Cleaner::new(options, Arc::new(clock.clone()));
    let hw = harness.log().log_end_offset();
    let mut state = CleanState::default();
    let log = harness.log.as_mut().unwrap();
    let (stats, _) = cleaner.clean(log, &mut state, hw, &Harness::compaction(), now).unwrap().unwrap();
    assert!(stats.throttled > std::time::Duration::ZERO, "{stats:?}");
    // The cleaner waited on the given clock, not the wall clock: it moved on by the pauses.
    // (Each pause moves the manual clock by whole milliseconds.)
    let waited = clock.now().0 as f64;
    let throttled = stats.throttled.as_secs_f64() * 1000.0;
    assert!(waited > 0.0 && (throttled - waited).abs() <= throttled * 0.1, "{waited} ms vs {throttled} ms");
    // About as long as its reads and writes take at the rate.
    let paced = (stats.bytes_read + stats.bytes_after) as f64 / rate * 1000.0;
    assert!(waited <= paced + 1.0 && waited >= paced / 2.0, "{waited} ms waited, {paced} ms paced");
}
