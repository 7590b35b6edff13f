//! The log against a simple model: random batches appended across many rolls, with clean and
//! unclean reopens and flushes in between; every read, timestamp lookup and index must agree.

mod common;

use common::*;
use fjord_log::{BatchBuilder, Batches, Compression, DumpOptions, Log, LogConfig, OpenOptions, dump_file};
use fjord_types::{Offset, Timestamp};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append { timestamps: Vec<i64>, value_size: usize, compression: Compression },
    Flush,
    Reopen { clean: bool },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop::collection::vec(0i64..10_000, 1..8), 0usize..120, prop::sample::select(Compression::ALL.to_vec()))
            .prop_map(|(timestamps, value_size, compression)| Op::Append { timestamps, value_size, compression }),
        1 => Just(Op::Flush),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

fn arb_config() -> impl Strategy<Value = LogConfig> {
    (1_000u64..4_000, 0u64..600, prop::sample::select(vec![36usize, 96, 4096])).prop_map(
        |(segment_bytes, index_interval_bytes, segment_index_bytes)| LogConfig {
            segment_bytes,
            index_interval_bytes,
            segment_index_bytes,
            ..LogConfig::default()
        },
    )
}

/// A stored batch as the model knows it: the producer's bytes with base offset and epoch set.
struct ModelBatch {
    base: i64,
    bytes: Vec<u8>,
    timestamps: Vec<i64>,
}

fn check(log: &Log, model: &[ModelBatch], probes: &[(u64, i64)]) -> Result<(), TestCaseError> {
    let end = model.last().map_or(0, |b| b.base + b.timestamps.len() as i64);
    prop_assert_eq!(log.log_end_offset(), Offset(end));
    log.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
    if end == 0 {
        return Ok(());
    }
    for &(offset_probe, time_probe) in probes {
        // Reads from any offset return the batches from the one holding it, byte-identical.
        let offset = (offset_probe % end as u64) as i64;
        let first = model.iter().position(|b| b.base + b.timestamps.len() as i64 > offset).unwrap();
        let expected: Vec<u8> = model[first..].iter().flat_map(|b| b.bytes.iter().copied()).collect();
        prop_assert!(read_all(log, Offset(offset)) == expected, "read from {} differs", offset);
        // Timestamp search finds the first record (in offset order) at or after the time.
        let want = model
            .iter()
            .flat_map(|b| b.timestamps.iter().enumerate().map(move |(i, &t)| (t, b.base + i as i64)))
            .find(|&(t, _)| t >= time_probe);
        let got = log.offset_for_timestamp(Timestamp(time_probe)).unwrap().map(|f| (f.timestamp.0, f.offset.0));
        prop_assert_eq!(got, want, "timestamp {}", time_probe);
    }
    let max = model.iter().flat_map(|b| b.timestamps.iter().copied()).max().unwrap();
    let first_max = model
        .iter()
        .flat_map(|b| b.timestamps.iter().enumerate().map(move |(i, &t)| (t, b.base + i as i64)))
        .find(|&(t, _)| t == max);
    let got = log.max_timestamp_record().unwrap().map(|f| (f.timestamp.0, f.offset.0));
    prop_assert_eq!(got, first_max);
    // Every index entry points at the batch it names.
    for path in log.segment_files() {
        let name = path.to_string_lossy().into_owned();
        if name.ends_with(".index") || name.ends_with(".timeindex") {
            let mut err = Vec::new();
            let options = DumpOptions { verify_index_only: true, ..DumpOptions::default() };
            let report = dump_file(&path, options, &mut Vec::new(), &mut err).unwrap();
            prop_assert!(report.is_clean(), "{}: {}", name, String::from_utf8_lossy(&err));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn log_agrees_with_model(
        config in arb_config(),
        ops in prop::collection::vec(arb_op(), 1..80),
        probes in prop::collection::vec((any::<u64>(), 0i64..11_000), 6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Some(open(dir.path(), config.clone()));
        let mut model: Vec<ModelBatch> = Vec::new();
        let mut next = 0i64;
        for op in ops {
            let current = log.as_mut().unwrap();
            match op {
                Op::Append { timestamps, value_size, compression } => {
                    let mut builder = BatchBuilder::new().compression(compression);
                    let value = vec![b'x'; value_size];
                    for (i, &t) in timestamps.iter().enumerate() {
                        let key = format!("k{next}-{i}");
                        builder.push(Timestamp(t), Some(key.as_bytes()), Some(&value), &[]);
                    }
                    let bytes = builder.build().unwrap();
                    let mut expected = bytes.clone();
                    expected[0..8].copy_from_slice(&next.to_be_bytes());
                    expected[12..16].copy_from_slice(&3i32.to_be_bytes());
                    let info = current.append(&bytes, LEADER, Timestamp(0)).unwrap();
                    prop_assert_eq!(info.first_offset, Offset(next));
                    model.push(ModelBatch { base: next, bytes: expected, timestamps: timestamps.clone() });
                    next += timestamps.len() as i64;
                }
                Op::Flush => {
                    current.flush(Timestamp(0)).unwrap();
                    prop_assert_eq!(current.recovery_point(), Offset(next));
                }
                Op::Reopen { clean } => {
                    let old = log.take().unwrap();
                    let recovery_point = old.recovery_point();
                    if clean { old.close().unwrap() } else { drop(old) }
                    let reopened = Log::open(
                        dir.path(),
                        config.clone(),
                        OpenOptions { recovery_point, log_start_offset: Offset(0) },
                        Timestamp(0),
                    ).unwrap();
                    prop_assert_eq!(reopened.open_report().clean_shutdown, clean);
                    prop_assert_eq!(reopened.open_report().truncated_bytes, 0);
                    check(&reopened, &model, &probes)?;
                    log = Some(reopened);
                }
            }
        }
        let log = log.unwrap();
        check(&log, &model, &probes)?;
        // The segments hold exactly the appended batches, in order.
        let stored: Vec<u8> = read_all(&log, Offset(0));
        let appended: Vec<u8> = model.iter().flat_map(|b| b.bytes.iter().copied()).collect();
        prop_assert!(stored == appended);
        prop_assert_eq!(Batches::new(&stored).count(), model.len());
    }
}
