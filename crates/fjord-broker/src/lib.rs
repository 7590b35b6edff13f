//! The Fjord broker: the thin composition of Fjord's crates behind the Kafka protocol.
//!
//! It reads `server.properties` ([`BrokerConfig`], Kafka's names and defaults), owns the data
//! directory ([`Broker`]: `meta.properties`, the metadata log, the partitions), accepts
//! connections ([`Server`]) and routes each request to a handler that calls into
//! `fjord-metadata` (topics, configs), `fjord-replication` (produce, fetch, offsets),
//! `fjord-coordinator` (consumer groups, hosted on `__consumer_offsets`) and `fjord-log`. Mapping the layers' errors to Kafka error codes happens here, in one module.
//!
//! Nothing depends on this crate.

#![warn(missing_docs)]

mod broker;
mod cleaner;
mod config;
mod connection;
mod error;
mod errors;
mod groups;
mod handlers;
pub mod properties;
mod server;
mod storage;

pub use broker::{Broker, ENABLED_APIS, PartitionHandle};
pub use config::{BrokerConfig, ConfigError, Listener};
pub use error::{Error, Result};
pub use groups::{Groups, OFFSETS_TOPIC};
pub use server::{RunningServer, Server};
