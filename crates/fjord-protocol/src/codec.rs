//! Decoding requests and encoding responses (Kafka's `RequestContext`/`RequestChannel` parsing).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::guard;
use crate::versions::VersionTable;

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    /// The API.
    pub api_key: ApiKey,
    /// The header: version, correlation id, client id.
    pub header: RequestHeader,
    /// The body.
    pub body: RequestKind,
}

/// Why a frame did not yield a request. Every variant but `UnsupportedVersion` of ApiVersions
/// means the connection is closed, as Kafka closes it.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than a request header's fixed part.
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    /// An API key Kafka does not define, or Fjord has not enabled.
    #[error("unknown or disabled API key {0}")]
    UnknownApiKey(i16),
    /// A version outside the advertised range. For ApiVersions the broker still answers (with
    /// a v0 response carrying UNSUPPORTED_VERSION), so the correlation id is kept.
    #[error("unsupported version {version} of {api_key:?}")]
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
        /// The version asked for.
        version: i16,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// Bytes that do not decode as the header or body they claim to be.
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        /// The API.
        api_key: ApiKey,
        /// Its version.
        version: i16,
        /// What failed.
        reason: String,
    },
}

/// Decodes one request frame (the bytes after the length prefix).
///
/// The body is checked against its layout before the codec sees it, so no length prefix can
/// make the decoder allocate more than the frame holds.
pub fn decode_request(frame: Bytes, versions: &VersionTable) -> Result<Request, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|()| DecodeError::UnknownApiKey(raw_key))?;
    if versions.get(api_key).is_none() {
        return Err(DecodeError::UnknownApiKey(raw_key));
    }
    // Versions advertised but refused (Produce v0-2) close the connection as Kafka does; only
    // ApiVersions answers a version it does not serve.
    if !versions.serves(api_key, version) {
        return Err(DecodeError::UnsupportedVersion { api_key, version, correlation_id });
    }
    let malformed = |reason: String| DecodeError::Malformed { api_key, version, reason };
    let mut rest = frame;
    let header = RequestHeader::decode(&mut rest, api_key.request_header_version(version))
        .map_err(|e| malformed(format!("header: {e}")))?;
    if let Some(schema) = guard::schema(api_key) {
        guard::check(schema, version, &rest).map_err(|e| malformed(e.to_string()))?;
    }
    let body = RequestKind::decode(api_key, &mut rest, version).map_err(|e| malformed(format!("{e:#}")))?;
    Ok(Request { api_key, header, body })
}

/// The response header version: ApiVersions always answers with v0 (clients parse it before
/// they know what the broker supports).
fn response_header_version(api_key: ApiKey, version: i16) -> i16 {
    if api_key == ApiKey::ApiVersions { 0 } else { api_key.response_header_version(version) }
}

/// Encodes a response header.
pub(crate) fn encode_header<B: ByteBufMut>(
    out: &mut B,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<(), String> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header.encode(out, response_header_version(api_key, version)).map_err(|e| format!("response header: {e}"))
}

/// What a response that failed to encode says about it.
pub(crate) fn body_error(api_key: ApiKey, version: i16, e: impl std::fmt::Display) -> String {
    format!("{api_key:?} v{version} response: {e:#}")
}

/// Encodes a response frame (length prefix, header, body) into `out`.
pub fn encode_response_into(
    out: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<(), String> {
    let start = out.len();
    out.put_i32(0);
    encode_header(out, api_key, version, correlation_id)?;
    response.encode(out, version).map_err(|e| body_error(api_key, version, e))?;
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Encodes a response frame into a new buffer.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<Bytes, String> {
    let mut out = BytesMut::new();
    encode_response_into(&mut out, api_key, version, correlation_id, response)?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataResponse};
    use kafka_protocol::protocol::StrBytes;

    fn frame(key: ApiKey, version: i16, request: &RequestKind) -> Bytes {
        let mut out = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(77)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        header.encode(&mut out, key.request_header_version(version)).unwrap();
        request.encode(&mut out, version).unwrap();
        out.freeze()
    }

    fn table() -> VersionTable {
        VersionTable::new(&[ApiKey::ApiVersions, ApiKey::Metadata, ApiKey::Produce])
    }

    #[test]
    fn requests_decode_with_their_headers() {
        let request = RequestKind::ApiVersions(ApiVersionsRequest::default());
        let decoded = decode_request(frame(ApiKey::ApiVersions, 3, &request), &table()).unwrap();
        assert_eq!(decoded.api_key, ApiKey::ApiVersions);
        assert_eq!(decoded.header.correlation_id, 77);
        assert_eq!(decoded.header.client_id.as_deref(), Some("test"));
    }

    #[test]
    fn bad_frames_are_refused() {
        let request = RequestKind::ApiVersions(ApiVersionsRequest::default());
        let mut unknown = frame(ApiKey::ApiVersions, 3, &request).to_vec();
        unknown[0..2].copy_from_slice(&9999i16.to_be_bytes());
        assert!(matches!(decode_request(unknown.into(), &table()), Err(DecodeError::UnknownApiKey(9999))));
        let mut future = frame(ApiKey::ApiVersions, 3, &request).to_vec();
        future[2..4].copy_from_slice(&99i16.to_be_bytes());
        assert!(matches!(
            decode_request(future.into(), &table()),
            Err(DecodeError::UnsupportedVersion { correlation_id: 77, version: 99, .. })
        ));
        // Produce v2 is advertised but refused.
        let mut old = frame(ApiKey::ApiVersions, 0, &request).to_vec();
        old[0..2].copy_from_slice(&0i16.to_be_bytes());
        old[2..4].copy_from_slice(&2i16.to_be_bytes());
        assert!(matches!(decode_request(old.into(), &table()), Err(DecodeError::UnsupportedVersion { .. })));
        assert!(matches!(decode_request(Bytes::from_static(b"\x00\x03"), &table()), Err(DecodeError::TooShort(2))));
        let garbage = Bytes::from_static(b"\x00\x03\x00\x05\x00\x00\x00\x01\xff\xff\xff\xff\xff");
        assert!(matches!(decode_request(garbage, &table()), Err(DecodeError::Malformed { .. })));
    }

    #[test]
    fn responses_carry_length_and_header() {
        let response = ResponseKind::Metadata(MetadataResponse::default());
        let bytes = encode_response(ApiKey::Metadata, 9, 5, &response).unwrap();
        assert_eq!(i32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize, bytes.len() - 4);
        assert_eq!(i32::from_be_bytes(bytes[4..8].try_into().unwrap()), 5);
        assert_eq!(bytes[8], 0, "flexible response header: empty tagged fields");
    }
}
