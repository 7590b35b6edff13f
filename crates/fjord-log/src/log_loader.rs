//! Opening a log and recovering it after an unclean shutdown (Kafka's `LogLoader`).

use std::collections::BTreeMap;
use std::path::Path;

use fjord_types::{Offset, Timestamp};

use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::log::{CLEAN_SHUTDOWN_FILE, Log, OpenOptions, OpenReport, parse_base_offset, sync_dir};
use crate::segment::{DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, Segment, TIME_INDEX_SUFFIX, segment_file_name};

impl Log {
    /// Opens the log in `dir` (creating it if needed), recovering after an unclean shutdown:
    /// every batch from the segment holding the recovery point on is checked (length, CRC,
    /// offsets increasing), the log is cut at the first bad batch, or at the end of a segment
    /// that stops short of the next one's base offset (its unflushed tail was lost), later
    /// segments are removed and indexes rebuilt.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig, options: OpenOptions, now: Timestamp) -> Result<Log> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let mut report = OpenReport { swapped_segments: crate::cleaned::finish_swaps(&dir)?, ..OpenReport::default() };
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        report.clean_shutdown = marker.exists();

        let mut bases = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let entry = entry.map_err(Error::io(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(DELETED_SUFFIX) {
                // Left behind by a retention pass that did not finish; Kafka removes them too.
                std::fs::remove_file(entry.path()).map_err(Error::io(entry.path()))?;
            } else if let Some(base) = parse_base_offset(name, LOG_SUFFIX) {
                bases.push(base);
            }
        }
        // Index files without a log file are orphans of a crash during deletion or roll.
        for entry in std::fs::read_dir(&dir).map_err(Error::io(&dir))? {
            let entry = entry.map_err(Error::io(&dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let base = parse_base_offset(name, INDEX_SUFFIX).or_else(|| parse_base_offset(name, TIME_INDEX_SUFFIX));
            if base.is_some_and(|b| !bases.contains(&b)) {
                std::fs::remove_file(entry.path()).map_err(Error::io(entry.path()))?;
            }
        }
        bases.sort();

        let mut segments = BTreeMap::new();
        let recover_from = bases.iter().copied().rfind(|&b| b <= options.recovery_point);
        let mut expected_next = Offset(0);
        let mut index = 0;
        while index < bases.len() {
            let base = bases[index];
            let active = index + 1 == bases.len();
            let (mut segment, damaged) = Segment::open(&dir, base, &config, active, now)?;
            let in_recovery_range = recover_from.is_none_or(|from| base >= from);
            let unflushed = !report.clean_shutdown && in_recovery_range;
            if damaged || unflushed {
                let recovery = segment.recover(expected_next)?;
                report.recovered_segments.push(base);
                let end = recovery.next_offset.unwrap_or(base);
                let reason = recovery.reason.or_else(|| match bases.get(index + 1) {
                    // Segments meet exactly (a roll starts the next one at the log end, and
                    // compaction keeps each segment's last batch), so an unflushed segment
                    // that stops short lost its tail while a later segment reached the disk;
                    // keeping the later one would leave a hole. A flushed segment is whole
                    // whatever its end (one rolled past a 2^31 offset jump ends short).
                    Some(&next_base) if unflushed && end < next_base => Some(format!(
                        "segment {base} ends at offset {end} but the next one starts at {next_base}: its tail was lost"
                    )),
                    _ => None,
                });
                if reason.is_some() {
                    report.truncated_bytes += recovery.truncated_bytes;
                    report.reason = reason;
                    for &later in &bases[index + 1..] {
                        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                            let path = dir.join(segment_file_name(later, suffix));
                            match std::fs::remove_file(&path) {
                                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&path)(e)),
                                _ => {}
                            }
                        }
                        report.deleted_segments.push(later);
                    }
                    bases.truncate(index + 1);
                } else if !active {
                    segment.on_become_inactive()?;
                }
                expected_next = recovery.next_offset.unwrap_or(base);
            } else {
                expected_next = segment.next_offset()?;
            }
            segments.insert(base, segment);
            index += 1;
        }

        let mut log = Log {
            dir,
            config,
            segments,
            log_start_offset: options.log_start_offset,
            log_end_offset: Offset(0),
            recovery_point: Offset(0),
            unflushed_messages: 0,
            last_flush: now,
            dir_needs_sync: false,
            truncations: 0,
            poisoned: None,
            open_report: report,
            outgoing: Vec::new(),
        };
        match log.segments.last_entry() {
            None => {
                let start = options.log_start_offset.max(Offset(0));
                log.segments.insert(start, Segment::create(&log.dir, start, &log.config, now)?);
                log.dir_needs_sync = true;
            }
            Some(mut active) => active.get_mut().make_active(&log.config)?,
        }
        log.log_end_offset = log.active().next_offset()?;
        let first_base = *log.segments.keys().next().expect("a log has a segment");
        log.log_start_offset = log.log_start_offset.max(first_base);
        if log.log_start_offset > log.log_end_offset {
            // The checkpointed start lies past the data that survived: start over there.
            log.truncate_fully_and_start_at(log.log_start_offset, now)?;
        }
        log.recovery_point = if log.open_report.clean_shutdown {
            log.log_end_offset
        } else {
            options.recovery_point.min(log.log_end_offset)
        };
        if log.open_report.clean_shutdown {
            // Once appends may happen the shutdown is no longer clean; make that durable first,
            // or a crash could resurrect the marker and skip the recovery scan.
            std::fs::remove_file(&marker).map_err(Error::io(&marker))?;
            sync_dir(&log.dir)?;
        }
        Ok(log)
    }
}
