//! One broker connection: version negotiation, then request/response in order.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Error;

/// The largest response accepted (Kafka's `fetch.max.bytes` default plus headroom); a larger
/// length prefix is refused before anything is allocated.
const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

/// A connection to one broker.
#[derive(Debug)]
pub struct Connection {
    address: String,
    stream: TcpStream,
    client_id: StrBytes,
    correlation_id: i32,
    timeout: Duration,
    /// API key -> the broker's (min, max) versions.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `address` (`host:port`) and learns the versions the broker supports.
    pub async fn connect(address: &str, client_id: &str, timeout: Duration) -> Result<Connection, Error> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| Error::Timeout(format!("connecting to {address}")))?
            .map_err(|source| Error::Io { context: format!("cannot connect to {address}"), source })?;
        let _ = stream.set_nodelay(true);
        let mut connection = Connection {
            address: address.to_owned(),
            stream,
            client_id: StrBytes::from_string(client_id.to_owned()),
            correlation_id: 0,
            timeout,
            versions: HashMap::new(),
        };
        // v0 is understood by every broker; its answer lists the rest.
        let versions: ApiVersionsResponse = connection.send(&ApiVersionsRequest::default(), 0).await?;
        Error::check(versions.error_code, || format!("ApiVersions from {address}"))?;
        connection.versions = versions.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(connection)
    }

    /// The address this connection went to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The highest version of `R` both this client and the broker support.
    pub fn version_for<R: Request>(&self) -> Result<i16, Error> {
        negotiate::<R>(&self.versions, &self.address, None)
    }

    /// Sends `request` at the negotiated version and returns the response and that version.
    pub async fn call<R: Request>(&mut self, request: &R) -> Result<(R::Response, i16), Error> {
        let version = self.version_for::<R>()?;
        Ok((self.send(request, version).await?, version))
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, Error> {
        self.send_within(request, version, self.timeout).await
    }

    /// As [`Connection::send`], waiting up to `timeout` (JoinGroup waits out a rebalance).
    pub async fn send_within<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, Error> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, self.correlation_id, &self.client_id)?;
        let address = self.address.clone();
        let exchange = async {
            self.stream.write_all(&frame).await?;
            read_frame(&mut self.stream).await
        };
        let body = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::Timeout(format!("waiting for {} from {address}", api_name(R::KEY))))?
            .map_err(|source| Error::Io { context: format!("{} to {address}", api_name(R::KEY)), source })?;
        decode_response::<R>(body, version, self.correlation_id, &address)
    }

    /// The connection's parts, for a connection of another shape to take over (the
    /// pipelined one).
    pub(crate) fn into_parts(self) -> ConnectionParts {
        ConnectionParts {
            address: self.address,
            stream: self.stream,
            client_id: self.client_id,
            timeout: self.timeout,
            versions: self.versions,
        }
    }
}

/// The highest version of `R` both sides support, given the broker's advertised ranges.
/// What a negotiated connection is made of.
#[derive(Debug)]
pub(crate) struct ConnectionParts {
    pub(crate) address: String,
    pub(crate) stream: TcpStream,
    pub(crate) client_id: StrBytes,
    pub(crate) timeout: Duration,
    pub(crate) versions: HashMap<i16, (i16, i16)>,
}

pub(crate) fn negotiate<R: Request>(
    versions: &HashMap<i16, (i16, i16)>,
    address: &str,
    cap: Option<i16>,
) -> Result<i16, Error> {
    let ours = R::VERSIONS;
    let our_max = cap.map_or(ours.max, |c| c.min(ours.max));
    let key = api_name(R::KEY);
    let &(min, max) =
        versions.get(&R::KEY).ok_or_else(|| Error::Protocol(format!("{address} does not support {key}")))?;
    let version = max.min(our_max);
    if version < min.max(ours.min) {
        return Err(Error::Protocol(format!(
            "{address} supports {key} v{min}-{max}, this client v{}-{our_max}",
            ours.min
        )));
    }
    Ok(version)
}

/// Kafka's name for an API key (`Produce`), or its number.
pub(crate) fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("API {key}"), |k| format!("{k:?}"))
}

/// A request frame: the size prefix, the header and the body.
pub(crate) fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
) -> Result<BytesMut, Error> {
    let key = ApiKey::try_from(R::KEY).map_err(|_| Error::Protocol(format!("unknown API key {}", R::KEY)))?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let mut frame = BytesMut::with_capacity(256);
    frame.extend_from_slice(&[0; 4]);
    let encoded = header
        .encode(&mut frame, key.request_header_version(version))
        .and_then(|()| request.encode(&mut frame, version));
    encoded.map_err(|e| Error::Protocol(format!("cannot encode {key:?} v{version}: {e}")))?;
    let size = i32::try_from(frame.len() - 4).map_err(|_| Error::Protocol(format!("{key:?} request too large")))?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(frame)
}

/// Reads one size-prefixed frame, refusing a size out of bounds before allocating.
pub(crate) async fn read_frame<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Bytes> {
    let size = stream.read_i32().await?;
    let size = usize::try_from(size).ok().filter(|&s| s <= MAX_RESPONSE_BYTES).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("response size {size} out of bounds"))
    })?;
    let mut body = vec![0; size];
    stream.read_exact(&mut body).await?;
    Ok(Bytes::from(body))
}

/// Decodes the response to request `correlation_id` of type `R` at `version`.
pub(crate) fn decode_response<R: Request>(
    mut body: Bytes,
    version: i16,
    correlation_id: i32,
    address: &str,
) -> Result<R::Response, Error> {
    let key = ApiKey::try_from(R::KEY).map_err(|_| Error::Protocol(format!("unknown API key {}", R::KEY)))?;
    // ApiVersions responses always use header v0, so an old broker can answer any version.
    let header_version = if key == ApiKey::ApiVersions { 0 } else { key.response_header_version(version) };
    let header = ResponseHeader::decode(&mut body, header_version)
        .map_err(|e| Error::Protocol(format!("bad {key:?} response header from {address}: {e}")))?;
    if header.correlation_id != correlation_id {
        return Err(Error::Protocol(format!(
            "{address} answered correlation id {} to request {correlation_id}",
            header.correlation_id
        )));
    }
    let response = R::Response::decode(&mut body, version)
        .map_err(|e| Error::Protocol(format!("bad {key:?} v{version} response from {address}: {e}")))?;
    if body.has_remaining() {
        return Err(Error::Protocol(format!("{} trailing bytes in {key:?} response", body.remaining())));
    }
    Ok(response)
}
