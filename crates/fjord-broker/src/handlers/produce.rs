//! Produce: validate and append each partition's batches, answer with their offsets.

use std::sync::Arc;

use fjord_metadata::INTERNAL_TOPICS;
use fjord_types::{ErrorCode, TopicPartition};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};

use super::{Outcome, text};
use crate::broker::Broker;
use crate::errors;

pub(super) fn handle(broker: &Arc<Broker>, version: i16, request: ProduceRequest) -> Outcome {
    let acks = request.acks;
    let now = Broker::now();
    let image = broker.image();
    let mut failed = false;
    let mut appended = false;
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partition_data
                .into_iter()
                .map(|data| {
                    let mut response = PartitionProduceResponse::default().with_index(data.index);
                    let tp = TopicPartition::new(name.clone(), data.index);
                    let result = (|| {
                        if !(-1..=1).contains(&acks) {
                            return Err((ErrorCode::InvalidRequiredAcks, None));
                        }
                        if INTERNAL_TOPICS.contains(&name.as_str()) {
                            // Only the broker writes its internal topics (Kafka refuses clients too).
                            let message = format!("Cannot append to internal topic {name}");
                            return Err((ErrorCode::InvalidTopicException, Some(message)));
                        }
                        let Some(handle) = broker.partition(&tp) else {
                            let known = image.topics.get(&name).is_some_and(|t| t.partitions.contains_key(&data.index));
                            let code =
                                if known { ErrorCode::NotLeaderOrFollower } else { ErrorCode::UnknownTopicOrPartition };
                            return Err((code, None));
                        };
                        let Some(records) = data.records else { return Err((ErrorCode::CorruptMessage, None)) };
                        // Written straight from the request's buffer: the log writes the
                        // leader's batch headers (offsets, epoch) in place of the producer's.
                        let result = handle.state.lock().append_as_leader(&records, acks, now);
                        result.map_err(|e| (errors::append_error(&e), Some(e.to_string())))
                    })();
                    match result {
                        Ok(result) => {
                            appended = true;
                            response
                                .with_base_offset(result.base_offset.0)
                                .with_log_append_time_ms(result.log_append_time.0)
                                .with_log_start_offset(if version >= 5 { result.log_start_offset.0 } else { -1 })
                        }
                        Err((code, message)) => {
                            failed = true;
                            tracing::debug!(partition = %tp, error = ?code, message = ?message, "produce refused");
                            response.error_code = code.code();
                            response.error_message = message.filter(|_| version >= 8).map(|m| text(&m));
                            response.base_offset = -1;
                            response
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default().with_name(super::topic_name(&name)).with_partition_responses(partitions)
        })
        .collect();
    if appended {
        broker.notify_appended();
    }
    if acks == 0 {
        // No response; Kafka closes the connection when an acks=0 produce fails, which is how
        // the client learns of it.
        return if failed { Outcome::Close } else { Outcome::Silent };
    }
    Outcome::Respond(Box::new(ResponseKind::Produce(ProduceResponse::default().with_responses(responses))))
}
