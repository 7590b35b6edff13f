//! AlterPartition (KIP-497, KIP-841): a partition leader's request to change its ISR, checked
//! as Kafka's `ReplicationControlManager` checks it and written as a `PartitionChange` only if
//! the leader saw the current leader and partition epochs (a compare-and-set), so a deposed
//! or stale leader can never shrink an ISR to itself.

use fjord_types::{BrokerId, LeaderEpoch, PartitionRegistration};

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// A leader's proposed ISR for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionRequest {
    /// The leader asking.
    pub broker_id: BrokerId,
    /// Its broker epoch.
    pub broker_epoch: i64,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The leader epoch the leader holds.
    pub leader_epoch: LeaderEpoch,
    /// The partition epoch the leader holds.
    pub partition_epoch: i32,
    /// The ISR it proposes.
    pub new_isr: Vec<BrokerId>,
}

/// Why an AlterPartition was refused, in Kafka's order of checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterPartitionError {
    /// The requester's broker epoch is not its registration's (STALE_BROKER_EPOCH).
    #[error("broker {0} is not registered with that broker epoch")]
    StaleBrokerEpoch(BrokerId),
    /// No such partition (UNKNOWN_TOPIC_OR_PARTITION).
    #[error("no partition {0}-{1}")]
    UnknownPartition(String, i32),
    /// The requester has seen newer epochs than this controller (NOT_CONTROLLER, KAFKA-14154).
    #[error("the request carries newer epochs than this controller knows")]
    NewerThanController,
    /// The leader epoch is older than the partition's (FENCED_LEADER_EPOCH).
    #[error("leader epoch {requested} is older than {current}")]
    FencedLeaderEpoch {
        /// The request's.
        requested: LeaderEpoch,
        /// The partition's.
        current: LeaderEpoch,
    },
    /// The requester does not lead the partition (INVALID_REQUEST).
    #[error("broker {0} does not lead the partition")]
    NotLeader(BrokerId),
    /// The partition epoch is older than the partition's (INVALID_UPDATE_VERSION).
    #[error("partition epoch {requested} is older than {current}")]
    StalePartitionEpoch {
        /// The request's.
        requested: i32,
        /// The partition's.
        current: i32,
    },
    /// The ISR is not within the replicas, or leaves out the leader (INVALID_REQUEST).
    #[error("ISR {0:?} must be replicas and include the leader")]
    InvalidIsr(Vec<BrokerId>),
    /// A member joining the ISR is fenced, shutting down or unregistered (INELIGIBLE_REPLICA).
    #[error("broker {0} cannot join the ISR: fenced, shutting down or not registered")]
    IneligibleReplica(BrokerId),
}

/// Checks `request` against the image and returns the change (none if the ISR is already
/// the proposed one) and the registration it leads to.
pub fn alter_partition(
    image: &MetadataImage,
    request: &AlterPartitionRequest,
) -> Result<(Option<MetadataRecord>, PartitionRegistration), AlterPartitionError> {
    let requester = image.brokers.get(&request.broker_id);
    if requester.is_none_or(|b| b.broker_epoch != request.broker_epoch) {
        return Err(AlterPartitionError::StaleBrokerEpoch(request.broker_id));
    }
    let unknown = || AlterPartitionError::UnknownPartition(request.topic.clone(), request.partition);
    let topic = image.topics.get(&request.topic).ok_or_else(unknown)?;
    let current = topic.partitions.get(&request.partition).ok_or_else(unknown)?;
    if request.leader_epoch > current.leader_epoch || request.partition_epoch > current.partition_epoch {
        return Err(AlterPartitionError::NewerThanController);
    }
    if request.leader_epoch < current.leader_epoch {
        return Err(AlterPartitionError::FencedLeaderEpoch {
            requested: request.leader_epoch,
            current: current.leader_epoch,
        });
    }
    if current.leader != request.broker_id {
        return Err(AlterPartitionError::NotLeader(request.broker_id));
    }
    if request.partition_epoch < current.partition_epoch {
        return Err(AlterPartitionError::StalePartitionEpoch {
            requested: request.partition_epoch,
            current: current.partition_epoch,
        });
    }
    let mut isr = request.new_isr.clone();
    isr.dedup();
    if isr.is_empty() || !isr.contains(&current.leader) || isr.iter().any(|b| !current.replicas.contains(b)) {
        return Err(AlterPartitionError::InvalidIsr(request.new_isr.clone()));
    }
    for member in isr.iter().filter(|b| !current.isr.contains(b)) {
        if !image.brokers.get(member).is_some_and(|b| b.is_active()) {
            return Err(AlterPartitionError::IneligibleReplica(*member));
        }
    }
    if isr == current.isr {
        return Ok((None, current.clone()));
    }
    let mut next = current.clone();
    next.isr = isr;
    next.partition_epoch += 1;
    // The member that completes a reassignment's ISR completes the reassignment too.
    let valid = |b: BrokerId| image.brokers.get(&b).is_some_and(|r| r.is_active());
    super::reassign::complete_if_in_sync(&mut next, &valid);
    let record = MetadataRecord::partition_change(topic.id, request.partition, current, &next);
    Ok((record, next))
}
