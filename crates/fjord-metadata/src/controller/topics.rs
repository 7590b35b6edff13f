//! Topics and partitions (Kafka's `ReplicationControlManager` creation paths): CreateTopics,
//! DeleteTopics, CreatePartitions, and where new replicas go.

use std::collections::{BTreeMap, BTreeSet};

use fjord_types::{BrokerId, LeaderEpoch, TopicId};

use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::naming::{INTERNAL_TOPICS, RESERVED_TOPICS, collision_key, validate_topic_name};
use crate::record::{ConfigResource, MetadataRecord};
use crate::topic_config;

/// Broker-level defaults for new topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicDefaults {
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// The largest replication factor this build can keep (1 until followers replicate).
    pub max_replication_factor: i16,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults { num_partitions: 1, default_replication_factor: 1, max_replication_factor: i16::MAX }
    }
}

/// A topic to create (CreateTopics, or auto-creation by Metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTopic {
    /// Its name.
    pub name: String,
    /// Partitions, or -1 for `num.partitions`.
    pub num_partitions: i32,
    /// Replicas per partition, or -1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual placement: partition index and its replicas. Excludes the two fields above.
    pub assignments: Vec<(i32, Vec<BrokerId>)>,
    /// Topic configs.
    pub configs: Vec<(String, Option<String>)>,
}

/// A topic the controller accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    /// Its name.
    pub name: String,
    /// Its new id.
    pub topic_id: TopicId,
    /// Its partition count.
    pub num_partitions: i32,
    /// Its replication factor.
    pub replication_factor: i16,
    /// The configs set on it.
    pub configs: BTreeMap<String, String>,
}

/// Whether internal topics may be created: only the broker itself creates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creator {
    /// A client request.
    User,
    /// The broker (for `__consumer_offsets` and the like).
    Broker,
}

/// The brokers new replicas may go to (unfenced and not shutting down) with their racks, in
/// Kafka's rack-alternating order: one broker of each rack in turn, racks and brokers by id.
fn placeable_brokers(image: &MetadataImage) -> Vec<(BrokerId, Option<&str>)> {
    let mut racks: BTreeMap<Option<&str>, Vec<BrokerId>> = BTreeMap::new();
    for broker in image.active_brokers() {
        racks.entry(broker.rack.as_deref()).or_default().push(broker.broker_id);
    }
    let deepest = racks.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|i| racks.iter().filter_map(move |(rack, brokers)| brokers.get(i).map(|&b| (b, *rack))))
        .collect()
}

/// Places each partition's replicas: the first (its preferred leader) round-robin from a
/// per-topic start, so leaders spread evenly; each next one the next broker in the
/// rack-alternating order on a rack the partition does not use yet, while there is one.
fn place(
    brokers: &[(BrokerId, Option<&str>)],
    partitions: i32,
    replication_factor: i16,
    start: usize,
) -> Vec<Vec<BrokerId>> {
    let n = brokers.len();
    (0..partitions as usize)
        .map(|p| {
            let first = (start + p) % n;
            let mut chosen = vec![first];
            let candidates = || (1..n).map(|step| (first + step) % n);
            while chosen.len() < replication_factor as usize {
                let used = |i: usize| chosen.contains(&i);
                let new_rack = candidates().find(|&i| !used(i) && chosen.iter().all(|&c| brokers[c].1 != brokers[i].1));
                let next = new_rack.or_else(|| candidates().find(|&i| !used(i))).expect("fewer replicas than brokers");
                chosen.push(next);
            }
            chosen.into_iter().map(|i| brokers[i].0).collect()
        })
        .collect()
}

/// A new partition's record: every active replica in the ISR, the first of them leading.
fn partition_record(
    image: &MetadataImage,
    topic_id: TopicId,
    partition: i32,
    replicas: Vec<BrokerId>,
) -> Result<MetadataRecord, ControllerError> {
    let active = |b: &BrokerId| image.brokers.get(b).is_some_and(|r| r.is_active());
    let isr: Vec<BrokerId> = replicas.iter().copied().filter(active).collect();
    let Some(&leader) = isr.first() else {
        return Err(ControllerError::InvalidReplicaAssignment(format!(
            "All brokers specified in the assignment of partition {partition} are fenced or in controlled shutdown."
        )));
    };
    Ok(MetadataRecord::Partition {
        topic_id,
        partition,
        leader,
        isr,
        replicas,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    })
}

/// Refuses a replication factor the placeable brokers or this build cannot meet.
fn check_replication_factor(
    replication_factor: i16,
    placeable: usize,
    defaults: TopicDefaults,
) -> Result<(), ControllerError> {
    if replication_factor > defaults.max_replication_factor {
        return Err(ControllerError::InvalidReplicationFactor(format!(
            "Replication factor {replication_factor} is not supported yet: this build keeps at most \
             {} replica(s) of a partition, until follower replication lands.",
            defaults.max_replication_factor
        )));
    }
    if replication_factor as usize > placeable {
        return Err(ControllerError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {replication_factor} time(s): The target replication factor of \
             {replication_factor} cannot be reached because only {placeable} broker(s) are registered and unfenced."
        )));
    }
    Ok(())
}

/// Decides a CreateTopics request (or auto-creation): validates names (Kafka's rules, '.'/'_'
/// collisions, internal names), partitions, replication factor against the live brokers,
/// assignments and configs.
pub fn create_topics(
    image: &MetadataImage,
    topics: &[NewTopic],
    defaults: TopicDefaults,
    creator: Creator,
    mut new_topic_id: impl FnMut() -> TopicId,
) -> (Vec<MetadataRecord>, Vec<Result<CreatedTopic, ControllerError>>) {
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(topics.len());
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<&str> =
        topics.iter().map(|t| t.name.as_str()).filter(|n| !seen.insert(*n)).collect::<BTreeSet<_>>();
    let mut collision_keys: BTreeMap<String, String> =
        image.topics.keys().map(|name| (collision_key(name), name.clone())).collect();
    let brokers = placeable_brokers(image);
    let registered: Vec<BrokerId> = image.brokers.keys().copied().collect();
    for topic in topics {
        let result = (|| {
            if duplicates.contains(topic.name.as_str()) {
                return Err(ControllerError::InvalidRequest(format!(
                    "Create topics request from client contains the topic {} more than once.",
                    topic.name
                )));
            }
            validate_topic_name(&topic.name)?;
            if RESERVED_TOPICS.contains(&topic.name.as_str())
                || (creator == Creator::User && INTERNAL_TOPICS.contains(&topic.name.as_str()))
            {
                return Err(ControllerError::InvalidRequest(format!(
                    "Creation of internal topic {} is prohibited.",
                    topic.name
                )));
            }
            if image.topics.contains_key(&topic.name) {
                return Err(ControllerError::TopicExists(topic.name.clone()));
            }
            if let Some(other) = collision_keys.get(&collision_key(&topic.name)) {
                return Err(ControllerError::InvalidTopic(format!(
                    "Topic '{}' collides with existing topic: {other}",
                    topic.name
                )));
            }
            let placement = if topic.assignments.is_empty() {
                let partitions = match topic.num_partitions {
                    -1 => defaults.num_partitions,
                    n if n > 0 => n,
                    _ => {
                        return Err(ControllerError::InvalidPartitions(
                            "Number of partitions was set to an invalid non-positive value.".into(),
                        ));
                    }
                };
                let replication_factor = match topic.replication_factor {
                    -1 => defaults.default_replication_factor,
                    n if n > 0 => n,
                    _ => {
                        return Err(ControllerError::InvalidReplicationFactor(
                            "Replication factor must be larger than 0, or -1 to use the default value.".into(),
                        ));
                    }
                };
                check_replication_factor(replication_factor, brokers.len(), defaults)?;
                place(&brokers, partitions, replication_factor, image.topics.len())
            } else {
                if topic.num_partitions != -1 || topic.replication_factor != -1 {
                    return Err(ControllerError::InvalidRequest(
                        "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                    ));
                }
                let placement = check_assignments(&topic.assignments, &registered, 0)?;
                if let Some(replicas) = placement.first() {
                    check_replication_factor(replicas.len() as i16, usize::MAX, defaults)?;
                }
                placement
            };
            let mut configs = BTreeMap::new();
            for (name, value) in &topic.configs {
                let Some(value) = value else {
                    return Err(ControllerError::InvalidConfig(format!(
                        "Null value not supported for topic configs: {name}"
                    )));
                };
                topic_config::validate(name, value)?;
                configs.insert(name.clone(), value.clone());
            }
            let topic_id = new_topic_id();
            let partitions = placement
                .into_iter()
                .enumerate()
                .map(|(index, replicas)| partition_record(image, topic_id, index as i32, replicas))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((partitions, configs, topic_id))
        })();
        match result {
            Ok((placement, configs, topic_id)) => {
                records.push(MetadataRecord::Topic { name: topic.name.clone(), topic_id });
                for (name, value) in &configs {
                    records.push(MetadataRecord::Config {
                        resource: ConfigResource::Topic(topic.name.clone()),
                        name: name.clone(),
                        value: Some(value.clone()),
                    });
                }
                let replication_factor = match placement.first() {
                    Some(MetadataRecord::Partition { replicas, .. }) => replicas.len() as i16,
                    _ => 0,
                };
                let num_partitions = placement.len() as i32;
                records.extend(placement);
                collision_keys.insert(collision_key(&topic.name), topic.name.clone());
                results.push(Ok(CreatedTopic {
                    name: topic.name.clone(),
                    topic_id,
                    num_partitions,
                    replication_factor,
                    configs,
                }));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    (records, results)
}

/// Checks manual assignments for partitions `first..`: consecutive indexes, the same replication
/// factor throughout, known brokers, no broker twice.
fn check_assignments(
    assignments: &[(i32, Vec<BrokerId>)],
    brokers: &[BrokerId],
    first: i32,
) -> Result<Vec<Vec<BrokerId>>, ControllerError> {
    let mut sorted = assignments.to_vec();
    sorted.sort_by_key(|(p, _)| *p);
    let invalid = |m: String| Err(ControllerError::InvalidReplicaAssignment(m));
    let factor = sorted.first().map_or(0, |(_, r)| r.len());
    for (i, (partition, replicas)) in sorted.iter().enumerate() {
        if *partition != first + i as i32 {
            return invalid("Partitions must be consecutive and start at the next partition index.".into());
        }
        if replicas.is_empty() || replicas.len() != factor {
            return invalid("All partitions must have the same, non-zero number of replicas.".into());
        }
        let distinct: BTreeSet<_> = replicas.iter().collect();
        if distinct.len() != replicas.len() {
            return invalid(format!("Duplicate brokers in the assignment of partition {partition}."));
        }
        if let Some(unknown) = replicas.iter().find(|b| !brokers.contains(b)) {
            return invalid(format!("Broker {unknown} in the assignment of partition {partition} is not registered."));
        }
    }
    Ok(sorted.into_iter().map(|(_, r)| r).collect())
}

/// Decides DeleteTopics.
pub fn delete_topics(
    image: &MetadataImage,
    names: &[String],
) -> (Vec<MetadataRecord>, Vec<Result<TopicId, ControllerError>>) {
    let mut records = Vec::new();
    let mut deleted = BTreeSet::new();
    let results = names
        .iter()
        .map(|name| {
            let topic = image.topics.get(name).ok_or_else(|| ControllerError::UnknownTopic(name.clone()))?;
            if INTERNAL_TOPICS.contains(&name.as_str()) {
                return Err(ControllerError::InvalidRequest(format!("Cannot delete internal topic {name}.")));
            }
            if deleted.insert(topic.id) {
                records.push(MetadataRecord::RemoveTopic { topic_id: topic.id });
            }
            Ok(topic.id)
        })
        .collect();
    (records, results)
}

/// Decides CreatePartitions: the count may only grow.
pub fn create_partitions(
    image: &MetadataImage,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<BrokerId>]>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image.topics.get(name).ok_or_else(|| ControllerError::UnknownTopic(name.to_owned()))?;
    let current = topic.partitions.len() as i32;
    if count < current {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic currently has {current} partitions, which is higher than the requested {count}."
        )));
    }
    if count == current {
        return Err(ControllerError::InvalidPartitions(format!("Topic already has {current} partitions.")));
    }
    let brokers = placeable_brokers(image);
    let registered: Vec<BrokerId> = image.brokers.keys().copied().collect();
    let placement = match assignments {
        Some(assignments) => {
            if assignments.len() as i32 != count - current {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "Attempted to add {} additional partition(s), but only {} assignment(s) were specified.",
                    count - current,
                    assignments.len()
                )));
            }
            let numbered: Vec<(i32, Vec<BrokerId>)> =
                assignments.iter().enumerate().map(|(i, r)| (current + i as i32, r.clone())).collect();
            check_assignments(&numbered, &registered, current)?
        }
        None => {
            let factor = topic.partitions.values().next().map_or(1, |p| p.replicas.len()) as i16;
            check_replication_factor(factor, brokers.len(), TopicDefaults::default())?;
            place(&brokers, count - current, factor, current as usize)
        }
    };
    placement
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| partition_record(image, topic.id, current + i as i32, replicas))
        .collect()
}
