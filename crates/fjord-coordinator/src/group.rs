//! One consumer group's membership (Kafka's `ClassicGroup`).

use std::collections::{BTreeMap, BTreeSet};

use fjord_types::Timestamp;

/// Where a group is in its rebalance cycle (Kafka's `ClassicGroupState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (committed offsets may remain).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assignment delivered; members heartbeat.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// Kafka's name for the state, as DescribeGroups and ListGroups report it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A member of a group.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout_ms: i32,
    pub(crate) rebalance_timeout_ms: i32,
    /// Supported protocols (assignors) and this member's metadata (subscription) for each.
    pub(crate) protocols: Vec<(String, Vec<u8>)>,
    /// What the leader assigned this member.
    pub(crate) assignment: Vec<u8>,
    pub(crate) last_heartbeat: Timestamp,
    /// A JoinGroup waiting for the rebalance to complete.
    pub(crate) awaiting_join: Option<u64>,
    /// A SyncGroup waiting for the leader's assignment.
    pub(crate) awaiting_sync: Option<u64>,
}

impl Member {
    pub(crate) fn metadata_for(&self, protocol: &str) -> Vec<u8> {
        self.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    pub(crate) fn session_expired(&self, now: Timestamp) -> bool {
        now.0 > self.last_heartbeat.0.saturating_add(i64::from(self.session_timeout_ms))
    }
}

/// A group.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) group_id: String,
    pub(crate) state: GroupState,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: Option<String>,
    /// Members in join order (the first becomes leader when there is none).
    pub(crate) members: Vec<Member>,
    /// Static members: instance id to current member id.
    pub(crate) static_members: BTreeMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, expected to join, and when.
    pub(crate) pending_members: BTreeMap<String, Timestamp>,
    /// When the current join phase ends regardless of stragglers.
    pub(crate) join_deadline: Option<Timestamp>,
    /// The latest the initial delay may be extended to.
    pub(crate) initial_delay_limit: Option<Timestamp>,
    pub(crate) state_timestamp: Timestamp,
}

impl Group {
    pub(crate) fn new(group_id: &str, now: Timestamp) -> Group {
        Group {
            group_id: group_id.to_owned(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            join_deadline: None,
            initial_delay_limit: None,
            state_timestamp: now,
        }
    }

    pub(crate) fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == member_id)
    }

    pub(crate) fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.member_id == member_id)
    }

    pub(crate) fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let index = self.members.iter().position(|m| m.member_id == member_id)?;
        let member = self.members.remove(index);
        if let Some(instance) = &member.group_instance_id
            && self.static_members.get(instance).is_some_and(|m| m == member_id)
        {
            self.static_members.remove(instance);
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
        Some(member)
    }

    /// Whether `member_id` is an old id of a static member that has since rejoined.
    pub(crate) fn is_fenced(&self, member_id: &str, instance: Option<&str>) -> bool {
        instance.is_some_and(|i| self.static_members.get(i).is_some_and(|current| current != member_id))
    }

    /// The protocol every member supports with the most first-choice votes (Kafka's
    /// `selectProtocol`), ties broken by the order of the first member's list.
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| self.members.iter().all(|m| m.protocols.iter().any(|(n, _)| n == *name)))
            .collect();
        let mut votes: BTreeMap<&String, usize> = candidates.iter().map(|c| (*c, 0)).collect();
        for member in &self.members {
            if let Some((choice, _)) = member.protocols.iter().find(|(n, _)| votes.contains_key(n)) {
                *votes.get_mut(choice).expect("a candidate") += 1;
            }
        }
        let best = votes.values().copied().max()?;
        candidates.into_iter().find(|c| votes[c] == best).cloned()
    }

    /// Whether a member with `protocols` shares at least one protocol with every member.
    pub(crate) fn supports(&self, protocol_type: &str, protocols: &[(String, Vec<u8>)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let names: BTreeSet<&String> = protocols.iter().map(|(n, _)| n).collect();
        names.iter().any(|name| self.members.iter().all(|m| m.protocols.iter().any(|(n, _)| n == *name)))
    }

    pub(crate) fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.iter().all(|m| m.awaiting_join.is_some())
    }

    /// Whether a member of this consumer group subscribes to `topic` (its subscription is the
    /// consumer protocol's: a version, then the topic names).
    pub(crate) fn subscribes_to(&self, topic: &str) -> bool {
        if self.protocol_type.as_deref() != Some("consumer") {
            return false;
        }
        let Some(protocol) = &self.protocol else { return false };
        self.members.iter().any(|m| subscription_topics(&m.metadata_for(protocol)).iter().any(|t| t == topic))
    }

    pub(crate) fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members.iter().map(|m| i64::from(m.rebalance_timeout_ms)).max().unwrap_or(0)
    }
}

/// The topics of a consumer-protocol subscription (`ConsumerProtocolSubscription`: int16
/// version, then an array of int16-length strings; every version starts this way). Malformed
/// bytes give what could be read.
pub(crate) fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut topics = Vec::new();
    let Some(count) = metadata.get(2..6).map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes"))) else {
        return topics;
    };
    let mut rest = &metadata[6..];
    for _ in 0..count.max(0) {
        let Some(len) = rest.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]])) else { break };
        let Some(name) = usize::try_from(len).ok().and_then(|len| rest.get(2..2 + len)) else { break };
        topics.push(String::from_utf8_lossy(name).into_owned());
        rest = &rest[2 + name.len()..];
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_read_leniently() {
        let mut bytes = vec![0, 3, 0, 0, 0, 2];
        for topic in ["orders", "payments"] {
            bytes.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            bytes.extend_from_slice(topic.as_bytes());
        }
        bytes.extend_from_slice(&[0xff; 7]);
        assert_eq!(subscription_topics(&bytes), vec!["orders", "payments"]);
        assert!(subscription_topics(&bytes[..3]).is_empty());
        assert_eq!(subscription_topics(&bytes[..14]), vec!["orders"]);
        assert!(subscription_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_empty());
    }
}
