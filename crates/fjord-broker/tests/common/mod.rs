//! Shared by the broker's integration tests: an in-process broker on an ephemeral port and a
//! raw-request client.

#![allow(dead_code, unreachable_pub)]

use bytes::{Buf, BytesMut};
use fjord_broker::{BrokerConfig, Server};
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
        let mut frame = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("broker-test")));
        header.encode(&mut frame, key.request_header_version(version)).unwrap();
        body.encode(&mut frame, version).unwrap();
        self.stream.write_all(&(frame.len() as i32).to_be_bytes()).await.unwrap();
        self.stream.write_all(&frame).await.unwrap();
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
