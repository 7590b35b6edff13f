//! One client connection: frames in, requests handled in order, responses out in the same
//! order (Kafka's `Processor`, with pipelining: a client may send many requests before reading).

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use fjord_protocol::{DecodeError, Outbox, decode_request, take_frame};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::handlers::{self, Outcome, RequestContext, unsupported_version_response};

/// Responses a connection may hold before it writes them and reads on: bounds what one
/// client's pipelined requests keep in memory at once (a Fetch response may be
/// `fetch.max.bytes` on its own; the limit lets one through).
const PIPELINED_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// Serves one connection until the client leaves, sends something unacceptable, or the broker
/// shuts down (checked between requests, so a request in progress is answered).
pub(crate) async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    listener: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let context = RequestContext { peer, listener };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut input = BytesMut::with_capacity(64 * 1024);
    // Responses go out with vectored writes; fetched batches are written from the buffers
    // they were read into, not copied into the response.
    let mut output = Outbox::with_capacity(64 * 1024);
    let max = broker.config.socket_request_max_bytes;
    loop {
        let mut close = false;
        let mut held_back = false;
        loop {
            if output.remaining() >= PIPELINED_OUTPUT_LIMIT {
                // A client that pipelines many requests gets their answers in turns: the rest
                // wait in the socket until these are written (Kafka mutes such a channel).
                held_back = true;
                break;
            }
            match take_frame(&mut input, max) {
                Ok(Some(frame)) => {
                    if !process(&broker, frame, &mut output, &context).await {
                        close = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(peer = %context.peer, error = %e, "closing connection");
                    close = true;
                    break;
                }
            }
        }
        if output.has_remaining() && writer.write_all_buf(&mut output).await.is_err() {
            return;
        }
        if close || *shutdown.borrow() {
            return;
        }
        if held_back {
            continue;
        }
        tokio::select! {
            read = reader.read_buf(&mut input) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Handles one frame, appending any response to `output`. Returns false to close.
async fn process(broker: &Arc<Broker>, frame: bytes::Bytes, output: &mut Outbox, context: &RequestContext) -> bool {
    let peer = &context.peer;
    let request = match decode_request(frame, &broker.versions) {
        Ok(request) => request,
        Err(DecodeError::UnsupportedVersion { api_key: ApiKey::ApiVersions, version, correlation_id }) => {
            tracing::debug!(%peer, version, "ApiVersions version not supported; answering with v0");
            let response = ResponseKind::ApiVersions(unsupported_version_response(&broker.versions));
            return encode(output, ApiKey::ApiVersions, 0, correlation_id, &response);
        }
        Err(e) => {
            tracing::info!(%peer, error = %e, "closing connection");
            return false;
        }
    };
    let (api_key, version, correlation_id) =
        (request.api_key, request.header.request_api_version, request.header.correlation_id);
    match handlers::handle(broker, request, context).await {
        Outcome::Respond(response) => encode(output, api_key, version, correlation_id, &response),
        Outcome::Silent => true,
        Outcome::Close => false,
    }
}

fn encode(output: &mut Outbox, api_key: ApiKey, version: i16, correlation_id: i32, response: &ResponseKind) -> bool {
    match output.push_response(api_key, version, correlation_id, response) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(?api_key, version, error = %e, "cannot encode response; closing connection");
            false
        }
    }
}
