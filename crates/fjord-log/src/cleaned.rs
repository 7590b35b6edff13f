//! Replacing closed segments with a cleaned copy, safely against a crash at any point (Kafka's
//! `replaceSegments`).
//!
//! A cleaner writes the new segment under `<base>.log.cleaned` (and `.index.cleaned`,
//! `.timeindex.cleaned`) while the log keeps serving from the old segments. The swap then:
//!
//! 1. trims and fsyncs the cleaned files;
//! 2. renames them `*.swap` (indexes first, the log last) and fsyncs the directory: from here
//!    the new segment is complete and wins at the next open;
//! 3. renames the replaced segments `*.deleted`;
//! 4. renames the swap files to their usual names (again the log last) and fsyncs the directory.
//!
//! [`Log::open`] finishes or forgets a swap cut short: `*.cleaned` files are removed (the old
//! segments are intact); a `<base>.log.swap` replaces every segment whose base offset lies in
//! `[base, its next offset)` and loses its `.swap` suffix. Either way the log holds every
//! record the cleaner kept, and never a mix that misses one.

use std::path::Path;

use fjord_types::{Offset, Timestamp};

use crate::batch::{Batches, RecordBatch};
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::log::{DeletedSegment, Log, sync_dir};
use crate::scan::scan_batches;
use crate::segment::{
    CLEANED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, Segment, TIME_INDEX_SUFFIX, segment_file_name,
};

/// A segment being written by a cleaner, to replace one or more closed segments of a log
/// through [`Log::replace_segments`]. Dropping it unswapped removes its files.
#[derive(Debug)]
pub struct CleanedSegment {
    segment: Option<Segment>,
    next_offset: Offset,
}

impl CleanedSegment {
    /// Starts an empty cleaned segment at `base_offset` in the partition directory `dir`.
    /// `config` gives its index sizes. A cleaned segment left by an earlier attempt is replaced.
    pub fn create(dir: &Path, base_offset: Offset, config: &LogConfig, now: Timestamp) -> Result<CleanedSegment> {
        for kind in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_present(&dir.join(segment_file_name(base_offset, kind) + CLEANED_SUFFIX))?;
        }
        let segment = Segment::create_named(dir, base_offset, CLEANED_SUFFIX, config, now)?;
        Ok(CleanedSegment { segment: Some(segment), next_offset: base_offset })
    }

    fn segment(&self) -> &Segment {
        self.segment.as_ref().expect("present until swapped")
    }

    /// The base offset: the first replaced segment's.
    pub fn base_offset(&self) -> Offset {
        self.segment().base_offset()
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.segment().size()
    }

    /// The offset after the last batch written (the base offset while empty).
    pub fn next_offset(&self) -> Offset {
        self.next_offset
    }

    /// Appends whole batches. Their offsets must increase (gaps are the point of cleaning) and
    /// stay within 2^31 of the base offset, as the index needs.
    pub fn append(&mut self, batches: &[u8]) -> Result<()> {
        let base = self.base_offset();
        let mut next = self.next_offset;
        for batch in Batches::new(batches) {
            let batch = batch?;
            if batch.base_offset() < next {
                return Err(Error::corrupt(format!(
                    "cleaned batch at offset {} does not follow offset {}",
                    batch.base_offset(),
                    next.0 - 1
                )));
            }
            if batch.last_offset().since(base) > i64::from(i32::MAX) {
                return Err(Error::corrupt(format!("offset {} too far from segment base {base}", batch.last_offset())));
            }
            next = batch.next_offset();
        }
        self.segment.as_mut().expect("present until swapped").append(batches)?;
        self.next_offset = next;
        Ok(())
    }
}

impl Drop for CleanedSegment {
    fn drop(&mut self) {
        if let Some(segment) = self.segment.take() {
            let files = [
                segment.log_path().to_path_buf(),
                segment.offset_index().file().path().to_path_buf(),
                segment.time_index().file().path().to_path_buf(),
            ];
            drop(segment);
            for file in files {
                let _ = std::fs::remove_file(file);
            }
        }
    }
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path)(e)),
        _ => Ok(()),
    }
}

/// The steps of a swap, so tests can stop after any of them as a crash would.
const SWAP_STEPS: usize = 4;

impl Log {
    /// Swaps `cleaned` in for the closed segments `replaced` (base offset and size of each, in
    /// order and adjacent in the log), as described in the module docs. Fails with
    /// [`Error::SegmentsChanged`], changing nothing, if the log no longer holds exactly those
    /// segments, or if one is the active segment. Returns the old segments, renamed
    /// `*.deleted`, for the caller to remove after `file.delete.delay.ms`.
    pub fn replace_segments(
        &mut self,
        cleaned: CleanedSegment,
        replaced: &[(Offset, u64)],
    ) -> Result<Vec<DeletedSegment>> {
        Ok(self.replace_segments_until(cleaned, replaced, SWAP_STEPS)?.unwrap_or_default())
    }

    /// [`Log::replace_segments`] that stops after `steps` of its four steps, leaving the files
    /// as a crash there would (the log must then be dropped and reopened). For crash tests.
    #[doc(hidden)]
    pub fn replace_segments_until(
        &mut self,
        mut cleaned: CleanedSegment,
        replaced: &[(Offset, u64)],
        steps: usize,
    ) -> Result<Option<Vec<DeletedSegment>>> {
        self.check_replaceable(&cleaned, replaced)?;
        let mut segment = cleaned.segment.take().expect("present until swapped");
        self.guard(|log| {
            segment.on_become_inactive()?;
            segment.flush()?;
            if steps == 1 {
                std::mem::forget(segment);
                return Ok(None);
            }
            segment.rename_files(SWAP_SUFFIX)?;
            sync_dir(&log.dir)?;
            if steps == 2 {
                std::mem::forget(segment);
                return Ok(None);
            }
            let mut deleted = Vec::with_capacity(replaced.len());
            for &(base, _) in replaced {
                let mut old = log.segments.remove(&base).expect("checked above");
                deleted.push(DeletedSegment { base_offset: base, files: old.rename_to_deleted()? });
            }
            if steps == 3 {
                std::mem::forget(segment);
                return Ok(None);
            }
            segment.rename_files("")?;
            sync_dir(&log.dir)?;
            log.segments.insert(segment.base_offset(), segment);
            Ok(Some(deleted))
        })
    }

    fn check_replaceable(&self, cleaned: &CleanedSegment, replaced: &[(Offset, u64)]) -> Result<()> {
        let changed = |reason: String| Err(Error::SegmentsChanged { reason });
        let Some(&(first, _)) = replaced.first() else {
            return changed("no segments to replace".into());
        };
        if first != cleaned.base_offset() {
            return changed(format!(
                "cleaned segment starts at {} but the first replaced at {first}",
                cleaned.base_offset()
            ));
        }
        let mut present = self.segments.range(first..);
        for &(base, size) in replaced {
            match present.next() {
                Some((&b, segment)) if b == base && segment.size() == size => {}
                _ => return changed(format!("segment {base} of {size} bytes is no longer in the log")),
            }
        }
        // The segment after the replaced ones bounds the cleaned one; the active segment is
        // never replaced.
        match present.next() {
            Some((&next_base, _)) if cleaned.next_offset() <= next_base => Ok(()),
            Some((&next_base, _)) => {
                changed(format!("cleaned segment ends at {} past the next segment {next_base}", cleaned.next_offset()))
            }
            None => changed("the active segment cannot be replaced".into()),
        }
    }
}

/// The offset after the last whole batch of a segment file.
fn next_offset_of(path: &Path, base: Offset) -> Result<Offset> {
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    let size = file.metadata().map_err(Error::io(path))?.len();
    let mut next = base;
    if size > 0 {
        scan_batches(&file, path, 0, size, |_, bytes| {
            let batch = RecordBatch::parse(bytes).map_err(|e| e.to_string())?;
            next = batch.next_offset();
            Ok(())
        })?;
    }
    Ok(next)
}

/// At open, before segments are listed: removes `*.cleaned` files and completes every swap a
/// crash interrupted (see the module docs). Returns the base offsets of the segments replaced.
pub(crate) fn finish_swaps(dir: &Path) -> Result<Vec<Offset>> {
    let mut swaps = Vec::new();
    let mut logs = Vec::new();
    let mut stray = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(CLEANED_SUFFIX) {
            stray.push(entry.path());
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            match crate::log::parse_base_offset(stem, LOG_SUFFIX) {
                Some(base) => swaps.push(base),
                None => stray.push(entry.path()), // an index whose log is handled below
            }
        } else if let Some(base) = crate::log::parse_base_offset(name, LOG_SUFFIX) {
            logs.push(base);
        }
    }
    for path in stray {
        let swapped_index = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(SWAP_SUFFIX))
            .and_then(|n| n.get(..20))
            .and_then(|digits| digits.parse().ok().map(Offset))
            .is_some_and(|base| swaps.contains(&base));
        if !swapped_index {
            remove_if_present(&path)?;
        }
    }
    let mut replaced = Vec::new();
    swaps.sort();
    for base in swaps {
        let swap_log = dir.join(segment_file_name(base, LOG_SUFFIX) + SWAP_SUFFIX);
        let end = next_offset_of(&swap_log, base)?.max(base.plus(1));
        for &old in logs.iter().filter(|&&b| b >= base && b < end) {
            // A plain `.log` here is an old segment step 3 did not reach; its indexes go with
            // it (the swap's own indexes only take plain names after every old log is gone).
            for kind in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                remove_if_present(&dir.join(segment_file_name(old, kind)))?;
            }
            replaced.push(old);
        }
        for kind in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            let from = dir.join(segment_file_name(base, kind) + SWAP_SUFFIX);
            if from.exists() {
                std::fs::rename(&from, dir.join(segment_file_name(base, kind))).map_err(Error::io(&from))?;
            }
        }
    }
    sync_dir(dir)?;
    Ok(replaced)
}
