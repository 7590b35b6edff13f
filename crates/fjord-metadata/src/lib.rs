//! The cluster metadata state machine (Kafka's `metadata` module and `QuorumController`).
//!
//! Everything the cluster knows about topics, partitions, configs, brokers and producer-id
//! blocks is a sequence of [`MetadataRecord`]s. Applying them in order to a [`MetadataImage`]
//! gives the current state; nothing changes the image any other way. The [`controller`]
//! functions decide: given the image and a request, they return the records to append and the
//! answer to give, without changing anything. The caller proposes the records to the metadata
//! quorum (`fjord-quorum`), which commits them as one [`MetadataBatch`]; every node then applies
//! committed batches with [`MetadataImage::apply_batch`], getting the next image and a
//! [`MetadataDelta`] of what changed. [`MetadataImage::encode_snapshot`] and
//! [`MetadataImage::decode_snapshot`] turn an image into the quorum's snapshot and back.
//!
//! No I/O happens here; ids and time are passed in.

#![warn(missing_docs)]

mod batch;
pub mod controller;
mod delta;
mod error;
mod image;
mod naming;
mod record;
mod snapshot;
pub mod topic_config;

pub use batch::{METADATA_TOPIC_DIR, MetadataBatch};
pub use delta::{MetadataDelta, PartitionDelta};
pub use error::{ControllerError, Error, Result};
pub use image::{BrokerRegistration, MetadataImage, TopicImage};
pub use naming::{INTERNAL_TOPICS, RESERVED_TOPICS, validate_topic_name};
pub use record::{ConfigResource, Endpoint, MetadataRecord};
