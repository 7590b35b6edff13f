//! The Fjord broker: the thin composition of Fjord's crates behind the Kafka protocol, as a
//! library (the `fjord` binary runs it; an application can embed it with [`Server::spawn`]).
//!
//! It reads `server.properties` ([`BrokerConfig`], Kafka's names and defaults), owns the data
//! directory ([`Broker`]: `meta.properties`, the metadata log, the partitions), accepts
//! connections ([`Server`]) and routes each request to a handler. Admin requests take the
//! controller path (a decision from `fjord-metadata` becomes records proposed to the metadata
//! quorum, answered once committed); every node takes the observer path (committed records
//! become the image and a delta, which the replica manager of `fjord-replication` and the
//! group coordinators of `fjord-coordinator` act on). Produce and fetch go through the
//! replica manager to `fjord-log`. Mapping the layers' errors to Kafka error codes happens
//! here, in one module.
//!
//! Nothing but the `fjord` binary depends on this crate; it has no command line, no client
//! and no `anyhow`.

#![warn(missing_docs)]

mod broker;
mod cleaner;
mod cluster;
mod config;
mod connection;
mod error;
mod errors;
mod groups;
mod handlers;
mod metadata;
pub mod properties;
mod replicas;
mod replication;
mod server;
pub mod storage;

pub use broker::{Broker, ENABLED_APIS};
pub use config::{BrokerConfig, ClusterConfig, ConfigError, Listener, Roles};
pub use error::{Error, Result};
pub use groups::{Groups, OFFSETS_TOPIC};
pub use server::{RunningServer, Server};
