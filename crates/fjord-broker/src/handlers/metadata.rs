//! Metadata: brokers, topics and partition leadership; auto-creates topics when allowed.

use std::sync::Arc;

use fjord_metadata::controller::{Creator, NewTopic};
use fjord_metadata::{INTERNAL_TOPICS, MetadataImage, RESERVED_TOPICS, TopicImage, validate_topic_name};
use fjord_types::{BrokerId, ErrorCode, TopicId};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

use super::{RequestContext, text, topic_name, wire_broker, wire_uuid};
use crate::broker::Broker;

/// Whether `broker` is listed to a client on `listener`: registered, unfenced, and reachable there
/// (Kafka's `getAliveBrokerNodes`).
pub(super) fn listed(image: &MetadataImage, broker: BrokerId, listener: &str) -> bool {
    image.brokers.get(&broker).is_some_and(|b| !b.fenced && b.endpoint(listener).is_some())
}

fn describe(image: &MetadataImage, topic: &TopicImage, listener: &str, version: i16) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|(&index, p)| {
            // A leader clients cannot reach is no leader to them; the epoch stays, as Kafka's does.
            let reachable = !p.leader.is_none() && listed(image, p.leader, listener);
            let offline: Vec<_> =
                p.replicas.iter().copied().filter(|&b| image.brokers.get(&b).is_none_or(|r| r.fenced)).collect();
            MetadataResponsePartition::default()
                .with_error_code(if reachable { 0 } else { ErrorCode::LeaderNotAvailable.code() })
                .with_partition_index(index)
                .with_leader_id(wire_broker(if reachable { p.leader } else { BrokerId::NONE }))
                .with_leader_epoch(if version >= 7 { p.leader_epoch.0 } else { -1 })
                .with_replica_nodes(p.replicas.iter().copied().map(wire_broker).collect())
                .with_isr_nodes(p.isr.iter().copied().map(wire_broker).collect())
                .with_offline_replicas(if version >= 5 {
                    offline.into_iter().map(wire_broker).collect()
                } else {
                    Vec::new()
                })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(wire_uuid(if version >= 10 { topic.id } else { TopicId::ZERO }))
        .with_is_internal(version >= 1 && INTERNAL_TOPICS.contains(&topic.name.as_str()))
        .with_partitions(partitions)
}

fn error_topic(name: Option<&str>, id: TopicId, code: ErrorCode, version: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_topic_id(wire_uuid(if version >= 10 { id } else { TopicId::ZERO }))
        .with_error_code(code.code())
}

pub(super) async fn handle(
    broker: &Arc<Broker>,
    context: &RequestContext,
    version: i16,
    request: MetadataRequest,
) -> MetadataResponse {
    let listener = &*context.listener;
    let mut image = broker.image();
    // v0 asks for every topic with an empty list; v1+ with null.
    let requested = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(topics),
    };
    let auto_create = broker.config.auto_create_topics_enable && (version < 4 || request.allow_auto_topic_creation);
    let topics = match requested {
        None => image.topics.values().map(|t| describe(&image, t, listener, version)).collect(),
        Some(requested) => {
            // Create what is missing first, in one metadata update.
            if auto_create {
                let missing: Vec<NewTopic> = requested
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                    .filter(|n| {
                        !image.topics.contains_key(n)
                            && validate_topic_name(n).is_ok()
                            && !INTERNAL_TOPICS.contains(&n.as_str())
                            && !RESERVED_TOPICS.contains(&n.as_str())
                    })
                    .map(|name| NewTopic { name, num_partitions: -1, replication_factor: -1, ..NewTopic::default() })
                    .collect();
                if !missing.is_empty() {
                    match super::forward::create_topics(broker, missing, Creator::User).await {
                        Ok(results) => {
                            for (name, code, message) in results {
                                match code {
                                    ErrorCode::None => tracing::info!(topic = %name, "auto-created topic"),
                                    code => tracing::debug!(topic = %name, ?code, ?message, "auto-creation refused"),
                                }
                            }
                        }
                        Err(code) => tracing::warn!(?code, "auto-creation failed"),
                    }
                    image = broker.image();
                }
            }
            requested
                .iter()
                .map(|t| lookup(&image, listener, t.name.as_ref().map(|n| n.0.as_str()), t.topic_id, version))
                .collect()
        }
    };
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let endpoint = b.endpoint(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(wire_broker(b.broker_id))
                    .with_host(text(&endpoint.host))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.rack.as_deref().filter(|_| version >= 1).map(text)),
            )
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id((version >= 2).then(|| text(&broker.cluster_id)))
        .with_controller_id(wire_broker(if version >= 1 { broker.node_id } else { fjord_types::BrokerId::NONE }))
        .with_topics(topics)
}

fn lookup(
    image: &MetadataImage,
    listener: &str,
    name: Option<&str>,
    id: uuid::Uuid,
    version: i16,
) -> MetadataResponseTopic {
    match name {
        Some(name) => match image.topics.get(name) {
            Some(topic) => describe(image, topic, listener, version),
            None if validate_topic_name(name).is_err() => {
                error_topic(Some(name), TopicId::ZERO, ErrorCode::InvalidTopicException, version)
            }
            None => error_topic(Some(name), TopicId::ZERO, ErrorCode::UnknownTopicOrPartition, version),
        },
        None => {
            let id = TopicId(*id.as_bytes());
            match image.topic_by_id(id) {
                Some(topic) => describe(image, topic, listener, version),
                None => error_topic(None, id, ErrorCode::UnknownTopicId, version),
            }
        }
    }
}
