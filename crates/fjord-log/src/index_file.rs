//! A preallocated, memory-mapped file of fixed-size index entries (Kafka's `AbstractIndex`).
//!
//! The active segment's indexes are preallocated to `segment.index.bytes` and mapped once, so
//! adding an entry is a store into memory; on roll they are trimmed to their entries. Entries
//! past the count held in memory are always zero on disk (truncation zeroes them), which is how
//! a reopened, untrimmed index tells its entries from its preallocated tail.

// The mapping is the only unsafe code in the crate; see the SAFETY note on `map`.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

use crate::error::{Error, Result};

/// The number of leading slots `0..len` for which `below` holds, for entries sorted so that it
/// holds for a prefix (a binary search over the mapped entries).
pub(crate) fn partition_point(len: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, len);
    while low < high {
        let mid = (low + high) / 2;
        if below(mid) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    low
}

#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    file: File,
    mmap: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
    capacity: usize,
    found_slots: usize,
    discarded: bool,
    /// Bytes from the start known to have blocks on disk (see `reserve`).
    backed: usize,
}

/// How much of an index `reserve` allocates at a time: 8 192 offset-index entries.
const RESERVE_BYTES: usize = 64 * 1024;

/// SAFETY: a mapping is undefined behaviour if another process shrinks or rewrites the file
/// while it is mapped. A partition directory belongs to the one process that opened the log
/// (the broker locks its log directories); this process never shrinks a mapped file: `resize`
/// drops the mapping before `set_len`.
fn map(file: &File, path: &Path) -> Result<Option<MmapMut>> {
    let len = file.metadata().map_err(Error::io(path))?.len();
    if len == 0 {
        return Ok(None);
    }
    let mmap = unsafe { MmapOptions::new().map_mut(file) }.map_err(Error::io(path))?;
    Ok(Some(mmap))
}

impl IndexFile {
    /// Opens or creates the index. The returned index holds no entries until `set_entries`;
    /// `raw_entries` tells how many slots the file has. An active index is grown to
    /// `max_bytes` (rounded down to whole entries).
    pub(crate) fn open(path: PathBuf, entry_size: usize, max_bytes: usize, active: bool) -> Result<IndexFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Error::io(&path))?;
        let len = file.metadata().map_err(Error::io(&path))?.len() as usize;
        let mut whole = len / entry_size * entry_size;
        let preallocated = max_bytes / entry_size * entry_size;
        // An active index still at its preallocated size was not trimmed: the process stopped
        // uncleanly. Its contents cannot be trusted and it is rebuilt from the log anyway, so
        // drop them rather than read megabytes of (mostly empty) slots to find that out.
        let discarded = active && whole > 0 && whole >= preallocated;
        if discarded {
            file.set_len(0).map_err(Error::io(&path))?;
            whole = 0;
        }
        let wanted = if active { preallocated.max(whole) } else { whole };
        if wanted != len || discarded {
            file.set_len(wanted as u64).map_err(Error::io(&path))?;
        }
        let mmap = map(&file, &path)?;
        Ok(IndexFile {
            path,
            file,
            mmap,
            entry_size,
            entries: 0,
            capacity: wanted / entry_size,
            found_slots: whole / entry_size,
            discarded,
            backed: 0,
        })
    }

    /// Makes sure the next `entries` slots have blocks on disk. The index is preallocated
    /// sparse, as Kafka's is, and a write through the mapping into a hole that the file system
    /// cannot fill (a full disk) is a SIGBUS, not an error: so blocks are allocated ahead, 64 KiB
    /// at a time, where a full disk is an ordinary `Error::NoSpace`.
    pub(crate) fn reserve(&mut self, entries: usize) -> Result<()> {
        let want = (self.entries + entries).min(self.capacity) * self.entry_size;
        if want <= self.backed {
            return Ok(());
        }
        let end = want.next_multiple_of(RESERVE_BYTES).min(self.capacity * self.entry_size);
        let (from, len) = (self.backed as u64, (end - self.backed) as u64);
        match rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::KEEP_SIZE, from, len) {
            Ok(()) => {
                self.backed = end;
                Ok(())
            }
            // A file system without fallocate: nothing can be promised; write as before.
            Err(rustix::io::Errno::OPNOTSUPP) => {
                self.backed = usize::MAX;
                Ok(())
            }
            Err(e) => {
                let e = std::io::Error::from(e);
                if Error::is_out_of_space(&e) {
                    Err(Error::NoSpace { path: self.path.clone() })
                } else {
                    Err(Error::io(&self.path)(e))
                }
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Slots the file had when opened, before an active index was grown. A trimmed index
    /// (every closed segment's, and the active one's after a clean shutdown) holds exactly
    /// its entries.
    pub(crate) fn found_slots(&self) -> usize {
        self.found_slots
    }

    /// Whether `open` dropped the contents of an untrimmed (crash-left) active index: it must be
    /// rebuilt.
    pub(crate) fn discarded(&self) -> bool {
        self.discarded
    }

    /// Slots in the file, whether they hold entries or zeros.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    /// The bytes of slot `i` (which may be past the entries, for validation on load).
    pub(crate) fn slot(&self, i: usize) -> &[u8] {
        let mmap = self.mmap.as_ref().expect("slot of an empty index");
        &mmap[i * self.entry_size..(i + 1) * self.entry_size]
    }

    pub(crate) fn set_entries(&mut self, entries: usize) {
        assert!(entries <= self.capacity);
        self.entries = entries;
    }

    pub(crate) fn append(&mut self, entry: &[u8]) {
        assert_eq!(entry.len(), self.entry_size);
        assert!(!self.is_full(), "append to a full index {}", self.path.display());
        let at = self.entries * self.entry_size;
        let mmap = self.mmap.as_mut().expect("a non-full index is mapped");
        mmap[at..at + entry.len()].copy_from_slice(entry);
        self.entries += 1;
    }

    /// Keeps the first `entries` entries and zeroes the rest.
    pub(crate) fn truncate(&mut self, entries: usize) {
        if entries >= self.entries {
            return;
        }
        let from = entries * self.entry_size;
        let to = self.entries * self.entry_size;
        if let Some(mmap) = self.mmap.as_mut() {
            mmap[from..to].fill(0);
        }
        self.entries = entries;
    }

    /// Zeroes every slot (a rebuild starts from here). Only slots that can be non-zero are
    /// written: those held, and those the file had when opened. Slots a growth added are zeros
    /// already, and writing them would fault in the whole preallocated index.
    pub(crate) fn clear_all(&mut self) {
        let dirty = self.entries.max(self.found_slots).min(self.capacity) * self.entry_size;
        if let Some(mmap) = self.mmap.as_mut() {
            mmap[..dirty].fill(0);
        }
        self.entries = 0;
    }

    /// Changes the file's size to `bytes` (rounded down to whole entries, never below the
    /// entries held), remapping it.
    pub(crate) fn resize(&mut self, bytes: usize) -> Result<()> {
        let bytes = (bytes / self.entry_size).max(self.entries) * self.entry_size;
        if bytes == self.capacity * self.entry_size {
            return Ok(());
        }
        self.flush()?;
        // Unmap before changing the length: touching a mapping past the end of its file faults.
        self.mmap = None;
        self.file.set_len(bytes as u64).map_err(Error::io(&self.path))?;
        self.mmap = map(&self.file, &self.path)?;
        self.capacity = bytes / self.entry_size;
        self.backed = self.backed.min(bytes);
        Ok(())
    }

    /// Shrinks the file to the entries it holds, as Kafka does when a segment is closed.
    pub(crate) fn trim_to_entries(&mut self) -> Result<()> {
        self.resize(self.entries * self.entry_size)
    }

    pub(crate) fn flush(&self) -> Result<()> {
        if let Some(mmap) = self.mmap.as_ref() {
            mmap.flush().map_err(Error::io(&self.path))?;
        }
        Ok(())
    }

    /// A second handle on the file, to sync it without borrowing the index. On Linux `fsync`
    /// writes back pages dirtied through the shared mapping too (`msync` is the same call).
    pub(crate) fn sync_handle(&self) -> Result<(PathBuf, File)> {
        let file = self.file.try_clone().map_err(Error::io(&self.path))?;
        Ok((self.path.clone(), file))
    }

    pub(crate) fn rename(&mut self, to: PathBuf) -> Result<()> {
        std::fs::rename(&self.path, &to).map_err(Error::io(&self.path))?;
        self.path = to;
        Ok(())
    }
}
