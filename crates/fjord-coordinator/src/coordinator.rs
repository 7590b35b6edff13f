//! The coordinator's handlers (Kafka's `GroupMetadataManager` classic-group paths).

use std::collections::BTreeMap;

use fjord_types::{ErrorCode, LeaderEpoch, Offset, Timestamp};

use crate::config::CoordinatorConfig;
use crate::group::{Group, GroupState};
use crate::messages::*;
use crate::rebalance::{
    add_member, current_join_response, group_record, maybe_complete_join, prepare_rebalance, rejoin_static,
    sync_response,
};
use crate::record::{CommittedOffset, CoordinatorRecord};

/// The coordinator for the groups of one `__consumer_offsets` partition (or all of them).
#[derive(Debug, Default)]
pub struct GroupCoordinator {
    config: CoordinatorConfig,
    groups: BTreeMap<String, Group>,
    offsets: BTreeMap<String, BTreeMap<(String, i32), CommittedOffset>>,
}

impl GroupCoordinator {
    /// A coordinator with no groups.
    pub fn new(config: CoordinatorConfig) -> GroupCoordinator {
        GroupCoordinator { config, groups: BTreeMap::new(), offsets: BTreeMap::new() }
    }

    /// The settings.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// Handles JoinGroup. The response may come at once or when the rebalance completes.
    /// `new_member_id` is used if the member needs an id (the caller makes it unique).
    pub fn handle_join(
        &mut self,
        now: Timestamp,
        request_id: RequestId,
        request: JoinRequest,
        new_member_id: String,
    ) -> Vec<Effect> {
        let respond = |response: JoinResponse| vec![Effect::Respond(request_id, Response::Join(response))];
        if request.group_id.is_empty() {
            return respond(JoinResponse::error(ErrorCode::InvalidGroupId, &request.member_id));
        }
        if request.session_timeout_ms < self.config.group_min_session_timeout_ms
            || request.session_timeout_ms > self.config.group_max_session_timeout_ms
        {
            return respond(JoinResponse::error(ErrorCode::InvalidSessionTimeout, &request.member_id));
        }
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return respond(JoinResponse::error(ErrorCode::InconsistentGroupProtocol, &request.member_id));
        }
        if !request.member_id.is_empty() && !self.groups.contains_key(&request.group_id) {
            return respond(JoinResponse::error(ErrorCode::UnknownMemberId, &request.member_id));
        }
        let group = self.groups.entry(request.group_id.clone()).or_insert_with(|| Group::new(&request.group_id, now));
        if group.state == GroupState::Dead {
            return respond(JoinResponse::error(ErrorCode::CoordinatorNotAvailable, &request.member_id));
        }
        if !group.supports(&request.protocol_type, &request.protocols) {
            return respond(JoinResponse::error(ErrorCode::InconsistentGroupProtocol, &request.member_id));
        }
        let mut effects = Vec::new();
        if request.member_id.is_empty() {
            // A static member coming back under a new member id replaces its old self.
            if let Some(instance) = &request.group_instance_id
                && let Some(old_id) = group.static_members.get(instance).cloned()
            {
                return rejoin_static(group, now, request_id, request, &old_id, new_member_id, &self.config);
            }
            if request.require_known_member_id && request.group_instance_id.is_none() {
                group.pending_members.insert(new_member_id.clone(), now);
                return respond(JoinResponse::error(ErrorCode::MemberIdRequired, &new_member_id));
            }
            add_member(group, now, request_id, &request, new_member_id);
            prepare_rebalance(group, now, &self.config, &mut effects);
        } else if group.pending_members.remove(&request.member_id).is_some() {
            let member_id = request.member_id.clone();
            add_member(group, now, request_id, &request, member_id);
            prepare_rebalance(group, now, &self.config, &mut effects);
        } else {
            let Some(member) = group.member_mut(&request.member_id) else {
                let fenced = group.is_fenced(&request.member_id, request.group_instance_id.as_deref());
                let error = if fenced { ErrorCode::FencedInstanceId } else { ErrorCode::UnknownMemberId };
                return respond(JoinResponse::error(error, &request.member_id));
            };
            let changed = member.protocols != request.protocols;
            member.protocols = request.protocols.clone();
            member.session_timeout_ms = request.session_timeout_ms;
            member.rebalance_timeout_ms = request.rebalance_timeout_ms;
            member.last_heartbeat = now;
            member.awaiting_join = Some(request_id);
            let is_leader = group.leader.as_deref() == Some(request.member_id.as_str());
            match group.state {
                GroupState::PreparingRebalance => {}
                GroupState::CompletingRebalance | GroupState::Stable if !changed && !is_leader => {
                    // A follower repeating its join: answer with the current generation.
                    let member = group.member_mut(&request.member_id).expect("found above");
                    member.awaiting_join = None;
                    return respond(current_join_response(group, &request.member_id, false));
                }
                _ => prepare_rebalance(group, now, &self.config, &mut effects),
            }
        }
        maybe_complete_join(group, now, &mut effects);
        effects
    }

    /// Handles SyncGroup. Followers wait for the leader's assignment; the leader's completes
    /// the rebalance and persists the group.
    pub fn handle_sync(&mut self, _now: Timestamp, request_id: RequestId, request: SyncRequest) -> Vec<Effect> {
        let respond = |response: SyncResponse| vec![Effect::Respond(request_id, Response::Sync(response))];
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return respond(SyncResponse::error(ErrorCode::UnknownMemberId));
        };
        if group.member(&request.member_id).is_none() {
            let fenced = group.is_fenced(&request.member_id, request.group_instance_id.as_deref());
            return respond(SyncResponse::error(if fenced {
                ErrorCode::FencedInstanceId
            } else {
                ErrorCode::UnknownMemberId
            }));
        }
        if request.generation_id != group.generation {
            return respond(SyncResponse::error(ErrorCode::IllegalGeneration));
        }
        let mismatched = |asked: &Option<String>, actual: &Option<String>| asked.is_some() && asked != actual;
        if mismatched(&request.protocol_type, &group.protocol_type)
            || mismatched(&request.protocol_name, &group.protocol)
        {
            return respond(SyncResponse::error(ErrorCode::InconsistentGroupProtocol));
        }
        match group.state {
            GroupState::PreparingRebalance => respond(SyncResponse::error(ErrorCode::RebalanceInProgress)),
            GroupState::Stable => {
                let member = group.member(&request.member_id).expect("checked");
                respond(sync_response(group, member.assignment.clone()))
            }
            GroupState::CompletingRebalance => {
                group.member_mut(&request.member_id).expect("checked").awaiting_sync = Some(request_id);
                let mut effects = Vec::new();
                if group.leader.as_deref() == Some(request.member_id.as_str()) {
                    let assignments: BTreeMap<&String, &Vec<u8>> =
                        request.assignments.iter().map(|(m, a)| (m, a)).collect();
                    for member in &mut group.members {
                        member.assignment =
                            assignments.get(&member.member_id).map(|a| (*a).clone()).unwrap_or_default();
                    }
                    group.state = GroupState::Stable;
                    effects.push(Effect::Append(vec![group_record(group)]));
                    for member in &mut group.members {
                        if let Some(waiting) = member.awaiting_sync.take() {
                            let response = SyncResponse {
                                error: ErrorCode::None,
                                protocol_type: group.protocol_type.clone(),
                                protocol_name: group.protocol.clone(),
                                assignment: member.assignment.clone(),
                            };
                            effects.push(Effect::Respond(waiting, Response::Sync(response)));
                        }
                    }
                }
                effects
            }
            GroupState::Empty | GroupState::Dead => respond(SyncResponse::error(ErrorCode::UnknownMemberId)),
        }
    }

    /// Handles Heartbeat: keeps the member alive, and tells it when to rejoin.
    pub fn handle_heartbeat(&mut self, now: Timestamp, request: HeartbeatRequest) -> ErrorCode {
        let Some(group) = self.groups.get_mut(&request.group_id) else { return ErrorCode::UnknownMemberId };
        if group.member(&request.member_id).is_none() {
            let fenced = group.is_fenced(&request.member_id, request.group_instance_id.as_deref());
            return if fenced { ErrorCode::FencedInstanceId } else { ErrorCode::UnknownMemberId };
        }
        if request.generation_id != group.generation {
            return ErrorCode::IllegalGeneration;
        }
        let state = group.state;
        group.member_mut(&request.member_id).expect("checked").last_heartbeat = now;
        match state {
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
            GroupState::Empty | GroupState::Dead => ErrorCode::UnknownMemberId,
        }
    }

    /// Handles LeaveGroup: per member, NONE, UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID.
    pub fn handle_leave(&mut self, now: Timestamp, request: LeaveRequest) -> (ErrorCode, Vec<ErrorCode>, Vec<Effect>) {
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return (ErrorCode::UnknownMemberId, vec![ErrorCode::UnknownMemberId; request.members.len()], Vec::new());
        };
        let mut effects = Vec::new();
        let mut removed_any = false;
        let errors = request
            .members
            .iter()
            .map(|(member_id, instance)| {
                let target = match instance {
                    Some(instance) => match group.static_members.get(instance) {
                        Some(current) if member_id.is_empty() || member_id == current => current.clone(),
                        Some(_) => return ErrorCode::FencedInstanceId,
                        None => return ErrorCode::UnknownMemberId,
                    },
                    None => member_id.clone(),
                };
                if group.pending_members.remove(&target).is_some() {
                    return ErrorCode::None;
                }
                match group.remove_member(&target) {
                    Some(member) => {
                        if let Some(waiting) = member.awaiting_join {
                            let response = JoinResponse::error(ErrorCode::UnknownMemberId, &target);
                            effects.push(Effect::Respond(waiting, Response::Join(response)));
                        }
                        removed_any = true;
                        ErrorCode::None
                    }
                    None => ErrorCode::UnknownMemberId,
                }
            })
            .collect();
        if removed_any {
            prepare_rebalance(group, now, &self.config, &mut effects);
            maybe_complete_join(group, now, &mut effects);
        }
        (ErrorCode::None, errors, effects)
    }

    /// Handles OffsetCommit: returns the records to persist (the offsets take effect when they
    /// are replayed) and an error per partition, or a group-level error for all.
    pub fn handle_commit(
        &mut self,
        now: Timestamp,
        request: CommitRequest,
    ) -> (Vec<CoordinatorRecord>, Vec<ErrorCode>) {
        let all = |error: ErrorCode| (Vec::new(), vec![error; request.offsets.len()]);
        if request.group_id.is_empty() {
            return all(ErrorCode::InvalidGroupId);
        }
        match self.groups.get(&request.group_id) {
            None | Some(Group { state: GroupState::Empty, .. }) if request.generation_id < 0 => {
                // A commit from outside the group protocol (assign() with a group id).
                self.groups.entry(request.group_id.clone()).or_insert_with(|| Group::new(&request.group_id, now));
            }
            None => return all(ErrorCode::IllegalGeneration),
            Some(group) => {
                if group.member(&request.member_id).is_none() {
                    let fenced = group.is_fenced(&request.member_id, request.group_instance_id.as_deref());
                    return all(if fenced { ErrorCode::FencedInstanceId } else { ErrorCode::UnknownMemberId });
                }
                if request.generation_id != group.generation {
                    return all(ErrorCode::IllegalGeneration);
                }
                // As in Kafka: a member may still commit while the group waits for rejoins
                // (that is when the eager protocol commits before giving partitions up), but
                // not between JoinGroup and SyncGroup, when its assignment is about to change.
                if group.state == GroupState::CompletingRebalance {
                    return all(ErrorCode::RebalanceInProgress);
                }
            }
        }
        let mut records = Vec::new();
        let errors = request
            .offsets
            .iter()
            .map(|(topic, partition, offset, epoch, metadata)| {
                let metadata = metadata.clone().unwrap_or_default();
                if metadata.len() > self.config.offset_metadata_max_bytes {
                    return ErrorCode::OffsetMetadataTooLarge;
                }
                records.push(CoordinatorRecord::Offset {
                    group_id: request.group_id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: Some(CommittedOffset {
                        offset: Offset(*offset),
                        leader_epoch: LeaderEpoch(*epoch),
                        metadata,
                        commit_timestamp: now,
                    }),
                });
                ErrorCode::None
            })
            .collect();
        (records, errors)
    }

    /// The committed offsets of `group_id`: for `partitions`, or all of them.
    pub fn fetch_offsets(&self, group_id: &str, partitions: Option<&[(String, i32)]>) -> Vec<OffsetEntry> {
        let committed = self.offsets.get(group_id);
        let entry = |topic: &str, partition: i32| {
            let found = committed.and_then(|c| c.get(&(topic.to_owned(), partition)));
            OffsetEntry {
                topic: topic.to_owned(),
                partition,
                offset: found.map_or(-1, |c| c.offset.0),
                leader_epoch: found.map_or(-1, |c| c.leader_epoch.0),
                metadata: found.map(|c| c.metadata.clone()),
            }
        };
        match partitions {
            Some(partitions) => partitions.iter().map(|(t, p)| entry(t, *p)).collect(),
            None => committed.into_iter().flat_map(|c| c.keys()).map(|(t, p)| entry(t, *p)).collect(),
        }
    }

    /// Applies a persisted record: the only way committed offsets and group tombstones change.
    pub fn replay(&mut self, record: &CoordinatorRecord, now: Timestamp) {
        match record {
            CoordinatorRecord::Offset { group_id, topic, partition, offset } => {
                let offsets = self.offsets.entry(group_id.clone()).or_default();
                match offset {
                    Some(offset) => {
                        offsets.insert((topic.clone(), *partition), offset.clone());
                    }
                    None => {
                        offsets.remove(&(topic.clone(), *partition));
                    }
                }
                if offsets.is_empty() {
                    self.offsets.remove(group_id);
                }
                self.groups.entry(group_id.clone()).or_insert_with(|| Group::new(group_id, now));
            }
            CoordinatorRecord::Group { group_id, metadata: Some(metadata) } => {
                // Loading after a restart or failover: the generation and static mappings come
                // back; live members rejoin (their heartbeats find no member and they join again).
                let group = self.groups.entry(group_id.clone()).or_insert_with(|| Group::new(group_id, now));
                if group.members.is_empty() {
                    group.generation = group.generation.max(metadata.generation);
                    group.protocol_type = Some(metadata.protocol_type.clone());
                    group.protocol = metadata.protocol.clone();
                }
            }
            CoordinatorRecord::Group { group_id, metadata: None } => {
                if self.groups.get(group_id).is_some_and(|g| g.members.is_empty()) {
                    self.groups.remove(group_id);
                }
            }
        }
    }

    /// Advances timers: completes rebalances whose deadline passed (removing members that did
    /// not rejoin) and expires members whose session timed out.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut effects = Vec::new();
        for group in self.groups.values_mut() {
            group
                .pending_members
                .retain(|_, since| now.0 <= since.0 + i64::from(self.config.group_max_session_timeout_ms));
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|m| m.awaiting_join.is_none() && m.session_expired(now))
                .map(|m| m.member_id.clone())
                .collect();
            for member_id in &expired {
                if let Some(member) = group.remove_member(member_id)
                    && let Some(waiting) = member.awaiting_sync
                {
                    effects.push(Effect::Respond(
                        waiting,
                        Response::Sync(SyncResponse::error(ErrorCode::UnknownMemberId)),
                    ));
                }
            }
            if !expired.is_empty() {
                prepare_rebalance(group, now, &self.config, &mut effects);
            }
            if group.state == GroupState::PreparingRebalance && group.join_deadline.is_some_and(|d| now >= d) {
                // Stragglers that did not rejoin in time are out.
                let stragglers: Vec<String> =
                    group.members.iter().filter(|m| m.awaiting_join.is_none()).map(|m| m.member_id.clone()).collect();
                for member_id in stragglers {
                    group.remove_member(&member_id);
                }
                group.pending_members.clear();
                group.join_deadline = None;
                group.initial_delay_limit = None;
            }
            maybe_complete_join(group, now, &mut effects);
        }
        effects
    }

    /// Removes the committed offsets of empty groups older than `offsets.retention.minutes`
    /// (Kafka runs this every `offsets.retention.check.interval.ms`): the tombstones to persist.
    pub fn expire_offsets(&self, now: Timestamp) -> Vec<CoordinatorRecord> {
        let mut expired = Vec::new();
        for (group_id, offsets) in &self.offsets {
            if self.groups.get(group_id).is_some_and(|g| g.state != GroupState::Empty) {
                continue;
            }
            for ((topic, partition), committed) in offsets {
                if now.0.saturating_sub(committed.commit_timestamp.0) > self.config.offsets_retention_ms {
                    expired.push(CoordinatorRecord::Offset {
                        group_id: group_id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        offset: None,
                    });
                }
            }
        }
        expired
    }

    /// Deletes committed offsets (OffsetDelete): the tombstones to persist, a group-level error
    /// (GROUP_ID_NOT_FOUND) and an error per partition (GROUP_SUBSCRIBED_TO_TOPIC while a
    /// member of a consumer group subscribes to the topic).
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> (Vec<CoordinatorRecord>, ErrorCode, Vec<ErrorCode>) {
        let group = self.groups.get(group_id);
        let committed = self.offsets.get(group_id);
        if group.is_none() && committed.is_none() {
            return (Vec::new(), ErrorCode::GroupIdNotFound, Vec::new());
        }
        let mut records = Vec::new();
        let errors = partitions
            .iter()
            .map(|(topic, partition)| {
                if group.is_some_and(|g| g.subscribes_to(topic)) {
                    return ErrorCode::GroupSubscribedToTopic;
                }
                if committed.is_some_and(|c| c.contains_key(&(topic.clone(), *partition))) {
                    records.push(CoordinatorRecord::Offset {
                        group_id: group_id.to_owned(),
                        topic: topic.clone(),
                        partition: *partition,
                        offset: None,
                    });
                }
                ErrorCode::None
            })
            .collect();
        (records, ErrorCode::None, errors)
    }

    /// Deletes empty groups and their offsets (DeleteGroups): the records to persist and an
    /// error per group (NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND).
    pub fn delete_groups(&mut self, group_ids: &[String]) -> (Vec<CoordinatorRecord>, Vec<ErrorCode>) {
        let mut records = Vec::new();
        let errors = group_ids
            .iter()
            .map(|group_id| match self.groups.get(group_id) {
                None => ErrorCode::GroupIdNotFound,
                Some(group) if !group.members.is_empty() || group.state != GroupState::Empty => {
                    ErrorCode::NonEmptyGroup
                }
                Some(_) => {
                    for (topic, partition) in self.offsets.get(group_id).into_iter().flat_map(|o| o.keys()) {
                        records.push(CoordinatorRecord::Offset {
                            group_id: group_id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                            offset: None,
                        });
                    }
                    records.push(CoordinatorRecord::Group { group_id: group_id.clone(), metadata: None });
                    ErrorCode::None
                }
            })
            .collect();
        (records, errors)
    }

    /// Every group with its state (ListGroups).
    pub fn list_groups(&self) -> Vec<(String, String, GroupState)> {
        self.groups
            .values()
            .map(|g| (g.group_id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state))
            .collect()
    }

    /// One group (DescribeGroups); `None` if unknown.
    pub fn describe_group(&self, group_id: &str) -> Option<GroupSummary> {
        let group = self.groups.get(group_id)?;
        let protocol = group.protocol.clone().unwrap_or_default();
        Some(GroupSummary {
            group_id: group.group_id.clone(),
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            generation: group.generation,
            members: group
                .members
                .iter()
                .map(|m| MemberSummary {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// Checks the invariants: members are unique; the leader is a member; a stable group has a
    /// protocol; static mappings point at members.
    pub fn validate(&self) -> Result<(), String> {
        for group in self.groups.values() {
            let mut ids: Vec<&String> = group.members.iter().map(|m| &m.member_id).collect();
            ids.sort();
            ids.dedup();
            if ids.len() != group.members.len() {
                return Err(format!("{}: duplicate member ids", group.group_id));
            }
            if let Some(leader) = &group.leader
                && group.member(leader).is_none()
            {
                return Err(format!("{}: leader {leader} is not a member", group.group_id));
            }
            if matches!(group.state, GroupState::Stable | GroupState::CompletingRebalance) && group.protocol.is_none() {
                return Err(format!("{}: {:?} without a protocol", group.group_id, group.state));
            }
            for member_id in group.static_members.values() {
                if group.member(member_id).is_none() {
                    return Err(format!("{}: static mapping to non-member {member_id}", group.group_id));
                }
            }
            if group.state == GroupState::Empty && !group.members.is_empty() {
                return Err(format!("{}: empty with members", group.group_id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
