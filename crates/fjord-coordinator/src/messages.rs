//! The coordinator's requests, responses and effects, in its own terms (the broker maps them to
//! and from the Kafka protocol).

use fjord_types::ErrorCode;

use crate::group::GroupState;
use crate::record::CoordinatorRecord;

/// Identifies a request whose response may be delivered later (JoinGroup, SyncGroup).
pub type RequestId = u64;

/// A JoinGroup request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinRequest {
    /// The group.
    pub group_id: String,
    /// The member's id, empty on its first join.
    pub member_id: String,
    /// `group.instance.id` for static members.
    pub group_instance_id: Option<String>,
    /// The client's id and host, for DescribeGroups.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `max.poll.interval.ms` for consumers.
    pub rebalance_timeout_ms: i32,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// The assignors the member supports, with its subscription for each.
    pub protocols: Vec<(String, Vec<u8>)>,
    /// v4+: a new member must first obtain an id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
    /// v9+ (KIP-814): a static leader rejoining a stable group can be told to skip the
    /// assignment it would otherwise compute.
    pub supports_skip_assignment: bool,
}

/// One member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// The member id.
    pub member_id: String,
    /// Its instance id, if static.
    pub group_instance_id: Option<String>,
    /// Its subscription for the chosen protocol.
    pub metadata: Vec<u8>,
}

/// A JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    /// The error, or NONE.
    pub error: ErrorCode,
    /// The generation.
    pub generation_id: i32,
    /// The protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// Every member, for the leader only.
    pub members: Vec<JoinedMember>,
    /// v9+: the leader must not compute a new assignment (a static leader rejoined a stable
    /// group; its members keep theirs).
    pub skip_assignment: bool,
}

impl JoinResponse {
    /// A response carrying only `error`.
    pub fn error(error: ErrorCode, member_id: &str) -> JoinResponse {
        JoinResponse {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// A SyncGroup request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRequest {
    /// The group.
    pub group_id: String,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// Its instance id, if static.
    pub group_instance_id: Option<String>,
    /// v5+: the protocol type the member expects.
    pub protocol_type: Option<String>,
    /// v5+: the protocol the member expects.
    pub protocol_name: Option<String>,
    /// The leader's assignment: member id and its assignment bytes.
    pub assignments: Vec<(String, Vec<u8>)>,
}

/// A SyncGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// The error, or NONE.
    pub error: ErrorCode,
    /// The protocol type.
    pub protocol_type: Option<String>,
    /// The protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Vec<u8>,
}

impl SyncResponse {
    /// A response carrying only `error`.
    pub fn error(error: ErrorCode) -> SyncResponse {
        SyncResponse { error, protocol_type: None, protocol_name: None, assignment: Vec::new() }
    }
}

/// A Heartbeat request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The group.
    pub group_id: String,
    /// The member's generation.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// Its instance id, if static.
    pub group_instance_id: Option<String>,
}

/// A LeaveGroup request: one member (v0-2) or several (v3+).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaveRequest {
    /// The group.
    pub group_id: String,
    /// Member ids (possibly empty for static members) and instance ids.
    pub members: Vec<(String, Option<String>)>,
}

/// An OffsetCommit request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitRequest {
    /// The group.
    pub group_id: String,
    /// The member's generation, or -1 for a commit from outside the group protocol.
    pub generation_id: i32,
    /// The member, or empty.
    pub member_id: String,
    /// Its instance id, if static.
    pub group_instance_id: Option<String>,
    /// Topic, partition, offset, leader epoch, metadata.
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
}

/// A response the coordinator produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// To a JoinGroup.
    Join(JoinResponse),
    /// To a SyncGroup.
    Sync(SyncResponse),
}

/// What the caller must do after a handler or a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Persist these records to the group's `__consumer_offsets` partition, then `replay` them.
    Append(Vec<CoordinatorRecord>),
    /// Deliver this response to the request that is waiting for it.
    Respond(RequestId, Response),
}

/// One committed offset, as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetEntry {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset, or -1 if none is committed.
    pub offset: i64,
    /// The leader epoch, or -1.
    pub leader_epoch: i32,
    /// The metadata string.
    pub metadata: Option<String>,
}

/// One member, as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSummary {
    /// The member id.
    pub member_id: String,
    /// Its instance id.
    pub group_instance_id: Option<String>,
    /// Its client id.
    pub client_id: String,
    /// Its host.
    pub client_host: String,
    /// Its subscription for the chosen protocol.
    pub metadata: Vec<u8>,
    /// Its assignment.
    pub assignment: Vec<u8>,
}

/// A group, as DescribeGroups and ListGroups report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
    /// Its protocol type.
    pub protocol_type: String,
    /// Its protocol.
    pub protocol: String,
    /// Its generation.
    pub generation: i32,
    /// Its members.
    pub members: Vec<MemberSummary>,
}
