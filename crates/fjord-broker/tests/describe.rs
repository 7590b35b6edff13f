//! The describing APIs any broker answers about itself and its metadata, as Kafka answers
//! them: DescribeLogDirs (sizes of hosted replicas, the file system's capacity) and
//! DescribeTopicPartitions (KIP-966's paged topic description).

mod common;

use common::{Client, name, produce_request, spawn};
use fjord_log::BatchBuilder;
use kafka_protocol::messages::*;

/// A broker with data in `dir`, a client, and `topics` (name, partitions) created.
async fn broker_with(dir: &std::path::Path, topics: &[(&str, i32)]) -> (fjord_broker::RunningServer, Client) {
    let server = spawn(dir, &[]).await;
    let mut client = Client::connect(server.local_addrs()[0]).await;
    for &(topic, partitions) in topics {
        let topic = create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1);
        let created: CreateTopicsResponse =
            client.call(ApiKey::CreateTopics, 7, &CreateTopicsRequest::default().with_topics(vec![topic])).await;
        assert_eq!(created.topics[0].error_code, 0);
    }
    (server, client)
}

async fn produce(client: &mut Client, topic: &str, partition: i32, value: &[u8]) {
    let mut batch = BatchBuilder::new();
    batch.push(fjord_broker::Broker::now(), None, Some(value), &[]);
    let produced: ProduceResponse =
        client.call(ApiKey::Produce, 9, &produce_request(topic, partition, batch.build().unwrap())).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
}

fn log_dirs_request(topics: Option<&[(&str, &[i32])]>) -> DescribeLogDirsRequest {
    DescribeLogDirsRequest::default().with_topics(topics.map(|topics| {
        topics
            .iter()
            .map(|(topic, partitions)| {
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(partitions.to_vec())
            })
            .collect()
    }))
}

/// (topic, partition, size) of every partition described, in order.
fn sizes(result: &describe_log_dirs_response::DescribeLogDirsResult) -> Vec<(String, i32, i64)> {
    result
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index, p.partition_size)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_log_dirs_reports_each_hosted_replica_and_the_file_systems_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut client) = broker_with(dir.path(), &[("sized", 2), ("other", 1)]).await;
    produce(&mut client, "sized", 1, &[b'x'; 1000]).await;

    let all: DescribeLogDirsResponse = client.call(ApiKey::DescribeLogDirs, 4, &log_dirs_request(None)).await;
    assert_eq!(all.error_code, 0);
    assert_eq!(all.results.len(), 1, "one log directory");
    let result = &all.results[0];
    assert_eq!(result.error_code, 0);
    assert_eq!(result.log_dir.as_str(), std::path::absolute(dir.path()).unwrap().to_str().unwrap());
    let described = sizes(result);
    let names: Vec<(&str, i32)> = described.iter().map(|(t, p, _)| (t.as_str(), *p)).collect();
    assert_eq!(names, [("other", 0), ("sized", 0), ("sized", 1)], "null asks for every hosted partition");
    let size = |t: &str, p: i32| described.iter().find(|d| d.0 == t && d.1 == p).unwrap().2;
    assert_eq!(size("sized", 0), 0);
    assert!(size("sized", 1) > 1000, "the batch's bytes on disk: {}", size("sized", 1));
    assert!(result.topics.iter().flat_map(|t| &t.partitions).all(|p| p.offset_lag == 0 && !p.is_future_key));
    assert!(result.total_bytes > 0 && (0..=result.total_bytes).contains(&result.usable_bytes));

    // Named partitions only; unknown topics and partitions are left out, as Kafka leaves them.
    let some: DescribeLogDirsResponse = client
        .call(ApiKey::DescribeLogDirs, 4, &log_dirs_request(Some(&[("sized", &[1, 7]), ("nowhere", &[0])])))
        .await;
    assert_eq!(sizes(&some.results[0]), [("sized".to_owned(), 1, size("sized", 1))]);

    // v1 has neither the capacity nor the top-level error code; the rest is the same.
    let v1: DescribeLogDirsResponse = client.call(ApiKey::DescribeLogDirs, 1, &log_dirs_request(None)).await;
    assert_eq!(sizes(&v1.results[0]), described);
    assert_eq!((v1.results[0].total_bytes, v1.results[0].usable_bytes), (-1, -1), "not in v1");
    server.shutdown().await.unwrap();
}

fn topic_partitions_request(
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsRequest {
    DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| describe_topic_partitions_request::TopicRequest::default().with_name(name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(topic, partition)| {
            describe_topic_partitions_request::Cursor::default()
                .with_topic_name(name(topic))
                .with_partition_index(partition)
        }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_topic_partitions_pages_through_topics_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut client) = broker_with(dir.path(), &[("beta", 3), ("alpha", 2)]).await;

    // Every topic, two partitions a page: the cursor moves through alpha, then beta.
    let mut pages = Vec::new();
    let mut cursor: Option<(String, i32)> = None;
    loop {
        let request = topic_partitions_request(&[], 2, cursor.as_ref().map(|(t, p)| (t.as_str(), *p)));
        let page: DescribeTopicPartitionsResponse = client.call(ApiKey::DescribeTopicPartitions, 0, &request).await;
        for topic in &page.topics {
            assert_eq!(topic.error_code, 0);
            assert_ne!(topic.topic_id, uuid::Uuid::nil());
            assert_eq!(
                topic.topic_authorized_operations, 3576,
                "every topic operation, as Kafka without an authorizer"
            );
            for p in &topic.partitions {
                assert_eq!((p.leader_id, p.leader_epoch), (BrokerId(1), 0));
                assert_eq!((p.replica_nodes.clone(), p.isr_nodes.clone()), (vec![BrokerId(1)], vec![BrokerId(1)]));
                assert!(p.offline_replicas.is_empty());
                assert_eq!(p.eligible_leader_replicas.as_deref(), Some(&[][..]));
                pages.push(format!("{}-{}", topic.name.as_ref().unwrap().0, p.partition_index));
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some((next.topic_name.0.to_string(), next.partition_index)),
            None => break,
        }
        assert!(pages.len() <= 5, "the cursor must move: {pages:?}");
    }
    assert_eq!(pages, ["alpha-0", "alpha-1", "beta-0", "beta-1", "beta-2"]);

    // Named topics: one missing is reported, not skipped; a cursor outside them is refused.
    let named: DescribeTopicPartitionsResponse =
        client.call(ApiKey::DescribeTopicPartitions, 0, &topic_partitions_request(&["nope", "beta"], 2000, None)).await;
    let codes: Vec<(String, i16, usize)> = named
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code, t.partitions.len()))
        .collect();
    assert_eq!(codes, [("beta".to_owned(), 0, 3), ("nope".to_owned(), 3, 0)], "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(named.next_cursor, None);
    let stray = topic_partitions_request(&["beta"], 2000, Some(("alpha", 0)));
    let refused: DescribeTopicPartitionsResponse = client.call(ApiKey::DescribeTopicPartitions, 0, &stray).await;
    assert_eq!(refused.topics.iter().map(|t| t.error_code).collect::<Vec<_>>(), [42], "INVALID_REQUEST");
    server.shutdown().await.unwrap();
}
