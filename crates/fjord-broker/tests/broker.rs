//! The broker in-process on an ephemeral port, driven with raw Kafka requests: what a client
//! writes comes back, a graceful shutdown leaves clean logs, and a restart keeps everything.

mod common;

use std::time::Duration;

use common::{Client, fetch_request, name, produce_request, start};
use fjord_log::{BatchBuilder, Batches};
use fjord_types::Timestamp;
use kafka_protocol::messages::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_fetch_shutdown_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, stop, task) = start(dir.path()).await;
    let mut client = Client::connect(addr).await;

    let versions: ApiVersionsResponse = client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    let produce = versions.api_keys.iter().find(|k| k.api_key == ApiKey::Produce as i16).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 11));
    let join = versions.api_keys.iter().find(|k| k.api_key == ApiKey::JoinGroup as i16).unwrap();
    assert_eq!((join.min_version, join.max_version), (0, 9));

    let topic = create_topics_request::CreatableTopic::default()
        .with_name(name("events"))
        .with_num_partitions(-1)
        .with_replication_factor(-1);
    let created: CreateTopicsResponse =
        client.call(ApiKey::CreateTopics, 7, &CreateTopicsRequest::default().with_topics(vec![topic])).await;
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(created.topics[0].num_partitions, 2, "num.partitions applies");

    // A long poll waits for data and wakes when it arrives.
    let mut poller = Client::connect(addr).await;
    let poll = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let response: FetchResponse = poller.call(ApiKey::Fetch, 12, &fetch_request("events", 1, 0, 5_000, 1)).await;
        (response, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut batch = BatchBuilder::new();
    for i in 0..10 {
        batch.push(Timestamp(fjord_broker::Broker::now().0), Some(format!("k{i}").as_bytes()), Some(b"v"), &[]);
    }
    let bytes = batch.build().unwrap();
    let produced: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_request("events", 1, bytes.clone())).await;
    let partition = &produced.responses[0].partition_responses[0];
    assert_eq!((partition.error_code, partition.base_offset), (0, 0));
    let (polled, waited) = poll.await.unwrap();
    let data = &polled.responses[0].partitions[0];
    assert_eq!(data.high_watermark, 10);
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(4), "woke after {waited:?}");
    let records = data.records.clone().unwrap();
    assert_eq!(Batches::new(&records).map(|b| b.unwrap().record_count()).sum::<i32>(), 10);

    // An empty partition answers empty bytes, not null.
    let empty: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch_request("events", 0, 0, 0, 0)).await;
    assert_eq!(empty.responses[0].partitions[0].records.as_deref(), Some(&[][..]));

    // Graceful shutdown: logs closed cleanly, checkpoints written.
    drop(client);
    stop.send(()).unwrap();
    task.await.unwrap();
    assert!(dir.path().join("events-1").join(fjord_log::CLEAN_SHUTDOWN_FILE).exists());
    let checkpoint = std::fs::read_to_string(dir.path().join("replication-offset-checkpoint")).unwrap();
    assert!(checkpoint.contains("events 1 10"), "{checkpoint}");

    // Restart: the topic and its records are back and offsets continue.
    let (addr, stop, task) = start(dir.path()).await;
    let mut client = Client::connect(addr).await;
    let fetched: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch_request("events", 1, 0, 0, 0)).await;
    assert_eq!(fetched.responses[0].partitions[0].records.as_deref(), Some(&records[..]));
    let produced: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_request("events", 1, bytes)).await;
    assert_eq!(produced.responses[0].partition_responses[0].base_offset, 10);
    stop.send(()).unwrap();
    task.await.unwrap();
}
