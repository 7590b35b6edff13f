//! Taking records out of a log: truncating its tail (a follower matching its leader), and
//! raising its start (retention, DeleteRecords, a follower far behind).

use fjord_types::{Offset, Timestamp};

use super::{DeletedSegment, Log};
use crate::error::{Error, Result};
use crate::segment::Segment;

impl Log {
    /// Removes every record at or above `offset` (a follower truncating to its leader).
    /// Whole batches go, so the log end offset becomes the end of the last batch kept.
    /// Returns whether anything was removed.
    pub fn truncate_to(&mut self, offset: Offset, now: Timestamp) -> Result<bool> {
        if offset >= self.log_end_offset {
            return Ok(false);
        }
        if offset < self.log_start_offset {
            self.truncate_fully_and_start_at(offset, now)?;
            return Ok(true);
        }
        self.guard(|log| {
            let doomed: Vec<Offset> = log.segments.range(offset..).map(|(b, _)| *b).collect();
            for base in doomed {
                if log.segments.len() == 1 {
                    break;
                }
                let mut segment = log.segments.remove(&base).expect("listed above");
                let files = segment.rename_to_deleted()?;
                drop(segment);
                DeletedSegment { base_offset: base, files }.remove()?;
            }
            let active = log.active_mut();
            active.truncate_to(offset)?;
            let config = log.config.clone();
            log.active_mut().make_active(&config)?;
            log.log_end_offset = log.active().next_offset()?;
            log.recovery_point = log.recovery_point.min(log.log_end_offset);
            log.dir_needs_sync = true;
            log.truncations += 1;
            Ok(true)
        })
    }

    /// Empties the log and restarts it at `offset` (a follower far behind its leader's log
    /// start, or a log whose checkpointed start lies past its data).
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset, now: Timestamp) -> Result<()> {
        self.guard(|log| {
            let bases: Vec<Offset> = log.segments.keys().copied().collect();
            for base in bases {
                let mut segment = log.segments.remove(&base).expect("listed above");
                let files = segment.rename_to_deleted()?;
                drop(segment);
                DeletedSegment { base_offset: base, files }.remove()?;
            }
            log.segments.insert(offset, Segment::create(&log.dir, offset, &log.config, now)?);
            log.log_start_offset = offset;
            log.log_end_offset = offset;
            log.recovery_point = offset;
            log.unflushed_messages = 0;
            log.dir_needs_sync = true;
            log.truncations += 1;
            Ok(())
        })
    }

    /// Takes the segments below `base_offset` out of the log (never the active one), renaming
    /// their files `*.deleted`, and raises the log start offset past them.
    pub fn delete_segments_before(&mut self, base_offset: Offset) -> Result<Vec<DeletedSegment>> {
        self.guard(|log| {
            let active_base = log.active().base_offset();
            let doomed: Vec<Offset> = log.segments.range(..base_offset.min(active_base)).map(|(b, _)| *b).collect();
            let mut deleted = Vec::with_capacity(doomed.len());
            for base in doomed {
                let mut segment = log.segments.remove(&base).expect("listed above");
                deleted.push(DeletedSegment { base_offset: base, files: segment.rename_to_deleted()? });
            }
            let first_base = *log.segments.keys().next().expect("the active segment remains");
            log.log_start_offset = log.log_start_offset.max(first_base);
            if !deleted.is_empty() {
                log.dir_needs_sync = true;
            }
            Ok(deleted)
        })
    }

    /// Raises the log start offset (DeleteRecords); records below it are no longer readable.
    /// Returns whether it moved.
    pub fn increment_log_start_offset(&mut self, offset: Offset) -> Result<bool> {
        if offset > self.log_end_offset {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(false);
        }
        self.log_start_offset = offset;
        Ok(true)
    }
}
