//! fjord-protocol benchmarks: `cargo bench -p fjord-protocol`.
//!
//! - `fetch-response/copying-encoder`: a 1 MiB Fetch response (8 partitions of 128 KiB of record
//!   batches) encoded into one buffer, as the codec alone does, then written to a sink.
//! - `fetch-response/outbox`: the same response through an [`Outbox`], which keeps the batches
//!   by reference, then drained to the sink with vectored writes.
//!
//! The sink takes bytes without copying them, so the figures are the user-space cost of getting
//! a response onto the socket; the kernel's copy into the socket is the same for both.

use std::hint::black_box;
use std::io::{IoSlice, Write};

use bytes::{Buf, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fjord_protocol::kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use fjord_protocol::kafka_protocol::messages::{ApiKey, FetchResponse, ResponseKind};
use fjord_protocol::{Outbox, encode_response_into};

const PARTITIONS: usize = 8;
const PER_PARTITION: usize = 128 * 1024;
const FETCH_VERSION: i16 = 12;

fn response() -> ResponseKind {
    let partitions = (0..PARTITIONS)
        .map(|i| {
            let records = Bytes::from(vec![i as u8; PER_PARTITION]);
            PartitionData::default().with_partition_index(i as i32).with_records(Some(records))
        })
        .collect();
    let topic = FetchableTopicResponse::default().with_partitions(partitions);
    ResponseKind::Fetch(FetchResponse::default().with_responses(vec![topic]))
}

fn fetch_response(c: &mut Criterion) {
    let response = response();
    let mut group = c.benchmark_group("fetch-response");
    group.throughput(Throughput::Bytes((PARTITIONS * PER_PARTITION) as u64));
    let mut sink = std::io::sink();

    let mut buffer = BytesMut::with_capacity(2 * PARTITIONS * PER_PARTITION);
    group.bench_function("copying-encoder", |b| {
        b.iter(|| {
            buffer.clear();
            encode_response_into(&mut buffer, ApiKey::Fetch, FETCH_VERSION, 1, &response).unwrap();
            sink.write_all(black_box(&buffer)).unwrap();
        })
    });

    let mut outbox = Outbox::with_capacity(64 * 1024);
    group.bench_function("outbox", |b| {
        b.iter(|| {
            outbox.push_response(ApiKey::Fetch, FETCH_VERSION, 1, &response).unwrap();
            while outbox.has_remaining() {
                let mut slices = [IoSlice::new(&[]); 64];
                let n = outbox.chunks_vectored(&mut slices);
                let written = sink.write_vectored(black_box(&slices[..n])).unwrap();
                outbox.advance(written);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, fetch_response);
criterion_main!(benches);
