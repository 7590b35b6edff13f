//! The leader's checks of produced batches (Kafka's `LogValidator` for v2 batches from clients,
//! and the sequence checks of `ProducerAppendInfo`).

use fjord_log::{Batches, Compression, RecordBatch, TimestampType};
use fjord_types::{ProducerEpoch, ProducerId, Timestamp};

use super::{Partition, metadata_of};
use crate::error::{AppendError, RecordError};
use crate::producer_state::{BatchMetadata, SequenceCheck};

/// Bound on a batch's decompressed records while validating (Kafka has none; this keeps a
/// small hostile batch from claiming gigabytes).
const MAX_DECOMPRESSED_FACTOR: usize = 256;

impl Partition {
    /// Runs the leader's checks; returns the duplicate's metadata if the append is a retry.
    pub(super) fn check_batches(
        &self,
        records: &[u8],
        scratch: &mut Vec<u8>,
        now: Timestamp,
    ) -> Result<Option<BatchMetadata>, AppendError> {
        let mut position = 0;
        let mut pending: Vec<(ProducerId, ProducerEpoch, BatchMetadata)> = Vec::new();
        while position < records.len() {
            let rest = &records[position..];
            if rest.len() > 16 && rest[16] != fjord_log::MAGIC_V2 {
                return Err(AppendError::UnsupportedMagic(rest[16]));
            }
            let batch = RecordBatch::parse(rest).map_err(|e| AppendError::Corrupt(e.to_string()))?;
            let checked = self.check_batch(&batch, &mut pending, scratch, now);
            // The log checks every CRC as it writes. Here the CRCs are checked only when the
            // append goes no further (refused, or a retry answered from memory), so that a
            // damaged batch is reported as damaged, not as whatever its damage looks like.
            if !matches!(checked, Ok(None)) {
                for batch in Batches::new(&records[..position + batch.size()]) {
                    let batch = batch.map_err(|e| AppendError::Corrupt(e.to_string()))?;
                    batch.validate().map_err(|e| AppendError::Corrupt(e.to_string()))?;
                }
            }
            if let Some(duplicate) = checked? {
                return Ok(Some(duplicate));
            }
            position += batch.size();
        }
        Ok(None)
    }

    /// The leader's checks of one batch (all but its CRC); returns the original's metadata if
    /// the batch is a retry of one already appended.
    fn check_batch(
        &self,
        batch: &RecordBatch<'_>,
        pending: &mut Vec<(ProducerId, ProducerEpoch, BatchMetadata)>,
        scratch: &mut Vec<u8>,
        now: Timestamp,
    ) -> Result<Option<BatchMetadata>, AppendError> {
        if batch.size() > self.config.log.max_message_bytes {
            return Err(AppendError::TooLarge { size: batch.size(), limit: self.config.log.max_message_bytes });
        }
        if batch.is_transactional() || batch.is_control() {
            return Err(AppendError::Transactional);
        }
        self.check_records(batch, scratch, now)?;
        if batch.producer_id().is_none() {
            return Ok(None);
        }
        if batch.base_sequence() < 0 {
            return Err(AppendError::invalid_record("idempotent batch without a base sequence"));
        }
        // Batches earlier in this append count as appended for the later ones' checks.
        let mut state = (!pending.is_empty()).then(|| self.producers.clone());
        let state = match state.as_mut() {
            Some(state) => {
                for (producer, epoch, meta) in pending.iter() {
                    state.update(*producer, *epoch, *meta);
                }
                &*state
            }
            None => &self.producers,
        };
        match state.check(batch.producer_id(), batch.producer_epoch(), batch.base_sequence(), batch.last_sequence())? {
            SequenceCheck::Duplicate(original) => Ok(Some(original)),
            SequenceCheck::Append => {
                pending.push((batch.producer_id(), batch.producer_epoch(), metadata_of(batch)));
                Ok(None)
            }
        }
    }

    /// Walks every record: structure, offset deltas (exactly `0..count`, with the header's
    /// `lastOffsetDelta` and record count agreeing), headers, and the record rules of the
    /// topic (a key when compacted, CreateTime timestamps within the allowed window). A batch
    /// with records that break those rules is refused with each such record named, as KIP-467
    /// lets Produce v8+ report them.
    fn check_records(&self, batch: &RecordBatch<'_>, scratch: &mut Vec<u8>, now: Timestamp) -> Result<(), AppendError> {
        let count = batch.record_count();
        if count <= 0 || i64::from(batch.last_offset_delta()) + 1 != i64::from(count) {
            return Err(AppendError::invalid_record(format!(
                "Inconsistent batch offset range [{}, {}] and count of records {count}",
                batch.base_offset(),
                batch.last_offset()
            )));
        }
        scratch.clear();
        let bytes = if batch.compression() == Compression::None {
            batch.records_bytes()
        } else {
            let limit = self.config.log.max_message_bytes.saturating_mul(MAX_DECOMPRESSED_FACTOR);
            batch.decompress_records(scratch, limit).map_err(|e| AppendError::Corrupt(e.to_string()))?;
            &scratch[..]
        };
        let create_time = batch.timestamp_type() == TimestampType::CreateTime;
        let earliest = now.0.saturating_sub(self.config.timestamp_before_max_ms);
        let latest = now.0.saturating_add(self.config.timestamp_after_max_ms);
        let mut keyless = Vec::new();
        let mut mistimed = Vec::new();
        let mut records = batch.records_in(bytes);
        let mut index = 0i32;
        for record in records.by_ref() {
            let record = record.map_err(|e| AppendError::invalid_record(e.to_string()))?;
            let delta = record.offset().since(batch.base_offset());
            if delta != i64::from(index) {
                return Err(AppendError::invalid_record(format!(
                    "record {index} has offset delta {delta}: offsets must increase by one"
                )));
            }
            for header in record.headers() {
                header.map_err(|e| AppendError::invalid_record(e.to_string()))?;
            }
            if self.config.compacted && record.key().is_none() {
                // Compaction keeps the latest record per key; a record without one has no place.
                let message =
                    format!("Compacted topic cannot accept message without key in topic partition {}.", self.tp);
                keyless.push(RecordError { batch_index: index, message });
            }
            let timestamp = record.timestamp().0;
            if create_time && (timestamp < earliest || timestamp > latest) {
                let message = format!(
                    "Timestamp {timestamp} of record {index} is out of range; it must be within [{earliest}, {latest}]"
                );
                mistimed.push(RecordError { batch_index: index, message });
            }
            index += 1;
        }
        if index != count || !records.remaining_bytes().is_empty() {
            return Err(AppendError::invalid_record(format!(
                "batch claims {count} records but holds {index} and {} stray bytes",
                records.remaining_bytes().len()
            )));
        }
        if !mistimed.is_empty() {
            return Err(AppendError::InvalidTimestamp { record_errors: mistimed });
        }
        if !keyless.is_empty() {
            return Err(AppendError::InvalidRecord { reason: None, record_errors: keyless });
        }
        Ok(())
    }
}
