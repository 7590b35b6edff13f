//! Metadata: brokers, topics and partition leadership; auto-creates topics when allowed.

use std::sync::Arc;

use fjord_metadata::controller::{Creator, NewTopic};
use fjord_metadata::{
    BrokerRegistration, Endpoint, INTERNAL_TOPICS, MetadataImage, RESERVED_TOPICS, TopicImage, validate_topic_name,
};
use fjord_types::{BrokerId, ErrorCode, PartitionRegistration, TopicId};
use kafka_protocol::messages::BrokerId as WireBrokerId;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

use super::{RequestContext, text, topic_name, wire_broker, wire_uuid};
use crate::broker::Broker;

/// `broker` and its endpoint on `listener`, if it is listed to a client there: registered,
/// unfenced, and reachable on that listener (Kafka's `getAliveBrokerNode`).
pub(super) fn listed_endpoint<'a>(
    image: &'a MetadataImage,
    broker: BrokerId,
    listener: &str,
) -> Option<(&'a BrokerRegistration, &'a Endpoint)> {
    let registration = image.brokers.get(&broker).filter(|b| !b.fenced)?;
    Some((registration, registration.endpoint(listener)?))
}

/// Whether `broker` is listed to a client on `listener` (see [`listed_endpoint`]).
pub(super) fn listed(image: &MetadataImage, broker: BrokerId, listener: &str) -> bool {
    listed_endpoint(image, broker, listener).is_some()
}

/// Whether `name` is one of Kafka's internal topics (Kafka's `Topic.isInternal`).
pub(super) fn is_internal(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// The code for a topic asked for by name that does not exist.
pub(super) fn missing_topic_error(name: &str) -> ErrorCode {
    if validate_topic_name(name).is_err() {
        ErrorCode::InvalidTopicException
    } else {
        ErrorCode::UnknownTopicOrPartition
    }
}

/// A partition as a client on one listener is told of it, by Metadata and
/// DescribeTopicPartitions alike (Kafka's `KRaftMetadataCache`).
#[derive(Debug)]
pub(super) struct PartitionView {
    /// The leader, or `BrokerId::NONE`: a leader clients cannot reach is no leader to them
    /// (the epoch stays, as Kafka's does).
    pub(super) leader: BrokerId,
    pub(super) replicas: Vec<WireBrokerId>,
    pub(super) isr: Vec<WireBrokerId>,
    /// The replicas on brokers that are not registered, fenced, or not on this listener
    /// (Kafka's `getOfflineReplicas`).
    pub(super) offline: Vec<WireBrokerId>,
}

impl PartitionView {
    pub(super) fn new(image: &MetadataImage, partition: &PartitionRegistration, listener: &str) -> PartitionView {
        let wire = |ids: &[BrokerId]| ids.iter().copied().map(wire_broker).collect();
        let reachable = !partition.leader.is_none() && listed(image, partition.leader, listener);
        let offline: Vec<BrokerId> =
            partition.replicas.iter().copied().filter(|&b| !listed(image, b, listener)).collect();
        PartitionView {
            leader: if reachable { partition.leader } else { BrokerId::NONE },
            replicas: wire(&partition.replicas),
            isr: wire(&partition.isr),
            offline: wire(&offline),
        }
    }
}

fn describe(image: &MetadataImage, topic: &TopicImage, listener: &str, version: i16) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|(&index, p)| {
            let view = PartitionView::new(image, p, listener);
            MetadataResponsePartition::default()
                .with_error_code(if view.leader.is_none() { ErrorCode::LeaderNotAvailable.code() } else { 0 })
                .with_partition_index(index)
                .with_leader_id(wire_broker(view.leader))
                .with_leader_epoch(if version >= 7 { p.leader_epoch.0 } else { -1 })
                .with_replica_nodes(view.replicas)
                .with_isr_nodes(view.isr)
                .with_offline_replicas(if version >= 5 { view.offline } else { Vec::new() })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(wire_uuid(if version >= 10 { topic.id } else { TopicId::ZERO }))
        .with_is_internal(version >= 1 && is_internal(&topic.name))
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
            None => error_topic(Some(name), TopicId::ZERO, missing_topic_error(name), version),
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

#[cfg(test)]
mod tests {
    use fjord_metadata::Endpoint;

    use super::*;

    fn broker(id: i32, fenced: bool, listener: &str) -> BrokerRegistration {
        BrokerRegistration {
            broker_id: BrokerId(id),
            incarnation_id: [0; 16],
            broker_epoch: 1,
            listeners: vec![Endpoint { listener: listener.into(), host: "localhost".into(), port: 9092 }],
            rack: None,
            fenced,
            in_controlled_shutdown: false,
        }
    }

    #[test]
    fn offline_replicas_are_those_a_client_cannot_reach() {
        let mut image = MetadataImage::default();
        for b in [broker(1, false, "PLAINTEXT"), broker(2, true, "PLAINTEXT"), broker(3, false, "INTERNAL")] {
            image.brokers.insert(b.broker_id, b);
        }
        // Broker 4 never registered; 2 is fenced; 3 has no PLAINTEXT listener (Kafka's
        // `isReplicaOffline`).
        let mut partition = PartitionRegistration::new([1, 2, 3, 4].map(BrokerId).to_vec());
        partition.isr = vec![BrokerId(1), BrokerId(3)];
        let view = PartitionView::new(&image, &partition, "PLAINTEXT");
        assert_eq!(view.offline, [2, 3, 4].map(WireBrokerId));
        assert_eq!((view.leader, view.replicas.len(), view.isr.len()), (BrokerId(1), 4, 2));
        // On INTERNAL only broker 3 is reachable, so the leader is hidden.
        let view = PartitionView::new(&image, &partition, "INTERNAL");
        assert_eq!(view.offline, [1, 2, 4].map(WireBrokerId));
        assert!(view.leader.is_none());
    }
}
