use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::*;
use crate::versions::KAFKA_4_1;

fn encode(request: &RequestKind, version: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    request.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

fn default_request(key: ApiKey) -> RequestKind {
    match key {
        ApiKey::Produce => RequestKind::Produce(ProduceRequest::default()),
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(CreatePartitionsRequest::default()),
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default())
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(FindCoordinatorRequest::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(OffsetDeleteRequest::default()),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default())
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default())
        }
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(DescribeQuorumRequest::default()),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
        ApiKey::DescribeTopicPartitions => {
            RequestKind::DescribeTopicPartitions(DescribeTopicPartitionsRequest::default())
        }
        other => panic!("no default for {other:?}"),
    }
}

/// Every served version of every API: the codec's own encoding passes the guard, and every
/// strict prefix of a non-trivial encoding fails it or is a complete shorter value.
#[test]
fn the_codecs_encodings_pass_the_guard() {
    for range in KAFKA_4_1 {
        let schema = schema(range.key).unwrap_or_else(|| panic!("no schema for {:?}", range.key));
        for version in range.refuse_below..=range.max {
            let bytes = encode(&default_request(range.key), version);
            check(schema, version, &bytes).unwrap_or_else(|e| panic!("{:?} v{version}: {e}", range.key));
        }
    }
}

fn produce(records: usize) -> ProduceRequest {
    let partition = produce_request::PartitionProduceData::default()
        .with_index(3)
        .with_records(Some(bytes::Bytes::from(vec![7u8; records])));
    let topic = produce_request::TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("orders")))
        .with_partition_data(vec![partition.clone(), partition]);
    ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![topic])
}

fn fetch() -> FetchRequest {
    let partition = fetch_request::FetchPartition::default().with_partition(1).with_fetch_offset(42);
    let topic = fetch_request::FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_static_str("orders")))
        .with_partitions(vec![partition; 3]);
    FetchRequest::default().with_max_wait_ms(500).with_topics(vec![topic])
}

fn create_topics() -> CreateTopicsRequest {
    let config = create_topics_request::CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("retention.ms"))
        .with_value(Some(StrBytes::from_static_str("1000")));
    let topic = create_topics_request::CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_num_partitions(3)
        .with_replication_factor(1)
        .with_configs(vec![config]);
    CreateTopicsRequest::default().with_topics(vec![topic])
}

fn elect_leaders() -> ElectLeadersRequest {
    let topic = elect_leaders_request::TopicPartitions::default()
        .with_topic(TopicName(StrBytes::from_static_str("orders")))
        .with_partitions(vec![0, 1, 2, 3]);
    ElectLeadersRequest::default().with_topic_partitions(Some(vec![topic.clone(), topic])).with_timeout_ms(30_000)
}

fn alter_partition_reassignments() -> AlterPartitionReassignmentsRequest {
    let move_to = alter_partition_reassignments_request::ReassignablePartition::default()
        .with_partition_index(0)
        .with_replicas(Some(vec![BrokerId(1), BrokerId(2), BrokerId(3)]));
    let cancel = alter_partition_reassignments_request::ReassignablePartition::default().with_partition_index(1);
    let topic = alter_partition_reassignments_request::ReassignableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("orders")))
        .with_partitions(vec![move_to, cancel.clone(), cancel]);
    AlterPartitionReassignmentsRequest::default().with_timeout_ms(60_000).with_topics(vec![topic.clone(), topic])
}

fn list_partition_reassignments() -> ListPartitionReassignmentsRequest {
    let topic = list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
        .with_name(TopicName(StrBytes::from_static_str("orders")))
        .with_partition_indexes(vec![0, 1, 2, 3]);
    ListPartitionReassignmentsRequest::default().with_topics(Some(vec![topic.clone(), topic]))
}

fn describe_quorum() -> DescribeQuorumRequest {
    let partition = describe_quorum_request::PartitionData::default().with_partition_index(0);
    let topic = describe_quorum_request::TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![partition; 4]);
    DescribeQuorumRequest::default().with_topics(vec![topic])
}

fn describe_log_dirs() -> DescribeLogDirsRequest {
    let topic = describe_log_dirs_request::DescribableLogDirTopic::default()
        .with_topic(TopicName(StrBytes::from_static_str("orders")))
        .with_partitions(vec![0, 1, 2, 3]);
    DescribeLogDirsRequest::default().with_topics(Some(vec![topic.clone(), topic]))
}

fn describe_topic_partitions() -> DescribeTopicPartitionsRequest {
    let topic =
        describe_topic_partitions_request::TopicRequest::default().with_name(TopicName(StrBytes::from_static_str("t")));
    let cursor = describe_topic_partitions_request::Cursor::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("orders")))
        .with_partition_index(7);
    DescribeTopicPartitionsRequest::default()
        .with_topics(vec![topic; 3])
        .with_response_partition_limit(100)
        .with_cursor(Some(cursor))
}

#[test]
fn populated_requests_pass_and_their_truncations_fail() {
    let cases: Vec<(ApiKey, RequestKind)> = vec![
        (ApiKey::Produce, RequestKind::Produce(produce(100))),
        (ApiKey::Fetch, RequestKind::Fetch(fetch())),
        (ApiKey::CreateTopics, RequestKind::CreateTopics(create_topics())),
        (ApiKey::ElectLeaders, RequestKind::ElectLeaders(elect_leaders())),
        (ApiKey::DescribeQuorum, RequestKind::DescribeQuorum(describe_quorum())),
        (
            ApiKey::AlterPartitionReassignments,
            RequestKind::AlterPartitionReassignments(alter_partition_reassignments()),
        ),
        (ApiKey::ListPartitionReassignments, RequestKind::ListPartitionReassignments(list_partition_reassignments())),
        (ApiKey::DescribeLogDirs, RequestKind::DescribeLogDirs(describe_log_dirs())),
        (ApiKey::DescribeTopicPartitions, RequestKind::DescribeTopicPartitions(describe_topic_partitions())),
    ];
    for (key, request) in cases {
        let range = KAFKA_4_1.iter().find(|r| r.key == key).unwrap();
        for version in range.refuse_below..=range.max {
            let bytes = encode(&request, version);
            let schema = schema(key).unwrap();
            check(schema, version, &bytes).unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"));
            // Cutting the body anywhere inside the arrays must be caught.
            let cut = &bytes[..bytes.len() - 10];
            assert!(check(schema, version, cut).is_err(), "{key:?} v{version} truncated passed");
        }
    }
}

#[test]
fn a_huge_array_count_is_refused_before_decoding() {
    // Produce v3: transactional id (null), acks, timeout, then a topic array claiming 2^31-1.
    let mut body = BytesMut::new();
    body.put_i16(-1);
    body.put_i16(1);
    body.put_i32(1000);
    body.put_i32(i32::MAX);
    let error = check(&PRODUCE_REQUEST, 3, &body).unwrap_err();
    assert_eq!(error.reason, "length exceeds the bytes left in the frame");
    // The same in a flexible version: a compact count of 2^32-2.
    let mut body = BytesMut::new();
    body.put_u8(0); // null transactional id
    body.put_i16(1);
    body.put_i32(1000);
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(check(&PRODUCE_REQUEST, 9, &body).is_err());
}

#[test]
fn a_cursor_is_walked_only_when_its_marker_says_present() {
    // DescribeTopicPartitions v0: no topics, a limit, then the cursor's marker.
    let absent = [&[1u8][..], &100i32.to_be_bytes(), &[0xff], &[0]].concat();
    check(&DESCRIBE_TOPIC_PARTITIONS_REQUEST, 0, &absent).unwrap();
    // Present, naming a topic longer than the frame: refused before the decoder reserves it.
    let lying = [&[1u8][..], &100i32.to_be_bytes(), &[1], &[0xff, 0xff, 0x03]].concat();
    let error = check(&DESCRIBE_TOPIC_PARTITIONS_REQUEST, 0, &lying).unwrap_err();
    assert_eq!(error.reason, "length exceeds the bytes left in the frame");
    // And the codec agrees that an absent cursor is absent.
    let mut bytes = bytes::Bytes::from(absent);
    let decoded = DescribeTopicPartitionsRequest::decode(&mut bytes, 0).unwrap();
    assert_eq!((decoded.response_partition_limit, decoded.cursor), (100, None));
}
