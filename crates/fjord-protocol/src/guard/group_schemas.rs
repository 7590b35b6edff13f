//! Request body layouts of the consumer-group APIs (FindCoordinator through OffsetDelete),
//! transcribed from the protocol specs under the conventions stated in `schemas.rs`.

use super::{F, Schema, Ty, f};

// ---------------------------------------------------------------------------------------
// FindCoordinator (API key 10). kafka-protocol 0.18 supports v0..=6. Flexible from v3.
// ---------------------------------------------------------------------------------------
pub(crate) const FIND_COORDINATOR_REQUEST: Schema = Schema {
    flexible_from: 3,
    fields: &[
        // Key
        f(Ty::Str, 0, 3),
        // KeyType
        f(Ty::I8, 1, i16::MAX),
        // CoordinatorKeys
        f(Ty::PArray(&Ty::Str), 4, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// JoinGroup (API key 11). kafka-protocol 0.18 supports v0..=9. Flexible from v6.
// ---------------------------------------------------------------------------------------
const JOIN_GROUP_PROTOCOL: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // Metadata
    f(Ty::Bytes, 0, i16::MAX),
];
pub(crate) const JOIN_GROUP_REQUEST: Schema = Schema {
    flexible_from: 6,
    fields: &[
        // GroupId
        f(Ty::Str, 0, i16::MAX),
        // SessionTimeoutMs
        f(Ty::I32, 0, i16::MAX),
        // RebalanceTimeoutMs
        f(Ty::I32, 1, i16::MAX),
        // MemberId
        f(Ty::Str, 0, i16::MAX),
        // GroupInstanceId
        f(Ty::NStr, 5, i16::MAX),
        // ProtocolType
        f(Ty::Str, 0, i16::MAX),
        // Protocols
        f(Ty::Array(JOIN_GROUP_PROTOCOL), 0, i16::MAX),
        // Reason
        f(Ty::NStr, 8, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// SyncGroup (API key 14). kafka-protocol 0.18 supports v0..=5. Flexible from v4.
// ---------------------------------------------------------------------------------------
const SYNC_GROUP_ASSIGNMENT: &[F] = &[
    // MemberId
    f(Ty::Str, 0, i16::MAX),
    // Assignment
    f(Ty::Bytes, 0, i16::MAX),
];
pub(crate) const SYNC_GROUP_REQUEST: Schema = Schema {
    flexible_from: 4,
    fields: &[
        // GroupId
        f(Ty::Str, 0, i16::MAX),
        // GenerationId
        f(Ty::I32, 0, i16::MAX),
        // MemberId
        f(Ty::Str, 0, i16::MAX),
        // GroupInstanceId
        f(Ty::NStr, 3, i16::MAX),
        // ProtocolType
        f(Ty::NStr, 5, i16::MAX),
        // ProtocolName
        f(Ty::NStr, 5, i16::MAX),
        // Assignments
        f(Ty::Array(SYNC_GROUP_ASSIGNMENT), 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// Heartbeat (API key 12). kafka-protocol 0.18 supports v0..=4. Flexible from v4.
// ---------------------------------------------------------------------------------------
pub(crate) const HEARTBEAT_REQUEST: Schema = Schema {
    flexible_from: 4,
    fields: &[
        // GroupId
        f(Ty::Str, 0, i16::MAX),
        // GenerationId
        f(Ty::I32, 0, i16::MAX),
        // MemberId
        f(Ty::Str, 0, i16::MAX),
        // GroupInstanceId
        f(Ty::NStr, 3, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// LeaveGroup (API key 13). kafka-protocol 0.18 supports v0..=5. Flexible from v4.
// ---------------------------------------------------------------------------------------
const LEAVE_GROUP_MEMBER: &[F] = &[
    // MemberId
    f(Ty::Str, 3, i16::MAX),
    // GroupInstanceId
    f(Ty::NStr, 3, i16::MAX),
    // Reason
    f(Ty::NStr, 5, i16::MAX),
];
pub(crate) const LEAVE_GROUP_REQUEST: Schema = Schema {
    flexible_from: 4,
    fields: &[
        // GroupId
        f(Ty::Str, 0, i16::MAX),
        // MemberId
        f(Ty::Str, 0, 2),
        // Members
        f(Ty::Array(LEAVE_GROUP_MEMBER), 3, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// OffsetCommit (API key 8). kafka-protocol 0.18 supports v2..=9. Flexible from v8.
// (v10 TopicId is not supported by the crate, so it is not listed.)
// ---------------------------------------------------------------------------------------
const OFFSET_COMMIT_PARTITION: &[F] = &[
    // PartitionIndex
    f(Ty::I32, 0, i16::MAX),
    // CommittedOffset
    f(Ty::I64, 0, i16::MAX),
    // CommittedLeaderEpoch
    f(Ty::I32, 6, i16::MAX),
    // CommitTimestamp (v1 only; below the crate's supported range)
    f(Ty::I64, 1, 1),
    // CommittedMetadata
    f(Ty::NStr, 0, i16::MAX),
];
const OFFSET_COMMIT_TOPIC: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // Partitions
    f(Ty::Array(OFFSET_COMMIT_PARTITION), 0, i16::MAX),
];
pub(crate) const OFFSET_COMMIT_REQUEST: Schema = Schema {
    flexible_from: 8,
    fields: &[
        // GroupId
        f(Ty::Str, 0, i16::MAX),
        // GenerationIdOrMemberEpoch
        f(Ty::I32, 1, i16::MAX),
        // MemberId
        f(Ty::Str, 1, i16::MAX),
        // GroupInstanceId
        f(Ty::NStr, 7, i16::MAX),
        // RetentionTimeMs
        f(Ty::I64, 2, 4),
        // Topics
        f(Ty::Array(OFFSET_COMMIT_TOPIC), 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// OffsetFetch (API key 9). kafka-protocol 0.18 supports v1..=9. Flexible from v6.
// (v10 TopicId is not supported by the crate, so it is not listed.)
// ---------------------------------------------------------------------------------------
const OFFSET_FETCH_TOPIC: &[F] = &[
    // Name
    f(Ty::Str, 0, 7),
    // PartitionIndexes
    f(Ty::PArray(&Ty::I32), 0, 7),
];
const OFFSET_FETCH_GROUP_TOPICS: &[F] = &[
    // Name
    f(Ty::Str, 8, i16::MAX),
    // PartitionIndexes
    f(Ty::PArray(&Ty::I32), 8, i16::MAX),
];
const OFFSET_FETCH_GROUP: &[F] = &[
    // GroupId
    f(Ty::Str, 8, i16::MAX),
    // MemberId
    f(Ty::NStr, 9, i16::MAX),
    // MemberEpoch
    f(Ty::I32, 9, i16::MAX),
    // Topics
    f(Ty::NArray(OFFSET_FETCH_GROUP_TOPICS), 8, i16::MAX),
];
pub(crate) const OFFSET_FETCH_REQUEST: Schema = Schema {
    flexible_from: 6,
    fields: &[
        // GroupId
        f(Ty::Str, 0, 7),
        // Topics (non-null in v0-1)
        f(Ty::Array(OFFSET_FETCH_TOPIC), 0, 1),
        // Topics (nullable in v2-7; null = all partitions)
        f(Ty::NArray(OFFSET_FETCH_TOPIC), 2, 7),
        // Groups
        f(Ty::Array(OFFSET_FETCH_GROUP), 8, i16::MAX),
        // RequireStable
        f(Ty::Bool, 7, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// ListGroups (API key 16). kafka-protocol 0.18 supports v0..=5. Flexible from v3.
// Body is empty for v0-3 (v3 carries only the tagged-fields section).
// ---------------------------------------------------------------------------------------
pub(crate) const LIST_GROUPS_REQUEST: Schema = Schema {
    flexible_from: 3,
    fields: &[
        // StatesFilter
        f(Ty::PArray(&Ty::Str), 4, i16::MAX),
        // TypesFilter
        f(Ty::PArray(&Ty::Str), 5, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// DescribeGroups (API key 15). kafka-protocol 0.18 supports v0..=6. Flexible from v5.
// ---------------------------------------------------------------------------------------
pub(crate) const DESCRIBE_GROUPS_REQUEST: Schema = Schema {
    flexible_from: 5,
    fields: &[
        // Groups
        f(Ty::PArray(&Ty::Str), 0, i16::MAX),
        // IncludeAuthorizedOperations
        f(Ty::Bool, 3, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// DeleteGroups (API key 42). kafka-protocol 0.18 supports v0..=2. Flexible from v2.
// ---------------------------------------------------------------------------------------
pub(crate) const DELETE_GROUPS_REQUEST: Schema = Schema {
    flexible_from: 2,
    fields: &[
        // GroupsNames
        f(Ty::PArray(&Ty::Str), 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// OffsetDelete (API key 47). kafka-protocol 0.18 supports v0 only. Never flexible.
// ---------------------------------------------------------------------------------------
const OFFSET_DELETE_PARTITION: &[F] = &[
    // PartitionIndex
    f(Ty::I32, 0, i16::MAX),
];
const OFFSET_DELETE_TOPIC: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // Partitions
    f(Ty::Array(OFFSET_DELETE_PARTITION), 0, i16::MAX),
];
pub(crate) const OFFSET_DELETE_REQUEST: Schema = Schema {
    flexible_from: i16::MAX,
    fields: &[
        // GroupId
        f(Ty::Str, 0, i16::MAX),
        // Topics
        f(Ty::Array(OFFSET_DELETE_TOPIC), 0, i16::MAX),
    ],
};
