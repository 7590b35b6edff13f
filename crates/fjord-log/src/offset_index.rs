//! The sparse offset index, `<base offset>.index` (Kafka's `OffsetIndex`).
//!
//! Each 8-byte entry maps a batch's last offset, relative to the segment's base offset (4 bytes,
//! big-endian), to the byte position where that batch starts in the `.log` file (4 bytes). An
//! entry is written after every `index.interval.bytes` of log. Looking up offset `o` finds the
//! last entry at or below `o`; the batch containing `o` starts at or after its position.

use std::path::PathBuf;

use fjord_types::Offset;

use crate::error::Result;
use crate::index_file::{IndexFile, partition_point};

/// Bytes per offset index entry.
pub const OFFSET_INDEX_ENTRY_SIZE: usize = 8;

/// One offset index entry, in absolute terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    /// A batch's last offset (or the segment's base offset for the implicit first entry).
    pub offset: Offset,
    /// Where that batch starts in the segment's log file.
    pub position: u32,
}

#[derive(Debug)]
pub(crate) struct OffsetIndex {
    file: IndexFile,
    base_offset: Offset,
}

impl OffsetIndex {
    /// Opens the index and takes as its entries the longest prefix of slots that increase in
    /// both offset and position and point below `log_size`. Returns whether the index is
    /// damaged: a non-zero slot after that prefix, or fewer entries than a trimmed file holds.
    /// A preallocated index left by a crash reads as damaged too; it is rebuilt either way.
    pub(crate) fn open(
        path: PathBuf,
        base_offset: Offset,
        max_bytes: usize,
        active: bool,
        log_size: u64,
    ) -> Result<(OffsetIndex, bool)> {
        let file = IndexFile::open(path, OFFSET_INDEX_ENTRY_SIZE, max_bytes, active)?;
        let mut index = OffsetIndex { file, base_offset };
        let mut valid = 0;
        let mut previous: Option<(u32, u32)> = None;
        // Only the slots the file had can hold anything: growing it just now added zeros, and
        // reading those would fault in megabytes of an empty preallocated index.
        for i in 0..index.file.found_slots() {
            let (relative, position) = index.raw(i);
            let increasing = previous.is_none_or(|(r, p)| relative > r && position > p);
            if (relative, position) == (0, 0) || !increasing || u64::from(position) >= log_size {
                break;
            }
            previous = Some((relative, position));
            valid += 1;
        }
        // Damage is a non-zero slot after the entries, or a trimmed file with zeroed slots.
        let damaged = index.file.discarded()
            || valid < index.file.found_slots()
            || (valid..index.file.found_slots()).any(|i| index.raw(i) != (0, 0));
        index.file.set_entries(valid);
        Ok((index, damaged))
    }

    fn raw(&self, slot: usize) -> (u32, u32) {
        let bytes = self.file.slot(slot);
        (
            u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes")),
            u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")),
        )
    }

    pub(crate) fn entry(&self, i: usize) -> OffsetPosition {
        let (relative, position) = self.raw(i);
        OffsetPosition { offset: self.base_offset.plus(i64::from(relative)), position }
    }

    pub(crate) fn len(&self) -> usize {
        self.file.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.file.is_full()
    }

    pub(crate) fn last_entry(&self) -> Option<OffsetPosition> {
        self.len().checked_sub(1).map(|i| self.entry(i))
    }

    /// Adds an entry; offsets and positions must increase.
    pub(crate) fn append(&mut self, offset: Offset, position: u32) {
        let relative = u32::try_from(offset.since(self.base_offset)).expect("relative offset fits in u32");
        if let Some(last) = self.last_entry() {
            assert!(offset > last.offset && position > last.position, "offset index entries must increase");
        }
        let mut entry = [0u8; OFFSET_INDEX_ENTRY_SIZE];
        entry[0..4].copy_from_slice(&relative.to_be_bytes());
        entry[4..8].copy_from_slice(&position.to_be_bytes());
        self.file.append(&entry);
    }

    /// The last entry whose offset is at or below `target`, or the segment start.
    pub(crate) fn lookup(&self, target: Offset) -> OffsetPosition {
        match partition_point(self.len(), |i| self.entry(i).offset <= target) {
            0 => OffsetPosition { offset: self.base_offset, position: 0 },
            n => self.entry(n - 1),
        }
    }

    /// The last entry whose position is at or below `position`, if any.
    pub(crate) fn lookup_position(&self, position: u32) -> Option<OffsetPosition> {
        partition_point(self.len(), |i| self.entry(i).position <= position).checked_sub(1).map(|i| self.entry(i))
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
