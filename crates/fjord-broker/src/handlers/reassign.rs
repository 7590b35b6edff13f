//! Partition reassignment (KIP-455): AlterPartitionReassignments starts, replaces or cancels
//! moves of partitions to new replicas, and ListPartitionReassignments shows the moves under
//! way (what `kafka-reassign-partitions.sh` drives). Both run on the active controller; the
//! moves themselves happen through ordinary replication, and complete when the leader's ISR
//! change brings the last target replica in sync (`fjord_metadata::controller` has the rules).

use std::collections::BTreeMap;
use std::sync::Arc;

use fjord_metadata::controller::{self, Reassignment, ReassignmentError};
use fjord_types::{BrokerId, ErrorCode};
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId as WireBrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::{text, topic_name};
use crate::broker::Broker;
use crate::errors;

fn reassignment_code(error: &ReassignmentError) -> ErrorCode {
    match error {
        ReassignmentError::UnknownPartition(..) => ErrorCode::UnknownTopicOrPartition,
        ReassignmentError::InvalidAssignment(_) => ErrorCode::InvalidReplicaAssignment,
        ReassignmentError::ReplicationFactorChange { .. } => ErrorCode::InvalidReplicationFactor,
        ReassignmentError::NoReassignmentInProgress(..) => ErrorCode::NoReassignmentInProgress,
    }
}

fn wire(brokers: &[BrokerId]) -> Vec<WireBrokerId> {
    brokers.iter().map(|b| WireBrokerId(b.0)).collect()
}

/// AlterPartitionReassignments: each partition's move (or cancellation) is decided on its
/// own, and the answer comes once the records are committed.
pub(super) async fn alter(
    broker: &Arc<Broker>,
    version: i16,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let allow = version < 1 || request.allow_replication_factor_change;
    let reassignments: Vec<Reassignment> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| Reassignment {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                target: p.replicas.as_ref().map(|r| r.iter().map(|b| BrokerId(b.0)).collect()),
            })
        })
        .collect();
    let response = AlterPartitionReassignmentsResponse::default().with_allow_replication_factor_change(allow);
    let decided =
        broker.decide(false, move |image| controller::alter_reassignments(image, &reassignments, allow)).await;
    let outcomes = match decided {
        Ok(outcomes) => outcomes,
        Err(e) => return response.with_error_code(errors::controller_failure(&e).code()),
    };
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for ((topic, partition), outcome) in outcomes {
        let (code, message) = match &outcome {
            Ok(()) => (ErrorCode::None, None),
            Err(e) => (reassignment_code(e), Some(text(&e.to_string()))),
        };
        if let Err(e) = &outcome {
            tracing::info!(topic = %topic, partition, error = %e, "reassignment refused");
        }
        by_topic.entry(topic).or_default().push(
            ReassignablePartitionResponse::default()
                .with_partition_index(partition)
                .with_error_code(code.code())
                .with_error_message(message),
        );
    }
    let responses = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ReassignableTopicResponse::default().with_name(topic_name(&topic)).with_partitions(partitions)
        })
        .collect();
    response.with_responses(responses)
}

/// ListPartitionReassignments: the moves under way among the named partitions, or all.
pub(super) async fn list(
    broker: &Arc<Broker>,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let asked: Option<Vec<(String, i32)>> = request.topics.as_ref().map(|topics| {
        topics.iter().flat_map(|t| t.partition_indexes.iter().map(|&p| (t.name.0.to_string(), p))).collect()
    });
    // Read on the controller, in turn with the decisions, so a move just started is listed.
    let listed =
        broker.decide(true, move |image| (Vec::new(), controller::list_reassignments(image, asked.as_deref()))).await;
    let listed = match listed {
        Ok(listed) => listed,
        Err(e) => {
            return ListPartitionReassignmentsResponse::default()
                .with_error_code(errors::controller_failure(&e).code());
        }
    };
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for ((topic, partition), registration) in listed {
        by_topic.entry(topic).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(partition)
                .with_replicas(wire(&registration.replicas))
                .with_adding_replicas(wire(&registration.adding_replicas))
                .with_removing_replicas(wire(&registration.removing_replicas)),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            OngoingTopicReassignment::default().with_name(topic_name(&topic)).with_partitions(partitions)
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
