//! The controller's decisions (Kafka's `ReplicationControlManager`, `ClusterControlManager`,
//! `BrokerHeartbeatManager`, `ConfigurationControlManager`, `ProducerIdControlManager`): each
//! function reads the image and a request and returns the records to append with the answer;
//! none changes the image. Ids and times are passed in, so the same decisions replay
//! identically.
//!
//! - [`topics`](self::create_topics): creating, deleting and growing topics, placing replicas.
//! - brokers: registration, heartbeats, fencing and controlled shutdown, preferred elections.
//! - configs: topic config changes.
//! - isr: AlterPartition, a leader's ISR change as a compare-and-set on its epochs.
//! - reassign: AlterPartitionReassignments and ListPartitionReassignments (KIP-455).
//! - the election rules every leadership change follows live in `election.rs`.

mod brokers;
mod configs;
mod election;
mod isr;
mod reassign;
mod topics;

pub use brokers::{
    BrokerHeartbeatManager, ElectionAnswers, ElectionOutcome, ElectionType, HeartbeatAnswer, HeartbeatRequest,
    RegistrationRequest, elect_leaders, elect_preferred, elect_unclean_where_allowed, fence_broker, heartbeat,
    imbalanced_partitions, register_broker,
};
pub use configs::{ConfigOp, alter_topic_configs};
pub use isr::{AlterPartitionError, AlterPartitionRequest, alter_partition};
pub use reassign::{Reassignment, ReassignmentError, ReassignmentOutcomes, alter_reassignments, list_reassignments};
pub use topics::{CreatedTopic, Creator, NewTopic, TopicDefaults, create_partitions, create_topics, delete_topics};

use fjord_types::BrokerId;

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// The producer ids handed to a broker at a time (Kafka's `PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Hands `broker` the next block of producer ids: `[start, start + PRODUCER_ID_BLOCK_SIZE)`
/// (AllocateProducerIds). Blocks never overlap, so producer ids are unique in the cluster.
pub fn allocate_producer_ids(image: &MetadataImage, broker: BrokerId) -> (MetadataRecord, std::ops::Range<i64>) {
    let start = image.next_producer_id;
    let end = start + PRODUCER_ID_BLOCK_SIZE;
    (MetadataRecord::ProducerIds { broker_id: broker, next_producer_id: end }, start..end)
}

#[cfg(test)]
mod tests;
