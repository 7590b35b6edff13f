//! The node in its cluster: the route to the active controller ([`channel`]), the
//! controller's services to brokers ([`service`]), a broker's registration and heartbeats
//! ([`lifecycle`]), and the gRPC server of the controller listener that carries them and the
//! quorum's own messages.

pub(crate) mod channel;
pub(crate) mod lifecycle;
pub(crate) mod service;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fjord_protocol::cluster as pb;
use tokio::net::TcpListener;
use tonic::transport::Channel;

use crate::broker::Broker;
use crate::metadata::raft::QuorumService;

/// The largest message a node-to-node call carries either way: a quorum fetch of
/// `fetch_max_bytes` (8 MiB) and a forwarded request of `socket.request.max.bytes` (100 MiB)
/// fit. tonic checks a message's declared length against it before buffering the message.
pub(crate) const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// A lazily connected channel to another node's controller listener.
pub(crate) fn connect(endpoint: &fjord_quorum::Endpoint) -> Option<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .ok()?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy();
    Some(channel)
}

/// Serves the quorum and controller services on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    broker: &Arc<Broker>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let quorum = pb::quorum_server::QuorumServer::new(QuorumService { quorum: broker.quorum().clone() })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let controller =
        pb::controller_server::ControllerServer::new(service::ControllerService { broker: Arc::downgrade(broker) })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(quorum)
        .add_service(controller)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
