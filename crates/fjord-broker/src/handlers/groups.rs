//! The classic group protocol: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups and OffsetDelete, mapped
//! to and from fjord-coordinator's terms.

use std::sync::Arc;

use bytes::Bytes;
use fjord_coordinator::{CommitRequest, JoinRequest, LeaveRequest, SyncRequest};
use fjord_metadata::controller::Creator;
use fjord_types::{BrokerId, ErrorCode};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{RequestContext, text, topic_name, wire_broker};
use crate::broker::Broker;
use crate::groups::{OFFSETS_TOPIC, offsets_topic};

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

fn group_id(id: &str) -> GroupId {
    GroupId(text(id))
}

fn opt_text(s: Option<&str>) -> Option<StrBytes> {
    s.map(text)
}

/// Where the coordinator of one key is: the leader of the group's `__consumer_offsets`
/// partition, as this broker's metadata says; the topic is created on first need, as Kafka
/// does on the first FindCoordinator for a group.
async fn find_one(
    broker: &Arc<Broker>,
    listener: &str,
    key: &str,
    key_type: i8,
) -> Result<(BrokerId, String, i32), (ErrorCode, String)> {
    match key_type {
        KEY_TYPE_GROUP if key.is_empty() => return Err((ErrorCode::InvalidGroupId, "the group id is empty".into())),
        KEY_TYPE_GROUP => {}
        KEY_TYPE_TRANSACTION => {
            return Err((
                ErrorCode::InvalidRequest,
                "this broker does not support transactions yet: there is no transaction coordinator".into(),
            ));
        }
        other => return Err((ErrorCode::InvalidRequest, format!("unknown coordinator key type {other}"))),
    }
    let unavailable = |why: &str| (ErrorCode::CoordinatorNotAvailable, why.to_owned());
    if !broker.image().topics.contains_key(OFFSETS_TOPIC) {
        let created = super::forward::create_topics(broker, vec![offsets_topic(&broker.config)], Creator::Broker).await;
        match created.as_deref() {
            Ok([(_, ErrorCode::None | ErrorCode::TopicAlreadyExists, _)]) => {}
            Ok(results) => {
                tracing::warn!(?results, "cannot create {OFFSETS_TOPIC}");
                return Err(unavailable("the __consumer_offsets topic cannot be created"));
            }
            Err(code) => {
                tracing::warn!(?code, "cannot create {OFFSETS_TOPIC}");
                return Err(unavailable("the __consumer_offsets topic cannot be created"));
            }
        }
    }
    let image = broker.image();
    let partition =
        broker.groups.partition_for(key).ok_or_else(|| unavailable("__consumer_offsets is not loaded yet"))?;
    let leader = image
        .topics
        .get(OFFSETS_TOPIC)
        .and_then(|t| t.partitions.get(&partition))
        .map(|p| p.leader)
        .filter(|leader| !leader.is_none())
        .ok_or_else(|| unavailable("the group's __consumer_offsets partition has no leader"))?;
    let endpoint = image
        .brokers
        .get(&leader)
        .filter(|b| !b.fenced)
        .and_then(|b| b.endpoint(listener))
        .ok_or_else(|| unavailable("the coordinator's broker is not reachable on this listener"))?;
    Ok((leader, endpoint.host.clone(), i32::from(endpoint.port)))
}

pub(super) async fn find_coordinator(
    broker: &Arc<Broker>,
    context: &RequestContext,
    version: i16,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        request.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![request.key.to_string()]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in &keys {
        // kafka-protocol's default message is "", not null: clients read "" as a message.
        let coordinator = Coordinator::default().with_key(text(key)).with_error_message(None);
        coordinators.push(match find_one(broker, &context.listener, key, request.key_type).await {
            Ok((node, host, port)) => {
                coordinator.with_node_id(wire_broker(node)).with_host(text(&host)).with_port(port)
            }
            Err((error, message)) => coordinator
                .with_node_id(wire_broker(BrokerId::NONE))
                .with_host(text(""))
                .with_port(-1)
                .with_error_code(error.code())
                .with_error_message(Some(text(&message))),
        });
    }
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let one = coordinators.pop().unwrap_or_default();
    FindCoordinatorResponse::default()
        .with_error_code(one.error_code)
        .with_error_message(if version >= 1 { one.error_message } else { None })
        .with_node_id(one.node_id)
        .with_host(one.host)
        .with_port(one.port)
}

pub(super) async fn join_group(
    broker: &Arc<Broker>,
    version: i16,
    client_id: &str,
    peer: &str,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let instance = request.group_instance_id.as_ref().map(|s| s.to_string());
    // Kafka's member ids: the client (or instance) id and a UUID.
    let new_member_id = format!("{}-{}", instance.as_deref().unwrap_or(client_id), uuid::Uuid::new_v4());
    let joined = JoinRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: instance,
        client_id: client_id.to_owned(),
        client_host: peer_host(peer),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves.
        rebalance_timeout_ms: if version >= 1 { request.rebalance_timeout_ms } else { request.session_timeout_ms },
        protocol_type: request.protocol_type.to_string(),
        protocols: request.protocols.iter().map(|p| (p.name.to_string(), p.metadata.to_vec())).collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let response = broker.groups.join(joined, new_member_id).await;
    let members = response
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(text(&m.member_id))
                .with_group_instance_id(opt_text(m.group_instance_id.as_deref()).filter(|_| version >= 5))
                .with_metadata(Bytes::from(m.metadata))
        })
        .collect();
    // Before v7 the protocol name is not nullable.
    let protocol_name = match response.protocol_name {
        Some(name) => Some(text(&name)),
        None if version < 7 => Some(text("")),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(response.error.code())
        .with_generation_id(response.generation_id)
        .with_protocol_type(opt_text(response.protocol_type.as_deref()))
        .with_protocol_name(protocol_name)
        .with_leader(text(&response.leader))
        .with_member_id(text(&response.member_id))
        .with_skip_assignment(response.skip_assignment && version >= 9)
        .with_members(members)
}

/// The host part of a peer address, as Kafka reports a member's `client.host` (`/127.0.0.1`).
fn peer_host(peer: &str) -> String {
    let host = peer.rsplit_once(':').map_or(peer, |(host, _)| host);
    format!("/{}", host.trim_start_matches('[').trim_end_matches(']'))
}

pub(super) async fn sync_group(broker: &Arc<Broker>, request: SyncGroupRequest) -> SyncGroupResponse {
    let sync = SyncRequest {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: request.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: request.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: request.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.to_vec())).collect(),
    };
    let response = broker.groups.sync(sync).await;
    SyncGroupResponse::default()
        .with_error_code(response.error.code())
        .with_protocol_type(opt_text(response.protocol_type.as_deref()))
        .with_protocol_name(opt_text(response.protocol_name.as_deref()))
        .with_assignment(Bytes::from(response.assignment))
}

pub(super) fn heartbeat(broker: &Arc<Broker>, request: HeartbeatRequest) -> HeartbeatResponse {
    let group = request.group_id.0.to_string();
    let beat = fjord_coordinator::HeartbeatRequest {
        group_id: group.clone(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
    };
    let error =
        broker.groups.run(&group, |c, now| (c.handle_heartbeat(now, beat), Vec::new())).unwrap_or_else(|error| error);
    HeartbeatResponse::default().with_error_code(error.code())
}

pub(super) fn leave_group(broker: &Arc<Broker>, version: i16, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let group = request.group_id.0.to_string();
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string())))
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let leave = LeaveRequest { group_id: group.clone(), members: members.clone() };
    let result = broker.groups.run(&group, |c, now| {
        let (error, errors, effects) = c.handle_leave(now, leave);
        ((error, errors), effects)
    });
    let (error, errors) = match result {
        Ok(answer) => answer,
        Err(error) => (error, vec![error; members.len()]),
    };
    if version < 3 {
        let error = if error == ErrorCode::None { errors.first().copied().unwrap_or(error) } else { error };
        return LeaveGroupResponse::default().with_error_code(error.code());
    }
    let responses = members
        .iter()
        .zip(errors)
        .map(|((member_id, instance), error)| {
            MemberResponse::default()
                .with_member_id(text(member_id))
                .with_group_instance_id(opt_text(instance.as_deref()))
                .with_error_code(error.code())
        })
        .collect();
    LeaveGroupResponse::default().with_error_code(error.code()).with_members(responses)
}

pub(super) async fn offset_commit(broker: &Arc<Broker>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = request.group_id.0.to_string();
    let image = broker.image();
    // Partitions of unknown topics are answered at once; the rest go to the coordinator.
    let mut known = Vec::new();
    let mut answers: Vec<(String, i32, Option<ErrorCode>)> = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        for p in &topic.partitions {
            let exists = image.topics.get(&name).is_some_and(|t| t.partitions.contains_key(&p.partition_index));
            if exists {
                known.push((
                    name.clone(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata.as_ref().map(|m| m.to_string()),
                ));
                answers.push((name.clone(), p.partition_index, None));
            } else {
                answers.push((name.clone(), p.partition_index, Some(ErrorCode::UnknownTopicOrPartition)));
            }
        }
    }
    let commit = CommitRequest {
        group_id: group.clone(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        offsets: known,
    };
    let count = commit.offsets.len();
    let errors = if count == 0 {
        Vec::new()
    } else {
        broker
            .groups
            .write_replicated(&group, |c, now| c.handle_commit(now, commit))
            .await
            .unwrap_or_else(|error| vec![error; count])
    };
    let mut errors = errors.into_iter();
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for (name, partition, error) in answers {
        let error = error.unwrap_or_else(|| errors.next().unwrap_or(ErrorCode::UnknownServerError));
        let response =
            OffsetCommitResponsePartition::default().with_partition_index(partition).with_error_code(error.code());
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == name => last.partitions.push(response),
            _ => topics.push(
                OffsetCommitResponseTopic::default().with_name(topic_name(&name)).with_partitions(vec![response]),
            ),
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's committed offsets, for OffsetFetch: per topic, per partition (offset, epoch,
/// metadata, error); or a group-level error.
type FetchedOffsets = Vec<(String, Vec<(i32, i64, i32, String, ErrorCode)>)>;

fn fetch_group_offsets(
    broker: &Arc<Broker>,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<FetchedOffsets, ErrorCode> {
    let wanted: Option<Vec<(String, i32)>> =
        topics.map(|ts| ts.into_iter().flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p))).collect());
    let entries = broker.groups.read(group, |c| c.fetch_offsets(group, wanted.as_deref()))?;
    let mut out: FetchedOffsets = Vec::new();
    for e in entries {
        let row = (e.partition, e.offset, e.leader_epoch, e.metadata.unwrap_or_default(), ErrorCode::None);
        match out.last_mut() {
            Some((topic, rows)) if *topic == e.topic => rows.push(row),
            _ => out.push((e.topic, vec![row])),
        }
    }
    Ok(out)
}

pub(super) fn offset_fetch(broker: &Arc<Broker>, version: i16, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let epoch = |e: i32| if version >= 5 { e } else { -1 };
    if version >= 8 {
        let groups = request
            .groups
            .iter()
            .map(|g| {
                let group = g.group_id.0.to_string();
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect::<Vec<_>>()
                });
                match fetch_group_offsets(broker, &group, topics) {
                    Ok(fetched) => OffsetFetchResponseGroup::default().with_group_id(group_id(&group)).with_topics(
                        fetched
                            .into_iter()
                            .map(|(topic, rows)| {
                                OffsetFetchResponseTopics::default().with_name(topic_name(&topic)).with_partitions(
                                    rows.into_iter()
                                        .map(|(p, offset, e, metadata, error)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(e)
                                                .with_metadata(Some(text(&metadata)))
                                                .with_error_code(error.code())
                                        })
                                        .collect(),
                                )
                            })
                            .collect(),
                    ),
                    Err(error) => OffsetFetchResponseGroup::default()
                        .with_group_id(group_id(&group))
                        .with_error_code(error.code()),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group = request.group_id.0.to_string();
    let asked: Option<Vec<(String, Vec<i32>)>> = request
        .topics
        .as_ref()
        .map(|ts| ts.iter().map(|t| (t.name.0.to_string(), t.partition_indexes.clone())).collect());
    let to_topics = |fetched: FetchedOffsets| -> Vec<OffsetFetchResponseTopic> {
        fetched
            .into_iter()
            .map(|(topic, rows)| {
                OffsetFetchResponseTopic::default().with_name(topic_name(&topic)).with_partitions(
                    rows.into_iter()
                        .map(|(p, offset, e, metadata, error)| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch(e))
                                .with_metadata(Some(text(&metadata)))
                                .with_error_code(error.code())
                        })
                        .collect(),
                )
            })
            .collect()
    };
    match fetch_group_offsets(broker, &group, asked.clone()) {
        Ok(fetched) => OffsetFetchResponse::default().with_topics(to_topics(fetched)),
        Err(error) => {
            // v0-1 carry errors per partition only; v2+ also at the top.
            let per_partition: FetchedOffsets = asked
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, -1, -1, String::new(), error)).collect()))
                .collect();
            let response = OffsetFetchResponse::default().with_topics(to_topics(per_partition));
            if version >= 2 { response.with_error_code(error.code()) } else { response }
        }
    }
}

pub(super) fn list_groups(broker: &Arc<Broker>, version: i16, request: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut groups = Vec::new();
    for coordinator in broker.groups.coordinators() {
        for (id, protocol_type, state) in coordinator.lock().list_groups() {
            if !states.is_empty() && !states.contains(&state.name().to_lowercase()) {
                continue;
            }
            if !types.is_empty() && !types.iter().any(|t| t == "classic") {
                continue;
            }
            let mut listed =
                ListedGroup::default().with_group_id(group_id(&id)).with_protocol_type(text(&protocol_type));
            if version >= 4 {
                listed = listed.with_group_state(text(state.name()));
            }
            if version >= 5 {
                listed = listed.with_group_type(text("classic"));
            }
            groups.push(listed);
        }
    }
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    ListGroupsResponse::default().with_groups(groups)
}

pub(super) fn describe_groups(
    broker: &Arc<Broker>,
    version: i16,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .iter()
        .map(|g| {
            let id = g.0.to_string();
            let described = DescribedGroup::default().with_group_id(group_id(&id));
            match broker.groups.read(&id, |c| c.describe_group(&id)) {
                Err(error) => described.with_error_code(error.code()).with_group_state(text("")),
                // Kafka describes an unknown group as Dead with no members.
                Ok(None) => described.with_group_state(text("Dead")),
                Ok(Some(summary)) => {
                    let members = summary
                        .members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(text(&m.member_id))
                                .with_group_instance_id(
                                    opt_text(m.group_instance_id.as_deref()).filter(|_| version >= 4),
                                )
                                .with_client_id(text(&m.client_id))
                                .with_client_host(text(&m.client_host))
                                .with_member_metadata(Bytes::from(m.metadata))
                                .with_member_assignment(Bytes::from(m.assignment))
                        })
                        .collect();
                    described
                        .with_group_state(text(summary.state.name()))
                        .with_protocol_type(text(&summary.protocol_type))
                        .with_protocol_data(text(&summary.protocol))
                        .with_members(members)
                }
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(super) fn delete_groups(broker: &Arc<Broker>, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = request
        .groups_names
        .iter()
        .map(|g| {
            let id = g.0.to_string();
            let error = broker
                .groups
                .write(&id, |c, _| {
                    let (records, errors) = c.delete_groups(std::slice::from_ref(&id));
                    (records, errors.first().copied().unwrap_or(ErrorCode::UnknownServerError))
                })
                .unwrap_or_else(|error| error);
            DeletableGroupResult::default().with_group_id(group_id(&id)).with_error_code(error.code())
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

pub(super) fn offset_delete(broker: &Arc<Broker>, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group = request.group_id.0.to_string();
    let image = broker.image();
    let asked: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    // As Kafka does, partitions of unknown topics are answered here and never deleted.
    let known = |(topic, partition): &(String, i32)| {
        image.topics.get(topic).is_some_and(|t| t.partitions.contains_key(partition))
    };
    let partitions: Vec<(String, i32)> = asked.iter().filter(|tp| known(tp)).cloned().collect();
    let result = broker.groups.write(&group, |c, _| {
        let (records, error, errors) = c.delete_offsets(&group, &partitions);
        (records, (error, errors))
    });
    let mut errors = match result {
        Ok((ErrorCode::None, errors)) => errors.into_iter(),
        Ok((error, _)) | Err(error) => return OffsetDeleteResponse::default().with_error_code(error.code()),
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for tp in &asked {
        let error = if known(tp) {
            errors.next().unwrap_or(ErrorCode::UnknownServerError)
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        let (topic, partition) = tp;
        let response =
            OffsetDeleteResponsePartition::default().with_partition_index(*partition).with_error_code(error.code());
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == topic.as_str() => last.partitions.push(response),
            _ => topics.push(
                OffsetDeleteResponseTopic::default().with_name(topic_name(topic)).with_partitions(vec![response]),
            ),
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
