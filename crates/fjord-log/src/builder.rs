//! Building v2 record batches: for tests, examples, tools and Fjord's own client.
//!
//! The broker never rebuilds a producer's batch; this is for the code that writes new ones.

use fjord_types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, Timestamp};

use crate::batch::{BATCH_HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2, RecordBatchMut, TimestampType};
use crate::compression::Compression;
use crate::error::Result;
use crate::record::Header;
use crate::varint::{varint_len, varlong_len, write_varint, write_varlong};

/// Accumulates records and writes them as one v2 batch.
///
/// ```
/// use fjord_log::{BatchBuilder, Compression, RecordBatch};
/// use fjord_types::Timestamp;
///
/// let mut builder = BatchBuilder::new().compression(Compression::Lz4);
/// builder.push(Timestamp(1_700_000_000_000), Some(b"key"), Some(b"value"), &[]);
/// let bytes = builder.build().unwrap();
/// let batch = RecordBatch::parse_valid(&bytes).unwrap();
/// assert_eq!(batch.record_count(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: Offset,
    compression: Compression,
    timestamp_type: TimestampType,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
    base_sequence: i32,
    partition_leader_epoch: LeaderEpoch,
    transactional: bool,
    control: bool,
    records: Vec<u8>,
    count: i32,
    base_timestamp: Option<Timestamp>,
    max_timestamp: Timestamp,
    last_offset_delta: i32,
    min_last_offset_delta: i32,
    delete_horizon: Option<Timestamp>,
    scratch: Vec<u8>,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder::new()
    }
}

impl BatchBuilder {
    /// An empty, uncompressed, non-idempotent CreateTime batch at base offset 0.
    pub fn new() -> BatchBuilder {
        BatchBuilder {
            base_offset: Offset(0),
            compression: Compression::None,
            timestamp_type: TimestampType::CreateTime,
            producer_id: ProducerId::NONE,
            producer_epoch: ProducerEpoch::NONE,
            base_sequence: -1,
            partition_leader_epoch: LeaderEpoch::NONE,
            transactional: false,
            control: false,
            records: Vec::new(),
            count: 0,
            base_timestamp: None,
            max_timestamp: Timestamp::NONE,
            last_offset_delta: -1,
            min_last_offset_delta: -1,
            delete_horizon: None,
            scratch: Vec::new(),
        }
    }

    /// A builder with `batch`'s header settings (base offset, codec, timestamp type, producer,
    /// leader epoch, transactional and control flags, delete horizon), for rewriting a batch
    /// with some of its records, as compaction does. It covers the same offsets as `batch`
    /// even if its last records are left out, so sequence numbers stay consistent.
    pub fn like(batch: &crate::batch::RecordBatch<'_>) -> BatchBuilder {
        let mut builder = BatchBuilder::new();
        builder.reset_like(batch);
        builder
    }

    /// Empties the builder and takes `batch`'s settings, as [`BatchBuilder::like`] does,
    /// keeping the buffers' capacity.
    pub fn reset_like(&mut self, batch: &crate::batch::RecordBatch<'_>) {
        self.clear();
        self.base_offset = batch.base_offset();
        self.compression = batch.compression();
        self.timestamp_type = batch.timestamp_type();
        self.producer_id = batch.producer_id();
        self.producer_epoch = batch.producer_epoch();
        self.base_sequence = batch.base_sequence();
        self.partition_leader_epoch = batch.partition_leader_epoch();
        self.transactional = batch.is_transactional();
        self.control = batch.is_control();
        self.min_last_offset_delta = batch.last_offset_delta();
        self.delete_horizon = batch.delete_horizon();
    }

    /// Sets the delete horizon (KIP-534): the time after which the compactor may drop the
    /// batch's tombstones. It is stored as the base timestamp, which record timestamps are
    /// then relative to. Set it before pushing records.
    pub fn set_delete_horizon(&mut self, horizon: Option<Timestamp>) -> &mut Self {
        self.delete_horizon = horizon;
        self
    }

    /// Sets the base offset (a leader overwrites it on append).
    pub fn base_offset(mut self, offset: Offset) -> Self {
        self.base_offset = offset;
        self
    }

    /// Sets the codec.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets the timestamp type bit.
    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// Marks the batch as an idempotent producer's, with the first record's sequence number.
    pub fn producer(mut self, id: ProducerId, epoch: ProducerEpoch, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets the partition leader epoch.
    pub fn partition_leader_epoch(mut self, epoch: LeaderEpoch) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Sets the transactional bit.
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Sets the control bit.
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Adds a record at the next offset.
    pub fn push(
        &mut self,
        timestamp: Timestamp,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> &mut Self {
        let delta = self.last_offset_delta + 1;
        self.push_at(delta, timestamp, key, value, headers)
    }

    /// Adds a record at `offset_delta` from the base offset, which must exceed the previous
    /// record's (compacted batches have gaps).
    ///
    /// # Panics
    /// If `offset_delta` does not increase: that is a bug in the calling code.
    pub fn push_at(
        &mut self,
        offset_delta: i32,
        timestamp: Timestamp,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header<'_>],
    ) -> &mut Self {
        assert!(offset_delta > self.last_offset_delta, "record offset deltas must increase");
        let base_timestamp = *self.base_timestamp.get_or_insert(self.delete_horizon.unwrap_or(timestamp));
        let timestamp_delta = timestamp.0.wrapping_sub(base_timestamp.0);
        let nullable_len =
            |field: Option<&[u8]>| field.map_or(varint_len(-1), |f| varint_len(f.len() as i32) + f.len());
        let body_len = 1
            + varlong_len(timestamp_delta)
            + varint_len(offset_delta)
            + nullable_len(key)
            + nullable_len(value)
            + varint_len(headers.len() as i32)
            + headers.iter().map(|h| nullable_len(Some(h.key)) + nullable_len(h.value)).sum::<usize>();
        let out = &mut self.records;
        out.reserve(body_len + 5);
        write_varint(out, body_len as i32);
        let body_start = out.len();
        out.push(0);
        write_varlong(out, timestamp_delta);
        write_varint(out, offset_delta);
        write_nullable(out, key);
        write_nullable(out, value);
        write_varint(out, headers.len() as i32);
        for header in headers {
            write_nullable(out, Some(header.key));
            write_nullable(out, header.value);
        }
        debug_assert_eq!(out.len() - body_start, body_len);
        self.count += 1;
        self.last_offset_delta = offset_delta;
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self
    }

    /// Records added so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The batch's size if it were built uncompressed.
    pub fn uncompressed_size(&self) -> usize {
        BATCH_HEADER_SIZE + self.records.len()
    }

    /// Forgets the records, keeping the settings and the buffers' capacity.
    pub fn clear(&mut self) {
        self.records.clear();
        self.count = 0;
        self.base_timestamp = None;
        self.max_timestamp = Timestamp::NONE;
        self.last_offset_delta = -1;
    }

    /// Writes the batch to a new buffer.
    pub fn build(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.uncompressed_size());
        self.build_into(&mut out)?;
        Ok(out)
    }

    /// Appends the batch to `out`.
    pub fn build_into(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(&self.base_offset.0.to_be_bytes());
        out.extend_from_slice(&[0; 4]); // batch length, filled below
        out.extend_from_slice(&self.partition_leader_epoch.0.to_be_bytes());
        out.push(MAGIC_V2);
        out.extend_from_slice(&[0; 4]); // CRC, filled below
        let mut attributes = i16::from(self.compression.id());
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= 0x08;
        }
        if self.transactional {
            attributes |= 0x10;
        }
        if self.control {
            attributes |= 0x20;
        }
        if self.delete_horizon.is_some() {
            attributes |= 0x40;
        }
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&self.last_offset_delta.max(self.min_last_offset_delta).max(0).to_be_bytes());
        let base_timestamp = self.delete_horizon.or(self.base_timestamp).unwrap_or(Timestamp::NONE);
        out.extend_from_slice(&base_timestamp.0.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.0.to_be_bytes());
        out.extend_from_slice(&self.producer_id.0.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.0.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        if self.compression == Compression::None {
            out.extend_from_slice(&self.records);
        } else {
            self.scratch.clear();
            self.compression.compress(&self.records, &mut self.scratch)?;
            out.extend_from_slice(&self.scratch);
        }
        let length = (out.len() - start - LOG_OVERHEAD) as i32;
        out[start + 8..start + 12].copy_from_slice(&length.to_be_bytes());
        RecordBatchMut::parse(&mut out[start..])?.update_crc();
        Ok(())
    }
}

fn write_nullable(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => write_varint(out, -1),
        Some(bytes) => {
            write_varint(out, bytes.len() as i32);
            out.extend_from_slice(bytes);
        }
    }
}
