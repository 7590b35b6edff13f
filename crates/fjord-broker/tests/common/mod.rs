//! Shared by the broker's integration tests: an in-process broker on an ephemeral port and a
//! raw-request client.

#![allow(dead_code, unreachable_pub)]

use bytes::{Buf, BytesMut};
use fjord_broker::{BrokerConfig, RunningServer, Server};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw Kafka-protocol connection.
pub struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    /// Connects.
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        Client { stream: TcpStream::connect(addr).await.unwrap(), correlation: 0 }
    }

    /// Sends one request and decodes its response.
    pub async fn call<R: Decodable>(&mut self, key: ApiKey, version: i16, body: &impl Encodable) -> R {
        self.correlation += 1;
        self.stream.write_all(&frame(key, version, self.correlation, body)).await.unwrap();
        let size = self.stream.read_i32().await.unwrap() as usize;
        let mut response = vec![0; size];
        self.stream.read_exact(&mut response).await.unwrap();
        let mut response = bytes::Bytes::from(response);
        let header_version = if key == ApiKey::ApiVersions { 0 } else { key.response_header_version(version) };
        let header = ResponseHeader::decode(&mut response, header_version).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        let decoded = R::decode(&mut response, version).unwrap();
        assert!(!response.has_remaining(), "trailing bytes in the response");
        decoded
    }
}

/// A request as it goes on the wire: size prefix, header, body.
pub fn frame(key: ApiKey, version: i16, correlation: i32, body: &impl Encodable) -> Vec<u8> {
    let mut frame = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("broker-test")));
    header.encode(&mut frame, key.request_header_version(version)).unwrap();
    body.encode(&mut frame, version).unwrap();
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    out
}

/// A broker on an ephemeral port with its data in `dir`, plus `extra` properties.
pub fn config(dir: &std::path::Path, extra: &[(&str, &str)]) -> BrokerConfig {
    let mut props = std::collections::BTreeMap::new();
    props.insert("listeners".to_owned(), "PLAINTEXT://127.0.0.1:0".to_owned());
    props.insert("log.dirs".to_owned(), dir.display().to_string());
    props.insert("num.partitions".to_owned(), "2".to_owned());
    for (k, v) in extra {
        props.insert((*k).to_owned(), (*v).to_owned());
    }
    BrokerConfig::from_properties(props).unwrap()
}

/// A topic name.
pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// A running broker: its address, the trigger that stops it, and its task.
pub type Running = (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>);

/// Starts a broker with data in `dir`.
pub async fn start(dir: &std::path::Path) -> Running {
    start_with(dir, &[]).await
}

/// Starts a broker with data in `dir` and `extra` properties.
pub async fn start_with(dir: &std::path::Path, extra: &[(&str, &str)]) -> Running {
    let server = Server::start(config(dir, extra)).await.unwrap();
    let addr = server.local_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop, task)
}

/// A broker with data in `dir` and `extra` properties, serving on this runtime.
pub async fn spawn(dir: &std::path::Path, extra: &[(&str, &str)]) -> RunningServer {
    Server::start(config(dir, extra)).await.unwrap().spawn()
}

/// A Produce request (acks=all) of `records` to one partition.
pub fn produce_request(topic: &str, partition: i32, records: Vec<u8>) -> ProduceRequest {
    let data =
        produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records.into()));
    let topic = produce_request::TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![data]);
    ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![topic])
}

/// A Fetch request of one partition from `offset`.
pub fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32, min_bytes: i32) -> FetchRequest {
    let p = fetch_request::FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20);
    let t = fetch_request::FetchTopic::default().with_topic(name(topic)).with_partitions(vec![p]);
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![t])
}
