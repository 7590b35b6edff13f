//! A small async Kafka-protocol client: what the `fjord` command line needs, usable on its own.
//!
//! - [`Connection`] is one broker connection: it negotiates API versions on connect
//!   (ApiVersions) and sends any `kafka-protocol` request at the highest version both sides
//!   support, checking the response size before reading it.
//! - [`Client`] bootstraps from a list of addresses, learns the cluster from Metadata, routes
//!   requests to partition leaders and group coordinators, and offers the admin calls and
//!   look-ups tools need: topics, configs, groups, committed offsets, end offsets, and consumer
//!   lag ([`Client::group_lag`], what `kafka-consumer-groups --describe` shows), leader
//!   elections and partition reassignments
//!   ([`Client::alter_partition_reassignments`], [`Client::list_partition_reassignments`]).
//! - [`Producer`] batches records per partition (`batch.size`, `linger.ms`, any codec), picks
//!   partitions as Kafka's default partitioner does (murmur2 of the key), keeps up to
//!   `max.in.flight.requests.per.connection` Produce requests in flight per broker, and retries
//!   retriable errors after refreshing metadata. It is idempotent by default
//!   (`enable.idempotence`, as Kafka's producer since 3.0): a retry is never written twice and
//!   a partition's records land in the order they were sent.
//! - [`Consumer`] fetches from chosen partitions or as a consumer-group member (range
//!   assignor, heartbeats, commits), handing out records without copying them.
//!
//! Neither producer nor consumer starts background work of its own beyond one task per
//! pipelined connection that reads responses; the caller's calls drive them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fjord_client::Error> {
//! let mut client = fjord_client::Client::connect("127.0.0.1:9092").await?;
//! for row in client.group_lag("my-group").await? {
//!     println!("{} {} lag {:?}", row.topic, row.partition, row.lag);
//! }
//! # Ok(()) }
//! ```
//!
//! It depends on `fjord-types`, `fjord-protocol` and `fjord-log` (for the record batch
//! format) among Fjord's crates.

#![warn(missing_docs)]

mod admin;
mod client;
mod cluster;
mod connection;
mod consumer;
mod error;
mod groups;
mod pipeline;
mod producer;
mod reassign;

pub use admin::{ConfigEntry, NewTopic};
pub use client::{Client, PartitionInfo, TopicInfo};
pub use cluster::{BrokerDescription, ClusterDescription, ElectionResult, ElectionType, QuorumInfo, QuorumReplica};
pub use connection::Connection;
pub use consumer::{ConsumedRecord, Consumer, ConsumerConfig, OffsetReset, StartOffset};
pub use error::Error;
pub use fjord_log::{Compression, Header, Record, TimestampType};
pub use groups::{GroupDescription, GroupListing, GroupMember, PartitionLag};
pub use producer::{Delivery, Message, Producer, ProducerConfig, murmur2};
pub use reassign::{OngoingReassignment, ReassignmentResult};
pub use {fjord_log, kafka_protocol};
