//! The idempotent producer's side of `enable.idempotence`: a producer id from the cluster,
//! and each partition's next sequence number, given to a batch when it is sealed (a
//! partition's batches are sealed, sent and retried in one order) and kept on every retry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use fjord_log::RecordBatchMut;
use fjord_types::{ProducerEpoch, ProducerId};
use kafka_protocol::messages::InitProducerIdRequest;

use super::{Batch, ProducerConfig};
use crate::{Client, Error};

/// `transaction.timeout.ms`'s default, which InitProducerId carries even without transactions.
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;

/// An idempotent producer's identity and the next sequence number of each partition.
#[derive(Debug)]
pub(super) struct Idempotence {
    pub(super) producer_id: i64,
    pub(super) epoch: i16,
    next_sequence: HashMap<(Arc<str>, i32), i32>,
    /// A sequence error the producer cannot resolve happened: a new producer id is taken
    /// before the next batch is numbered.
    pub(super) renew: bool,
    /// Batches numbered under an older producer id may still be in flight.
    pub(super) draining: bool,
}

impl Idempotence {
    /// Asks the cluster for a producer id (InitProducerId without a transactional id).
    pub(super) async fn init(client: &mut Client, config: &ProducerConfig) -> Result<Idempotence, Error> {
        let deadline = Instant::now() + config.max_block;
        loop {
            let connection = client.any_connection().await?;
            let version = connection.version_for::<InitProducerIdRequest>()?;
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(TRANSACTION_TIMEOUT_MS)
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1);
            let response = connection.send(&request, version).await?;
            match Error::check(response.error_code, || "taking a producer id (InitProducerId)".to_owned()) {
                Ok(()) => {
                    return Ok(Idempotence {
                        producer_id: response.producer_id.0,
                        epoch: response.producer_epoch,
                        next_sequence: HashMap::new(),
                        renew: false,
                        draining: false,
                    });
                }
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tokio::time::sleep(config.retry_backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Numbers an unbuilt batch as its partition's next records: its builder gets the producer
    /// fields, so the CRC is computed once, when it is built.
    pub(super) fn number(&mut self, batch: &mut Batch) {
        let base = self.take_sequences(batch);
        let builder = std::mem::take(&mut batch.builder);
        batch.builder = builder.producer(ProducerId(self.producer_id), ProducerEpoch(self.epoch), base);
        batch.stamp = Some((self.producer_id, self.epoch));
    }

    /// Numbers a built batch as its partition's next records, patching its bytes (after a new
    /// producer id, for batches built under the old one and never sent).
    pub(super) fn renumber(&mut self, batch: &mut Batch) -> Result<(), Error> {
        let base = self.take_sequences(batch);
        let mut bytes = Vec::from(batch.encoded.take().expect("sealed batches are encoded"));
        RecordBatchMut::parse(&mut bytes)
            .map_err(|e| Error::Protocol(format!("cannot number a batch: {e}")))?
            .set_producer(ProducerId(self.producer_id), ProducerEpoch(self.epoch), base);
        batch.encoded = Some(Bytes::from(bytes));
        batch.stamp = Some((self.producer_id, self.epoch));
        Ok(())
    }

    /// The partition's next sequence for `batch`'s records, which it moves past them.
    fn take_sequences(&mut self, batch: &Batch) -> i32 {
        let next = self.next_sequence.entry((batch.topic.clone(), batch.partition)).or_insert(0);
        let base = *next;
        // Sequences wrap from i32::MAX to 0, as Kafka's do.
        let records = i32::try_from(batch.records).unwrap_or(i32::MAX);
        *next = if base > i32::MAX - records { records - (i32::MAX - base) - 1 } else { base + records };
        base
    }
}
