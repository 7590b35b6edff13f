//! A log used as a write-ahead log, trimmed by time: old segments go, the newest stay.
//!
//!     cargo run -p fjord-retention --example expire_wal

#![allow(clippy::print_stdout)]

use fjord_log::{AppendMode, BatchBuilder, Log, LogConfig, OpenOptions};
use fjord_retention::{RetentionConfig, enforce};
use fjord_types::{LeaderEpoch, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("fjord-expire-wal-{}", std::process::id()));
    let config = LogConfig { segment_bytes: 1024, ..LogConfig::default() };
    let mut log = Log::open(&dir, config, OpenOptions::default(), Timestamp(0))?;
    // An hour of entries, one batch a minute.
    for minute in 0..60i64 {
        let now = Timestamp(minute * 60_000);
        let mut batch = BatchBuilder::new();
        batch.push(now, Some(b"entry"), Some(format!("minute {minute}").as_bytes()), &[]);
        log.append(&batch.build()?, AppendMode::Leader { leader_epoch: LeaderEpoch(0) }, now)?;
    }
    // Keep the last 15 minutes.
    let retention = RetentionConfig { retention_ms: 15 * 60_000, retention_bytes: -1 };
    let end = log.log_end_offset();
    let (plan, deleted) = enforce(&mut log, end, &retention, Timestamp(60 * 60_000))?;
    for segment in deleted {
        segment.remove()?; // a broker waits file.delete.delay.ms first
    }
    println!("deleted {} segments; the log now starts at offset {}", plan.segments.len(), log.log_start_offset().0);
    // Whole segments go: the log now starts at most one segment (about 12 entries) before the
    // 15-minute mark, and nothing newer than it is lost.
    assert!(log.log_start_offset().0 > 45 - 13, "segments older than 15 minutes are gone");
    assert!(log.log_start_offset().0 <= 45, "the last 15 minutes remain");
    log.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
