//! The time index, `<base offset>.timeindex` (Kafka's `TimeIndex`).
//!
//! Each 12-byte entry holds a timestamp (8 bytes, big-endian) and an offset relative to the
//! segment's base (4 bytes): "every record up to this offset has a timestamp at most this".
//! Timestamps strictly increase. An entry is added alongside each offset index entry when the
//! segment's max timestamp has grown, and once more when the segment is closed. One slot is
//! kept free so that final entry always fits.

use std::path::PathBuf;

use fjord_types::{Offset, Timestamp};

use crate::error::Result;
use crate::index_file::{IndexFile, partition_point};

/// Bytes per time index entry.
pub const TIME_INDEX_ENTRY_SIZE: usize = 12;

/// One time index entry, in absolute terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The largest timestamp up to `offset`.
    pub timestamp: Timestamp,
    /// The last offset of the batch that holds `timestamp`.
    pub offset: Offset,
}

#[derive(Debug)]
pub(crate) struct TimeIndex {
    file: IndexFile,
    base_offset: Offset,
}

impl TimeIndex {
    /// Opens the index, keeping the longest prefix of slots with increasing timestamps and
    /// non-decreasing offsets. Returns whether the index is damaged (see `OffsetIndex::open`).
    pub(crate) fn open(
        path: PathBuf,
        base_offset: Offset,
        max_bytes: usize,
        active: bool,
    ) -> Result<(TimeIndex, bool)> {
        let file = IndexFile::open(path, TIME_INDEX_ENTRY_SIZE, max_bytes, active)?;
        let mut index = TimeIndex { file, base_offset };
        let mut valid = 0;
        let mut previous: Option<(i64, u32)> = None;
        // Only the slots the file had can hold anything: growing it just now added zeros, and
        // reading those would fault in megabytes of an empty preallocated index.
        for i in 0..index.file.found_slots() {
            let (timestamp, relative) = index.raw(i);
            let increasing = previous.is_none_or(|(t, r)| timestamp > t && relative >= r);
            if (timestamp, relative) == (0, 0) || !increasing || timestamp < 0 {
                break;
            }
            previous = Some((timestamp, relative));
            valid += 1;
        }
        // Damage is a non-zero slot after the entries, or a trimmed file with zeroed slots.
        let damaged = index.file.discarded()
            || valid < index.file.found_slots()
            || (valid..index.file.found_slots()).any(|i| index.raw(i) != (0, 0));
        index.file.set_entries(valid);
        Ok((index, damaged))
    }

    fn raw(&self, slot: usize) -> (i64, u32) {
        let bytes = self.file.slot(slot);
        (
            i64::from_be_bytes(bytes[0..8].try_into().expect("8 bytes")),
            u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")),
        )
    }

    pub(crate) fn entry(&self, i: usize) -> TimestampOffset {
        let (timestamp, relative) = self.raw(i);
        TimestampOffset { timestamp: Timestamp(timestamp), offset: self.base_offset.plus(i64::from(relative)) }
    }

    pub(crate) fn len(&self) -> usize {
        self.file.len()
    }

    /// Full for ordinary appends: the last slot is reserved for the entry written on roll.
    pub(crate) fn is_full(&self) -> bool {
        self.file.len() + 1 >= self.file.capacity()
    }

    pub(crate) fn last_entry(&self) -> Option<TimestampOffset> {
        self.len().checked_sub(1).map(|i| self.entry(i))
    }

    /// Adds an entry if `timestamp` exceeds the last entry's. `closing` may use the reserved slot.
    pub(crate) fn maybe_append(&mut self, timestamp: Timestamp, offset: Offset, closing: bool) {
        if timestamp.0 < 0 || (!closing && self.is_full()) || self.file.is_full() {
            return;
        }
        if let Some(last) = self.last_entry() {
            if timestamp <= last.timestamp {
                return;
            }
            assert!(offset >= last.offset, "time index offsets must not decrease");
        }
        let relative = u32::try_from(offset.since(self.base_offset)).expect("relative offset fits in u32");
        if timestamp.0 == 0 && relative == 0 {
            // Indistinguishable from the zero-filled tail; a lookup without it scans from the
            // segment start, which finds the same record.
            return;
        }
        let mut entry = [0u8; TIME_INDEX_ENTRY_SIZE];
        entry[0..8].copy_from_slice(&timestamp.0.to_be_bytes());
        entry[8..12].copy_from_slice(&relative.to_be_bytes());
        self.file.append(&entry);
    }

    /// The last entry whose timestamp is at or below `target`; `None` if every entry is later.
    pub(crate) fn lookup(&self, target: Timestamp) -> Option<TimestampOffset> {
        partition_point(self.len(), |i| self.entry(i).timestamp <= target).checked_sub(1).map(|i| self.entry(i))
    }

    /// Removes the entries for offsets at or above `offset`.
    pub(crate) fn truncate_to(&mut self, offset: Offset) {
        let keep = partition_point(self.len(), |i| self.entry(i).offset < offset);
        self.file.truncate(keep);
    }

    pub(crate) fn clear(&mut self) {
        self.file.clear_all();
    }

    pub(crate) fn file_mut(&mut self) -> &mut IndexFile {
        &mut self.file
    }

    pub(crate) fn file(&self) -> &IndexFile {
        &self.file
    }
}
