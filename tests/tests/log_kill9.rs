//! A process appending to a log is killed with SIGKILL, again and again; every time the log
//! reopens with every acknowledged (flushed) record, offsets continue without gaps or reuse,
//! and the writer carries on.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use fjord_log::{Batches, Log, LogConfig, OpenOptions};
use fjord_tests::parse_record_value;
use fjord_types::{Offset, Timestamp};

/// Checks that the log holds records 0..end with values 0..end in order; returns end.
fn check_contiguous(dir: &std::path::Path, recovery_point: Offset) -> i64 {
    let config = LogConfig { segment_bytes: 64 * 1024, ..LogConfig::default() };
    let log =
        Log::open(dir, config, OpenOptions { recovery_point, log_start_offset: Offset(0) }, Timestamp(0)).unwrap();
    let mut expected = 0i64;
    let mut scratch = Vec::new();
    while expected < log.log_end_offset().0 {
        let bytes = log.read_bytes(Offset(expected), 1 << 20, None).unwrap();
        for batch in Batches::new(&bytes) {
            let batch = batch.unwrap();
            batch.validate().unwrap();
            batch.validate_records(&mut scratch, 1 << 20).unwrap();
            for record in batch.records().unwrap() {
                let record = record.unwrap();
                assert_eq!(record.offset(), Offset(expected), "offsets must be contiguous");
                assert_eq!(parse_record_value(record.value().unwrap()), Some(expected as u64), "value at {expected}");
                expected += 1;
            }
        }
    }
    assert_eq!(Offset(expected), log.log_end_offset());
    expected
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut recovery_point = Offset(0);
    for round in 0..4 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fjord-log-writer"))
            .arg(dir.path())
            .arg(recovery_point.0.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let opened = lines.next().unwrap().unwrap();
        assert!(opened.starts_with("opened "), "{opened}");
        let mut acknowledged = Offset(0);
        // Let it run for a while: a few dozen flushes, plus whatever is in flight when killed.
        for _ in 0..(20 + round * 10) {
            let line = lines.next().unwrap().unwrap();
            let offset: i64 = line.strip_prefix("flushed ").unwrap().parse().unwrap();
            acknowledged = Offset(offset);
        }
        child.kill().unwrap(); // SIGKILL: no destructors, no clean-shutdown marker
        child.wait().unwrap();
        let end = check_contiguous(dir.path(), acknowledged);
        assert!(end >= acknowledged.0, "round {round}: lost acknowledged records: end {end} < {acknowledged}");
        recovery_point = acknowledged;
    }
}
