//! The group protocol on the wire, version by version: what each API answers, that a JoinGroup
//! waits for the rebalance, and that committed offsets survive a restart.

mod common;

use bytes::Bytes;
use common::{Client, name, start_with};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const PROPS: &[(&str, &str)] = &[
    ("offsets.topic.num.partitions", "5"),
    ("group.initial.rebalance.delay.ms", "0"),
    ("group.min.session.timeout.ms", "100"),
];

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn group(id: &str) -> GroupId {
    GroupId(s(id))
}

/// A consumer-protocol subscription to `topics` (version 0, no user data).
fn subscription(topics: &[&str]) -> Bytes {
    let mut out = vec![0, 0];
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for topic in topics {
        out.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        out.extend_from_slice(topic.as_bytes());
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(out)
}

fn join_request(group_id: &str, member_id: &str, topics: &[&str]) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(subscription(topics)),
        ])
}

fn commit_request(group_id: &str, generation: i32, member_id: &str, topic: &str, offset: i64) -> OffsetCommitRequest {
    let partition = offset_commit_request::OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(-1)
        .with_committed_metadata(Some(s("m")));
    let topic = offset_commit_request::OffsetCommitRequestTopic::default()
        .with_name(name(topic))
        .with_partitions(vec![partition]);
    OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_retention_time_ms(-1)
        .with_topics(vec![topic])
}

fn fetch_offsets_v1(group_id: &str, topic: &str) -> OffsetFetchRequest {
    let topic = offset_fetch_request::OffsetFetchRequestTopic::default()
        .with_name(name(topic))
        .with_partition_indexes(vec![0, 1]);
    OffsetFetchRequest::default().with_group_id(group(group_id)).with_topics(Some(vec![topic]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_protocol_version_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, stop, task) = start_with(dir.path(), PROPS).await;
    let mut client = Client::connect(addr).await;
    let topic = create_topics_request::CreatableTopic::default()
        .with_name(name("events"))
        .with_num_partitions(2)
        .with_replication_factor(1);
    let _: CreateTopicsResponse =
        client.call(ApiKey::CreateTopics, 7, &CreateTopicsRequest::default().with_topics(vec![topic])).await;

    // FindCoordinator: this broker, single (v0) and batched (v4); transactions refused clearly.
    let found: FindCoordinatorResponse =
        client.call(ApiKey::FindCoordinator, 0, &FindCoordinatorRequest::default().with_key(s("g"))).await;
    assert_eq!((found.error_code, found.node_id.0, found.port), (0, 1, i32::from(addr.port())));
    let batched = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![s("g"), s("h")]);
    let found: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 4, &batched).await;
    assert_eq!(found.coordinators.len(), 2);
    assert!(found.coordinators.iter().all(|c| c.error_code == 0 && c.node_id.0 == 1));
    let txn = FindCoordinatorRequest::default().with_key(s("tx")).with_key_type(1);
    let found: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &txn).await;
    assert_eq!(found.error_code, 42, "INVALID_REQUEST");
    assert!(found.error_message.unwrap().contains("transactions"));
    let empty = FindCoordinatorRequest::default().with_key(s(""));
    let found: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &empty).await;
    assert_eq!(found.error_code, 24, "INVALID_GROUP_ID");

    // The first FindCoordinator created __consumer_offsets, internal and compacted.
    let metadata: MetadataResponse = client
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("__consumer_offsets"))),
            ])),
        )
        .await;
    assert_eq!(metadata.topics[0].error_code, 0);
    assert!(metadata.topics[0].is_internal);
    assert_eq!(metadata.topics[0].partitions.len(), 5, "offsets.topic.num.partitions");
    // Clients may not write it.
    let mut batch = fjord_log::BatchBuilder::new();
    batch.push(fjord_types::Timestamp(1), Some(b"k"), Some(b"v"), &[]);
    let data = produce_request::PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(batch.build().unwrap().into()));
    let produce = ProduceRequest::default().with_acks(1).with_timeout_ms(1000).with_topic_data(vec![
        produce_request::TopicProduceData::default()
            .with_name(name("__consumer_offsets"))
            .with_partition_data(vec![data]),
    ]);
    let produced: ProduceResponse = client.call(ApiKey::Produce, 9, &produce).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 17, "INVALID_TOPIC_EXCEPTION");

    // JoinGroup v4+: a new member first gets its id (MEMBER_ID_REQUIRED), then joins with it.
    let joined: JoinGroupResponse = client.call(ApiKey::JoinGroup, 9, &join_request("g", "", &["events"])).await;
    assert_eq!(joined.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = joined.member_id.to_string();
    assert!(member.starts_with("broker-test-"), "{member}");
    let joined: JoinGroupResponse = client.call(ApiKey::JoinGroup, 9, &join_request("g", &member, &["events"])).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader.as_str(), member);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1, "the leader gets every member");
    assert_eq!(joined.members[0].metadata, subscription(&["events"]));

    // SyncGroup: the leader's assignment comes back to it.
    let sync = SyncGroupRequest::default()
        .with_group_id(group("g"))
        .with_generation_id(1)
        .with_member_id(s(&member))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(&member))
                .with_assignment(Bytes::from_static(b"both partitions")),
        ]);
    let synced: SyncGroupResponse = client.call(ApiKey::SyncGroup, 5, &sync).await;
    assert_eq!((synced.error_code, synced.assignment.as_ref()), (0, b"both partitions".as_ref()));

    // Heartbeat: fine in the current generation, ILLEGAL_GENERATION otherwise.
    let beat = HeartbeatRequest::default().with_group_id(group("g")).with_generation_id(1).with_member_id(s(&member));
    let answer: HeartbeatResponse = client.call(ApiKey::Heartbeat, 4, &beat).await;
    assert_eq!(answer.error_code, 0);
    let answer: HeartbeatResponse = client.call(ApiKey::Heartbeat, 0, &beat.clone().with_generation_id(7)).await;
    assert_eq!(answer.error_code, 22, "ILLEGAL_GENERATION");

    // OffsetCommit in the generation (v2 and v9); an unknown topic is refused per partition.
    let committed: OffsetCommitResponse =
        client.call(ApiKey::OffsetCommit, 2, &commit_request("g", 1, &member, "events", 5)).await;
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let committed: OffsetCommitResponse =
        client.call(ApiKey::OffsetCommit, 9, &commit_request("g", 1, &member, "events", 7)).await;
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let committed: OffsetCommitResponse =
        client.call(ApiKey::OffsetCommit, 9, &commit_request("g", 1, &member, "nope", 7)).await;
    assert_eq!(committed.topics[0].partitions[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let stale: OffsetCommitResponse =
        client.call(ApiKey::OffsetCommit, 9, &commit_request("g", 0, &member, "events", 9)).await;
    assert_eq!(stale.topics[0].partitions[0].error_code, 22, "ILLEGAL_GENERATION");

    // OffsetFetch, single group (v1) and batched (v8).
    let fetched: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 1, &fetch_offsets_v1("g", "events")).await;
    let partitions = &fetched.topics[0].partitions;
    assert_eq!((partitions[0].committed_offset, partitions[0].metadata.as_deref()), (7, Some("m")));
    assert_eq!(partitions[1].committed_offset, -1, "nothing committed");
    let batched = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(group("g")).with_topics(None),
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(group("unknown")).with_topics(None),
    ]);
    let fetched: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 8, &batched).await;
    assert_eq!(fetched.groups[0].topics[0].partitions[0].committed_offset, 7);
    assert!(fetched.groups[1].topics.is_empty());

    // DescribeGroups and ListGroups see the stable group and its member.
    let described: DescribeGroupsResponse =
        client.call(ApiKey::DescribeGroups, 5, &DescribeGroupsRequest::default().with_groups(vec![group("g")])).await;
    let g = &described.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str(), g.protocol_data.as_str()), (0, "Stable", "range"));
    assert_eq!(g.members[0].client_id.as_str(), "broker-test");
    assert_eq!(g.members[0].client_host.as_str(), "/127.0.0.1");
    let listed: ListGroupsResponse = client.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await;
    assert!(listed.groups.iter().any(|l| l.group_id.as_str() == "g" && l.group_state.as_str() == "Stable"));
    let filtered: ListGroupsResponse =
        client.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default().with_states_filter(vec![s("Empty")])).await;
    assert!(filtered.groups.iter().all(|l| l.group_id.as_str() != "g"));

    // OffsetDelete refuses a topic the group subscribes to; DeleteGroups a group with members.
    let delete_offsets = OffsetDeleteRequest::default().with_group_id(group("g")).with_topics(vec![
        offset_delete_request::OffsetDeleteRequestTopic::default()
            .with_name(name("events"))
            .with_partitions(vec![offset_delete_request::OffsetDeleteRequestPartition::default()]),
    ]);
    let deleted: OffsetDeleteResponse = client.call(ApiKey::OffsetDelete, 0, &delete_offsets).await;
    assert_eq!(deleted.topics[0].partitions[0].error_code, 86, "GROUP_SUBSCRIBED_TO_TOPIC");
    let delete_group = DeleteGroupsRequest::default().with_groups_names(vec![group("g")]);
    let deleted: DeleteGroupsResponse = client.call(ApiKey::DeleteGroups, 2, &delete_group).await;
    assert_eq!(deleted.results[0].error_code, 68, "NON_EMPTY_GROUP");

    // LeaveGroup (batched, v3+) empties the group; then both deletions go through.
    let leave = LeaveGroupRequest::default()
        .with_group_id(group("g"))
        .with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(s(&member))]);
    let left: LeaveGroupResponse = client.call(ApiKey::LeaveGroup, 5, &leave).await;
    assert_eq!((left.error_code, left.members[0].error_code), (0, 0));
    let deleted: OffsetDeleteResponse = client.call(ApiKey::OffsetDelete, 0, &delete_offsets).await;
    assert_eq!((deleted.error_code, deleted.topics[0].partitions[0].error_code), (0, 0));
    let fetched: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 1, &fetch_offsets_v1("g", "events")).await;
    assert_eq!(fetched.topics[0].partitions[0].committed_offset, -1, "deleted");
    let deleted: DeleteGroupsResponse = client.call(ApiKey::DeleteGroups, 2, &delete_group).await;
    assert_eq!(deleted.results[0].error_code, 0);
    let described: DescribeGroupsResponse =
        client.call(ApiKey::DescribeGroups, 0, &DescribeGroupsRequest::default().with_groups(vec![group("g")])).await;
    assert_eq!(described.groups[0].group_state.as_str(), "Dead");

    // A standalone commit (generation -1, as assign() consumers do) survives a restart, and so
    // does the generation of a group that completed a rebalance.
    let committed: OffsetCommitResponse =
        client.call(ApiKey::OffsetCommit, 8, &commit_request("standalone", -1, "", "events", 42)).await;
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    drop(client);
    stop.send(()).unwrap();
    task.await.unwrap();

    let (addr, stop, task) = start_with(dir.path(), PROPS).await;
    let mut client = Client::connect(addr).await;
    let fetched: OffsetFetchResponse =
        client.call(ApiKey::OffsetFetch, 5, &fetch_offsets_v1("standalone", "events")).await;
    assert_eq!(fetched.topics[0].partitions[0].committed_offset, 42);
    assert_eq!(fetched.error_code, 0);
    drop(client);
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_waits_for_the_other_members_and_old_versions_work() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, stop, task) = start_with(dir.path(), PROPS).await;
    let mut first = Client::connect(addr).await;
    let _: FindCoordinatorResponse =
        first.call(ApiKey::FindCoordinator, 0, &FindCoordinatorRequest::default().with_key(s("w"))).await;
    // v0 has no member-id round trip and no rebalance timeout.
    let joined: JoinGroupResponse = first.call(ApiKey::JoinGroup, 0, &join_request("w", "", &["t"])).await;
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let a = joined.member_id.to_string();
    let sync = |member: &str, generation: i32| {
        SyncGroupRequest::default().with_group_id(group("w")).with_generation_id(generation).with_member_id(s(member))
    };
    let _: SyncGroupResponse = first.call(ApiKey::SyncGroup, 0, &sync(&a, 1)).await;

    // A second member's join parks until the first rejoins (told by its heartbeat).
    let mut second = Client::connect(addr).await;
    let waiting = tokio::spawn(async move {
        let joined: JoinGroupResponse = second.call(ApiKey::JoinGroup, 1, &join_request("w", "", &["t"])).await;
        (second, joined)
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the join waits for the rebalance");
    let beat = HeartbeatRequest::default().with_group_id(group("w")).with_generation_id(1).with_member_id(s(&a));
    let answer: HeartbeatResponse = first.call(ApiKey::Heartbeat, 0, &beat).await;
    assert_eq!(answer.error_code, 27, "REBALANCE_IN_PROGRESS");
    let rejoined: JoinGroupResponse = first.call(ApiKey::JoinGroup, 0, &join_request("w", &a, &["t"])).await;
    let (mut second, joined) = waiting.await.unwrap();
    assert_eq!((rejoined.error_code, joined.error_code), (0, 0));
    assert_eq!((rejoined.generation_id, joined.generation_id), (2, 2));
    assert_eq!(rejoined.leader.as_str(), a, "the first member stays leader");
    assert_eq!(rejoined.members.len(), 2);
    assert!(joined.members.is_empty(), "followers do not get the member list");

    // The follower's SyncGroup waits for the leader's.
    let b = joined.member_id.to_string();
    let follower = {
        let b = b.clone();
        tokio::spawn(async move {
            let synced: SyncGroupResponse = second.call(ApiKey::SyncGroup, 3, &sync(&b, 2)).await;
            synced
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!follower.is_finished());
    let assignments = vec![
        sync_group_request::SyncGroupRequestAssignment::default()
            .with_member_id(s(&a))
            .with_assignment(Bytes::from_static(b"A")),
        sync_group_request::SyncGroupRequestAssignment::default()
            .with_member_id(s(&b))
            .with_assignment(Bytes::from_static(b"B")),
    ];
    let leader: SyncGroupResponse = first.call(ApiKey::SyncGroup, 3, &sync(&a, 2).with_assignments(assignments)).await;
    let follower = follower.await.unwrap();
    assert_eq!((leader.assignment.as_ref(), follower.assignment.as_ref()), (b"A".as_ref(), b"B".as_ref()));

    // LeaveGroup v0: one member, error at the top level.
    let left: LeaveGroupResponse = first
        .call(
            ApiKey::LeaveGroup,
            0,
            &LeaveGroupRequest::default().with_group_id(group("w")).with_member_id(s("nobody")),
        )
        .await;
    assert_eq!(left.error_code, 25, "UNKNOWN_MEMBER_ID");
    drop(first);
    stop.send(()).unwrap();
    task.await.unwrap();
}

fn set_topic_config(topic: &str, key: &str, value: Option<&str>) -> IncrementalAlterConfigsRequest {
    let config = incremental_alter_configs_request::AlterableConfig::default()
        .with_name(s(key))
        .with_config_operation(if value.is_some() { 0 } else { 1 })
        .with_value(value.map(s));
    IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configs(vec![config]),
    ])
}

/// A rebalance whose group record cannot be written answers the members with an error and
/// leaves the group as its log says (here: never stored), not as the coordinator had it in
/// memory; once writes succeed again the group forms from scratch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_group_write_leaves_the_group_as_its_log_says() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, stop, task) = start_with(dir.path(), PROPS).await;
    let mut client = Client::connect(addr).await;
    let found: FindCoordinatorResponse =
        client.call(ApiKey::FindCoordinator, 0, &FindCoordinatorRequest::default().with_key(s("g"))).await;
    assert_eq!(found.error_code, 0);
    // Group records are well over 64 bytes: every group write now fails as too large.
    let altered: IncrementalAlterConfigsResponse = client
        .call(
            ApiKey::IncrementalAlterConfigs,
            0,
            &set_topic_config("__consumer_offsets", "max.message.bytes", Some("64")),
        )
        .await;
    assert_eq!(altered.responses[0].error_code, 0, "{:?}", altered.responses[0].error_message);

    let first: JoinGroupResponse = client.call(ApiKey::JoinGroup, 4, &join_request("g", "", &["events"])).await;
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let joined: JoinGroupResponse =
        client.call(ApiKey::JoinGroup, 4, &join_request("g", first.member_id.as_str(), &["events"])).await;
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    // The leader's SyncGroup completes the generation, which is when it is written.
    let assignment = sync_group_request::SyncGroupRequestAssignment::default()
        .with_member_id(joined.member_id.clone())
        .with_assignment(Bytes::from_static(b"assignment"));
    let sync = SyncGroupRequest::default()
        .with_group_id(group("g"))
        .with_generation_id(1)
        .with_member_id(joined.member_id.clone())
        .with_assignments(vec![assignment]);
    let synced: SyncGroupResponse = client.call(ApiKey::SyncGroup, 3, &sync).await;
    assert_eq!(synced.error_code, -1, "UNKNOWN_SERVER_ERROR: the generation was not stored");
    let described: DescribeGroupsResponse =
        client.call(ApiKey::DescribeGroups, 0, &DescribeGroupsRequest::default().with_groups(vec![group("g")])).await;
    assert_eq!(described.groups[0].group_state.as_str(), "Dead", "the log holds no group g");
    assert!(described.groups[0].members.is_empty());

    let restored: IncrementalAlterConfigsResponse = client
        .call(ApiKey::IncrementalAlterConfigs, 0, &set_topic_config("__consumer_offsets", "max.message.bytes", None))
        .await;
    assert_eq!(restored.responses[0].error_code, 0);
    let first: JoinGroupResponse = client.call(ApiKey::JoinGroup, 4, &join_request("g", "", &["events"])).await;
    let joined: JoinGroupResponse =
        client.call(ApiKey::JoinGroup, 4, &join_request("g", first.member_id.as_str(), &["events"])).await;
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    stop.send(()).unwrap();
    task.await.unwrap();
}
