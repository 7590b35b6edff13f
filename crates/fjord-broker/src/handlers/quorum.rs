//! The operators' APIs on the active controller: DescribeQuorum (what
//! `kafka-metadata-quorum.sh` shows) and ElectLeaders (`kafka-leader-election.sh`). Both are
//! forwarded to the active controller by whichever broker a client reaches.

use std::collections::BTreeMap;
use std::sync::Arc;

use fjord_metadata::controller::{self, ElectionOutcome, ElectionType};
use fjord_quorum::{DirectoryId, ReplicaDescription};
use fjord_types::ErrorCode;
use kafka_protocol::messages::describe_quorum_response::{self, ReplicaState};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    DescribeQuorumRequest, DescribeQuorumResponse, ElectLeadersRequest, ElectLeadersResponse,
};

use super::{text, topic_name};
use crate::broker::Broker;
use crate::errors;
use crate::metadata::quorum::QuorumError;

/// The metadata log's topic name, the one partition DescribeQuorum describes.
pub(crate) const METADATA_TOPIC: &str = "__cluster_metadata";

fn replica_state(replica: &ReplicaDescription) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(replica.replica_key.id.0))
        .with_replica_directory_id(uuid::Uuid::from_bytes(
            replica.replica_key.directory_id.unwrap_or(DirectoryId::ZERO).0,
        ))
        .with_log_end_offset(replica.log_end_offset.map_or(-1, |o| o.0))
        .with_last_fetch_timestamp(replica.last_fetch_timestamp.map_or(-1, |t| t.0))
        .with_last_caught_up_timestamp(replica.last_caught_up_timestamp.map_or(-1, |t| t.0))
}

/// DescribeQuorum: the leader's view of the metadata quorum — its epoch and high watermark,
/// and each voter's and observer's log end and last fetch. Only the leader knows it; another
/// node answers NOT_LEADER_OR_FOLLOWER.
pub(super) async fn describe_quorum(broker: &Arc<Broker>, request: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let response = DescribeQuorumResponse::default();
    let asked: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_name.0.to_string(), p.partition_index)))
        .collect();
    let [(topic, partition)] = asked.as_slice() else {
        return response
            .with_error_code(ErrorCode::InvalidRequest.code())
            .with_error_message(Some(text("DescribeQuorum names exactly one partition, __cluster_metadata-0")));
    };
    let answer = |data: describe_quorum_response::PartitionData| {
        let topic = describe_quorum_response::TopicData::default()
            .with_topic_name(topic_name(topic))
            .with_partitions(vec![data.with_partition_index(*partition)]);
        DescribeQuorumResponse::default().with_topics(vec![topic])
    };
    if topic != METADATA_TOPIC || *partition != 0 {
        return answer(
            describe_quorum_response::PartitionData::default()
                .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                .with_error_message(Some(text("only __cluster_metadata-0 has a quorum"))),
        );
    }
    let described = match broker.quorum().describe().await {
        Ok(d) => d,
        Err(e) => {
            let code = match e {
                QuorumError::NotLeader => ErrorCode::NotLeaderOrFollower,
                QuorumError::ShuttingDown => ErrorCode::NotLeaderOrFollower,
                QuorumError::Storage(_) => ErrorCode::KafkaStorageError,
            };
            return answer(
                describe_quorum_response::PartitionData::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(text(&e.to_string()))),
            );
        }
    };
    let data = describe_quorum_response::PartitionData::default()
        .with_leader_id(kafka_protocol::messages::BrokerId(described.leader_id.0))
        .with_leader_epoch(described.leader_epoch.0)
        .with_high_watermark(described.high_watermark.map_or(-1, |o| o.0))
        .with_current_voters(described.voters.iter().map(replica_state).collect())
        .with_observers(described.observers.iter().map(replica_state).collect());
    // v2 (KIP-853): where each voter's controller listener is.
    let listener = broker.config.cluster.controller_listener.as_ref().map_or("CONTROLLER", |l| l.name.as_str());
    let nodes = broker
        .config
        .cluster
        .voters
        .voters()
        .filter_map(|voter| {
            let endpoint = voter.endpoint.as_ref()?;
            Some(
                describe_quorum_response::Node::default()
                    .with_node_id(kafka_protocol::messages::BrokerId(voter.key.id.0))
                    .with_listeners(vec![
                        describe_quorum_response::Listener::default()
                            .with_name(text(listener))
                            .with_host(text(&endpoint.host))
                            .with_port(endpoint.port),
                    ]),
            )
        })
        .collect();
    answer(data).with_nodes(nodes)
}

fn outcome_code(outcome: ElectionOutcome) -> (ErrorCode, Option<&'static str>) {
    match outcome {
        ElectionOutcome::Elected => (ErrorCode::None, None),
        ElectionOutcome::NotNeeded => {
            (ErrorCode::ElectionNotNeeded, Some("the elected leader is the right one already"))
        }
        ElectionOutcome::PreferredNotAvailable => (
            ErrorCode::PreferredLeaderNotAvailable,
            Some("the preferred replica is not in the ISR or its broker is not active"),
        ),
        ElectionOutcome::EligibleLeadersNotAvailable => {
            (ErrorCode::EligibleLeadersNotAvailable, Some("no replica is on an active broker"))
        }
        ElectionOutcome::Unknown => (ErrorCode::UnknownTopicOrPartition, Some("no such partition")),
    }
}

/// ElectLeaders: preferred (0) or unclean (1) elections for the named partitions, or for
/// every partition when none are named. Answers once the changes have committed.
pub(super) async fn elect_leaders(broker: &Arc<Broker>, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let election = match request.election_type {
        0 => ElectionType::Preferred,
        1 => ElectionType::Unclean,
        _ => return ElectLeadersResponse::default().with_error_code(ErrorCode::InvalidRequest.code()),
    };
    let asked: Option<Vec<(String, i32)>> = request
        .topic_partitions
        .as_ref()
        .map(|topics| topics.iter().flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p))).collect());
    let decided = broker
        .decide(false, move |image| {
            let (records, answers) = controller::elect_leaders(image, election, asked.as_deref());
            (records, answers)
        })
        .await;
    let answers = match decided {
        Ok(answers) => answers,
        Err(e) => return ElectLeadersResponse::default().with_error_code(errors::controller_failure(&e).code()),
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, partition), outcome) in answers {
        let (code, message) = outcome_code(outcome);
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code.code())
                .with_error_message(message.map(text)),
        );
    }
    let results = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default().with_topic(topic_name(&topic)).with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}
