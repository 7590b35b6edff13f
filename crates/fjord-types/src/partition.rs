//! What the metadata log says about one partition, and a position in a replicated log: shared
//! by the metadata image that records them and the replica manager that acts on them.

use crate::{BrokerId, LeaderEpoch, Offset};

/// One partition's placement and leadership as the controller registered it (Kafka's
/// `PartitionRegistration`, the fields a `PartitionRecord` or `PartitionChangeRecord` sets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRegistration {
    /// The replicas, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas.
    pub isr: Vec<BrokerId>,
    /// The leader, or `BrokerId::NONE` when the partition is offline.
    pub leader: BrokerId,
    /// Bumped at every leader change.
    pub leader_epoch: LeaderEpoch,
    /// Bumped at every change of the partition (Kafka's partition epoch, KIP-497).
    pub partition_epoch: i32,
    /// Replicas a reassignment is adding (KIP-455): in `replicas`, catching up, not yet in the
    /// target's ISR.
    pub adding_replicas: Vec<BrokerId>,
    /// Replicas a reassignment will remove once every target replica is in sync: in
    /// `replicas` until then.
    pub removing_replicas: Vec<BrokerId>,
}

impl PartitionRegistration {
    /// A new partition led by its first replica, every replica in sync, epochs 0.
    pub fn new(replicas: Vec<BrokerId>) -> PartitionRegistration {
        let leader = replicas.first().copied().unwrap_or(BrokerId::NONE);
        PartitionRegistration {
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    /// Whether a reassignment is under way.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas the partition will have once its reassignment completes (all of them if
    /// none is under way), in preference order.
    pub fn target_replicas(&self) -> Vec<BrokerId> {
        self.replicas.iter().copied().filter(|b| !self.removing_replicas.contains(b)).collect()
    }

    /// The replicas it had before its reassignment began (all of them if none is under way).
    pub fn original_replicas(&self) -> Vec<BrokerId> {
        self.replicas.iter().copied().filter(|b| !self.adding_replicas.contains(b)).collect()
    }

    /// Whether `broker` holds a replica.
    pub fn has_replica(&self, broker: BrokerId) -> bool {
        self.replicas.contains(&broker)
    }
}

/// A position in a replicated log: an offset and the epoch of the entry there (Kafka's
/// `OffsetAndEpoch`). Positions compare by epoch first, then offset: the "at least as up to
/// date" order of a Raft vote.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OffsetAndEpoch {
    /// The offset.
    pub offset: Offset,
    /// The epoch of the entry at `offset`.
    pub epoch: LeaderEpoch,
}

impl OffsetAndEpoch {
    /// Before the first entry of a log.
    pub const NONE: OffsetAndEpoch = OffsetAndEpoch { offset: Offset(-1), epoch: LeaderEpoch(-1) };

    /// A position.
    pub const fn new(offset: Offset, epoch: LeaderEpoch) -> OffsetAndEpoch {
        OffsetAndEpoch { offset, epoch }
    }
}

impl Ord for OffsetAndEpoch {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.epoch, self.offset).cmp(&(other.epoch, other.offset))
    }
}

impl PartialOrd for OffsetAndEpoch {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Debug for OffsetAndEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(offset {}, epoch {})", self.offset, self.epoch)
    }
}
