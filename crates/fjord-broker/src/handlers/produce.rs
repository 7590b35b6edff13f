//! Produce: validate and append each partition's batches through the replica manager, answer
//! with their offsets; with `acks=all`, once the high watermark has passed them (Kafka's
//! `DelayedProduce`, completed through the produce purgatory). From v10 a partition refused
//! with NOT_LEADER_OR_FOLLOWER names its current leader, whose endpoint comes with the
//! response, so the producer retries there without a Metadata round trip (KIP-951).

use std::sync::Arc;
use std::time::Duration;

use fjord_metadata::{INTERNAL_TOPICS, MetadataImage};
use fjord_replication::{AppendError, DelayedProduce};
use fjord_types::{ErrorCode, Offset, TopicPartition};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};

use super::metadata::listed_endpoint;
use super::{Outcome, RequestContext, text, wire_broker};
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
        if let AppendError::Storage(e) = error {
            errors::warn_storage(e);
        }
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

pub(super) async fn handle(
    broker: &Arc<Broker>,
    context: &RequestContext,
    version: i16,
    request: ProduceRequest,
) -> Outcome {
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
    let node_endpoints =
        if version >= 10 { leader_hints(&broker.image(), &context.listener, &mut topics) } else { Vec::new() };
    Outcome::Respond(Box::new(ResponseKind::Produce(
        ProduceResponse::default().with_responses(topics).with_node_endpoints(node_endpoints),
    )))
}

/// KIP-951: each partition answered NOT_LEADER_OR_FOLLOWER gets its leader and leader epoch as
/// `image` has them, and the leaders a client on `listener` can reach are returned with their
/// endpoints there, once each (Kafka's `KafkaApis.handleProduceRequest`). A partition without
/// a leader gets -1 and no endpoint. (Produce carries no leader epoch, so FENCED_LEADER_EPOCH,
/// the other error Kafka hints on, is never a Produce answer.)
fn leader_hints(image: &MetadataImage, listener: &str, topics: &mut [TopicProduceResponse]) -> Vec<NodeEndpoint> {
    let mut endpoints: Vec<NodeEndpoint> = Vec::new();
    for topic in topics {
        let registrations = image.topics.get(topic.name.0.as_str()).map(|t| &t.partitions);
        for p in &mut topic.partition_responses {
            if p.error_code != ErrorCode::NotLeaderOrFollower.code() {
                continue;
            }
            let Some(registration) = registrations.and_then(|r| r.get(&p.index)) else { continue };
            p.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(wire_broker(registration.leader))
                .with_leader_epoch(registration.leader_epoch.0);
            let leader = registration.leader;
            if endpoints.iter().any(|e| e.node_id == wire_broker(leader)) {
                continue;
            }
            if let Some((broker, endpoint)) = listed_endpoint(image, leader, listener) {
                endpoints.push(
                    NodeEndpoint::default()
                        .with_node_id(wire_broker(leader))
                        .with_host(text(&endpoint.host))
                        .with_port(i32::from(endpoint.port))
                        .with_rack(broker.rack.as_deref().map(text)),
                );
            }
        }
    }
    endpoints
}

#[cfg(test)]
mod tests {
    use fjord_metadata::{BrokerRegistration, Endpoint, TopicImage};
    use fjord_types::{BrokerId, LeaderEpoch, PartitionRegistration, TopicId};

    use super::*;

    fn broker(id: i32, fenced: bool) -> BrokerRegistration {
        BrokerRegistration {
            broker_id: BrokerId(id),
            incarnation_id: [0; 16],
            broker_epoch: 1,
            listeners: vec![Endpoint {
                listener: "PLAINTEXT".into(),
                host: format!("host{id}"),
                port: 9000 + id as u16,
            }],
            rack: (id == 2).then(|| "rack-b".to_owned()),
            fenced,
            in_controlled_shutdown: false,
        }
    }

    /// Partition i of `t` led by `leaders[i]` (-1: none) at epoch 5.
    fn image(leaders: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for b in [broker(1, false), broker(2, false), broker(3, true)] {
            image.brokers.insert(b.broker_id, b);
        }
        let partitions = leaders
            .iter()
            .enumerate()
            .map(|(i, &leader)| {
                let mut p = PartitionRegistration::new(vec![BrokerId(1), BrokerId(2), BrokerId(3)]);
                p.leader = BrokerId(leader);
                p.leader_epoch = LeaderEpoch(5);
                (i as i32, p)
            })
            .collect();
        let topic = TopicImage { name: "t".into(), id: TopicId([1; 16]), partitions, configs: Default::default() };
        image.topics.insert("t".into(), topic);
        image
    }

    fn answered(codes: &[ErrorCode]) -> Vec<TopicProduceResponse> {
        let partitions = codes
            .iter()
            .enumerate()
            .map(|(i, code)| PartitionProduceResponse::default().with_index(i as i32).with_error_code(code.code()))
            .collect();
        vec![
            TopicProduceResponse::default()
                .with_name(super::super::topic_name("t"))
                .with_partition_responses(partitions),
        ]
    }

    #[test]
    fn not_leader_answers_name_the_leader_and_carry_its_endpoint_once() {
        use ErrorCode::{NotLeaderOrFollower, RequestTimedOut};
        let image = image(&[2, 2, 1, 3, -1]);
        let mut topics = answered(&[
            NotLeaderOrFollower,
            NotLeaderOrFollower,
            RequestTimedOut,
            NotLeaderOrFollower,
            NotLeaderOrFollower,
        ]);
        let endpoints = leader_hints(&image, "PLAINTEXT", &mut topics);
        let hints: Vec<(i32, i32)> = topics[0]
            .partition_responses
            .iter()
            .map(|p| (p.current_leader.leader_id.0, p.current_leader.leader_epoch))
            .collect();
        // Partition 2 was not refused for leadership: no hint. A fenced leader (3) and no
        // leader (-1) are named, but no endpoint is given for them.
        assert_eq!(hints, [(2, 5), (2, 5), (-1, -1), (3, 5), (-1, 5)]);
        let described: Vec<(i32, &str, i32, Option<&str>)> = endpoints
            .iter()
            .map(|e| (e.node_id.0, e.host.as_str(), e.port, e.rack.as_ref().map(|r| r.as_str())))
            .collect();
        assert_eq!(described, [(2, "host2", 9002, Some("rack-b"))]);
        // A client on a listener the leader does not have gets the hint but no endpoint.
        let mut topics = answered(&[NotLeaderOrFollower]);
        assert!(leader_hints(&image, "INTERNAL", &mut topics).is_empty());
        assert_eq!(topics[0].partition_responses[0].current_leader.leader_id.0, 2);
    }
}
