//! The cluster metadata state machine (Kafka's `metadata` module and `QuorumController`).
//!
//! Everything the cluster knows about topics, partitions, configs, brokers and producer-id
//! blocks is a sequence of [`MetadataRecord`]s. Applying them in order to a [`MetadataImage`]
//! gives the current state; nothing changes the image any other way. The [`controller`]
//! functions decide: given the image and a request, they return the records to append and the
//! answer to give, without changing anything. The caller appends the records to the metadata
//! log ([`MetadataLog`], a `fjord-log` log that a single-voter quorum stands in for until the
//! quorum crate replicates it), then applies them.
//!
//! No I/O happens here apart from [`MetadataLog`]; ids and time are passed in.

#![warn(missing_docs)]

pub mod controller;
mod delta;
mod error;
mod image;
mod metadata_log;
mod naming;
mod record;
mod snapshot;
pub mod topic_config;

pub use delta::{MetadataDelta, PartitionDelta};
pub use error::{ControllerError, Error, Result};
pub use image::{BrokerRegistration, MetadataImage, TopicImage};
pub use metadata_log::{METADATA_TOPIC_DIR, MetadataBatch, MetadataLog};
pub use naming::{INTERNAL_TOPICS, RESERVED_TOPICS, validate_topic_name};
pub use record::{ConfigResource, Endpoint, MetadataRecord};
