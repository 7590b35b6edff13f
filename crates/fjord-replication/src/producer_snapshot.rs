//! Producer state snapshots: `<offset>.snapshot` files in the partition directory, in Kafka's
//! format (version 1), so idempotent producers' sequence state survives the deletion or
//! compaction of the segments that held their batches.
//!
//! ```text
//! version         int16    1
//! crc             uint32   CRC-32C of everything after this field
//! count           int32    entries
//!   producerId    int64
//!   epoch         int16
//!   lastSequence  int32
//!   lastOffset    int64
//!   offsetDelta   int32    lastOffset - firstOffset of the producer's last batch
//!   timestamp     int64
//!   coordEpoch    int32    -1 (no transactions yet)
//!   txnFirstOff   int64    -1
//! ```
//!
//! A snapshot named by offset `N` holds the state after every batch below `N`; at open the
//! newest snapshot at or below the log end is loaded and only the batches from `N` replayed.

use std::io::Write;
use std::path::{Path, PathBuf};

use fjord_types::{Offset, ProducerEpoch, ProducerId, Timestamp};

use crate::producer_state::BatchMetadata;

/// The snapshot files' suffix, as Kafka names them.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
const VERSION: i16 = 1;
const HEADER: usize = 2 + 4 + 4;
const ENTRY: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
/// Snapshots kept per partition; older ones are removed when a new one is written.
const KEPT: usize = 2;

/// One producer's state in a snapshot: its epoch and last batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The producer id.
    pub producer_id: ProducerId,
    /// Its epoch.
    pub epoch: ProducerEpoch,
    /// Its last batch.
    pub last_batch: BatchMetadata,
}

/// The path of the snapshot at `offset` in `dir`.
pub(crate) fn snapshot_path(dir: &Path, offset: Offset) -> PathBuf {
    dir.join(format!("{:020}{SNAPSHOT_SUFFIX}", offset.0))
}

/// The snapshots in `dir`, by offset.
pub(crate) fn list_snapshots(dir: &Path) -> Vec<(Offset, PathBuf)> {
    let mut found: Vec<(Offset, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
            (digits.len() == 20).then(|| digits.parse().ok().map(|o| (Offset(o), entry.path()))).flatten()
        })
        .collect();
    found.sort();
    found
}

/// Writes a snapshot at `offset` (through a temporary file, fsynced, then renamed) and removes
/// all but the newest [`KEPT`] snapshots.
pub(crate) fn write_snapshot(dir: &Path, offset: Offset, entries: &[SnapshotEntry]) -> std::io::Result<()> {
    let mut body = Vec::with_capacity(4 + entries.len() * ENTRY);
    body.extend_from_slice(&(entries.len() as i32).to_be_bytes());
    for e in entries {
        let b = &e.last_batch;
        body.extend_from_slice(&e.producer_id.0.to_be_bytes());
        body.extend_from_slice(&e.epoch.0.to_be_bytes());
        body.extend_from_slice(&b.last_sequence.to_be_bytes());
        body.extend_from_slice(&b.last_offset.0.to_be_bytes());
        body.extend_from_slice(&(b.last_offset.since(b.first_offset) as i32).to_be_bytes());
        body.extend_from_slice(&b.timestamp.0.to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&(-1i64).to_be_bytes());
    }
    let mut bytes = Vec::with_capacity(6 + body.len());
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    bytes.extend_from_slice(&body);
    let path = snapshot_path(dir, offset);
    let tmp = path.with_extension("snapshot.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    let all = list_snapshots(dir);
    for (_, old) in all.iter().take(all.len().saturating_sub(KEPT)) {
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

/// Reads a snapshot, checking its version, CRC and length before trusting a count.
pub(crate) fn read_snapshot(path: &Path) -> Result<Vec<SnapshotEntry>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() < HEADER {
        return Err(format!("{} bytes is too short for a snapshot", bytes.len()));
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version != VERSION {
        return Err(format!("snapshot version {version} is not {VERSION}"));
    }
    let crc = u32::from_be_bytes(bytes[2..6].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[6..]) != crc {
        return Err("snapshot CRC mismatch".into());
    }
    let count = i32::from_be_bytes(bytes[6..10].try_into().expect("4 bytes"));
    if count < 0 || (count as usize) * ENTRY != bytes.len() - HEADER {
        return Err(format!("snapshot claims {count} entries in {} bytes", bytes.len() - HEADER));
    }
    let i16_at = |at: usize| i16::from_be_bytes(bytes[at..at + 2].try_into().expect("2 bytes"));
    let i32_at = |at: usize| i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    Ok((0..count as usize)
        .map(|i| {
            let at = HEADER + i * ENTRY;
            let last_sequence = i32_at(at + 10);
            let last_offset = Offset(i64_at(at + 14));
            let delta = i32_at(at + 22);
            SnapshotEntry {
                producer_id: ProducerId(i64_at(at)),
                epoch: ProducerEpoch(i16_at(at + 8)),
                last_batch: BatchMetadata {
                    first_sequence: last_sequence.wrapping_sub(delta),
                    last_sequence,
                    first_offset: last_offset.plus(-i64::from(delta)),
                    last_offset,
                    timestamp: Timestamp(i64_at(at + 26)),
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let entry = SnapshotEntry {
            producer_id: ProducerId(7),
            epoch: ProducerEpoch(3),
            last_batch: BatchMetadata {
                first_sequence: 10,
                last_sequence: 14,
                first_offset: Offset(100),
                last_offset: Offset(104),
                timestamp: Timestamp(1_700_000_000_000),
            },
        };
        for offset in [5, 50, 500] {
            write_snapshot(dir.path(), Offset(offset), &[entry]).unwrap();
        }
        let listed: Vec<Offset> = list_snapshots(dir.path()).into_iter().map(|(o, _)| o).collect();
        assert_eq!(listed, vec![Offset(50), Offset(500)], "only the newest two are kept");
        let path = snapshot_path(dir.path(), Offset(500));
        assert_eq!(read_snapshot(&path).unwrap(), vec![entry]);
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), HEADER + ENTRY);
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read_snapshot(&path).unwrap_err().contains("CRC"));
        std::fs::write(&path, &bytes[..HEADER + 3]).unwrap();
        assert!(read_snapshot(&path).is_err());
    }
}
