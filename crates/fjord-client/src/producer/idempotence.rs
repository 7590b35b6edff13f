//! The idempotent producer's side of `enable.idempotence`: a producer id from the cluster,
//! and each partition's next sequence number, stamped into a batch when it is first sent.

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
                    });
                }
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tokio::time::sleep(config.retry_backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Numbers `batch` as the partition's next records and stamps the numbers into its bytes.
    pub(super) fn stamp(&mut self, batch: &mut Batch) -> Result<(), Error> {
        let next = self.next_sequence.entry((batch.topic.clone(), batch.partition)).or_insert(0);
        let mut bytes = Vec::from(batch.encoded.take().expect("sealed batches are encoded"));
        RecordBatchMut::parse(&mut bytes)
            .map_err(|e| Error::Protocol(format!("cannot number a batch: {e}")))?
            .set_producer(ProducerId(self.producer_id), ProducerEpoch(self.epoch), *next);
        // Sequences wrap from i32::MAX to 0, as Kafka's do.
        let records = i32::try_from(batch.records).unwrap_or(i32::MAX);
        *next = if *next > i32::MAX - records { records - (i32::MAX - *next) - 1 } else { *next + records };
        batch.encoded = Some(Bytes::from(bytes));
        batch.stamp = Some((self.producer_id, self.epoch));
        Ok(())
    }
}
