//! Appends to a log until killed: `fjord-log-writer DIR RECOVERY_POINT`.
//!
//! Each batch holds 10 records whose values are consecutive sequence numbers, continuing from
//! whatever the log already holds. After every 8th batch it flushes and prints
//! `flushed <offset>`: from then on those records are acknowledged and must survive any crash.

#![allow(clippy::print_stdout)]

use std::io::Write;

use anyhow::{Context, Result};
use fjord_log::{AppendMode, BatchBuilder, Log, LogConfig, OpenOptions};
use fjord_tests::record_value;
use fjord_types::{Clock, LeaderEpoch, Offset, SystemClock};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().context("usage: fjord-log-writer DIR RECOVERY_POINT")?;
    let recovery_point = Offset(args.next().context("missing RECOVERY_POINT")?.parse()?);
    let config = LogConfig { segment_bytes: 64 * 1024, ..LogConfig::default() };
    let options = OpenOptions { recovery_point, log_start_offset: Offset(0) };
    let mut log = Log::open(&dir, config, options, SystemClock.now())?;
    let mut next = log.log_end_offset().0 as u64;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "opened {}", log.log_end_offset())?;
    stdout.flush()?;
    for batch_number in 1u64.. {
        let mut builder = BatchBuilder::new();
        for _ in 0..10 {
            builder.push(SystemClock.now(), None, Some(&record_value(next)), &[]);
            next += 1;
        }
        let bytes = builder.build()?;
        log.append(&bytes, AppendMode::Leader { leader_epoch: LeaderEpoch(0) }, SystemClock.now())?;
        if batch_number % 8 == 0 {
            log.flush(SystemClock.now())?;
            writeln!(stdout, "flushed {}", log.recovery_point())?;
            stdout.flush()?;
        }
    }
    Ok(())
}
