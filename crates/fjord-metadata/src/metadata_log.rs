//! The metadata log on one node: `__cluster_metadata-0`, a `fjord-log` log of metadata records,
//! flushed on every append. The quorum will replicate the same records; until then a restart
//! replays this log to rebuild the image.

use std::path::Path;

use fjord_log::{AppendMode, BatchBuilder, Batches, Log, LogConfig, OpenOptions};
use fjord_types::{LeaderEpoch, Offset, Timestamp};

use crate::error::{Error, Result};
use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// Kafka's directory name for the metadata log (`__cluster_metadata-0`).
pub const METADATA_TOPIC_DIR: &str = "__cluster_metadata-0";

/// The metadata log and the image it adds up to.
#[derive(Debug)]
pub struct MetadataLog {
    log: Log,
    image: MetadataImage,
}

impl MetadataLog {
    /// Opens (or creates) the log in `dir` and replays it.
    pub fn open(dir: &Path, now: Timestamp) -> Result<MetadataLog> {
        let config = LogConfig { segment_bytes: 64 * 1024 * 1024, ..LogConfig::default() };
        let log = Log::open(dir, config, OpenOptions::default(), now)?;
        let mut image = MetadataImage::default();
        let mut next = log.log_start_offset();
        while next < log.log_end_offset() {
            let bytes = log.read_bytes(next, 4 * 1024 * 1024, None)?;
            for batch in Batches::new(&bytes) {
                let batch = batch?;
                for record in batch.records()? {
                    let record = record?;
                    if record.offset() < next {
                        continue;
                    }
                    let value = record.value().ok_or_else(|| Error::CorruptRecord("null metadata record".into()))?;
                    image.apply(&MetadataRecord::decode(value)?)?;
                }
                next = batch.next_offset();
            }
        }
        Ok(MetadataLog { log, image })
    }

    /// The current image.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// The offset the next record will get.
    pub fn end_offset(&self) -> Offset {
        self.log.log_end_offset()
    }

    /// Appends `records` as one batch, makes them durable, then applies them to the image.
    /// Records that do not apply are refused before anything is written.
    pub fn append(&mut self, records: &[MetadataRecord], now: Timestamp) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut next = self.image.clone();
        for record in records {
            next.apply(record)?;
        }
        let mut batch = BatchBuilder::new();
        let mut value = Vec::new();
        for record in records {
            value.clear();
            record.encode(&mut value);
            batch.push(now, None, Some(&value), &[]);
        }
        let bytes = batch.build()?;
        self.log.append(&bytes, AppendMode::Leader { leader_epoch: LeaderEpoch(0) }, now)?;
        self.log.flush(now)?;
        self.image = next;
        Ok(())
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
    fn a_restart_replays_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetadataLog::open(dir.path(), Timestamp(0)).unwrap();
        let records = vec![
            MetadataRecord::RegisterBroker { broker_id: BrokerId(1), host: "h".into(), port: 1, rack: None },
            MetadataRecord::Topic { name: "t".into(), topic_id: TopicId([7; 16]) },
        ];
        log.append(&records, Timestamp(1)).unwrap();
        // A record that does not apply is refused and nothing is written.
        let bad = MetadataRecord::RemoveTopic { topic_id: TopicId([9; 16]) };
        assert!(log.append(&[bad], Timestamp(2)).is_err());
        let image = log.image().clone();
        drop(log); // no clean close: replay must not depend on it
        let log = MetadataLog::open(dir.path(), Timestamp(3)).unwrap();
        assert_eq!(log.image(), &image);
        assert_eq!(log.end_offset(), Offset(2));
    }
}
