//! The Kafka wire protocol, as Fjord speaks it.
//!
//! Frames are a 4-byte big-endian length and a body; a request body is a header (API key,
//! version, correlation id, client id, tagged fields) and the request. This crate splits frames
//! off a byte stream with the size limit checked *before* anything is allocated
//! ([`frame`]), knows which API versions Fjord supports ([`versions`], Kafka 4.1's floor with
//! Kafka's own exceptions), guards the decoder against hostile length prefixes ([`guard`]), and
//! decodes requests and encodes responses with the `kafka-protocol` crate ([`codec`]). Record
//! batches pass through as bytes, untouched: an [`Outbox`] ([`outbox`]) queues response frames
//! for vectored writes and keeps fetched batches by reference instead of copying them.
//!
//! It mirrors Kafka's `NetworkReceive`/`RequestHeader`/`ApiVersionsResponse` logic and does no
//! I/O of its own. [`cluster`] holds the protobuf messages and gRPC service definitions of the
//! node-to-node RPCs, generated from `proto/cluster.proto` at build time (tonic's generated
//! transports do the I/O, in the broker). It depends only on `fjord-types` among Fjord's crates.

#![warn(missing_docs)]

pub mod cluster;
pub mod codec;
pub mod frame;
pub mod guard;
pub mod outbox;
pub mod versions;

/// Fjord's additions to Kafka's messages, in tagged fields that clients which do not know them
/// skip (the protocol's own way to extend a flexible message).
pub mod extensions {
    /// In each DescribeCluster broker: its broker epoch, an 8-byte big-endian integer (the
    /// offset of its registration in the metadata log).
    pub const DESCRIBE_CLUSTER_BROKER_EPOCH_TAG: i32 = 10_000;
}

pub use codec::{DecodeError, Request, decode_request, encode_response, encode_response_into};
pub use frame::{DEFAULT_MAX_REQUEST_BYTES, FrameError, take_frame};
pub use kafka_protocol;
pub use outbox::{Outbox, SPLICE_MIN_BYTES};
pub use versions::{ApiRange, VersionTable};
