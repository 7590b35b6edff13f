//! The controller's decisions (Kafka's `ReplicationControlManager`, `ConfigurationControlManager`,
//! `ProducerIdControlManager`): each function reads the image and a request and returns the
//! records to append with the answer; none changes anything. Ids are passed in, so the same
//! decisions replay identically.

use std::collections::{BTreeMap, BTreeSet};

use fjord_types::{BrokerId, LeaderEpoch, TopicId};

use crate::error::ControllerError;
use crate::image::{BrokerRegistration, MetadataImage};
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
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults { num_partitions: 1, default_replication_factor: 1 }
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

fn live_brokers(image: &MetadataImage) -> Vec<BrokerId> {
    image.brokers.keys().copied().collect()
}

/// Spreads replicas round-robin from a per-topic starting broker, so leaders spread evenly.
fn place(brokers: &[BrokerId], partitions: i32, replication_factor: i16, start: usize) -> Vec<Vec<BrokerId>> {
    (0..partitions as usize)
        .map(|p| (0..replication_factor as usize).map(|r| brokers[(start + p + r) % brokers.len()]).collect())
        .collect()
}

fn partition_record(topic_id: TopicId, partition: i32, replicas: Vec<BrokerId>) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition,
        leader: replicas[0],
        isr: replicas.clone(),
        replicas,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: 0,
    }
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
    let brokers = live_brokers(image);
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
                if replication_factor as usize > brokers.len() {
                    return Err(ControllerError::InvalidReplicationFactor(format!(
                        "Unable to replicate the partition {replication_factor} time(s): The target replication \
                         factor of {replication_factor} cannot be reached because only {} broker(s) are registered.",
                        brokers.len()
                    )));
                }
                place(&brokers, partitions, replication_factor, image.topics.len())
            } else {
                if topic.num_partitions != -1 || topic.replication_factor != -1 {
                    return Err(ControllerError::InvalidRequest(
                        "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                    ));
                }
                check_assignments(&topic.assignments, &brokers, 0)?
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
            Ok((placement, configs, topic_id))
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
                let replication_factor = placement.first().map_or(0, |r| r.len() as i16);
                let num_partitions = placement.len() as i32;
                for (partition, replicas) in placement.into_iter().enumerate() {
                    records.push(partition_record(topic_id, partition as i32, replicas));
                }
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
    let brokers = live_brokers(image);
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
            check_assignments(&numbered, &brokers, current)?
        }
        None => {
            let factor = topic.partitions.values().next().map_or(1, |p| p.replicas.len()) as i16;
            if factor as usize > brokers.len() {
                return Err(ControllerError::InvalidReplicationFactor(format!(
                    "Unable to replicate the partition {factor} time(s): only {} broker(s) are registered.",
                    brokers.len()
                )));
            }
            place(&brokers, count - current, factor, current as usize)
        }
    };
    Ok(placement
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| partition_record(topic.id, current + i as i32, replicas))
        .collect())
}

/// One change of IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Set the value.
    Set(String),
    /// Remove the value (back to the default).
    Delete,
    /// Add items to a list.
    Append(String),
    /// Remove items from a list.
    Subtract(String),
}

/// Decides a topic's IncrementalAlterConfigs (or, with `replace_all`, AlterConfigs, which
/// replaces every config).
pub fn alter_topic_configs(
    image: &MetadataImage,
    topic: &str,
    changes: &[(String, ConfigOp)],
    replace_all: bool,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let current = &image.topics.get(topic).ok_or_else(|| ControllerError::UnknownTopic(topic.to_owned()))?.configs;
    let mut next = if replace_all { BTreeMap::new() } else { current.clone() };
    for (name, op) in changes {
        let def = topic_config::definition(name)
            .ok_or_else(|| ControllerError::InvalidConfig(format!("Unknown topic config name: {name}")))?;
        let list = || -> Vec<String> {
            next.get(name).map(String::as_str).unwrap_or(def.default).split(',').map(|s| s.trim().to_owned()).collect()
        };
        match op {
            ConfigOp::Set(value) => {
                topic_config::validate(name, value)?;
                next.insert(name.clone(), value.clone());
            }
            ConfigOp::Delete => {
                next.remove(name);
            }
            ConfigOp::Append(items) | ConfigOp::Subtract(items) => {
                if def.ty != topic_config::ConfigType::List {
                    return Err(ControllerError::InvalidConfig(format!(
                        "Config value append/subtract is not allowed for config {name} as it is not a list"
                    )));
                }
                let mut values = list();
                for item in items.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if matches!(op, ConfigOp::Append(_)) {
                        if !values.iter().any(|v| v == item) {
                            values.push(item.to_owned());
                        }
                    } else {
                        values.retain(|v| v != item);
                    }
                }
                let joined = values.join(",");
                topic_config::validate(name, &joined)?;
                next.insert(name.clone(), joined);
            }
        }
    }
    let resource = ConfigResource::Topic(topic.to_owned());
    let mut records = Vec::new();
    for (name, value) in &next {
        if current.get(name) != Some(value) {
            records.push(MetadataRecord::Config {
                resource: resource.clone(),
                name: name.clone(),
                value: Some(value.clone()),
            });
        }
    }
    for name in current.keys().filter(|n| !next.contains_key(*n)) {
        records.push(MetadataRecord::Config { resource: resource.clone(), name: name.clone(), value: None });
    }
    Ok(records)
}

/// The producer ids handed to a broker at a time.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Hands `broker` the next block of producer ids: `[start, start + PRODUCER_ID_BLOCK_SIZE)`.
pub fn allocate_producer_ids(image: &MetadataImage, broker: BrokerId) -> (MetadataRecord, std::ops::Range<i64>) {
    let start = image.next_producer_id;
    let end = start + PRODUCER_ID_BLOCK_SIZE;
    (MetadataRecord::ProducerIds { broker_id: broker, next_producer_id: end }, start..end)
}

/// The record registering `registration`, unless the image already has it.
pub fn register_broker(image: &MetadataImage, registration: &BrokerRegistration) -> Option<MetadataRecord> {
    (image.brokers.get(&registration.broker_id) != Some(registration)).then(|| MetadataRecord::RegisterBroker {
        broker_id: registration.broker_id,
        host: registration.host.clone(),
        port: registration.port,
        rack: registration.rack.clone(),
    })
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
