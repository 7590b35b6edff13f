//! Requests at the edges, answered as Kafka answers them: absent messages are null, ids are
//! fresh, responses are bounded, bad records are named, and a long poll wakes only for its own
//! partitions.

mod common;

use std::time::{Duration, Instant};

use common::{Client, fetch_request, name, produce_request, spawn};
use fjord_log::{BatchBuilder, Batches, RecordBatchMut};
use fjord_types::{Timestamp, TopicPartition};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn now() -> Timestamp {
    fjord_broker::Broker::now()
}

fn topic(name_: &str, partitions: i32, configs: &[(&str, &str)]) -> create_topics_request::CreatableTopic {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_string((*k).to_owned()))
                .with_value(Some(StrBytes::from_string((*v).to_owned())))
        })
        .collect();
    create_topics_request::CreatableTopic::default()
        .with_name(name(name_))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(configs)
}

async fn create(client: &mut Client, topics: Vec<create_topics_request::CreatableTopic>) -> CreateTopicsResponse {
    client
        .call(ApiKey::CreateTopics, 5, &CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(5000))
        .await
}

fn records(values: &[&[u8]], keyed: bool) -> Vec<u8> {
    let mut batch = BatchBuilder::new();
    for (i, value) in values.iter().enumerate() {
        let key = format!("k{i}");
        batch.push(now(), keyed.then_some(key.as_bytes()), Some(value), &[]);
    }
    batch.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_error_messages_are_null_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path(), &[]).await;
    let mut client = Client::connect(server.local_addrs()[0]).await;

    let created = create(&mut client, vec![topic("plain", 1, &[])]).await;
    assert_eq!((created.topics[0].error_code, created.topics[0].error_message.as_ref()), (0, None));
    let refused = create(&mut client, vec![topic("plain", 1, &[])]).await;
    assert_eq!(refused.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");
    assert!(refused.topics[0].error_message.is_some(), "a refusal says why");

    let resource = describe_configs_request::DescribeConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str("plain"));
    let described: DescribeConfigsResponse = client
        .call(ApiKey::DescribeConfigs, 1, &DescribeConfigsRequest::default().with_resources(vec![resource]))
        .await;
    assert_eq!((described.results[0].error_code, described.results[0].error_message.as_ref()), (0, None));

    let one: FindCoordinatorResponse = client
        .call(ApiKey::FindCoordinator, 1, &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")))
        .await;
    assert_eq!((one.error_code, one.error_message.as_ref()), (0, None));
    let batched = FindCoordinatorRequest::default().with_coordinator_keys(vec![StrBytes::from_static_str("g")]);
    let many: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 4, &batched).await;
    assert_eq!((many.coordinators[0].error_code, many.coordinators[0].error_message.as_ref()), (0, None));
    assert_eq!(many.coordinators[0].node_id, BrokerId(1), "the leader of the group's partition");

    let delete = DeleteTopicsRequest::default()
        .with_topics(vec![delete_topics_request::DeleteTopicState::default().with_name(Some(name("plain")))]);
    let deleted: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 6, &delete).await;
    assert_eq!((deleted.responses[0].error_code, deleted.responses[0].error_message.as_ref()), (0, None));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_producer_id_hands_out_a_fresh_id_even_to_a_producer_that_names_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path(), &[]).await;
    let mut client = Client::connect(server.local_addrs()[0]).await;
    let fresh: InitProducerIdResponse = client
        .call(
            ApiKey::InitProducerId,
            3,
            &InitProducerIdRequest::default().with_transactional_id(None).with_producer_id(ProducerId(-1)),
        )
        .await;
    assert_eq!((fresh.error_code, fresh.producer_epoch), (0, 0));
    // Kafka's rule without a transactional id: a new id at epoch 0, never the named one bumped
    // (a broker that bumped any id it was shown would let one producer fence another's).
    let named = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(fresh.producer_id)
        .with_producer_epoch(0);
    let again: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 3, &named).await;
    assert_eq!(again.error_code, 0);
    assert_ne!(again.producer_id, fresh.producer_id);
    assert_eq!(again.producer_epoch, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_response_is_bounded_by_fetch_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path(), &[("fetch.max.bytes", "3000")]).await;
    let mut client = Client::connect(server.local_addrs()[0]).await;
    create(&mut client, vec![topic("big", 1, &[])]).await;
    let value = vec![b'x'; 1000];
    for _ in 0..10 {
        let produced: ProduceResponse =
            client.call(ApiKey::Produce, 9, &produce_request("big", 0, records(&[&value], false))).await;
        assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    }
    // The client asks for everything; the broker's bound holds, and at least one batch comes.
    let mut ask_all = fetch_request("big", 0, 0, 0, 0).with_max_bytes(i32::MAX);
    ask_all.topics[0].partitions[0].partition_max_bytes = i32::MAX;
    let fetched: FetchResponse = client.call(ApiKey::Fetch, 12, &ask_all).await;
    let bytes = fetched.responses[0].partitions[0].records.clone().unwrap();
    let batches = Batches::new(&bytes).count();
    assert!(bytes.len() <= 3000 && batches >= 1, "{} bytes in {batches} batches", bytes.len());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_names_its_records_at_fault_and_miscounted_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path(), &[]).await;
    let mut client = Client::connect(server.local_addrs()[0]).await;
    create(&mut client, vec![topic("compacted", 1, &[("cleanup.policy", "compact")])]).await;

    let mut batch = BatchBuilder::new();
    batch.push(now(), Some(b"k0"), Some(b"v"), &[]).push(now(), None, Some(b"v"), &[]).push(
        now(),
        Some(b"k2"),
        Some(b"v"),
        &[],
    );
    let produced: ProduceResponse =
        client.call(ApiKey::Produce, 9, &produce_request("compacted", 0, batch.build().unwrap())).await;
    let p = &produced.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 87, "INVALID_RECORD");
    let at_fault: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(at_fault, vec![1], "only the keyless record (KIP-467)");
    assert!(p.error_message.as_ref().is_some_and(|m| m.contains("without key")), "{:?}", p.error_message);

    // lastOffsetDelta claiming more records than the batch holds (CRC fixed up to match).
    let mut miscounted = records(&[b"a", b"b"], true);
    miscounted[23..27].copy_from_slice(&4i32.to_be_bytes());
    RecordBatchMut::parse(&mut miscounted).unwrap().update_crc();
    let produced: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_request("compacted", 0, miscounted)).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 87, "INVALID_RECORD");
    let end: ListOffsetsResponse = client
        .call(
            ApiKey::ListOffsets,
            5,
            &ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(name("compacted"))
                    .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1)]),
            ]),
        )
        .await;
    assert_eq!(end.topics[0].partitions[0].offset, 0, "nothing was written");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_wakes_only_the_long_polls_of_its_own_partition() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path(), &[]).await;
    let addr = server.local_addrs()[0];
    let mut client = Client::connect(addr).await;
    create(&mut client, vec![topic("a", 1, &[]), topic("b", 1, &[])]).await;
    let purgatory = || server.broker.replicas.fetch_purgatory();

    let mut poller = Client::connect(addr).await;
    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let response: FetchResponse = poller.call(ApiKey::Fetch, 12, &fetch_request("a", 0, 0, 10_000, 1)).await;
        (response, started.elapsed())
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while purgatory().watched_partitions() == 0 {
        assert!(Instant::now() < deadline, "the fetch never parked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let produced: ProduceResponse =
        client.call(ApiKey::Produce, 9, &produce_request("b", 0, records(&[b"v"], false))).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(purgatory().completions(), 0, "a produce to b woke a fetch of a");
    assert_eq!(purgatory().watched_partitions(), 1, "still parked on a");
    let produced: ProduceResponse =
        client.call(ApiKey::Produce, 9, &produce_request("a", 0, records(&[b"v"], false))).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let (response, waited) = poll.await.unwrap();
    assert_eq!(response.responses[0].partitions[0].high_watermark, 1);
    assert!(waited < Duration::from_secs(9), "the produce to a woke it: {waited:?}");
    assert_eq!(purgatory().completions(), 1);
    assert_eq!(server.broker.partition(&TopicPartition::new("a", 0)).unwrap().state.lock().high_watermark().0, 1);
    server.shutdown().await.unwrap();
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_fetches_from_a_client_that_does_not_read_are_answered_in_turns() {
    use tokio::io::AsyncWriteExt;

    let dir = tempfile::tempdir().unwrap();
    let server = spawn(dir.path(), &[]).await;
    let addr = server.local_addrs()[0];
    let mut client = Client::connect(addr).await;
    create(&mut client, vec![topic("wide", 1, &[])]).await;
    let value = vec![b'y'; 512 * 1024];
    for _ in 0..4 {
        let produced: ProduceResponse =
            client.call(ApiKey::Produce, 9, &produce_request("wide", 0, records(&[&value], false))).await;
        assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    }
    // 400 fetches of 2 MiB each, written at once, and no answer read: held in the broker,
    // they would be 800 MiB.
    let mut request = fetch_request("wide", 0, 0, 0, 0);
    request.topics[0].partitions[0].partition_max_bytes = 4 << 20;
    let mut frames = Vec::new();
    for correlation in 0..400 {
        frames.extend(common::frame(ApiKey::Fetch, 12, correlation, &request));
    }
    let before = rss();
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(2), raw.write_all(&frames)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss().saturating_sub(before);
    assert!(grown < 200 << 20, "the broker held {} MiB for one client", grown >> 20);
    drop(raw);
    server.shutdown().await.unwrap();
}
