//! Partition leadership (Kafka's `PartitionChangeBuilder` and the election paths of
//! `ReplicationControlManager`): who leads a partition, and what changes when a broker is
//! fenced, unfenced, shuts down or is preferred again.
//!
//! The rules, as Kafka's: a leader is a member of the ISR on an active broker (registered,
//! unfenced, not in controlled shutdown). An ordinary election keeps a valid leader and
//! otherwise takes the first valid replica in replica order; a preferred election takes the
//! first replica if it is valid. The ISR never becomes empty: without a valid member the last
//! one stays and the partition has no leader (offline), never a leader from outside the ISR.
//! Every leader change is a `PartitionChange` record, which bumps the leader epoch.

use fjord_types::{BrokerId, LeaderEpoch, PartitionRegistration, TopicId};

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// A partition and its registration, as the image has it.
pub(crate) struct Placed<'a> {
    pub(crate) topic_id: TopicId,
    pub(crate) partition: i32,
    pub(crate) registration: &'a PartitionRegistration,
}

/// Every partition of the image.
pub(crate) fn all_partitions(image: &MetadataImage) -> impl Iterator<Item = Placed<'_>> {
    image.topics.values().flat_map(|topic| {
        topic.partitions.iter().map(move |(&partition, registration)| Placed {
            topic_id: topic.id,
            partition,
            registration,
        })
    })
}

/// The change that keeps `placed` led by a valid member of its ISR once `removed` has left the
/// ISR (if it is in it and not the last member): `None` if nothing changes. `valid` says
/// which brokers may lead and stay in sync.
pub(crate) fn reelect(
    placed: &Placed<'_>,
    removed: Option<BrokerId>,
    valid: &dyn Fn(BrokerId) -> bool,
) -> Option<MetadataRecord> {
    let current = placed.registration;
    let mut isr = current.isr.clone();
    if let Some(removed) = removed
        && isr.len() > 1
    {
        isr.retain(|&b| b != removed);
    }
    let keeps = !current.leader.is_none() && isr.contains(&current.leader) && valid(current.leader);
    let leader = if keeps {
        current.leader
    } else {
        current.replicas.iter().copied().find(|&b| isr.contains(&b) && valid(b)).unwrap_or(BrokerId::NONE)
    };
    change(placed, leader, isr)
}

/// The change that makes `placed`'s first replica its leader, if it is valid and in the ISR
/// and does not lead already.
pub(crate) fn prefer(
    placed: &Placed<'_>,
    valid: &dyn Fn(BrokerId) -> bool,
) -> Result<Option<MetadataRecord>, Preferred> {
    let current = placed.registration;
    let preferred = *current.replicas.first().ok_or(Preferred::NotAvailable)?;
    if current.leader == preferred {
        return Err(Preferred::NotNeeded);
    }
    if !current.isr.contains(&preferred) || !valid(preferred) {
        return Err(Preferred::NotAvailable);
    }
    Ok(change(placed, preferred, current.isr.clone()))
}

/// The change that makes the first replica on a valid broker the leader and only ISR member
/// of `placed`, which has no leader: `None` if no replica can lead.
pub(crate) fn unclean(placed: &Placed<'_>, valid: &dyn Fn(BrokerId) -> bool) -> Option<MetadataRecord> {
    let leader = placed.registration.replicas.iter().copied().find(|&b| valid(b))?;
    change(placed, leader, vec![leader])
}

/// Why a preferred election did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Preferred {
    /// The preferred replica leads already (ELECTION_NOT_NEEDED).
    NotNeeded,
    /// It cannot lead now: out of the ISR, fenced, or shutting down (PREFERRED_LEADER_NOT_AVAILABLE).
    NotAvailable,
}

fn change(placed: &Placed<'_>, leader: BrokerId, isr: Vec<BrokerId>) -> Option<MetadataRecord> {
    let current = placed.registration;
    let mut next = current.clone();
    if leader != current.leader {
        next.leader = leader;
        next.leader_epoch = LeaderEpoch(current.leader_epoch.0 + 1);
    }
    next.isr = isr;
    MetadataRecord::partition_change(placed.topic_id, placed.partition, current, &next)
}

/// Whether `broker` is active in `image`, except for `except`, which is treated as `as_if`.
pub(crate) fn validity(image: &MetadataImage, except: BrokerId, as_if: bool) -> impl Fn(BrokerId) -> bool + '_ {
    move |broker| if broker == except { as_if } else { image.brokers.get(&broker).is_some_and(|b| b.is_active()) }
}

/// The changes when `broker` can no longer lead or stay in sync (fenced, shutting down, or
/// registered anew): it leaves every ISR it is in where another member remains, and its
/// leaderships move to valid ISR members, or to none.
pub(crate) fn move_off(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    let valid = validity(image, broker, false);
    all_partitions(image)
        .filter(|p| p.registration.isr.contains(&broker) || p.registration.leader == broker)
        .filter_map(|p| reelect(&p, Some(broker), &valid))
        .collect()
}

/// The changes when `broker` becomes active again: partitions without a leader whose ISR holds
/// it get one.
pub(crate) fn elect_offline(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    let valid = validity(image, broker, true);
    all_partitions(image)
        .filter(|p| p.registration.leader.is_none() && p.registration.isr.contains(&broker))
        .filter_map(|p| reelect(&p, None, &valid))
        .collect()
}
