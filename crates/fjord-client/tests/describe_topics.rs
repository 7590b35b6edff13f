//! `Client::describe_topics` against an in-process broker behind a proxy that counts the
//! requests going through and can hide DescribeTopicPartitions from the broker's ApiVersions
//! answer: with it the topics come in pages by that API, without it by Metadata, and either
//! way they are the ones Metadata describes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{read_frame, start_broker};
use fjord_client::{Client, NewTopic};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const DESCRIBE_TOPIC_PARTITIONS: i16 = 75;

/// An ApiVersions v0 answer (size, correlation id, error code, then (key, min, max) entries)
/// without `key`.
fn without_api(frame: &[u8], key: i16) -> Vec<u8> {
    let count = i32::from_be_bytes(frame[10..14].try_into().unwrap()) as usize;
    let entries: Vec<&[u8]> =
        frame[14..14 + 6 * count].chunks(6).filter(|e| i16::from_be_bytes([e[0], e[1]]) != key).collect();
    let mut body = frame[4..10].to_vec();
    body.extend_from_slice(&(entries.len() as i32).to_be_bytes());
    body.extend(entries.concat());
    body.extend_from_slice(&frame[14 + 6 * count..]);
    [&(body.len() as i32).to_be_bytes()[..], &body].concat()
}

/// Forwards connections to `broker`, counting DescribeTopicPartitions requests; with `hide`,
/// the broker's first answer on each connection (ApiVersions) loses that API.
fn proxy(listener: TcpListener, broker: std::net::SocketAddr, hide: bool) -> Arc<AtomicUsize> {
    let counted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&counted);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (mut client_read, mut client_write) = client.into_split();
            let (mut upstream_read, mut upstream_write) = TcpStream::connect(broker).await.unwrap().into_split();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                while let Some(frame) = read_frame(&mut client_read).await {
                    if i16::from_be_bytes([frame[4], frame[5]]) == DESCRIBE_TOPIC_PARTITIONS {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    if upstream_write.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                let mut first = true;
                while let Some(frame) = read_frame(&mut upstream_read).await {
                    let frame = if first && hide { without_api(&frame, DESCRIBE_TOPIC_PARTITIONS) } else { frame };
                    first = false;
                    if client_write.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    counted
}

/// Describes every topic and one named topic through the proxy, 2 partitions a response;
/// returns what was described and how many DescribeTopicPartitions requests were sent.
async fn describe(hide: bool) -> (Vec<fjord_client::TopicInfo>, Vec<fjord_client::TopicInfo>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let advertised = format!("PLAINTEXT://{address}");
    let server = start_broker(dir.path(), &[("advertised.listeners", advertised.as_str())]).await;
    let requests = proxy(listener, server.local_addrs()[0], hide);
    let mut client = Client::connect(&address.to_string()).await.unwrap();
    let topic = |name: &str, partitions| NewTopic {
        name: name.to_owned(),
        partitions,
        replication_factor: 1,
        configs: Vec::new(),
    };
    client.create_topics(&[topic("wide", 5), topic("narrow", 1)]).await.unwrap();
    let metadata = client.topics(None).await.unwrap();
    let all = client.describe_topics_in_pages(None, 2).await.unwrap();
    assert_eq!(all, metadata, "the same topics, partitions and leaders as Metadata's");
    let one = client.describe_topics_in_pages(Some(&["wide"]), 2).await.unwrap();
    let missing = client.describe_topics(Some(&["absent"])).await.unwrap_err();
    assert!(matches!(missing, fjord_client::Error::Kafka { code: 3, .. }), "{missing:?}");
    server.shutdown().await.unwrap();
    (all, one, requests.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_described_in_pages_where_the_broker_offers_describe_topic_partitions() {
    let (all, one, requests) = describe(false).await;
    let partitions: Vec<(&str, i32)> =
        all.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.as_str(), p.partition))).collect();
    assert_eq!(partitions, [("narrow", 0), ("wide", 0), ("wide", 1), ("wide", 2), ("wide", 3), ("wide", 4)]);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].partitions.len(), 5, "one topic cut over three responses, joined again");
    // All: 3 responses of 2 partitions; one topic: 3; the missing one: 1.
    assert_eq!(requests, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_describe_topic_partitions_topics_are_described_by_metadata() {
    let (all, one, requests) = describe(true).await;
    assert_eq!((all.len(), one[0].partitions.len()), (2, 5));
    assert_eq!(requests, 0);
}
