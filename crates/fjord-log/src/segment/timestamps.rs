//! Finding records by time within a segment: the time index narrows the search to a stretch of
//! batches, which are then read record by record (Kafka's `LogSegment.findOffsetByTimestamp`).

use std::os::unix::fs::FileExt;

use fjord_types::{Offset, Timestamp};

use super::{MAX_DECOMPRESSED_BATCH, Segment};
use crate::batch::RecordBatch;
use crate::error::{Error, Result};
use crate::time_index::TimestampOffset;

impl Segment {
    /// The first record at or after `target` time and at or after `starting_offset`
    /// (Kafka's `findOffsetByTimestamp`).
    pub(crate) fn find_offset_by_timestamp(
        &self,
        target: Timestamp,
        starting_offset: Offset,
    ) -> Result<Option<TimestampOffset>> {
        let from = self.time_index.lookup(target).map_or(self.base_offset, |e| e.offset).max(starting_offset);
        let mut position = u64::from(self.offset_index.lookup(from).position);
        let mut bytes = Vec::new();
        let mut scratch = Vec::new();
        while let Some(header) = self.read_header_at(position)? {
            if header.max_timestamp >= target && header.last_offset >= starting_offset {
                let found = self.scan_batch(position, header.size, &mut bytes, &mut scratch, |record_ts, offset| {
                    record_ts >= target && offset >= starting_offset
                })?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            position += header.size as u64;
        }
        Ok(None)
    }

    /// The first record carrying the segment's largest timestamp (ListOffsets MAX_TIMESTAMP,
    /// as Kafka answers it since KAFKA-16310).
    pub(crate) fn max_timestamp_record(&self) -> Result<Option<TimestampOffset>> {
        let Some(max) = self.max_timestamp else { return Ok(None) };
        let mut position = u64::from(self.offset_index.lookup(max.offset).position);
        let (mut bytes, mut scratch) = (Vec::new(), Vec::new());
        while let Some(header) = self.read_header_at(position)? {
            if header.max_timestamp == max.timestamp {
                return self.scan_batch(position, header.size, &mut bytes, &mut scratch, |ts, _| ts == max.timestamp);
            }
            position += header.size as u64;
        }
        Ok(None)
    }

    fn scan_batch(
        &self,
        position: u64,
        size: usize,
        bytes: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        wanted: impl Fn(Timestamp, Offset) -> bool,
    ) -> Result<Option<TimestampOffset>> {
        bytes.resize(size, 0);
        self.log.read_exact_at(bytes, position).map_err(Error::io(&self.log_path))?;
        let batch = RecordBatch::parse(bytes)?;
        scratch.clear();
        let records = if batch.compression() == crate::Compression::None {
            batch.records()?
        } else {
            batch.decompress_records(scratch, MAX_DECOMPRESSED_BATCH)?;
            batch.records_in(scratch)
        };
        for record in records {
            let record = record?;
            if wanted(record.timestamp(), record.offset()) {
                return Ok(Some(TimestampOffset { timestamp: record.timestamp(), offset: record.offset() }));
            }
        }
        Ok(None)
    }
}
