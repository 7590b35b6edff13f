//! Request body layouts, per API and version, transcribed from the protocol specs.
#![allow(clippy::all)]

use super::{F, Schema, Ty, f};

// Wire-layout tables for Kafka request BODIES (request header excluded), for the
// pre-decode validator. Expects `Ty`, `F`, `f` and `Schema` to be in scope.
//
// Facts taken from the kafka-protocol 0.18.0 generated decoders (Kafka 4.1.0 message
// specs), cross-checked against apache/kafka clients/src/main/resources/common/message/*Request.json.
//
// Conventions:
// * Version ranges follow the Kafka JSON "versions" of each field ("N+" -> N..=i16::MAX),
//   so a few fields start below the crate's minimum supported version. Fields that exist
//   only in versions the crate does not support (ListOffsets MaxNumOffsets v0, OffsetCommit
//   CommitTimestamp v1) are still listed, so the tables also describe those older layouts.
//   They never match a version the crate accepts. The version range each API supports in
//   kafka-protocol 0.18 is in the comment above each schema. The validator must reject
//   versions outside that range on its own, because `Schema` carries no version range.
// * Tagged fields (JSON "taggedVersions") are omitted. In 0.18 those are:
//   Fetch: ClusterId (tag 0, v12+), ReplicaState (tag 1, v15+);
//   Fetch partition: ReplicaDirectoryId (tag 0, v17+), HighWatermark (tag 1, v18+).
// * A field whose nullability depends on the version is split into two entries with disjoint
//   version ranges in the same position: a non-null entry, then a nullable one.
//
// UNSURE / worth a look:
// 1. Version-dependent nullability (the split entries): Metadata Topics (null only v1+),
//    Metadata topic Name (null only v10+), OffsetFetch Topics (null only v2-7). Kafka's
//    JSON makes these non-nullable in the earlier versions, so the tables do too. The
//    kafka-protocol decoder is looser: the Rust type is Option<..>, so it accepts null
//    length -1 in every version. If the validator should never be stricter than the crate,
//    turn each split into one NStr/NArray entry covering both ranges.
// 2. Fields new in Kafka 4.x (Produce TopicId v13, DescribeCluster IncludeFencedBrokers v2,
//    Fetch HighWatermark tag 1 v18): checked only against the 0.18 decoders. The
//    apache/kafka snapshot searchable here is from Oct 2024 and does not have them yet.
// 3. Fields of versions the crate does NOT support are left out: InitProducerId v6
//    Enable2Pc/KeepPreparedTxn, OffsetCommit v10 and OffsetFetch v10 TopicId. The crate's
//    structs have them with "Supported API versions: none".
// 4. The Produce Records field uses Ty::Records (nullable bytes). The crate decodes it as
//    Option<Bytes> via Bytes/CompactBytes.

// ---------------------------------------------------------------------------------------
// Produce (API key 0). kafka-protocol 0.18 supports v3..=13. Flexible from v9.
// ---------------------------------------------------------------------------------------
const PRODUCE_PARTITION_DATA: &[F] = &[
    // Index
    f(Ty::I32, 0, i16::MAX),
    // Records
    f(Ty::Records, 0, i16::MAX),
];
const PRODUCE_TOPIC_DATA: &[F] = &[
    // Name
    f(Ty::Str, 0, 12),
    // TopicId
    f(Ty::Uuid, 13, i16::MAX),
    // PartitionData
    f(Ty::Array(PRODUCE_PARTITION_DATA), 0, i16::MAX),
];
pub(crate) const PRODUCE_REQUEST: Schema = Schema {
    flexible_from: 9,
    fields: &[
        // TransactionalId
        f(Ty::NStr, 3, i16::MAX),
        // Acks
        f(Ty::I16, 0, i16::MAX),
        // TimeoutMs
        f(Ty::I32, 0, i16::MAX),
        // TopicData
        f(Ty::Array(PRODUCE_TOPIC_DATA), 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// Fetch (API key 1). kafka-protocol 0.18 supports v4..=18. Flexible from v12.
// Tagged (omitted): ClusterId (tag 0, v12+), ReplicaState (tag 1, v15+).
// ---------------------------------------------------------------------------------------
const FETCH_PARTITION: &[F] = &[
    // Partition
    f(Ty::I32, 0, i16::MAX),
    // CurrentLeaderEpoch
    f(Ty::I32, 9, i16::MAX),
    // FetchOffset
    f(Ty::I64, 0, i16::MAX),
    // LastFetchedEpoch
    f(Ty::I32, 12, i16::MAX),
    // LogStartOffset
    f(Ty::I64, 5, i16::MAX),
    // PartitionMaxBytes
    f(Ty::I32, 0, i16::MAX),
    // (ReplicaDirectoryId: tagged, tag 0, v17+ -- omitted)
    // (HighWatermark: tagged, tag 1, v18+ -- omitted)
];
const FETCH_TOPIC: &[F] = &[
    // Topic
    f(Ty::Str, 0, 12),
    // TopicId
    f(Ty::Uuid, 13, i16::MAX),
    // Partitions
    f(Ty::Array(FETCH_PARTITION), 0, i16::MAX),
];
const FETCH_FORGOTTEN_TOPIC: &[F] = &[
    // Topic
    f(Ty::Str, 7, 12),
    // TopicId
    f(Ty::Uuid, 13, i16::MAX),
    // Partitions
    f(Ty::PArray(&Ty::I32), 7, i16::MAX),
];
pub(crate) const FETCH_REQUEST: Schema = Schema {
    flexible_from: 12,
    fields: &[
        // (ClusterId: tagged, tag 0, v12+ -- omitted)
        // ReplicaId
        f(Ty::I32, 0, 14),
        // (ReplicaState: tagged, tag 1, v15+ -- omitted)
        // MaxWaitMs
        f(Ty::I32, 0, i16::MAX),
        // MinBytes
        f(Ty::I32, 0, i16::MAX),
        // MaxBytes
        f(Ty::I32, 3, i16::MAX),
        // IsolationLevel
        f(Ty::I8, 4, i16::MAX),
        // SessionId
        f(Ty::I32, 7, i16::MAX),
        // SessionEpoch
        f(Ty::I32, 7, i16::MAX),
        // Topics
        f(Ty::Array(FETCH_TOPIC), 0, i16::MAX),
        // ForgottenTopicsData
        f(Ty::Array(FETCH_FORGOTTEN_TOPIC), 7, i16::MAX),
        // RackId
        f(Ty::Str, 11, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// ListOffsets (API key 2). kafka-protocol 0.18 supports v1..=10. Flexible from v6.
// ---------------------------------------------------------------------------------------
const LIST_OFFSETS_PARTITION: &[F] = &[
    // PartitionIndex
    f(Ty::I32, 0, i16::MAX),
    // CurrentLeaderEpoch
    f(Ty::I32, 4, i16::MAX),
    // Timestamp
    f(Ty::I64, 0, i16::MAX),
    // MaxNumOffsets (v0 only; below the crate's supported range)
    f(Ty::I32, 0, 0),
];
const LIST_OFFSETS_TOPIC: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // Partitions
    f(Ty::Array(LIST_OFFSETS_PARTITION), 0, i16::MAX),
];
pub(crate) const LIST_OFFSETS_REQUEST: Schema = Schema {
    flexible_from: 6,
    fields: &[
        // ReplicaId
        f(Ty::I32, 0, i16::MAX),
        // IsolationLevel
        f(Ty::I8, 2, i16::MAX),
        // Topics
        f(Ty::Array(LIST_OFFSETS_TOPIC), 0, i16::MAX),
        // TimeoutMs
        f(Ty::I32, 10, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// Metadata (API key 3). kafka-protocol 0.18 supports v0..=13. Flexible from v9.
// ---------------------------------------------------------------------------------------
const METADATA_TOPIC: &[F] = &[
    // TopicId
    f(Ty::Uuid, 10, i16::MAX),
    // Name (non-null in v0-9)
    f(Ty::Str, 0, 9),
    // Name (nullable in v10+)
    f(Ty::NStr, 10, i16::MAX),
];
pub(crate) const METADATA_REQUEST: Schema = Schema {
    flexible_from: 9,
    fields: &[
        // Topics (non-null in v0; empty array = all topics)
        f(Ty::Array(METADATA_TOPIC), 0, 0),
        // Topics (nullable in v1+; null = all topics)
        f(Ty::NArray(METADATA_TOPIC), 1, i16::MAX),
        // AllowAutoTopicCreation
        f(Ty::Bool, 4, i16::MAX),
        // IncludeClusterAuthorizedOperations
        f(Ty::Bool, 8, 10),
        // IncludeTopicAuthorizedOperations
        f(Ty::Bool, 8, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// ApiVersions (API key 18). kafka-protocol 0.18 supports v0..=4. Flexible from v3.
// Body is empty for v0-2.
// ---------------------------------------------------------------------------------------
pub(crate) const API_VERSIONS_REQUEST: Schema = Schema {
    flexible_from: 3,
    fields: &[
        // ClientSoftwareName
        f(Ty::Str, 3, i16::MAX),
        // ClientSoftwareVersion
        f(Ty::Str, 3, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// CreateTopics (API key 19). kafka-protocol 0.18 supports v2..=7. Flexible from v5.
// ---------------------------------------------------------------------------------------
const CREATE_TOPICS_ASSIGNMENT: &[F] = &[
    // PartitionIndex
    f(Ty::I32, 0, i16::MAX),
    // BrokerIds
    f(Ty::PArray(&Ty::I32), 0, i16::MAX),
];
const CREATE_TOPICS_CONFIG: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // Value
    f(Ty::NStr, 0, i16::MAX),
];
const CREATE_TOPICS_TOPIC: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // NumPartitions
    f(Ty::I32, 0, i16::MAX),
    // ReplicationFactor
    f(Ty::I16, 0, i16::MAX),
    // Assignments
    f(Ty::Array(CREATE_TOPICS_ASSIGNMENT), 0, i16::MAX),
    // Configs
    f(Ty::Array(CREATE_TOPICS_CONFIG), 0, i16::MAX),
];
pub(crate) const CREATE_TOPICS_REQUEST: Schema = Schema {
    flexible_from: 5,
    fields: &[
        // Topics
        f(Ty::Array(CREATE_TOPICS_TOPIC), 0, i16::MAX),
        // TimeoutMs
        f(Ty::I32, 0, i16::MAX),
        // ValidateOnly
        f(Ty::Bool, 1, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// DeleteTopics (API key 20). kafka-protocol 0.18 supports v1..=6. Flexible from v4.
// ---------------------------------------------------------------------------------------
const DELETE_TOPICS_TOPIC_STATE: &[F] = &[
    // Name
    f(Ty::NStr, 6, i16::MAX),
    // TopicId
    f(Ty::Uuid, 6, i16::MAX),
];
pub(crate) const DELETE_TOPICS_REQUEST: Schema = Schema {
    flexible_from: 4,
    fields: &[
        // Topics
        f(Ty::Array(DELETE_TOPICS_TOPIC_STATE), 6, i16::MAX),
        // TopicNames
        f(Ty::PArray(&Ty::Str), 0, 5),
        // TimeoutMs
        f(Ty::I32, 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// DeleteRecords (API key 21). kafka-protocol 0.18 supports v0..=2. Flexible from v2.
// ---------------------------------------------------------------------------------------
const DELETE_RECORDS_PARTITION: &[F] = &[
    // PartitionIndex
    f(Ty::I32, 0, i16::MAX),
    // Offset
    f(Ty::I64, 0, i16::MAX),
];
const DELETE_RECORDS_TOPIC: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // Partitions
    f(Ty::Array(DELETE_RECORDS_PARTITION), 0, i16::MAX),
];
pub(crate) const DELETE_RECORDS_REQUEST: Schema = Schema {
    flexible_from: 2,
    fields: &[
        // Topics
        f(Ty::Array(DELETE_RECORDS_TOPIC), 0, i16::MAX),
        // TimeoutMs
        f(Ty::I32, 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// InitProducerId (API key 22). kafka-protocol 0.18 supports v0..=5. Flexible from v2.
// (v6 Enable2Pc / KeepPreparedTxn are not supported by the crate, so they are not listed.)
// ---------------------------------------------------------------------------------------
pub(crate) const INIT_PRODUCER_ID_REQUEST: Schema = Schema {
    flexible_from: 2,
    fields: &[
        // TransactionalId
        f(Ty::NStr, 0, i16::MAX),
        // TransactionTimeoutMs
        f(Ty::I32, 0, i16::MAX),
        // ProducerId
        f(Ty::I64, 3, i16::MAX),
        // ProducerEpoch
        f(Ty::I16, 3, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// OffsetForLeaderEpoch (API key 23). kafka-protocol 0.18 supports v2..=4. Flexible from v4.
// ---------------------------------------------------------------------------------------
const OFFSET_FOR_LEADER_PARTITION: &[F] = &[
    // Partition
    f(Ty::I32, 0, i16::MAX),
    // CurrentLeaderEpoch
    f(Ty::I32, 2, i16::MAX),
    // LeaderEpoch
    f(Ty::I32, 0, i16::MAX),
];
const OFFSET_FOR_LEADER_TOPIC: &[F] = &[
    // Topic
    f(Ty::Str, 0, i16::MAX),
    // Partitions
    f(Ty::Array(OFFSET_FOR_LEADER_PARTITION), 0, i16::MAX),
];
pub(crate) const OFFSET_FOR_LEADER_EPOCH_REQUEST: Schema = Schema {
    flexible_from: 4,
    fields: &[
        // ReplicaId
        f(Ty::I32, 3, i16::MAX),
        // Topics
        f(Ty::Array(OFFSET_FOR_LEADER_TOPIC), 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// DescribeConfigs (API key 32). kafka-protocol 0.18 supports v1..=4. Flexible from v4.
// ---------------------------------------------------------------------------------------
const DESCRIBE_CONFIGS_RESOURCE: &[F] = &[
    // ResourceType
    f(Ty::I8, 0, i16::MAX),
    // ResourceName
    f(Ty::Str, 0, i16::MAX),
    // ConfigurationKeys
    f(Ty::NPArray(&Ty::Str), 0, i16::MAX),
];
pub(crate) const DESCRIBE_CONFIGS_REQUEST: Schema = Schema {
    flexible_from: 4,
    fields: &[
        // Resources
        f(Ty::Array(DESCRIBE_CONFIGS_RESOURCE), 0, i16::MAX),
        // IncludeSynonyms
        f(Ty::Bool, 1, i16::MAX),
        // IncludeDocumentation
        f(Ty::Bool, 3, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// AlterConfigs (API key 33). kafka-protocol 0.18 supports v0..=2. Flexible from v2.
// ---------------------------------------------------------------------------------------
const ALTER_CONFIGS_CONFIG: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // Value
    f(Ty::NStr, 0, i16::MAX),
];
const ALTER_CONFIGS_RESOURCE: &[F] = &[
    // ResourceType
    f(Ty::I8, 0, i16::MAX),
    // ResourceName
    f(Ty::Str, 0, i16::MAX),
    // Configs
    f(Ty::Array(ALTER_CONFIGS_CONFIG), 0, i16::MAX),
];
pub(crate) const ALTER_CONFIGS_REQUEST: Schema = Schema {
    flexible_from: 2,
    fields: &[
        // Resources
        f(Ty::Array(ALTER_CONFIGS_RESOURCE), 0, i16::MAX),
        // ValidateOnly
        f(Ty::Bool, 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// DescribeLogDirs (API key 35). kafka-protocol 0.18 supports v1..=4. Flexible from v2.
// ---------------------------------------------------------------------------------------
const DESCRIBE_LOG_DIRS_TOPIC: &[F] = &[
    // Topic
    f(Ty::Str, 0, i16::MAX),
    // Partitions
    f(Ty::PArray(&Ty::I32), 0, i16::MAX),
];
pub(crate) const DESCRIBE_LOG_DIRS_REQUEST: Schema = Schema {
    flexible_from: 2,
    fields: &[
        // Topics (null: every partition)
        f(Ty::NArray(DESCRIBE_LOG_DIRS_TOPIC), 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// CreatePartitions (API key 37). kafka-protocol 0.18 supports v0..=3. Flexible from v2.
// ---------------------------------------------------------------------------------------
const CREATE_PARTITIONS_ASSIGNMENT: &[F] = &[
    // BrokerIds
    f(Ty::PArray(&Ty::I32), 0, i16::MAX),
];
const CREATE_PARTITIONS_TOPIC: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // Count
    f(Ty::I32, 0, i16::MAX),
    // Assignments
    f(Ty::NArray(CREATE_PARTITIONS_ASSIGNMENT), 0, i16::MAX),
];
pub(crate) const CREATE_PARTITIONS_REQUEST: Schema = Schema {
    flexible_from: 2,
    fields: &[
        // Topics
        f(Ty::Array(CREATE_PARTITIONS_TOPIC), 0, i16::MAX),
        // TimeoutMs
        f(Ty::I32, 0, i16::MAX),
        // ValidateOnly
        f(Ty::Bool, 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// IncrementalAlterConfigs (API key 44). kafka-protocol 0.18 supports v0..=1. Flexible from v1.
// ---------------------------------------------------------------------------------------
const INCREMENTAL_ALTER_CONFIGS_CONFIG: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // ConfigOperation
    f(Ty::I8, 0, i16::MAX),
    // Value
    f(Ty::NStr, 0, i16::MAX),
];
const INCREMENTAL_ALTER_CONFIGS_RESOURCE: &[F] = &[
    // ResourceType
    f(Ty::I8, 0, i16::MAX),
    // ResourceName
    f(Ty::Str, 0, i16::MAX),
    // Configs
    f(Ty::Array(INCREMENTAL_ALTER_CONFIGS_CONFIG), 0, i16::MAX),
];
pub(crate) const INCREMENTAL_ALTER_CONFIGS_REQUEST: Schema = Schema {
    flexible_from: 1,
    fields: &[
        // Resources
        f(Ty::Array(INCREMENTAL_ALTER_CONFIGS_RESOURCE), 0, i16::MAX),
        // ValidateOnly
        f(Ty::Bool, 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// DescribeCluster (API key 60). kafka-protocol 0.18 supports v0..=2. Flexible from v0.
// ---------------------------------------------------------------------------------------
pub(crate) const DESCRIBE_CLUSTER_REQUEST: Schema = Schema {
    flexible_from: 0,
    fields: &[
        // IncludeClusterAuthorizedOperations
        f(Ty::Bool, 0, i16::MAX),
        // EndpointType
        f(Ty::I8, 1, i16::MAX),
        // IncludeFencedBrokers
        f(Ty::Bool, 2, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// ElectLeaders (API key 43). kafka-protocol 0.18 supports v0..=2. Flexible from v2.
// ---------------------------------------------------------------------------------------
const ELECT_LEADERS_TOPIC: &[F] = &[
    // Topic
    f(Ty::Str, 0, i16::MAX),
    // Partitions
    f(Ty::PArray(&Ty::I32), 0, i16::MAX),
];
pub(crate) const ELECT_LEADERS_REQUEST: Schema = Schema {
    flexible_from: 2,
    fields: &[
        // ElectionType
        f(Ty::I8, 1, i16::MAX),
        // TopicPartitions (null: every partition)
        f(Ty::NArray(ELECT_LEADERS_TOPIC), 0, i16::MAX),
        // TimeoutMs
        f(Ty::I32, 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// AlterPartitionReassignments (API key 45). kafka-protocol 0.18 supports v0..=1. Flexible
// from v0.
// ---------------------------------------------------------------------------------------
const ALTER_PARTITION_REASSIGNMENTS_PARTITION: &[F] = &[
    // PartitionIndex
    f(Ty::I32, 0, i16::MAX),
    // Replicas (null: cancel)
    f(Ty::NPArray(&Ty::I32), 0, i16::MAX),
];
const ALTER_PARTITION_REASSIGNMENTS_TOPIC: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // Partitions
    f(Ty::Array(ALTER_PARTITION_REASSIGNMENTS_PARTITION), 0, i16::MAX),
];
pub(crate) const ALTER_PARTITION_REASSIGNMENTS_REQUEST: Schema = Schema {
    flexible_from: 0,
    fields: &[
        // TimeoutMs
        f(Ty::I32, 0, i16::MAX),
        // AllowReplicationFactorChange
        f(Ty::Bool, 1, i16::MAX),
        // Topics
        f(Ty::Array(ALTER_PARTITION_REASSIGNMENTS_TOPIC), 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// ListPartitionReassignments (API key 46). kafka-protocol 0.18 supports v0. Flexible from v0.
// ---------------------------------------------------------------------------------------
const LIST_PARTITION_REASSIGNMENTS_TOPIC: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
    // PartitionIndexes
    f(Ty::PArray(&Ty::I32), 0, i16::MAX),
];
pub(crate) const LIST_PARTITION_REASSIGNMENTS_REQUEST: Schema = Schema {
    flexible_from: 0,
    fields: &[
        // TimeoutMs
        f(Ty::I32, 0, i16::MAX),
        // Topics (null: every reassignment)
        f(Ty::NArray(LIST_PARTITION_REASSIGNMENTS_TOPIC), 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// DescribeQuorum (API key 55). kafka-protocol 0.18 supports v0..=2. Flexible from v0.
// ---------------------------------------------------------------------------------------
const DESCRIBE_QUORUM_PARTITION: &[F] = &[
    // PartitionIndex
    f(Ty::I32, 0, i16::MAX),
];
const DESCRIBE_QUORUM_TOPIC: &[F] = &[
    // TopicName
    f(Ty::Str, 0, i16::MAX),
    // Partitions
    f(Ty::Array(DESCRIBE_QUORUM_PARTITION), 0, i16::MAX),
];
pub(crate) const DESCRIBE_QUORUM_REQUEST: Schema = Schema {
    flexible_from: 0,
    fields: &[
        // Topics
        f(Ty::Array(DESCRIBE_QUORUM_TOPIC), 0, i16::MAX),
    ],
};

// ---------------------------------------------------------------------------------------
// DescribeTopicPartitions (API key 75, KIP-966). kafka-protocol 0.18 supports v0. Flexible
// from v0.
// ---------------------------------------------------------------------------------------
const DESCRIBE_TOPIC_PARTITIONS_TOPIC: &[F] = &[
    // Name
    f(Ty::Str, 0, i16::MAX),
];
const DESCRIBE_TOPIC_PARTITIONS_CURSOR: &[F] = &[
    // TopicName
    f(Ty::Str, 0, i16::MAX),
    // PartitionIndex
    f(Ty::I32, 0, i16::MAX),
];
pub(crate) const DESCRIBE_TOPIC_PARTITIONS_REQUEST: Schema = Schema {
    flexible_from: 0,
    fields: &[
        // Topics (empty: every topic)
        f(Ty::Array(DESCRIBE_TOPIC_PARTITIONS_TOPIC), 0, i16::MAX),
        // ResponsePartitionLimit
        f(Ty::I32, 0, i16::MAX),
        // Cursor (a nullable struct)
        f(Ty::NStruct(DESCRIBE_TOPIC_PARTITIONS_CURSOR), 0, i16::MAX),
    ],
};
