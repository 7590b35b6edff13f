//! Metadata: brokers, topics and partition leadership; auto-creates topics when allowed.

use std::sync::Arc;

use fjord_metadata::controller::{Creator, NewTopic};
use fjord_metadata::{INTERNAL_TOPICS, MetadataImage, RESERVED_TOPICS, TopicImage, validate_topic_name};
use fjord_types::{ErrorCode, TopicId};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

use super::{text, topic_name, wire_broker, wire_uuid};
use crate::broker::Broker;

fn describe(topic: &TopicImage, version: i16) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|(&index, p)| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(wire_broker(p.leader))
                .with_leader_epoch(if version >= 7 { p.leader_epoch.0 } else { -1 })
                .with_replica_nodes(p.replicas.iter().copied().map(wire_broker).collect())
                .with_isr_nodes(p.isr.iter().copied().map(wire_broker).collect())
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

pub(super) async fn handle(broker: &Arc<Broker>, version: i16, request: MetadataRequest) -> MetadataResponse {
    let mut image = broker.image();
    // v0 asks for every topic with an empty list; v1+ with null.
    let requested = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && version == 0 => None,
        Some(topics) => Some(topics),
    };
    let auto_create = broker.config.auto_create_topics_enable && (version < 4 || request.allow_auto_topic_creation);
    let topics = match requested {
        None => image.topics.values().map(|t| describe(t, version)).collect(),
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
                    let names: Vec<String> = missing.iter().map(|t| t.name.clone()).collect();
                    match broker.create_topics(missing, Creator::User, false).await {
                        Ok(results) => {
                            for (name, result) in names.iter().zip(results) {
                                match result {
                                    Ok(_) => tracing::info!(topic = %name, "auto-created topic"),
                                    Err(e) => tracing::debug!(topic = %name, error = %e, "auto-creation refused"),
                                }
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "auto-creation failed"),
                    }
                    image = broker.image();
                }
            }
            requested
                .iter()
                .map(|t| lookup(&image, t.name.as_ref().map(|n| n.0.as_str()), t.topic_id, version))
                .collect()
        }
    };
    let brokers = image
        .brokers
        .values()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(wire_broker(b.broker_id))
                .with_host(text(&b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.as_deref().filter(|_| version >= 1).map(text))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id((version >= 2).then(|| text(&broker.cluster_id)))
        .with_controller_id(wire_broker(if version >= 1 { broker.node_id } else { fjord_types::BrokerId::NONE }))
        .with_topics(topics)
}

fn lookup(image: &MetadataImage, name: Option<&str>, id: uuid::Uuid, version: i16) -> MetadataResponseTopic {
    match name {
        Some(name) => match image.topics.get(name) {
            Some(topic) => describe(topic, version),
            None if validate_topic_name(name).is_err() => {
                error_topic(Some(name), TopicId::ZERO, ErrorCode::InvalidTopicException, version)
            }
            None => error_topic(Some(name), TopicId::ZERO, ErrorCode::UnknownTopicOrPartition, version),
        },
        None => {
            let id = TopicId(*id.as_bytes());
            match image.topic_by_id(id) {
                Some(topic) => describe(topic, version),
                None => error_topic(None, id, ErrorCode::UnknownTopicId, version),
            }
        }
    }
}
