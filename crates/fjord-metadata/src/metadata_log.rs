//! The metadata log on one node: `__cluster_metadata-0`, a `fjord-log` log of metadata records.
//! Each proposal is one record batch, so it commits or is lost as a whole. A single-voter
//! quorum appends to it directly; the Raft quorum replicates the same batches.

use std::path::Path;

use fjord_log::{AppendMode, BatchBuilder, Log, LogConfig, OpenOptions};
use fjord_types::{LeaderEpoch, Offset, OffsetAndEpoch, Timestamp};

use crate::error::{Error, Result};
use crate::record::MetadataRecord;

/// Kafka's directory name for the metadata log (`__cluster_metadata-0`).
pub const METADATA_TOPIC_DIR: &str = "__cluster_metadata-0";

/// Records that were appended together, and where they sit in the metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataBatch {
    /// The offset of the first record.
    pub base_offset: Offset,
    /// The epoch of the leader that appended them.
    pub epoch: LeaderEpoch,
    /// The records, one offset each.
    pub records: Vec<MetadataRecord>,
}

impl MetadataBatch {
    /// The offset and epoch of the batch's last record: what an image that applied it contains.
    pub fn last(&self) -> OffsetAndEpoch {
        OffsetAndEpoch::new(self.base_offset.plus(self.records.len() as i64 - 1), self.epoch)
    }
}

/// The metadata log of one node.
#[derive(Debug)]
pub struct MetadataLog {
    log: Log,
}

impl MetadataLog {
    /// Opens (or creates) the log in `dir`, recovering it after a crash.
    pub fn open(dir: &Path, now: Timestamp) -> Result<MetadataLog> {
        let config = LogConfig { segment_bytes: 64 * 1024 * 1024, ..LogConfig::default() };
        Ok(MetadataLog { log: Log::open(dir, config, OpenOptions::default(), now)? })
    }

    /// Visits every batch in the log, in order, decoded.
    pub fn replay(&self, mut visit: impl FnMut(MetadataBatch) -> Result<()>) -> Result<()> {
        self.log.batches_from(self.log.log_start_offset(), None, |batch| {
            let mut records = Vec::with_capacity(batch.record_count() as usize);
            for record in batch.records()? {
                let value = record?.value().ok_or_else(|| Error::CorruptRecord("null metadata record".into()))?;
                records.push(MetadataRecord::decode(value)?);
            }
            if records.is_empty() {
                return Ok(());
            }
            visit(MetadataBatch { base_offset: batch.base_offset(), epoch: batch.partition_leader_epoch(), records })
        })?;
        Ok(())
    }

    /// The offset the next record will get.
    pub fn end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// Appends `records` as one batch under `epoch`. Not durable until [`MetadataLog::flush`].
    pub fn append(
        &mut self,
        records: Vec<MetadataRecord>,
        epoch: LeaderEpoch,
        now: Timestamp,
    ) -> Result<MetadataBatch> {
        if records.is_empty() {
            return Err(Error::Inconsistent("an empty metadata batch".into()));
        }
        let mut batch = BatchBuilder::new();
        let mut value = Vec::new();
        for record in &records {
            value.clear();
            record.encode(&mut value);
            batch.push(now, None, Some(&value), &[]);
        }
        let bytes = batch.build()?;
        let info = self.log.append(&bytes, AppendMode::Leader { leader_epoch: epoch }, now)?;
        Ok(MetadataBatch { base_offset: info.first_offset, epoch, records })
    }

    /// Makes everything appended durable.
    pub fn flush(&mut self, now: Timestamp) -> Result<()> {
        Ok(self.log.flush(now)?)
    }

    /// Flushes and closes the log cleanly.
    pub fn close(self) -> Result<()> {
        Ok(self.log.close()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_types::{BrokerId, TopicId};

    #[test]
    fn a_restart_replays_what_was_flushed_batch_by_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetadataLog::open(dir.path(), Timestamp(0)).unwrap();
        let first = vec![
            MetadataRecord::ProducerIds { broker_id: BrokerId(1), next_producer_id: 1000 },
            MetadataRecord::Topic { name: "t".into(), topic_id: TopicId([7; 16]) },
        ];
        let second = vec![MetadataRecord::RemoveTopic { topic_id: TopicId([7; 16]) }];
        let a = log.append(first.clone(), LeaderEpoch(3), Timestamp(1)).unwrap();
        let b = log.append(second.clone(), LeaderEpoch(3), Timestamp(1)).unwrap();
        assert_eq!((a.last(), b.base_offset), (OffsetAndEpoch::new(Offset(1), LeaderEpoch(3)), Offset(2)));
        log.flush(Timestamp(2)).unwrap();
        drop(log); // no clean close: replay must not depend on it
        let log = MetadataLog::open(dir.path(), Timestamp(3)).unwrap();
        let mut batches = Vec::new();
        log.replay(|batch| {
            batches.push(batch);
            Ok(())
        })
        .unwrap();
        assert_eq!(batches, vec![a, b]);
        assert_eq!(log.end_offset(), Offset(3));
    }
}
