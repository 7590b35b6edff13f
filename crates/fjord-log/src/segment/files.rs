//! A segment's files as files: syncing them, and renaming them through the suffixes of
//! deletion and of the cleaner's crash-safe swap.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use super::{DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, Segment, TIME_INDEX_SUFFIX, segment_file_name};
use crate::error::{Error, Result};

impl Segment {
    /// The segment's files (log, offset index, time index), for syncing without borrowing it.
    pub(crate) fn sync_handles(&self) -> Result<[(PathBuf, Arc<File>); 3]> {
        let index = |(path, file): (PathBuf, File)| (path, Arc::new(file));
        Ok([
            (self.log_path.clone(), Arc::clone(&self.log)),
            index(self.offset_index.file().sync_handle()?),
            index(self.time_index.file().sync_handle()?),
        ])
    }

    /// Writes the log and both indexes to stable storage.
    pub(crate) fn flush(&self) -> Result<()> {
        self.log.sync_data().map_err(Error::io(&self.log_path))?;
        self.offset_index.file().flush()?;
        self.time_index.file().flush()?;
        Ok(())
    }

    /// Renames the segment's files with the `.deleted` suffix; returns their new paths.
    pub(crate) fn rename_to_deleted(&mut self) -> Result<Vec<PathBuf>> {
        self.rename_files(DELETED_SUFFIX)
    }

    /// Renames the segment's files to their usual names followed by `suffix` (empty for the
    /// usual names), indexes first and the log last: the log file's name is what the loader
    /// trusts. Returns the new paths.
    pub(crate) fn rename_files(&mut self, suffix: &str) -> Result<Vec<PathBuf>> {
        let dir = self.log_path.parent().expect("a segment file lives in a directory").to_path_buf();
        let name = |kind: &str| dir.join(segment_file_name(self.base_offset, kind) + suffix);
        let (index_to, time_to, log_to) = (name(INDEX_SUFFIX), name(TIME_INDEX_SUFFIX), name(LOG_SUFFIX));
        self.offset_index.file_mut().rename(index_to.clone())?;
        self.time_index.file_mut().rename(time_to.clone())?;
        std::fs::rename(&self.log_path, &log_to).map_err(Error::io(&self.log_path))?;
        self.log_path = log_to.clone();
        Ok(vec![log_to, index_to, time_to])
    }
}
