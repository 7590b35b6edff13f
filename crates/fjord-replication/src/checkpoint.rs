//! Kafka's checkpoint files, written atomically (temp file, fsync, rename, fsync the directory).
//!
//! Offset checkpoints sit at the root of a log directory, one line per partition:
//!
//! ```text
//! 0                 <- version
//! 2                 <- entries
//! orders 0 1523     <- topic partition offset
//! orders 1 977
//! ```
//!
//! `leader-epoch-checkpoint` sits in each partition directory with `epoch start-offset` lines.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use fjord_types::{LeaderEpoch, Offset, TopicPartition};

use crate::leader_epoch::EpochEntry;

/// The high watermarks.
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
/// The offsets below which each log is durable.
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// The log start offsets (moved by retention and DeleteRecords).
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Per partition: where each leader epoch starts.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

const VERSION: &str = "0";

fn corrupt(path: &Path, why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("corrupt checkpoint {}: {why}", path.display()))
}

fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Reads the version and entry lines of a checkpoint; a missing file has no entries.
fn read_lines(path: &Path) -> std::io::Result<Vec<Vec<String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(VERSION) {
        return Err(corrupt(path, "unknown version"));
    }
    let count: usize =
        lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| corrupt(path, "bad entry count"))?;
    let entries: Vec<Vec<String>> =
        lines.filter(|l| !l.trim().is_empty()).map(|l| l.split_whitespace().map(str::to_owned).collect()).collect();
    if entries.len() != count {
        return Err(corrupt(path, &format!("{count} entries announced, {} present", entries.len())));
    }
    Ok(entries)
}

/// An offset-per-partition checkpoint file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetCheckpoint {
    /// The offsets.
    pub offsets: BTreeMap<TopicPartition, Offset>,
}

impl OffsetCheckpoint {
    /// Reads `path`; a missing file is an empty checkpoint.
    pub fn read(path: &Path) -> std::io::Result<OffsetCheckpoint> {
        let mut offsets = BTreeMap::new();
        for entry in read_lines(path)? {
            let [topic, partition, offset] = entry.as_slice() else { return Err(corrupt(path, "bad entry")) };
            let partition = partition.parse().map_err(|_| corrupt(path, "bad partition"))?;
            let offset = offset.parse().map_err(|_| corrupt(path, "bad offset"))?;
            offsets.insert(TopicPartition::new(topic.clone(), partition), Offset(offset));
        }
        Ok(OffsetCheckpoint { offsets })
    }

    /// Writes the checkpoint atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut text = format!("{VERSION}\n{}\n", self.offsets.len());
        for (tp, offset) in &self.offsets {
            text.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, offset));
        }
        write_atomically(path, &text)
    }
}

/// Reads a `leader-epoch-checkpoint`; a missing file has no entries.
pub fn read_epoch_checkpoint(path: &Path) -> std::io::Result<Vec<EpochEntry>> {
    read_lines(path)?
        .into_iter()
        .map(|entry| {
            let [epoch, start] = entry.as_slice() else { return Err(corrupt(path, "bad entry")) };
            Ok(EpochEntry {
                epoch: LeaderEpoch(epoch.parse().map_err(|_| corrupt(path, "bad epoch"))?),
                start_offset: Offset(start.parse().map_err(|_| corrupt(path, "bad offset"))?),
            })
        })
        .collect()
}

/// Writes a `leader-epoch-checkpoint` atomically.
pub fn write_epoch_checkpoint(path: &Path, entries: &[EpochEntry]) -> std::io::Result<()> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for entry in entries {
        text.push_str(&format!("{} {}\n", entry.epoch, entry.start_offset));
    }
    write_atomically(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REPLICATION_OFFSET_CHECKPOINT);
        assert_eq!(OffsetCheckpoint::read(&path).unwrap(), OffsetCheckpoint::default());
        let mut checkpoint = OffsetCheckpoint::default();
        checkpoint.offsets.insert(TopicPartition::new("orders", 0), Offset(1523));
        checkpoint.offsets.insert(TopicPartition::new("my-topic", 12), Offset(7));
        checkpoint.write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n2\nmy-topic 12 7\norders 0 1523\n");
        assert_eq!(OffsetCheckpoint::read(&path).unwrap(), checkpoint);
        std::fs::write(&path, "0\n3\norders 0 1\n").unwrap();
        assert!(OffsetCheckpoint::read(&path).is_err());

        let epochs = dir.path().join(LEADER_EPOCH_CHECKPOINT);
        let entries = vec![
            EpochEntry { epoch: LeaderEpoch(0), start_offset: Offset(0) },
            EpochEntry { epoch: LeaderEpoch(3), start_offset: Offset(100) },
        ];
        write_epoch_checkpoint(&epochs, &entries).unwrap();
        assert_eq!(std::fs::read_to_string(&epochs).unwrap(), "0\n2\n0 0\n3 100\n");
        assert_eq!(read_epoch_checkpoint(&epochs).unwrap(), entries);
    }
}
