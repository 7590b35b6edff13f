//! Record batch v2 (magic 2) as bytes, with a zero-copy view.
//!
//! Mirrors Kafka's `DefaultRecordBatch`. The layout (all integers big-endian):
//!
//! ```text
//! offset  size  field
//!  0       8    baseOffset             \ the "log overhead": outside the batch length
//!  8       4    batchLength            /   and outside the CRC
//! 12       4    partitionLeaderEpoch     outside the CRC: patched in place by the leader
//! 16       1    magic (2)
//! 17       4    crc (CRC-32C of bytes 21..end)
//! 21       2    attributes             bits 0-2 codec, 3 timestamp type, 4 transactional,
//!                                       5 control, 6 delete horizon set
//! 23       4    lastOffsetDelta
//! 27       8    baseTimestamp
//! 35       8    maxTimestamp
//! 43       8    producerId
//! 51       2    producerEpoch
//! 53       4    baseSequence
//! 57       4    recordCount
//! 61       ..   records (compressed as a whole when the codec is not none)
//! ```

use fjord_types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, Timestamp};

use crate::compression::Compression;
use crate::error::{Error, Result};
use crate::record::Records;

/// Bytes before the batch length field ends: base offset (8) and batch length (4).
pub const LOG_OVERHEAD: usize = 12;
/// The size of a v2 batch header, the smallest possible batch.
pub const BATCH_HEADER_SIZE: usize = 61;
/// The only batch format Fjord stores; magic 0 and 1 predate Kafka 0.11.
pub const MAGIC_V2: u8 = 2;

const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// Whether a batch's timestamps were set by the producer or by the broker on append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// The producer's clock (`CreateTime`).
    #[default]
    CreateTime,
    /// The broker's clock at append (`LogAppendTime`); every record's timestamp is the batch's
    /// max timestamp.
    LogAppendTime,
}

impl TimestampType {
    /// Kafka's name (`message.timestamp.type`).
    pub const fn name(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}

#[inline]
fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

#[inline]
fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

#[inline]
fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The size of the batch starting at `bytes[0]`, read from its length field, if the length field
/// is present. Does not check that the batch itself is.
pub fn batch_size(bytes: &[u8]) -> Option<Result<usize>> {
    if bytes.len() < LOG_OVERHEAD {
        return None;
    }
    let length = read_i32(bytes, 8);
    let min = (BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32;
    Some(if length < min {
        Err(Error::corrupt(format!("batch length {length} is smaller than a batch header")))
    } else {
        Ok(LOG_OVERHEAD + length as usize)
    })
}

/// The header fields a segment needs to walk its batches without reading their records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderInfo {
    pub(crate) base_offset: Offset,
    pub(crate) last_offset: Offset,
    pub(crate) size: usize,
    pub(crate) max_timestamp: Timestamp,
}

/// Checks a batch header's structure (size, magic, codec, deltas, offsets) from its first
/// [`BATCH_HEADER_SIZE`] bytes; the records need not be present.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<HeaderInfo> {
    let size = match batch_size(bytes) {
        None => return Err(Error::IncompleteBatch { needed: LOG_OVERHEAD, available: bytes.len() }),
        Some(size) => size?,
    };
    if bytes.len() < BATCH_HEADER_SIZE {
        return Err(Error::IncompleteBatch { needed: BATCH_HEADER_SIZE, available: bytes.len() });
    }
    if bytes[MAGIC] != MAGIC_V2 {
        return Err(Error::corrupt(format!("unsupported magic {}", bytes[MAGIC])));
    }
    Compression::from_id((read_i16(bytes, ATTRIBUTES) & COMPRESSION_MASK) as u8)?;
    let base_offset = read_i64(bytes, 0);
    let last_offset_delta = read_i32(bytes, LAST_OFFSET_DELTA);
    let record_count = read_i32(bytes, RECORD_COUNT);
    if last_offset_delta < 0 {
        return Err(Error::corrupt(format!("negative last offset delta {last_offset_delta}")));
    }
    if record_count < 0 || i64::from(record_count) > i64::from(last_offset_delta) + 1 {
        return Err(Error::corrupt(format!(
            "{record_count} records cannot fit in {} offsets",
            i64::from(last_offset_delta) + 1
        )));
    }
    let last_offset = base_offset
        .checked_add(i64::from(last_offset_delta))
        .filter(|_| base_offset >= 0)
        .ok_or_else(|| Error::corrupt(format!("invalid base offset {base_offset}")))?;
    Ok(HeaderInfo {
        base_offset: Offset(base_offset),
        last_offset: Offset(last_offset),
        size,
        max_timestamp: Timestamp(read_i64(bytes, MAX_TIMESTAMP)),
    })
}

/// A read-only view of exactly one v2 record batch.
///
/// Constructing it checks the structure of the header (size, magic, codec, deltas), not the
/// CRC: call [`RecordBatch::validate`] for that. Accessors never allocate and never panic.
#[derive(Clone, Copy)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
}

impl<'a> RecordBatch<'a> {
    /// A view of the batch at the start of `bytes`; trailing bytes after it are ignored.
    pub fn parse(bytes: &'a [u8]) -> Result<RecordBatch<'a>> {
        let header = parse_header(bytes)?;
        if bytes.len() < header.size {
            return Err(Error::IncompleteBatch { needed: header.size, available: bytes.len() });
        }
        Ok(RecordBatch { bytes: &bytes[..header.size] })
    }

    /// [`RecordBatch::parse`] followed by [`RecordBatch::validate`].
    pub fn parse_valid(bytes: &'a [u8]) -> Result<RecordBatch<'a>> {
        let batch = RecordBatch::parse(bytes)?;
        batch.validate()?;
        Ok(batch)
    }

    /// Checks the CRC-32C over attributes to the end of the batch.
    pub fn validate(&self) -> Result<()> {
        let computed = self.compute_crc();
        if computed != self.crc() {
            return Err(Error::corrupt(format!(
                "CRC mismatch at base offset {}: stored {:#010x}, computed {computed:#010x}",
                self.base_offset(),
                self.crc()
            )));
        }
        Ok(())
    }

    /// The batch's header as a leader writes it: `base_offset` and `leader_epoch` set and, for
    /// a LogAppendTime topic, the timestamp type and max timestamp set with the CRC recomputed.
    ///
    /// Everything a leader changes lies in the header, so the rest of the batch is written as
    /// the producer sent it, straight from the request's buffer: no copy.
    pub fn leader_header(
        &self,
        base_offset: Offset,
        leader_epoch: LeaderEpoch,
        log_append_time: Option<Timestamp>,
    ) -> [u8; BATCH_HEADER_SIZE] {
        let mut header = [0u8; BATCH_HEADER_SIZE];
        header.copy_from_slice(&self.bytes[..BATCH_HEADER_SIZE]);
        header[0..8].copy_from_slice(&base_offset.0.to_be_bytes());
        header[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.0.to_be_bytes());
        if let Some(now) = log_append_time {
            let attributes = read_i16(&header, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
            header[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
            header[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now.0.to_be_bytes());
            let crc = crc32c::crc32c_append(crc32c::crc32c(&header[ATTRIBUTES..]), &self.bytes[BATCH_HEADER_SIZE..]);
            header[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        }
        header
    }

    /// Whether the stored CRC matches the contents.
    pub fn is_valid(&self) -> bool {
        self.compute_crc() == self.crc()
    }

    /// The CRC-32C of the bytes the stored CRC covers.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES..])
    }

    /// The batch's bytes, exactly.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The batch's size in bytes, log overhead included.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The offset of the first record (assigned by the leader).
    pub fn base_offset(&self) -> Offset {
        Offset(read_i64(self.bytes, 0))
    }

    /// The offset of the last record the batch covers (records may be missing after compaction).
    pub fn last_offset(&self) -> Offset {
        self.base_offset().plus(i64::from(self.last_offset_delta()))
    }

    /// The offset after the batch.
    pub fn next_offset(&self) -> Offset {
        self.last_offset().plus(1)
    }

    /// The value of the batch length field (bytes after it).
    pub fn batch_length(&self) -> i32 {
        read_i32(self.bytes, 8)
    }

    /// The leader epoch stamped on the batch by the leader that appended it.
    pub fn partition_leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(read_i32(self.bytes, PARTITION_LEADER_EPOCH))
    }

    /// The format version; always 2 for a parsed batch.
    pub fn magic(&self) -> u8 {
        self.bytes[MAGIC]
    }

    /// The stored CRC.
    pub fn crc(&self) -> u32 {
        read_i32(self.bytes, CRC) as u32
    }

    /// The raw attributes field.
    pub fn attributes(&self) -> i16 {
        read_i16(self.bytes, ATTRIBUTES)
    }

    /// The records' codec.
    pub fn compression(&self) -> Compression {
        // parse() rejected unknown codecs.
        Compression::from_id((self.attributes() & COMPRESSION_MASK) as u8).unwrap_or_default()
    }

    /// CreateTime or LogAppendTime.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }

    /// Holds control records (transaction markers), not user data.
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }

    /// Whether the compactor set a delete horizon (then the base timestamp holds it).
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes() & DELETE_HORIZON_BIT != 0
    }

    /// The delete horizon, if the compactor set one.
    pub fn delete_horizon(&self) -> Option<Timestamp> {
        self.has_delete_horizon().then(|| self.base_timestamp())
    }

    /// Appends a copy of this batch's header with no records: what compaction keeps of an
    /// idempotent producer's last batch once all its records are superseded, so the
    /// producer's sequence state survives (Kafka does the same).
    pub fn write_empty_copy(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.bytes[..BATCH_HEADER_SIZE]);
        let header = &mut out[start..];
        header[8..12].copy_from_slice(&((BATCH_HEADER_SIZE - LOG_OVERHEAD) as i32).to_be_bytes());
        let attributes = read_i16(header, ATTRIBUTES) & !0x07; // no records, no codec
        header[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        header[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&0i32.to_be_bytes());
        let crc = crc32c::crc32c(&header[ATTRIBUTES..]);
        header[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Offset of the last record relative to the base offset.
    pub fn last_offset_delta(&self) -> i32 {
        read_i32(self.bytes, LAST_OFFSET_DELTA)
    }

    /// The timestamp record deltas are relative to.
    pub fn base_timestamp(&self) -> Timestamp {
        Timestamp(read_i64(self.bytes, BASE_TIMESTAMP))
    }

    /// The largest record timestamp, or the log append time.
    pub fn max_timestamp(&self) -> Timestamp {
        Timestamp(read_i64(self.bytes, MAX_TIMESTAMP))
    }

    /// The idempotent producer's id, or -1.
    pub fn producer_id(&self) -> ProducerId {
        ProducerId(read_i64(self.bytes, PRODUCER_ID))
    }

    /// The producer's epoch, or -1.
    pub fn producer_epoch(&self) -> ProducerEpoch {
        ProducerEpoch(read_i16(self.bytes, PRODUCER_EPOCH))
    }

    /// The first record's sequence number, or -1.
    pub fn base_sequence(&self) -> i32 {
        read_i32(self.bytes, BASE_SEQUENCE)
    }

    /// The last record's sequence number (wrapping at `i32::MAX` as Kafka's does), or -1.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence() < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence()) + i64::from(self.last_offset_delta());
        if last > i64::from(i32::MAX) { (last - i64::from(i32::MAX) - 1) as i32 } else { last as i32 }
    }

    /// The number of records the header claims.
    pub fn record_count(&self) -> i32 {
        read_i32(self.bytes, RECORD_COUNT)
    }

    /// The records section, compressed or not.
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[BATCH_HEADER_SIZE..]
    }

    /// Iterates the records of an uncompressed batch without copying or allocating.
    ///
    /// For a compressed batch use [`RecordBatch::decompress_records`] and iterate
    /// [`RecordBatch::records_in`] over the result.
    pub fn records(&self) -> Result<Records<'a>> {
        if self.compression() != Compression::None {
            return Err(Error::corrupt(format!("records of a {} batch need decompressing first", self.compression())));
        }
        Ok(self.records_in(self.records_bytes()))
    }

    /// Iterates records held in `records` (this batch's records section, decompressed), using
    /// this batch's header for offsets and timestamps.
    pub fn records_in<'b>(&self, records: &'b [u8]) -> Records<'b> {
        Records::new(
            records,
            self.record_count(),
            self.base_offset(),
            self.base_timestamp(),
            match self.timestamp_type() {
                TimestampType::LogAppendTime => Some(self.max_timestamp()),
                TimestampType::CreateTime => None,
            },
        )
    }

    /// Appends the uncompressed records section to `out`, refusing more than `max_len` bytes.
    pub fn decompress_records(&self, out: &mut Vec<u8>, max_len: usize) -> Result<()> {
        self.compression().decompress(self.records_bytes(), out, max_len)
    }

    /// Walks every record (decompressing into `scratch` if needed) and checks the record
    /// structure against the header: count, offset deltas within `lastOffsetDelta` and
    /// increasing, no bytes left over. Kafka's broker does this on produce.
    pub fn validate_records(&self, scratch: &mut Vec<u8>, max_decompressed: usize) -> Result<()> {
        scratch.clear();
        let bytes = if self.compression() == Compression::None {
            self.records_bytes()
        } else {
            self.decompress_records(scratch, max_decompressed)?;
            &scratch[..]
        };
        let mut records = self.records_in(bytes);
        let mut previous_delta = -1i64;
        for record in records.by_ref() {
            let record = record?;
            let delta = record.offset().since(self.base_offset());
            if delta <= previous_delta || delta > i64::from(self.last_offset_delta()) {
                return Err(Error::corrupt(format!(
                    "record offset delta {delta} out of order or beyond last offset delta {}",
                    self.last_offset_delta()
                )));
            }
            previous_delta = delta;
            for header in record.headers() {
                header?;
            }
        }
        if !records.remaining_bytes().is_empty() {
            return Err(Error::corrupt(format!(
                "{} bytes after the batch's {} records",
                records.remaining_bytes().len(),
                self.record_count()
            )));
        }
        Ok(())
    }
}

impl std::fmt::Debug for RecordBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordBatch")
            .field("base_offset", &self.base_offset().0)
            .field("last_offset", &self.last_offset().0)
            .field("count", &self.record_count())
            .field("size", &self.size())
            .field("compression", &self.compression())
            .field("timestamp_type", &self.timestamp_type())
            .field("max_timestamp", &self.max_timestamp().0)
            .field("producer_id", &self.producer_id().0)
            .field("partition_leader_epoch", &self.partition_leader_epoch().0)
            .finish()
    }
}

/// A mutable view of one batch, for the fields a leader sets on append.
///
/// Base offset and partition leader epoch lie outside the CRC and are patched without
/// recomputing it; setting LogAppendTime changes covered bytes and recomputes it.
#[derive(Debug)]
pub struct RecordBatchMut<'a> {
    bytes: &'a mut [u8],
}

impl<'a> RecordBatchMut<'a> {
    /// A mutable view of the batch at the start of `bytes` (checked as [`RecordBatch::parse`]).
    pub fn parse(bytes: &'a mut [u8]) -> Result<RecordBatchMut<'a>> {
        let size = RecordBatch::parse(bytes)?.size();
        Ok(RecordBatchMut { bytes: &mut bytes[..size] })
    }

    /// The read-only view.
    pub fn as_ref(&self) -> RecordBatch<'_> {
        RecordBatch { bytes: self.bytes }
    }

    /// Sets the base offset (outside the CRC).
    pub fn set_base_offset(&mut self, offset: Offset) {
        self.bytes[0..8].copy_from_slice(&offset.0.to_be_bytes());
    }

    /// Sets the partition leader epoch (outside the CRC).
    pub fn set_partition_leader_epoch(&mut self, epoch: LeaderEpoch) {
        self.bytes[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.0.to_be_bytes());
    }

    /// Marks the batch LogAppendTime with `now` as its max timestamp, and recomputes the CRC.
    pub fn set_log_append_time(&mut self, now: Timestamp) {
        let attributes = read_i16(self.bytes, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
        self.bytes[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        self.bytes[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now.0.to_be_bytes());
        self.update_crc();
    }

    /// Sets the idempotent producer fields (inside the CRC) and recomputes the CRC: a producer
    /// that builds a batch before it knows the batch's sequence stamps it this way when it
    /// sends the batch.
    pub fn set_producer(&mut self, id: ProducerId, epoch: ProducerEpoch, base_sequence: i32) {
        self.bytes[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&id.0.to_be_bytes());
        self.bytes[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&epoch.0.to_be_bytes());
        self.bytes[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
        self.update_crc();
    }

    /// Recomputes and stores the CRC.
    pub fn update_crc(&mut self) {
        let crc = crc32c::crc32c(&self.bytes[ATTRIBUTES..]);
        self.bytes[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Iterates the batches laid end to end in a buffer (a produce request's records, a fetched
/// range, a segment file's contents).
///
/// Yields an [`Error::IncompleteBatch`] for a partial batch at the end (normal at the end of a
/// fetch response) and stops after the first error.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    rest: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> Batches<'a> {
    /// Batches from the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Batches<'a> {
        Batches { rest: bytes, position: 0, failed: false }
    }

    /// The byte position of the next batch within the original buffer.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<RecordBatch<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        match RecordBatch::parse(self.rest) {
            Ok(batch) => {
                self.rest = &self.rest[batch.size()..];
                self.position += batch.size();
                Some(Ok(batch))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
