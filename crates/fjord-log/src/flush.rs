//! Flushing without holding the log.
//!
//! Syncing a rolled 1 GiB segment takes seconds of disk time. [`Log::flush`] does it under
//! `&mut Log`, so whoever holds the log (a broker's partition lock) waits that long to append
//! or read. Kafka instead flushes a rolled segment in the background and takes the log's lock
//! only to move the recovery point. A [`FlushPlan`] is that split: take it from the log, sync it
//! with the log released ([`FlushPlan::sync`] borrows nothing of it), then hand the outcome back
//! with [`Log::complete_flush`].

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use fjord_types::{Offset, Timestamp};

use crate::error::{Error, Result};
use crate::log::{Log, sync_dir};

/// The files a flush up to an offset must sync, taken from a log by [`Log::plan_flush`].
#[derive(Debug)]
pub struct FlushPlan {
    files: Vec<(PathBuf, Arc<File>)>,
    dir: Option<PathBuf>,
    up_to: Offset,
    truncations: u64,
}

impl FlushPlan {
    /// The offset the recovery point moves to once the plan is synced.
    pub fn up_to(&self) -> Offset {
        self.up_to
    }

    /// Syncs the planned files, then the directory if segments were created or removed since
    /// the last flush. Blocks on the disk; the log stays free meanwhile.
    pub fn sync(&self) -> Result<()> {
        for (path, file) in &self.files {
            file.sync_data().map_err(Error::io(path))?;
        }
        if let Some(dir) = &self.dir {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

impl Log {
    /// Plans a flush of everything below `up_to` (at most the log end offset) that lies above
    /// the recovery point: the files of the segments holding it, and the directory if it
    /// changed. `None` when there is nothing to flush.
    ///
    /// A broker plans `up_to` = the active segment's base offset after a roll, as Kafka does.
    pub fn plan_flush(&mut self, up_to: Offset) -> Result<Option<FlushPlan>> {
        self.guard(|log| {
            let up_to = up_to.min(log.log_end_offset);
            if up_to <= log.recovery_point && !log.dir_needs_sync {
                return Ok(None);
            }
            let mut files = Vec::new();
            if up_to > log.recovery_point {
                let from = log.segments.range(..=log.recovery_point).next_back().map_or(Offset(0), |(b, _)| *b);
                for (_, segment) in log.segments.range(from..up_to) {
                    files.extend(segment.sync_handles()?);
                }
            }
            let dir = std::mem::take(&mut log.dir_needs_sync).then(|| log.dir.clone());
            Ok(Some(FlushPlan { files, dir, up_to, truncations: log.truncations }))
        })
    }

    /// Records how a planned flush went. On success the recovery point moves up to the plan's
    /// offset, unless the log was truncated since the plan was taken (the offsets below it may
    /// then hold other, unsynced, data). A failed sync poisons the log, as a failed
    /// [`Log::flush`] does: what reached the disk is unknown.
    pub fn complete_flush(&mut self, plan: FlushPlan, synced: Result<()>, now: Timestamp) -> Result<()> {
        if plan.dir.is_some() && synced.is_err() {
            self.dir_needs_sync = true;
        }
        self.guard(|log| {
            synced?;
            if plan.truncations == log.truncations && plan.up_to > log.recovery_point {
                log.recovery_point = plan.up_to.min(log.log_end_offset);
                log.unflushed_messages = log.log_end_offset.0 - log.recovery_point.0;
                log.last_flush = now;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppendMode, BatchBuilder, LogConfig, OpenOptions};
    use fjord_types::LeaderEpoch;

    const NOW: Timestamp = Timestamp(1_700_000_000_000);
    const LEADER: AppendMode = AppendMode::Leader { leader_epoch: LeaderEpoch(0) };

    fn append(log: &mut Log, records: usize) {
        let mut builder = BatchBuilder::new();
        for i in 0..records {
            builder.push(NOW, None, Some(format!("value {i}").as_bytes()), &[]);
        }
        log.append(&builder.build().unwrap(), LEADER, NOW).unwrap();
    }

    fn rolled_log(dir: &std::path::Path) -> Log {
        let mut log = Log::open(dir, LogConfig::default(), OpenOptions::default(), NOW).unwrap();
        append(&mut log, 10);
        log.roll(NOW).unwrap();
        append(&mut log, 5);
        log
    }

    #[test]
    fn a_planned_flush_covers_the_rolled_segments_and_moves_the_recovery_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = rolled_log(dir.path());
        assert_eq!(log.recovery_point(), Offset(0));
        let plan = log.plan_flush(log.active_segment_base()).unwrap().expect("a rolled segment to flush");
        assert_eq!(plan.up_to(), Offset(10));
        assert_eq!(plan.files.len(), 3, "the rolled segment's log and two indexes, not the active one");
        assert!(plan.dir.is_some(), "the roll created files");
        // The log is free while the plan syncs.
        append(&mut log, 1);
        let synced = plan.sync();
        log.complete_flush(plan, synced, NOW).unwrap();
        assert_eq!(log.recovery_point(), Offset(10));
        assert!(log.plan_flush(Offset(10)).unwrap().is_none(), "nothing left below 10");
    }

    #[test]
    fn a_truncation_while_syncing_keeps_the_recovery_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = rolled_log(dir.path());
        let plan = log.plan_flush(log.log_end_offset()).unwrap().unwrap();
        assert_eq!(plan.up_to(), Offset(15));
        log.truncate_to(Offset(12), NOW).unwrap();
        append(&mut log, 3);
        let synced = plan.sync();
        log.complete_flush(plan, synced, NOW).unwrap();
        assert_eq!(log.recovery_point(), Offset(0), "offsets 12-14 were rewritten after the plan");
    }

    #[test]
    fn a_failed_sync_poisons_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = rolled_log(dir.path());
        let plan = log.plan_flush(log.active_segment_base()).unwrap().unwrap();
        let failure = Err(Error::io(dir.path())(std::io::Error::other("disk gone")));
        assert!(log.complete_flush(plan, failure, NOW).is_err());
        assert!(log.is_poisoned());
        assert_eq!(log.recovery_point(), Offset(0));
    }
}
