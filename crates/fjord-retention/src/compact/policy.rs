//! Which part of a log the cleaner may clean, and when it should: the compact policy's
//! settings, the cleanable part worked out from the segment list alone, and what a cleaner
//! remembers of a log between cleanings; and which due log goes first.

use fjord_log::SegmentInfo;
use fjord_types::{Offset, Timestamp};

/// The compact policy's settings, under Kafka's topic config names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionConfig {
    /// `delete.retention.ms`: how long a tombstone stays readable after the cleaner first
    /// sees it (default 1 day).
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not cleaned (default 0).
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this makes the log due whatever its
    /// dirty ratio (default: never).
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`: the dirty share of the cleanable bytes that makes a log due
    /// (default 0.5).
    pub min_cleanable_dirty_ratio: f64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

/// How much of a log can be cleaned now, and whether it should be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    /// Where the dirty part starts.
    pub first_dirty: Offset,
    /// Where the cleanable part ends: a segment's base offset.
    pub end: Offset,
    /// Bytes of the segments below the dirty part.
    pub clean_bytes: u64,
    /// Bytes of the segments from the dirty part to the cleanable end.
    pub dirty_bytes: u64,
    /// Whether a dirty segment's first record is older than `max.compaction.lag.ms`.
    pub overdue: bool,
}

impl Cleanable {
    /// The dirty share of the cleanable bytes.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 { 0.0 } else { self.dirty_bytes as f64 / total as f64 }
    }

    /// Whether the log should be cleaned: something is dirty, and the ratio or the maximum lag
    /// says so.
    pub fn is_due(&self, config: &CompactionConfig) -> bool {
        self.dirty_bytes > 0 && (self.overdue || self.dirty_ratio() >= config.min_cleanable_dirty_ratio)
    }
}

/// What a cleaner remembers of a log between cleanings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanState {
    /// Where the dirty part starts: the broker checkpoints it in `cleaner-offset-checkpoint`.
    pub first_dirty: Offset,
    /// The earliest delete horizon of a tombstone the last cleaning kept: once it passes, the
    /// log is worth cleaning again even with nothing dirty. Not persisted (a broker sets it to
    /// 0 at start, so each compacted log is cleaned once).
    pub next_delete_horizon: Option<Timestamp>,
}

impl CleanState {
    /// Whether `found` (this log's [`cleanable`] part) should be cleaned now.
    pub fn is_due(&self, found: &Cleanable, config: &CompactionConfig, now: Timestamp) -> bool {
        found.is_due(config) || (self.next_delete_horizon.is_some_and(|h| now >= h) && found.clean_bytes > 0)
    }
}

/// Works out a log's cleanable part from its segments (as [`Log::segments`](fjord_log::Log::segments) lists them), its
/// log start offset, the cleaner's checkpoint (`first_dirty`, reset to the log start when it
/// lies outside the log) and the high watermark. O(segments), no I/O.
pub fn cleanable(
    segments: &[SegmentInfo],
    log_start_offset: Offset,
    first_dirty: Offset,
    high_watermark: Offset,
    config: &CompactionConfig,
    now: Timestamp,
) -> Cleanable {
    let log_end = segments.last().map_or(log_start_offset, |s| s.next_offset);
    let first_dirty =
        if first_dirty < log_start_offset || first_dirty > log_end { log_start_offset } else { first_dirty };
    let min_lag_cutoff = now.0.saturating_sub(config.min_compaction_lag_ms.max(0));
    let max_lag_cutoff = now.0.saturating_sub(config.max_compaction_lag_ms.max(0));
    let mut result = Cleanable { first_dirty, end: first_dirty, clean_bytes: 0, dirty_bytes: 0, overdue: false };
    for segment in segments {
        if segment.next_offset <= first_dirty {
            result.clean_bytes += segment.size_bytes;
            continue;
        }
        let too_young = config.min_compaction_lag_ms > 0 && segment.max_timestamp.is_none_or(|t| t.0 > min_lag_cutoff);
        if segment.is_active || segment.next_offset > high_watermark || too_young {
            break;
        }
        result.dirty_bytes += segment.size_bytes;
        result.end = segment.next_offset;
        result.overdue |= config.max_compaction_lag_ms < i64::MAX
            && segment.first_timestamp.or(segment.max_timestamp).is_some_and(|t| t.0 <= max_lag_cutoff);
    }
    result
}

/// Of the logs that are due, the one to clean first (Kafka's
/// `LogCleanerManager.grabFilthiestCompactedLog`): a log overdue by `max.compaction.lag.ms`
/// before any that is not, then the highest dirty ratio. Ties go to the first candidate.
pub fn most_due<T>(candidates: impl IntoIterator<Item = (T, Cleanable)>) -> Option<(T, Cleanable)> {
    let mut best: Option<(T, Cleanable)> = None;
    for (candidate, found) in candidates {
        let rank = (found.overdue, found.dirty_ratio());
        if best.as_ref().is_none_or(|(_, b)| rank > (b.overdue, b.dirty_ratio())) {
            best = Some((candidate, found));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(dirty_bytes: u64, overdue: bool) -> Cleanable {
        Cleanable { first_dirty: Offset(0), end: Offset(1), clean_bytes: 100, dirty_bytes, overdue }
    }

    #[test]
    fn overdue_logs_go_first_then_the_dirtiest() {
        assert_eq!(most_due(Vec::<(u8, Cleanable)>::new()), None);
        let picked = most_due([("dirty", found(900, false)), ("overdue", found(10, true)), ("clean", found(1, false))]);
        assert_eq!(picked.map(|(name, _)| name), Some("overdue"));
        let picked = most_due([("a", found(10, false)), ("b", found(900, false)), ("c", found(900, false))]);
        assert_eq!(picked.map(|(name, _)| name), Some("b"));
    }
}
