//! Follower replication between brokers: the leader's side of a replica fetch ([`leader`],
//! the `Replica` gRPC service, served on the inter-broker listener), the followers' fetch
//! tasks ([`fetcher`], Kafka's `ReplicaFetcherManager`), and the ISR changes a leader asks
//! the controller for ([`isr`], AlterPartition). The rules themselves live in
//! `fjord-replication`'s `Partition` and `ReplicaState`; this module moves bytes and calls.

pub(crate) mod fetcher;
pub(crate) mod isr;
pub(crate) mod leader;

use tokio::net::TcpStream;

/// Whether a new connection on the inter-broker listener speaks HTTP/2 (gRPC from another
/// broker) rather than the Kafka protocol. A Kafka request starts with its size, and "PRI "
/// read as one is over a gigabyte, which no Kafka client sends; a client that sends nothing
/// for a while is left to the Kafka connection, which has its own idle rules.
pub(crate) async fn speaks_grpc(stream: &TcpStream) -> bool {
    const PREFACE: &[u8; 4] = b"PRI ";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut first = [0u8; 4];
    loop {
        match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(n)) if n >= PREFACE.len() => return &first == PREFACE,
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(n)) => {
                if first[..n] != PREFACE[..n] {
                    return false;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
    }
}
