//! Partition reassignment (KIP-455, as Kafka's `ReplicationControlManager` and
//! `PartitionChangeBuilder` carry it out): moving a partition to a new set of replicas without
//! ever having fewer in sync than before.
//!
//! A reassignment to `target` makes the replicas `target` followed by the current replicas not
//! in it, marks the new ones *adding* and the ones leaving *removing*, and changes nothing
//! else: the added replicas fetch like any follower, and the leader brings each into the ISR
//! once it has caught up. When every target replica is in the ISR the reassignment completes
//! in the same change: the replicas become the target, the ISR loses the removed ones, a
//! leader that is being removed hands over to the first in-sync target replica that may lead,
//! and the leader epoch is bumped so a removed replica's fetches are fenced. Cancelling goes
//! back to the replicas the partition had when the reassignment began, keeping only their
//! members of the ISR.

use fjord_types::{BrokerId, LeaderEpoch, PartitionRegistration};

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// One partition's part of an AlterPartitionReassignments request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The replicas to move to, preferred leader first; `None` cancels the one under way.
    pub target: Option<Vec<BrokerId>>,
}

/// Why a partition's reassignment was refused, with Kafka's error for each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignmentError {
    /// No such topic or partition (UNKNOWN_TOPIC_OR_PARTITION).
    #[error("no partition {0}-{1}")]
    UnknownPartition(String, i32),
    /// The target is empty, repeats a broker or names one not registered
    /// (INVALID_REPLICA_ASSIGNMENT).
    #[error("{0}")]
    InvalidAssignment(String),
    /// The target changes the replication factor and the request does not allow it
    /// (INVALID_REPLICATION_FACTOR, KIP-860).
    #[error("the reassignment changes the replication factor from {from} to {to}, which the request does not allow")]
    ReplicationFactorChange {
        /// The current factor.
        from: usize,
        /// The target's.
        to: usize,
    },
    /// A cancellation with no reassignment under way (NO_REASSIGNMENT_IN_PROGRESS).
    #[error("no reassignment of {0}-{1} is in progress")]
    NoReassignmentInProgress(String, i32),
}

/// The outcome of each partition of an AlterPartitionReassignments request, in its order.
pub type ReassignmentOutcomes = Vec<((String, i32), Result<(), ReassignmentError>)>;

/// AlterPartitionReassignments: starts, replaces or cancels the reassignment of each named
/// partition. Partitions are independent: one refused leaves the others to go ahead.
pub fn alter_reassignments(
    image: &MetadataImage,
    reassignments: &[Reassignment],
    allow_replication_factor_change: bool,
) -> (Vec<MetadataRecord>, ReassignmentOutcomes) {
    // Later entries for the same partition see the earlier ones' effect.
    let mut working = image.clone();
    let mut records = Vec::new();
    let mut outcomes = Vec::new();
    for reassignment in reassignments {
        let key = (reassignment.topic.clone(), reassignment.partition);
        let outcome = decide(&working, reassignment, allow_replication_factor_change).map(|record| {
            if let Some(record) = record {
                working.apply(&record, working.provenance.offset).expect("checked against this image");
                records.push(record);
            }
        });
        outcomes.push((key, outcome));
    }
    (records, outcomes)
}

fn decide(
    image: &MetadataImage,
    reassignment: &Reassignment,
    allow_replication_factor_change: bool,
) -> Result<Option<MetadataRecord>, ReassignmentError> {
    let (topic, partition) = (&reassignment.topic, reassignment.partition);
    let unknown = || ReassignmentError::UnknownPartition(topic.clone(), partition);
    let topic_image = image.topics.get(topic).ok_or_else(unknown)?;
    let current = topic_image.partitions.get(&partition).ok_or_else(unknown)?;
    let valid = |b: BrokerId| image.brokers.get(&b).is_some_and(|r| r.is_active());
    let next = match &reassignment.target {
        Some(target) => {
            check_target(image, target)?;
            let from = current.target_replicas().len();
            if !allow_replication_factor_change && target.len() != from {
                return Err(ReassignmentError::ReplicationFactorChange { from, to: target.len() });
            }
            let mut next = reassign(current, target);
            complete_if_in_sync(&mut next, &valid);
            next
        }
        None => {
            if !current.is_reassigning() {
                return Err(ReassignmentError::NoReassignmentInProgress(topic.clone(), partition));
            }
            cancel(current, &valid)?
        }
    };
    Ok(MetadataRecord::partition_change(topic_image.id, partition, current, &next))
}

/// Refuses a target Kafka would refuse: empty, a broker twice, or a broker not registered.
fn check_target(image: &MetadataImage, target: &[BrokerId]) -> Result<(), ReassignmentError> {
    let invalid = |message: String| Err(ReassignmentError::InvalidAssignment(message));
    if target.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    for (i, broker) in target.iter().enumerate() {
        if target[..i].contains(broker) {
            return invalid(format!("The manual partition assignment includes the broker {broker} more than once."));
        }
        if !image.brokers.contains_key(broker) {
            return invalid(format!(
                "The manual partition assignment includes broker {broker}, but no such broker is registered."
            ));
        }
    }
    Ok(())
}

/// The registration with a reassignment to `target` under way: replicas are the target then
/// the current ones leaving; adding are the target's replicas not among the current ones,
/// removing the current ones not in the target. The ISR and leadership are untouched. A
/// reassignment under way is replaced as Kafka replaces it: measured from all the current
/// replicas, those it was adding included, so a cancel afterwards goes back to them.
fn reassign(current: &PartitionRegistration, target: &[BrokerId]) -> PartitionRegistration {
    let mut next = current.clone();
    next.replicas = target.to_vec();
    next.replicas.extend(current.replicas.iter().filter(|b| !target.contains(b)));
    next.adding_replicas = target.iter().copied().filter(|b| !current.replicas.contains(b)).collect();
    next.removing_replicas = current.replicas.iter().copied().filter(|b| !target.contains(b)).collect();
    next.partition_epoch = current.partition_epoch + 1;
    next
}

/// The registration back at the replicas it had before its reassignment.
fn cancel(
    current: &PartitionRegistration,
    valid: &dyn Fn(BrokerId) -> bool,
) -> Result<PartitionRegistration, ReassignmentError> {
    let original = current.original_replicas();
    let isr: Vec<BrokerId> = current.isr.iter().copied().filter(|b| original.contains(b)).collect();
    if isr.is_empty() {
        return Err(ReassignmentError::InvalidAssignment(
            "Cannot cancel the reassignment: no replica of the original assignment is in sync.".into(),
        ));
    }
    let mut next = current.clone();
    next.partition_epoch = current.partition_epoch + 1;
    settle(&mut next, original, isr, valid);
    Ok(next)
}

/// Completes `next`'s reassignment if every target replica is in its ISR (Kafka's
/// `completeReassignmentIfNeeded`). Returns whether it did.
pub(crate) fn complete_if_in_sync(next: &mut PartitionRegistration, valid: &dyn Fn(BrokerId) -> bool) -> bool {
    if !next.is_reassigning() {
        return false;
    }
    let target = next.target_replicas();
    if !target.iter().all(|b| next.isr.contains(b)) {
        return false;
    }
    let isr = next.isr.iter().copied().filter(|b| target.contains(b)).collect();
    settle(next, target, isr, valid);
    true
}

/// Ends a reassignment at `replicas` with `isr`: a leader outside them hands over to the first
/// replica in sync that may lead (or none), and when replicas leave the leader epoch is bumped.
fn settle(
    next: &mut PartitionRegistration,
    replicas: Vec<BrokerId>,
    isr: Vec<BrokerId>,
    valid: &dyn Fn(BrokerId) -> bool,
) {
    let removed = next.replicas.iter().any(|b| !replicas.contains(b));
    let keeps_leader = replicas.contains(&next.leader) && isr.contains(&next.leader);
    let leader = if keeps_leader || next.leader.is_none() && !removed {
        next.leader
    } else {
        replicas.iter().copied().find(|&b| isr.contains(&b) && valid(b)).unwrap_or(BrokerId::NONE)
    };
    if leader != next.leader || removed {
        next.leader = leader;
        next.leader_epoch = LeaderEpoch(next.leader_epoch.0 + 1);
    }
    next.replicas = replicas;
    next.isr = isr;
    next.adding_replicas.clear();
    next.removing_replicas.clear();
}

/// ListPartitionReassignments: the partitions with a reassignment under way, among `asked`
/// (topic and partition; unknown ones are left out, as Kafka does) or all when `None`, with
/// their registrations.
pub fn list_reassignments(
    image: &MetadataImage,
    asked: Option<&[(String, i32)]>,
) -> Vec<((String, i32), PartitionRegistration)> {
    let ongoing = |topic: &str, partition: i32| {
        let registration = image.topics.get(topic)?.partitions.get(&partition)?;
        registration.is_reassigning().then(|| ((topic.to_owned(), partition), registration.clone()))
    };
    match asked {
        Some(asked) => asked.iter().filter_map(|(t, p)| ongoing(t, *p)).collect(),
        None => image.topics.values().flat_map(|t| t.partitions.keys().filter_map(|&p| ongoing(&t.name, p))).collect(),
    }
}
