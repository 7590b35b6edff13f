//! Retention for `fjord-log`: which segments the delete policy removes, and removing them.
//!
//! Kafka never deletes a record because it was consumed. The broker removes whole closed
//! segments, oldest first, when one of three limits is breached (Kafka's `UnifiedLog`
//! `deleteOldSegments`):
//!
//! - time: the segment's newest record is older than `retention.ms`;
//! - size: the partition is larger than `retention.bytes`, and dropping the segment still leaves
//!   at least that much;
//! - log start: every record in the segment is below the log start offset (DeleteRecords).
//!
//! Only a prefix of the log goes, never the active segment and never anything at or above the
//! high watermark. [`plan`] decides from [`SegmentInfo`]s alone, in O(segments) and without I/O,
//! so it can be tested against a model and reused by anyone embedding `fjord-log`;
//! [`enforce`] applies it to a [`Log`] (rolling a quiet active segment past `segment.ms` first,
//! so time retention reaches it). Deleted segments are renamed `*.deleted` and handed back: the
//! caller removes them after `file.delete.delay.ms`, so reads in flight finish.
//!
//! The compact policy (`cleanup.policy=compact`) is in [`compact`]: [`cleanable`] decides
//! whether and how far a log may be cleaned, and a [`Cleaner`] keeps the latest record per key
//! there, swapping cleaned segments in crash-safely.
//!
//! Depends only on `fjord-types` and `fjord-log` (and `xxhash-rust` for the key map).

#![warn(missing_docs)]

pub mod compact;
mod offset_map;

pub use compact::{
    CleanState, CleanStats, CleanTask, Cleanable, Cleaner, CleanerOptions, CompactionConfig, cleanable, most_due,
};
pub use offset_map::OffsetMap;

use fjord_log::{DeletedSegment, Log, SegmentInfo};
use fjord_types::{Offset, Timestamp};

/// The delete policy's limits, under Kafka's topic config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `retention.ms`: -1 keeps records forever (default 7 days).
    pub retention_ms: i64,
    /// `retention.bytes`: -1 for no size limit (the default).
    pub retention_bytes: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { retention_ms: 7 * 24 * 60 * 60 * 1000, retention_bytes: -1 }
    }
}

/// Why a segment goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its newest record is older than `retention.ms`.
    Time,
    /// The log is over `retention.bytes` without it.
    Size,
    /// It lies wholly below the log start offset.
    LogStart,
}

/// What the delete policy removes from a log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The segments to delete, oldest first, with the first limit each breaches.
    pub segments: Vec<(Offset, Reason)>,
    /// The base offset of the first segment kept, if anything goes.
    pub delete_before: Option<Offset>,
}

/// Decides which segments the delete policy removes. `segments` are in offset order, as
/// [`Log::segments`] lists them.
pub fn plan(
    segments: &[SegmentInfo],
    log_start_offset: Offset,
    high_watermark: Offset,
    config: &RetentionConfig,
    now: Timestamp,
) -> Plan {
    // Kafka's three passes in its order, each taking the prefix of what is left that breaches
    // its limit; a segment that stops one pass also stops the ones after it reach further.
    let deletable = |s: &SegmentInfo| !s.is_active && s.next_offset <= high_watermark;
    let mut plan = Plan::default();
    let mut next = 0;
    let take = |plan: &mut Plan, next: &mut usize, reason: Reason| {
        let segment = &segments[*next];
        plan.segments.push((segment.base_offset, reason));
        plan.delete_before = Some(segment.next_offset);
        *next += 1;
    };
    if config.retention_ms >= 0 {
        while let Some(s) = segments.get(next).filter(|s| deletable(s)) {
            if s.max_timestamp.is_none_or(|t| now.0.saturating_sub(t.0) <= config.retention_ms) {
                break;
            }
            take(&mut plan, &mut next, Reason::Time);
        }
    }
    if config.retention_bytes >= 0 {
        let mut excess = segments[next..].iter().map(|s| s.size_bytes as i64).sum::<i64>() - config.retention_bytes;
        while let Some(s) = segments.get(next).filter(|s| deletable(s)) {
            if excess - (s.size_bytes as i64) < 0 {
                break;
            }
            excess -= s.size_bytes as i64;
            take(&mut plan, &mut next, Reason::Size);
        }
    }
    while let Some(s) = segments.get(next).filter(|s| deletable(s)) {
        if s.next_offset > log_start_offset {
            break;
        }
        take(&mut plan, &mut next, Reason::LogStart);
    }
    plan
}

/// Applies the delete policy to `log`: rolls a quiet active segment past `segment.ms`, plans,
/// and takes the planned segments out (renamed `*.deleted`, log start offset raised). Returns
/// the plan and the deleted segments for the caller to remove after `file.delete.delay.ms`.
pub fn enforce(
    log: &mut Log,
    high_watermark: Offset,
    config: &RetentionConfig,
    now: Timestamp,
) -> fjord_log::Result<(Plan, Vec<DeletedSegment>)> {
    log.roll_if_due(now)?;
    let planned = plan(&log.segments(), log.log_start_offset(), high_watermark, config, now);
    let deleted = match planned.delete_before {
        Some(first_kept) => log.delete_segments_before(first_kept)?,
        None => Vec::new(),
    };
    Ok((planned, deleted))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod compact_tests;
