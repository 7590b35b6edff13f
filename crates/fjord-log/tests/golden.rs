//! Record batches against the documented format and against an independent codec.
//!
//! `hand_built_batch_decodes_field_by_field` writes a batch byte by byte from the v2 layout in
//! `docs/log-format.md`; the proptests check our view and builder against the `kafka-protocol`
//! crate's record codec, which was written from Kafka's sources by other people, in both
//! directions and with every codec.

use bytes::Bytes;
use fjord_log::{BATCH_HEADER_SIZE, BatchBuilder, Compression, Header, RecordBatch, RecordBatchMut, TimestampType};
use fjord_types::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, Timestamp};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as KpTimestampType,
};
use proptest::prelude::*;

fn varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Two records written out field by field, exactly as the format document lays them out.
fn hand_built_batch() -> Vec<u8> {
    let mut records = Vec::new();
    // Record 0: key "k0", value "hello", one header ("h", "x"), timestamp delta 0.
    let mut body = vec![0u8]; // attributes
    varint(&mut body, 0); // timestamp delta
    varint(&mut body, 0); // offset delta
    varint(&mut body, 2);
    body.extend_from_slice(b"k0");
    varint(&mut body, 5);
    body.extend_from_slice(b"hello");
    varint(&mut body, 1);
    varint(&mut body, 1);
    body.extend_from_slice(b"h");
    varint(&mut body, 1);
    body.extend_from_slice(b"x");
    varint(&mut records, body.len() as i64);
    records.extend_from_slice(&body);
    // Record 1: null key, null value (a tombstone), no headers, timestamp delta 250.
    let mut body = vec![0u8];
    varint(&mut body, 250);
    varint(&mut body, 1);
    varint(&mut body, -1);
    varint(&mut body, -1);
    varint(&mut body, 0);
    varint(&mut records, body.len() as i64);
    records.extend_from_slice(&body);

    let mut after_crc = Vec::new();
    after_crc.extend_from_slice(&0i16.to_be_bytes()); // attributes: none, CreateTime
    after_crc.extend_from_slice(&1i32.to_be_bytes()); // last offset delta
    after_crc.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // base timestamp
    after_crc.extend_from_slice(&1_700_000_000_250i64.to_be_bytes()); // max timestamp
    after_crc.extend_from_slice(&42i64.to_be_bytes()); // producer id
    after_crc.extend_from_slice(&3i16.to_be_bytes()); // producer epoch
    after_crc.extend_from_slice(&7i32.to_be_bytes()); // base sequence
    after_crc.extend_from_slice(&2i32.to_be_bytes()); // record count
    after_crc.extend_from_slice(&records);

    let mut batch = Vec::new();
    batch.extend_from_slice(&100i64.to_be_bytes()); // base offset
    batch.extend_from_slice(&((4 + 1 + 4 + after_crc.len()) as i32).to_be_bytes()); // batch length
    batch.extend_from_slice(&5i32.to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc32c::crc32c(&after_crc).to_be_bytes());
    batch.extend_from_slice(&after_crc);
    batch
}

#[test]
fn hand_built_batch_decodes_field_by_field() {
    let bytes = hand_built_batch();
    let batch = RecordBatch::parse_valid(&bytes).unwrap();
    assert_eq!(batch.size(), bytes.len());
    assert_eq!(batch.base_offset(), Offset(100));
    assert_eq!(batch.last_offset(), Offset(101));
    assert_eq!(batch.partition_leader_epoch(), LeaderEpoch(5));
    assert_eq!(batch.magic(), 2);
    assert_eq!(batch.compression(), Compression::None);
    assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
    assert!(!batch.is_transactional() && !batch.is_control());
    assert_eq!(batch.base_timestamp(), Timestamp(1_700_000_000_000));
    assert_eq!(batch.max_timestamp(), Timestamp(1_700_000_000_250));
    assert_eq!(batch.producer_id(), ProducerId(42));
    assert_eq!(batch.producer_epoch(), ProducerEpoch(3));
    assert_eq!(batch.base_sequence(), 7);
    assert_eq!(batch.last_sequence(), 8);
    assert_eq!(batch.record_count(), 2);

    let records: Vec<_> = batch.records().unwrap().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].offset(), Offset(100));
    assert_eq!(records[0].timestamp(), Timestamp(1_700_000_000_000));
    assert_eq!(records[0].key(), Some(&b"k0"[..]));
    assert_eq!(records[0].value(), Some(&b"hello"[..]));
    let headers: Vec<_> = records[0].headers().map(Result::unwrap).collect();
    assert_eq!(headers, vec![Header { key: b"h", value: Some(b"x") }]);
    assert_eq!(records[1].offset(), Offset(101));
    assert_eq!(records[1].timestamp(), Timestamp(1_700_000_000_250));
    assert_eq!(records[1].key(), None);
    assert_eq!(records[1].value(), None);
    assert_eq!(records[1].headers().count(), 0);

    // Our builder writes the very same bytes.
    let mut builder = BatchBuilder::new().base_offset(Offset(100)).partition_leader_epoch(LeaderEpoch(5)).producer(
        ProducerId(42),
        ProducerEpoch(3),
        7,
    );
    builder.push(Timestamp(1_700_000_000_000), Some(b"k0"), Some(b"hello"), &[Header { key: b"h", value: Some(b"x") }]);
    builder.push(Timestamp(1_700_000_000_250), None, None, &[]);
    assert_eq!(builder.build().unwrap(), bytes);
}

#[test]
fn every_corruption_of_the_covered_bytes_is_caught() {
    let bytes = hand_built_batch();
    // Flip one bit in every byte the CRC covers (attributes to the end).
    for at in 21..bytes.len() {
        let mut corrupt = bytes.clone();
        corrupt[at] ^= 0x10;
        let result = RecordBatch::parse(&corrupt).and_then(|b| b.validate());
        assert!(result.is_err(), "flip at byte {at} went unnoticed");
    }
    // Base offset and leader epoch are outside the CRC: patching them keeps the batch valid.
    let mut patched = bytes.clone();
    let mut view = RecordBatchMut::parse(&mut patched).unwrap();
    view.set_base_offset(Offset(9_000));
    view.set_partition_leader_epoch(LeaderEpoch(77));
    let batch = RecordBatch::parse_valid(&patched).unwrap();
    assert_eq!((batch.base_offset(), batch.partition_leader_epoch()), (Offset(9_000), LeaderEpoch(77)));
    assert_eq!(batch.records().unwrap().next().unwrap().unwrap().offset(), Offset(9_000));
}

#[test]
fn log_append_time_rewrites_attributes_and_max_timestamp_under_a_new_crc() {
    let mut bytes = hand_built_batch();
    RecordBatchMut::parse(&mut bytes).unwrap().set_log_append_time(Timestamp(1_800_000_000_000));
    let batch = RecordBatch::parse_valid(&bytes).unwrap();
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(batch.max_timestamp(), Timestamp(1_800_000_000_000));
    // Every record now reports the append time, as Kafka's consumers see it.
    for record in batch.records().unwrap() {
        assert_eq!(record.unwrap().timestamp(), Timestamp(1_800_000_000_000));
    }
    // And the independent decoder agrees.
    let decoded = RecordBatchDecoder::decode(&mut Bytes::from(bytes.clone())).unwrap();
    assert!(decoded.records.iter().all(|r| r.timestamp_type == KpTimestampType::LogAppend));

    // The header a leader writes in front of the producer's unchanged bytes is the same batch.
    let original = hand_built_batch();
    let view = RecordBatch::parse(&original).unwrap();
    let header = view.leader_header(Offset(77), LeaderEpoch(5), Some(Timestamp(1_800_000_000_000)));
    let mut expected = bytes;
    let mut patched = RecordBatchMut::parse(&mut expected).unwrap();
    patched.set_base_offset(Offset(77));
    patched.set_partition_leader_epoch(LeaderEpoch(5));
    let written = [&header[..], &original[BATCH_HEADER_SIZE..]].concat();
    assert_eq!(written, expected);
    RecordBatch::parse_valid(&written).unwrap();
    let plain = view.leader_header(Offset(77), LeaderEpoch(5), None);
    assert_eq!(plain[17..], original[17..BATCH_HEADER_SIZE], "CreateTime: only offset and epoch change");
}

#[test]
fn stamping_producer_fields_after_the_build_keeps_the_batch_valid() {
    let mut bytes = hand_built_batch();
    RecordBatchMut::parse(&mut bytes).unwrap().set_producer(ProducerId(4_242), ProducerEpoch(3), 1_000);
    let batch = RecordBatch::parse_valid(&bytes).unwrap();
    assert_eq!(
        (batch.producer_id(), batch.producer_epoch(), batch.base_sequence()),
        (ProducerId(4_242), ProducerEpoch(3), 1_000)
    );
    let decoded = RecordBatchDecoder::decode(&mut Bytes::from(bytes.clone())).unwrap();
    let first = &decoded.records[0];
    assert_eq!((first.producer_id, first.producer_epoch, first.sequence), (4_242, 3, 1_000));
    // Only the three fields and the CRC changed.
    let original = hand_built_batch();
    assert_eq!(bytes[..17], original[..17]);
    assert_eq!(bytes[21..43], original[21..43]);
    assert_eq!(bytes[57..], original[57..]);
}

#[test]
fn malformed_bytes_are_errors_not_panics() {
    let bytes = hand_built_batch();
    for len in 0..bytes.len() {
        assert!(RecordBatch::parse(&bytes[..len]).is_err(), "prefix of {len} bytes parsed");
    }
    // A record section that lies about its record count or lengths.
    let mut wrong_count = bytes.clone();
    wrong_count[57..61].copy_from_slice(&3i32.to_be_bytes());
    let batch = RecordBatch::parse(&wrong_count);
    // 3 records cannot fit in 2 offsets.
    assert!(batch.is_err());
    let mut scratch = Vec::new();
    let mut extra_record_bytes = bytes.clone();
    extra_record_bytes[57..61].copy_from_slice(&1i32.to_be_bytes());
    let batch = RecordBatch::parse(&extra_record_bytes).unwrap();
    assert!(batch.validate_records(&mut scratch, 1 << 20).is_err());
    assert!(RecordBatch::parse(&bytes).unwrap().validate_records(&mut scratch, 1 << 20).is_ok());
}

#[derive(Debug, Clone)]
struct TestRecord {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn arb_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.9, prop::collection::vec(any::<u8>(), 0..64))
}

fn arb_record() -> impl Strategy<Value = TestRecord> {
    (0i64..1_000_000, arb_bytes(), arb_bytes(), prop::collection::btree_map("[a-z]{1,6}", arb_bytes(), 0..3)).prop_map(
        |(timestamp, key, value, headers)| TestRecord {
            timestamp: 1_700_000_000_000 + timestamp,
            key,
            value,
            headers: headers.into_iter().collect(),
        },
    )
}

fn arb_compression() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

fn kp_compression(c: Compression) -> KpCompression {
    match c {
        Compression::None => KpCompression::None,
        Compression::Gzip => KpCompression::Gzip,
        Compression::Snappy => KpCompression::Snappy,
        Compression::Lz4 => KpCompression::Lz4,
        Compression::Zstd => KpCompression::Zstd,
    }
}

fn to_kp(records: &[TestRecord], base_sequence: i32) -> Vec<KpRecord> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| KpRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 4,
            producer_id: 9,
            producer_epoch: 2,
            timestamp_type: KpTimestampType::Creation,
            offset: i as i64,
            sequence: base_sequence + i as i32,
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
                .collect::<IndexMap<_, _>>(),
        })
        .collect()
}

fn build_ours(records: &[TestRecord], compression: Compression, base_sequence: i32) -> Vec<u8> {
    let mut builder = BatchBuilder::new().compression(compression).partition_leader_epoch(LeaderEpoch(4)).producer(
        ProducerId(9),
        ProducerEpoch(2),
        base_sequence,
    );
    for r in records {
        let headers: Vec<Header<'_>> =
            r.headers.iter().map(|(k, v)| Header { key: k.as_bytes(), value: v.as_deref() }).collect();
        builder.push(Timestamp(r.timestamp), r.key.as_deref(), r.value.as_deref(), &headers);
    }
    builder.build().unwrap()
}

fn assert_matches_input(bytes: &[u8], records: &[TestRecord], compression: Compression) {
    let batch = RecordBatch::parse_valid(bytes).unwrap();
    assert_eq!(batch.compression(), compression);
    assert_eq!(batch.record_count() as usize, records.len());
    assert_eq!(batch.producer_id(), ProducerId(9));
    assert_eq!(batch.partition_leader_epoch(), LeaderEpoch(4));
    assert_eq!(batch.max_timestamp().0, records.iter().map(|r| r.timestamp).max().unwrap());
    let mut scratch = Vec::new();
    batch.validate_records(&mut scratch, 64 << 20).unwrap();
    scratch.clear();
    batch.decompress_records(&mut scratch, 64 << 20).unwrap();
    let decoded: Vec<_> = batch.records_in(&scratch).map(Result::unwrap).collect();
    assert_eq!(decoded.len(), records.len());
    for (i, (ours, want)) in decoded.iter().zip(records).enumerate() {
        assert_eq!(ours.offset(), Offset(i as i64));
        assert_eq!(ours.timestamp(), Timestamp(want.timestamp));
        assert_eq!(ours.key(), want.key.as_deref());
        assert_eq!(ours.value(), want.value.as_deref());
        let headers: Vec<_> = ours.headers().map(Result::unwrap).collect();
        assert_eq!(headers.len(), want.headers.len());
        for (h, (k, v)) in headers.iter().zip(&want.headers) {
            assert_eq!(h.key, k.as_bytes());
            assert_eq!(h.value, v.as_deref());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// kafka-protocol writes, we read.
    #[test]
    fn we_read_what_kafka_protocol_writes(
        records in prop::collection::vec(arb_record(), 1..40),
        compression in arb_compression(),
        base_sequence in 0i32..1000,
    ) {
        let mut bytes = Vec::new();
        let options = RecordEncodeOptions { version: 2, compression: kp_compression(compression) };
        RecordBatchEncoder::encode(&mut bytes, &to_kp(&records, base_sequence), &options).unwrap();
        // kafka-protocol uses the smallest timestamp as the base; offsets and values must agree.
        assert_matches_input(&bytes, &records, compression);
        prop_assert_eq!(RecordBatch::parse(&bytes).unwrap().base_sequence(), base_sequence);
    }

    /// We write, kafka-protocol reads.
    #[test]
    fn kafka_protocol_reads_what_we_write(
        records in prop::collection::vec(arb_record(), 1..40),
        compression in arb_compression(),
        base_sequence in 0i32..1000,
    ) {
        let bytes = build_ours(&records, compression, base_sequence);
        assert_matches_input(&bytes, &records, compression);
        let decoded = RecordBatchDecoder::decode(&mut Bytes::from(bytes)).unwrap();
        prop_assert_eq!(decoded.compression, kp_compression(compression));
        let want = to_kp(&records, base_sequence);
        prop_assert_eq!(decoded.records, want);
    }

    /// Uncompressed and with timestamps in order, the two encoders agree byte for byte.
    #[test]
    fn uncompressed_encodings_are_identical(
        mut records in prop::collection::vec(arb_record(), 1..40),
        base_sequence in 0i32..1000,
    ) {
        records.sort_by_key(|r| r.timestamp);
        let ours = build_ours(&records, Compression::None, base_sequence);
        let mut theirs = Vec::new();
        let options = RecordEncodeOptions { version: 2, compression: KpCompression::None };
        RecordBatchEncoder::encode(&mut theirs, &to_kp(&records, base_sequence), &options).unwrap();
        prop_assert_eq!(ours, theirs);
    }

    /// Whatever the bytes, parsing and iterating never panics.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), flips in prop::collection::vec((0usize..200, any::<u8>()), 0..8)) {
        let mut batch = hand_built_batch();
        batch.extend_from_slice(&bytes);
        for (at, value) in flips {
            let at = at % batch.len();
            batch[at] = value;
        }
        for input in [&bytes[..], &batch[..]] {
            if let Ok(view) = RecordBatch::parse(input) {
                let _ = view.validate();
                let mut scratch = Vec::new();
                let _ = view.validate_records(&mut scratch, 1 << 20);
                if let Ok(records) = view.records() {
                    for record in records.flatten() {
                        for _ in record.headers() {}
                    }
                }
            }
        }
    }
}
