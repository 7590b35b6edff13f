//! Reading a segment file's batches in bulk, for recovery and dumps.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::batch::{LOG_OVERHEAD, batch_size};
use crate::error::{Error, Result};

/// How a scan of a segment's batches ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every byte up to the end was a batch the visitor accepted.
    Complete,
    /// The batch at `position` is torn, corrupt or refused.
    Invalid { position: u64, reason: String },
}

/// Visits the batches of `file` in `[start, end)` through one large buffer, so a recovery scan
/// costs a few big reads rather than one per batch. The visitor returns `Err(reason)` to
/// stop at a batch it refuses.
pub(crate) fn scan_batches(
    file: &File,
    path: &Path,
    start: u64,
    end: u64,
    mut visit: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<ScanEnd> {
    const CHUNK: usize = 8 * 1024 * 1024;
    let mut buf = vec![0u8; CHUNK.min((end - start) as usize)];
    let mut buf_position = start; // file position of buf[0]
    let (mut cursor, mut filled) = (0usize, 0usize);
    // Makes at least `needed` bytes available from `cursor`, reading as much as fits.
    let ensure = |buf: &mut Vec<u8>, buf_position: &mut u64, cursor: &mut usize, filled: &mut usize, needed: usize| {
        if *filled - *cursor >= needed {
            return Ok(());
        }
        buf.copy_within(*cursor..*filled, 0);
        *buf_position += *cursor as u64;
        *filled -= *cursor;
        *cursor = 0;
        if needed > buf.len() {
            buf.resize(needed, 0);
        }
        let want = (buf.len() - *filled).min((end - (*buf_position + *filled as u64)) as usize);
        file.read_exact_at(&mut buf[*filled..*filled + want], *buf_position + *filled as u64)
            .map_err(Error::io(path))?;
        *filled += want;
        Ok::<(), Error>(())
    };
    loop {
        let position = buf_position + cursor as u64;
        if position >= end {
            return Ok(ScanEnd::Complete);
        }
        let left = end - position;
        if left < LOG_OVERHEAD as u64 {
            return Ok(ScanEnd::Invalid { position, reason: format!("{left} trailing bytes (torn write)") });
        }
        ensure(&mut buf, &mut buf_position, &mut cursor, &mut filled, LOG_OVERHEAD)?;
        let size = match batch_size(&buf[cursor..filled]) {
            Some(Ok(size)) => size,
            Some(Err(e)) => return Ok(ScanEnd::Invalid { position, reason: e.to_string() }),
            None => unreachable!("ensure() provided the length field"),
        };
        // The length is checked against the file before anything is read or allocated for it.
        if size as u64 > left {
            return Ok(ScanEnd::Invalid {
                position,
                reason: format!("batch of {size} bytes but only {left} bytes left (torn write)"),
            });
        }
        ensure(&mut buf, &mut buf_position, &mut cursor, &mut filled, size)?;
        if let Err(reason) = visit(position, &buf[cursor..cursor + size]) {
            return Ok(ScanEnd::Invalid { position, reason });
        }
        cursor += size;
    }
}
