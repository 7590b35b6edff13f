//! What happens to a batch once its broker has answered, or its connection broke: delivery,
//! a retry in its partition's order, or failure, with the idempotent producer's sequence
//! errors told apart.

use std::collections::HashMap;
use std::time::Instant;

use fjord_types::ErrorCode;
use kafka_protocol::messages::ProduceResponse;

use super::{Batch, Delivery, Producer};
use crate::Error;

impl Producer {
    /// Retries (or fails) every batch in flight to `node`, whose connection broke.
    pub(super) fn fail_in_flight(&mut self, node: i32, error: &Error) {
        let queued: Vec<Vec<Batch>> = self.in_flight.remove(&node).map(Vec::from).unwrap_or_default();
        for batches in queued {
            self.retry_or_fail(batches, error.clone_lossy());
        }
    }

    pub(super) fn settle(&mut self, batches: Vec<Batch>, response: ProduceResponse, arrived: Instant) {
        let mut answers: HashMap<(&str, i32), (i16, i64, Option<String>)> = HashMap::new();
        for topic in &response.responses {
            for p in &topic.partition_responses {
                let message = p.error_message.as_ref().map(|m| m.to_string());
                answers.insert((topic.name.0.as_str(), p.index), (p.error_code, p.base_offset, message));
            }
        }
        for batch in batches {
            let error = match answers.get(&(&*batch.topic, batch.partition)) {
                // A duplicate the broker no longer has the offsets of was written all the same.
                Some(&(code, base, _)) if code == 0 || code == ErrorCode::DuplicateSequenceNumber.code() => {
                    self.deliver(batch, Ok(base), arrived);
                    continue;
                }
                Some((code, _, message)) => {
                    let context = match message {
                        Some(m) => format!("producing to {}-{}: {m}", batch.topic, batch.partition),
                        None => format!("producing to {}-{}", batch.topic, batch.partition),
                    };
                    Error::kafka(*code, context)
                }
                None => Error::Protocol(format!("no answer for {}-{}", batch.topic, batch.partition)),
            };
            if batch.stamp.is_some() {
                self.sequence_failure(batch, error);
            } else {
                self.retry_or_fail(vec![batch], error);
            }
        }
    }

    /// Settles an idempotent batch the broker refused. An out-of-order answer is expected
    /// while an earlier batch of the partition is being retried (the broker has not seen it
    /// yet): this one is retried after it with the same numbers. Any other sequence or
    /// producer-id error means the numbers cannot continue (an earlier batch failed for good,
    /// or the broker lost the producer's state); the broker wrote nothing, so the batch goes
    /// back unsent, and the next send takes a new producer id and renumbers it.
    fn sequence_failure(&mut self, mut batch: Batch, error: Error) {
        let now = Instant::now();
        let code = error.code().map(ErrorCode::from_code);
        let unusable_numbers = matches!(
            code,
            Some(
                ErrorCode::OutOfOrderSequenceNumber
                    | ErrorCode::UnknownProducerId
                    | ErrorCode::InvalidProducerEpoch
                    | ErrorCode::ProducerFenced
            )
        );
        if !unusable_numbers {
            self.retry_or_fail(vec![batch], error);
            return;
        }
        if batch.created + self.config.delivery_timeout <= now {
            self.deliver(batch, Err(error), now);
            return;
        }
        let behind_a_retry = code == Some(ErrorCode::OutOfOrderSequenceNumber) && self.has_earlier_pending(&batch);
        if !behind_a_retry {
            batch.sent = false;
            if let Some(idempotence) = &mut self.idempotence {
                idempotence.renew = true;
            }
        }
        self.requeue(batch, now);
    }

    /// Whether a batch of the same partition made before `batch`, numbered in the same run
    /// and keeping its numbers, is still unsettled: then the broker refused `batch` only
    /// because that one has not arrived yet.
    fn has_earlier_pending(&self, batch: &Batch) -> bool {
        let earlier = |b: &Batch| {
            b.partition == batch.partition
                && b.serial < batch.serial
                && b.sent
                && b.stamp == batch.stamp
                && b.topic == batch.topic
        };
        self.ready.iter().any(earlier) || self.in_flight.values().flatten().flatten().any(earlier)
    }

    /// Queues a batch to be tried again after `retry.backoff.ms`, ahead of its partition's
    /// later batches and behind its earlier ones, so a partition's records stay in order.
    pub(super) fn requeue(&mut self, mut batch: Batch, now: Instant) {
        batch.not_before = Some(now + self.config.retry_backoff);
        self.stale_metadata = true;
        self.ready_bytes += batch.size();
        let same = |b: &Batch| b.partition == batch.partition && b.topic == batch.topic;
        let at = match self.ready.iter().position(|b| same(b) && b.serial > batch.serial) {
            Some(later) => later,
            None => self.ready.iter().rposition(same).map_or(0, |earlier| earlier + 1),
        };
        self.ready.insert(at, batch);
    }

    /// Queues retriable failures again (within `delivery.timeout.ms`), fails the rest.
    pub(super) fn retry_or_fail(&mut self, batches: Vec<Batch>, error: Error) {
        let now = Instant::now();
        for batch in batches {
            if error.is_retriable() && batch.created + self.config.delivery_timeout > now {
                self.requeue(batch, now);
            } else {
                self.deliver(batch, Err(error.clone_lossy()), now);
            }
        }
    }

    pub(super) fn deliver(&mut self, batch: Batch, result: Result<i64, Error>, completed: Instant) {
        // A numbered batch that fails leaves a gap in its partition's sequences that the
        // broker would refuse: later batches move to a new producer id.
        if let Some(idempotence) = &mut self.idempotence
            && result.is_err()
            && batch.stamp == Some((idempotence.producer_id, idempotence.epoch))
        {
            idempotence.renew = true;
        }
        self.deliveries.push(Delivery {
            topic: batch.topic,
            partition: batch.partition,
            result,
            records: batch.records,
            send_times: batch.send_times,
            completed,
        });
    }
}
