//! The rebalance protocol's steps (Kafka's `ClassicGroup` transitions): adding members, moving
//! to PreparingRebalance, completing the join phase, and static members taking over.

use fjord_types::{ErrorCode, Timestamp};

use crate::config::CoordinatorConfig;
use crate::group::{Group, GroupState, Member};
use crate::messages::*;
use crate::record::{CoordinatorRecord, GroupMetadata};

pub(crate) fn add_member(
    group: &mut Group,
    now: Timestamp,
    request_id: RequestId,
    request: &JoinRequest,
    member_id: String,
) {
    if let Some(instance) = &request.group_instance_id {
        group.static_members.insert(instance.clone(), member_id.clone());
    }
    if group.members.is_empty() {
        group.protocol_type = Some(request.protocol_type.clone());
    }
    group.members.push(Member {
        member_id,
        group_instance_id: request.group_instance_id.clone(),
        client_id: request.client_id.clone(),
        client_host: request.client_host.clone(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        protocols: request.protocols.clone(),
        assignment: Vec::new(),
        last_heartbeat: now,
        awaiting_join: Some(request_id),
        awaiting_sync: None,
    });
}

/// A static member rejoined with a new member id: it takes over the old member's place
/// (and assignment) without a rebalance if nothing else changed.
pub(crate) fn rejoin_static(
    group: &mut Group,
    now: Timestamp,
    request_id: RequestId,
    request: JoinRequest,
    old_id: &str,
    new_id: String,
    config: &CoordinatorConfig,
) -> Vec<Effect> {
    let instance = request.group_instance_id.clone().expect("static");
    let mut effects = Vec::new();
    let Some(member) = group.member_mut(old_id) else { return effects };
    if let Some(waiting) = member.awaiting_join.take() {
        effects
            .push(Effect::Respond(waiting, Response::Join(JoinResponse::error(ErrorCode::FencedInstanceId, old_id))));
    }
    if let Some(waiting) = member.awaiting_sync.take() {
        effects.push(Effect::Respond(waiting, Response::Sync(SyncResponse::error(ErrorCode::FencedInstanceId))));
    }
    member.member_id = new_id.clone();
    member.protocols = request.protocols.clone();
    member.session_timeout_ms = request.session_timeout_ms;
    member.rebalance_timeout_ms = request.rebalance_timeout_ms;
    member.client_id = request.client_id.clone();
    member.client_host = request.client_host.clone();
    member.last_heartbeat = now;
    group.static_members.insert(instance, new_id.clone());
    let was_leader = group.leader.as_deref() == Some(old_id);
    if was_leader {
        group.leader = Some(new_id.clone());
    }
    // Kafka rebalances only if the group's protocol would change: a restarted member's
    // subscription bytes often differ (no owned partitions yet) without changing what it wants.
    let keeps_protocol = group.select_protocol() == group.protocol;
    match group.state {
        GroupState::Stable if keeps_protocol => {
            // A stable group ignores a new assignment, so a rejoining leader must not make
            // one: v9+ clients are told to skip it; older ones are given the old leader id, so
            // they do not take themselves for the leader (Kafka does the same).
            let skip = was_leader && request.supports_skip_assignment;
            let mut response = current_join_response(group, &new_id, skip);
            response.skip_assignment = skip;
            if was_leader && !skip {
                response.leader = old_id.to_owned();
            }
            effects.push(Effect::Append(vec![group_record(group)]));
            effects.push(Effect::Respond(request_id, Response::Join(response)));
        }
        _ => {
            group.member_mut(&new_id).expect("renamed").awaiting_join = Some(request_id);
            if group.state != GroupState::PreparingRebalance {
                prepare_rebalance(group, now, config, &mut effects);
            }
            maybe_complete_join(group, now, &mut effects);
        }
    }
    effects
}

/// The group as it stands, for a member joining without a rebalance.
pub(crate) fn current_join_response(group: &Group, member_id: &str, with_members: bool) -> JoinResponse {
    let protocol = group.protocol.clone().unwrap_or_default();
    JoinResponse {
        error: ErrorCode::None,
        generation_id: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol.clone(),
        leader: group.leader.clone().unwrap_or_default(),
        member_id: member_id.to_owned(),
        members: if with_members { joined_members(group, &protocol) } else { Vec::new() },
        skip_assignment: false,
    }
}

pub(crate) fn joined_members(group: &Group, protocol: &str) -> Vec<JoinedMember> {
    group
        .members
        .iter()
        .map(|m| JoinedMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            metadata: m.metadata_for(protocol),
        })
        .collect()
}

pub(crate) fn sync_response(group: &Group, assignment: Vec<u8>) -> SyncResponse {
    SyncResponse {
        error: ErrorCode::None,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol.clone(),
        assignment,
    }
}

pub(crate) fn group_record(group: &Group) -> CoordinatorRecord {
    CoordinatorRecord::Group {
        group_id: group.group_id.clone(),
        metadata: Some(GroupMetadata {
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            generation: group.generation,
            protocol: group.protocol.clone(),
            leader: group.leader.clone(),
            static_members: group.static_members.iter().map(|(i, m)| (i.clone(), m.clone())).collect(),
        }),
    }
}

/// Moves the group to PreparingRebalance: pending syncs are told to rejoin, and the join phase
/// gets its deadline (the initial delay for a new group).
pub(crate) fn prepare_rebalance(
    group: &mut Group,
    now: Timestamp,
    config: &CoordinatorConfig,
    effects: &mut Vec<Effect>,
) {
    if group.state == GroupState::CompletingRebalance {
        for member in &mut group.members {
            member.assignment.clear();
            if let Some(waiting) = member.awaiting_sync.take() {
                effects.push(Effect::Respond(
                    waiting,
                    Response::Sync(SyncResponse::error(ErrorCode::RebalanceInProgress)),
                ));
            }
        }
    }
    let rebalance_deadline = Timestamp(now.0 + group.max_rebalance_timeout_ms());
    if group.state == GroupState::Empty {
        let delay = i64::from(config.group_initial_rebalance_delay_ms);
        group.initial_delay_limit = Some(rebalance_deadline);
        group.join_deadline = Some(Timestamp((now.0 + delay).min(rebalance_deadline.0)));
    } else if let Some(limit) = group.initial_delay_limit {
        // Each new member during the initial delay extends it, up to the rebalance timeout.
        let delay = i64::from(config.group_initial_rebalance_delay_ms);
        group.join_deadline = Some(Timestamp((now.0 + delay).min(limit.0)));
    } else if group.state != GroupState::PreparingRebalance {
        group.join_deadline = Some(rebalance_deadline);
    }
    if group.state != GroupState::PreparingRebalance {
        group.state = GroupState::PreparingRebalance;
        group.state_timestamp = now;
    }
}

/// Completes the join phase if every member has rejoined (and any initial delay has passed):
/// a new generation, a protocol, a leader, and the JoinGroup responses.
pub(crate) fn maybe_complete_join(group: &mut Group, now: Timestamp, effects: &mut Vec<Effect>) {
    if group.state != GroupState::PreparingRebalance {
        return;
    }
    let delaying = group.initial_delay_limit.is_some() && group.join_deadline.is_some_and(|d| now < d);
    if !group.all_members_joined() || delaying {
        return;
    }
    group.join_deadline = None;
    group.initial_delay_limit = None;
    group.generation += 1;
    group.state_timestamp = now;
    if group.members.is_empty() {
        group.state = GroupState::Empty;
        group.protocol = None;
        group.leader = None;
        effects.push(Effect::Append(vec![group_record(group)]));
        return;
    }
    group.protocol = group.select_protocol();
    if group.leader.as_ref().is_none_or(|l| group.member(l).is_none()) {
        group.leader = Some(group.members[0].member_id.clone());
    }
    group.state = GroupState::CompletingRebalance;
    let protocol = group.protocol.clone().unwrap_or_default();
    let leader = group.leader.clone().unwrap_or_default();
    let members = joined_members(group, &protocol);
    for member in &mut group.members {
        member.last_heartbeat = now;
        if let Some(waiting) = member.awaiting_join.take() {
            let response = JoinResponse {
                error: ErrorCode::None,
                generation_id: group.generation,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol.clone(),
                leader: leader.clone(),
                member_id: member.member_id.clone(),
                members: if member.member_id == leader { members.clone() } else { Vec::new() },
                skip_assignment: false,
            };
            effects.push(Effect::Respond(waiting, Response::Join(response)));
        }
    }
}
