//! Produce: validate and append each partition's batches through the replica manager, answer
//! with their offsets; with `acks=all`, once the high watermark has passed them (Kafka's
//! `DelayedProduce`, completed through the produce purgatory).

use std::sync::Arc;
use std::time::Duration;

use fjord_metadata::INTERNAL_TOPICS;
use fjord_replication::{AppendError, DelayedProduce};
use fjord_types::{ErrorCode, Offset, TopicPartition};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};

use super::{Outcome, text};
use crate::broker::Broker;
use crate::errors;

/// A refusal for one partition: the code, the message, and the records at fault (KIP-467).
struct Refusal {
    code: ErrorCode,
    message: Option<String>,
    record_errors: Vec<BatchIndexAndErrorMessage>,
}

impl Refusal {
    fn code(code: ErrorCode) -> Refusal {
        Refusal { code, message: None, record_errors: Vec::new() }
    }

    fn append(error: &AppendError) -> Refusal {
        let record_errors = error
            .record_errors()
            .iter()
            .map(|e| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(e.batch_index)
                    .with_batch_index_error_message(Some(text(&e.message)))
            })
            .collect();
        Refusal { code: errors::append_error(error), message: Some(error.to_string()), record_errors }
    }
}

pub(super) async fn handle(broker: &Arc<Broker>, version: i16, request: ProduceRequest) -> Outcome {
    let acks = request.acks;
    let now = Broker::now();
    let image = broker.image();
    let mut failed = false;
    // Where each partition's appended records end, for acks=all.
    let mut waiting: Vec<(TopicPartition, Offset)> = Vec::new();
    let mut topics: Vec<TopicProduceResponse> = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.0.to_string();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let response = PartitionProduceResponse::default().with_index(data.index);
            let tp = TopicPartition::new(name.clone(), data.index);
            let result = (|| {
                if !(-1..=1).contains(&acks) {
                    return Err(Refusal::code(ErrorCode::InvalidRequiredAcks));
                }
                if INTERNAL_TOPICS.contains(&name.as_str()) {
                    // Only the broker writes its internal topics (Kafka refuses clients too).
                    let message = format!("Cannot append to internal topic {name}");
                    return Err(Refusal { message: Some(message), ..Refusal::code(ErrorCode::InvalidTopicException) });
                }
                let Some(records) = data.records else { return Err(Refusal::code(ErrorCode::CorruptMessage)) };
                // Written straight from the request's buffer: the log writes the leader's batch
                // headers (offsets, epoch) in place of the producer's.
                match broker.replicas.append_records(&tp, &records, acks, now) {
                    Some(result) => result.map_err(|e| Refusal::append(&e)),
                    None => {
                        let known = image.topics.get(&name).is_some_and(|t| t.partitions.contains_key(&data.index));
                        let code =
                            if known { ErrorCode::NotLeaderOrFollower } else { ErrorCode::UnknownTopicOrPartition };
                        Err(Refusal::code(code))
                    }
                }
            })();
            partitions.push(match result {
                Ok(result) => {
                    if acks == -1 {
                        waiting.push((tp, result.next_offset));
                    }
                    response
                        .with_base_offset(result.base_offset.0)
                        .with_log_append_time_ms(result.log_append_time.0)
                        .with_log_start_offset(if version >= 5 { result.log_start_offset.0 } else { -1 })
                }
                Err(Refusal { code, message, record_errors }) => {
                    failed = true;
                    tracing::debug!(partition = %tp, error = ?code, message = ?message, "produce refused");
                    response
                        .with_error_code(code.code())
                        .with_error_message(message.filter(|_| version >= 8).map(|m| text(&m)))
                        .with_record_errors(if version >= 8 { record_errors } else { Vec::new() })
                        .with_base_offset(-1)
                }
            });
        }
        topics.push(
            TopicProduceResponse::default().with_name(super::topic_name(&name)).with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        // No response; Kafka closes the connection when an acks=0 produce fails, which is how
        // the client learns of it.
        return if failed { Outcome::Close } else { Outcome::Silent };
    }
    if !waiting.is_empty() {
        // The high watermark of each partition must pass what was appended to it (at once when
        // the ISR is this broker alone).
        let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
        let mut produce = DelayedProduce::new(waiting);
        super::complete_within(&broker.replicas, broker.replicas.produce_purgatory(), &mut produce, timeout).await;
        for (tp, result) in produce.results() {
            let Err(error) = result else { continue };
            let topic = topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic);
            if let Some(p) = topic.and_then(|t| t.partition_responses.iter_mut().find(|p| p.index == tp.partition)) {
                p.error_code = errors::acks_error(&error).code();
                p.error_message = (version >= 8).then(|| text(&error.to_string()));
            }
        }
    }
    Outcome::Respond(Box::new(ResponseKind::Produce(ProduceResponse::default().with_responses(topics))))
}
