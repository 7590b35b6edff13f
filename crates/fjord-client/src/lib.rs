//! A small async Kafka-protocol client: what the `fjord` command line needs, usable on its own.
//!
//! [`Connection`] is one broker connection: it negotiates API versions on connect (ApiVersions)
//! and sends any `kafka-protocol` request at the highest version both sides support, checking
//! the response size before reading it. [`Client`] bootstraps from a list of addresses, learns
//! the cluster from Metadata, routes requests to partition leaders and group coordinators, and
//! offers the look-ups tools need: topics, groups, committed offsets, end offsets, and consumer
//! lag ([`Client::group_lag`], what `kafka-consumer-groups --describe` shows).
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
//! It depends only on `fjord-types` and `fjord-protocol` among Fjord's crates.

#![warn(missing_docs)]

mod admin;
mod client;
mod connection;
mod error;
mod groups;

pub use admin::{ConfigEntry, NewTopic};
pub use client::{Client, PartitionInfo, TopicInfo};
pub use connection::Connection;
pub use error::Error;
pub use groups::{GroupDescription, GroupListing, GroupMember, PartitionLag};
pub use kafka_protocol;
