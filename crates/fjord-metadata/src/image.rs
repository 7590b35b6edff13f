//! The metadata image: the state the records add up to (Kafka's `MetadataImage`).

use std::collections::BTreeMap;

use fjord_types::{BrokerId, LeaderEpoch, Offset, OffsetAndEpoch, PartitionRegistration, TopicId};

use crate::error::{Error, Result};
use crate::record::{ConfigResource, Endpoint, MetadataRecord};

/// A registered broker (Kafka's `BrokerRegistration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// Its `node.id`.
    pub broker_id: BrokerId,
    /// The process that registered.
    pub incarnation_id: [u8; 16],
    /// The offset of its registration record: what its heartbeats and changes must carry.
    pub broker_epoch: i64,
    /// Its advertised listeners.
    pub listeners: Vec<Endpoint>,
    /// Its rack, if set.
    pub rack: Option<String>,
    /// Fenced: it leads nothing and joins no ISR.
    pub fenced: bool,
    /// Shutting down under the controller's guidance: its leaderships are moving away.
    pub in_controlled_shutdown: bool,
}

impl BrokerRegistration {
    /// Where clients reach it on `listener`.
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.listeners.iter().find(|e| e.listener == listener)
    }

    /// May lead partitions and join ISRs: unfenced and not shutting down.
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: TopicId,
    /// Its partitions by index.
    pub partitions: BTreeMap<i32, PartitionRegistration>,
    /// Configs set on the topic (not the defaults).
    pub configs: BTreeMap<String, String>,
}

/// The cluster's metadata as of some offset of the metadata log (Kafka's `MetadataImage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataImage {
    /// Topics by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// Brokers by id.
    pub brokers: BTreeMap<BrokerId, BrokerRegistration>,
    /// Dynamic broker configs (`BrokerId::NONE` for cluster-wide ones).
    pub broker_configs: BTreeMap<BrokerId, BTreeMap<String, String>>,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
    /// The last record this image contains: its offset and epoch in the metadata log
    /// (Kafka's `MetadataProvenance`); `OffsetAndEpoch::NONE` for the empty image.
    pub provenance: OffsetAndEpoch,
}

impl Default for MetadataImage {
    fn default() -> Self {
        MetadataImage {
            topics: BTreeMap::new(),
            brokers: BTreeMap::new(),
            broker_configs: BTreeMap::new(),
            next_producer_id: 0,
            provenance: OffsetAndEpoch::NONE,
        }
    }
}

impl MetadataImage {
    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: TopicId) -> Option<&TopicImage> {
        self.topics.values().find(|t| t.id == id)
    }

    fn topic_name(&self, id: TopicId) -> Result<String> {
        self.topic_by_id(id)
            .map(|t| t.name.clone())
            .ok_or_else(|| Error::Inconsistent(format!("no topic with id {id}")))
    }

    /// The partition `partition` of the topic with id `topic_id`.
    pub fn partition(&self, topic_id: TopicId, partition: i32) -> Option<&PartitionRegistration> {
        self.topic_by_id(topic_id)?.partitions.get(&partition)
    }

    /// The brokers that may lead and join ISRs, by id.
    pub fn active_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| b.is_active())
    }

    /// Applies one record, which sits at `offset` in the metadata log: the only way the image
    /// changes. Callers that publish images go through [`MetadataImage::apply_batch`], which
    /// also says what changed.
    pub fn apply(&mut self, record: &MetadataRecord, offset: Offset) -> Result<()> {
        match record {
            MetadataRecord::RegisterBroker { broker_id, incarnation_id, listeners, rack, fenced } => {
                let registration = BrokerRegistration {
                    broker_id: *broker_id,
                    incarnation_id: *incarnation_id,
                    broker_epoch: offset.0,
                    listeners: listeners.clone(),
                    rack: rack.clone(),
                    fenced: *fenced,
                    in_controlled_shutdown: false,
                };
                self.brokers.insert(*broker_id, registration);
            }
            MetadataRecord::BrokerRegistrationChange { broker_id, broker_epoch, fenced, in_controlled_shutdown } => {
                let broker = self
                    .brokers
                    .get_mut(broker_id)
                    .filter(|b| b.broker_epoch == *broker_epoch)
                    .ok_or_else(|| Error::Inconsistent(format!("no broker {broker_id} at epoch {broker_epoch}")))?;
                if let Some(fenced) = fenced {
                    broker.fenced = *fenced;
                }
                if let Some(shutting_down) = in_controlled_shutdown {
                    broker.in_controlled_shutdown = *shutting_down;
                }
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                leader,
                isr,
                replicas,
                adding_replicas,
                removing_replicas,
            } => {
                let name = self.topic_name(*topic_id)?;
                let topic = self.topics.get_mut(&name).expect("looked up above");
                let current = topic
                    .partitions
                    .get_mut(partition)
                    .ok_or_else(|| Error::Inconsistent(format!("no partition {name}-{partition}")))?;
                let mut next = current.clone();
                if let Some(replicas) = replicas {
                    next.replicas = replicas.clone();
                }
                if let Some(isr) = isr {
                    next.isr = isr.clone();
                }
                if let Some(adding) = adding_replicas {
                    next.adding_replicas = adding.clone();
                }
                if let Some(removing) = removing_replicas {
                    next.removing_replicas = removing.clone();
                }
                if let Some(leader) = leader {
                    next.leader = *leader;
                    next.leader_epoch = LeaderEpoch(next.leader_epoch.0 + 1);
                }
                next.partition_epoch += 1;
                check_partition(&name, *partition, &next)?;
                *current = next;
            }
            MetadataRecord::NoOp => {}
            MetadataRecord::BrokerState {
                broker_id,
                incarnation_id,
                broker_epoch,
                listeners,
                rack,
                fenced,
                in_controlled_shutdown,
            } => {
                let registration = BrokerRegistration {
                    broker_id: *broker_id,
                    incarnation_id: *incarnation_id,
                    broker_epoch: *broker_epoch,
                    listeners: listeners.clone(),
                    rack: rack.clone(),
                    fenced: *fenced,
                    in_controlled_shutdown: *in_controlled_shutdown,
                };
                self.brokers.insert(*broker_id, registration);
            }
            MetadataRecord::Topic { name, topic_id } => {
                if self.topics.contains_key(name) {
                    return Err(Error::Inconsistent(format!("topic {name} exists already")));
                }
                let topic = TopicImage {
                    name: name.clone(),
                    id: *topic_id,
                    partitions: BTreeMap::new(),
                    configs: BTreeMap::new(),
                };
                self.topics.insert(name.clone(), topic);
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
                adding_replicas,
                removing_replicas,
            } => {
                let name = self.topic_name(*topic_id)?;
                let topic = self.topics.get_mut(&name).expect("looked up above");
                let image = PartitionRegistration {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    adding_replicas: adding_replicas.clone(),
                    removing_replicas: removing_replicas.clone(),
                };
                topic.partitions.insert(*partition, image);
            }
            MetadataRecord::Config { resource, name, value } => {
                let configs = match resource {
                    ConfigResource::Topic(topic) => {
                        &mut self
                            .topics
                            .get_mut(topic)
                            .ok_or_else(|| Error::Inconsistent(format!("config for unknown topic {topic}")))?
                            .configs
                    }
                    ConfigResource::Broker(broker) => self.broker_configs.entry(*broker).or_default(),
                };
                match value {
                    Some(value) => configs.insert(name.clone(), value.clone()),
                    None => configs.remove(name),
                };
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let name = self.topic_name(*topic_id)?;
                self.topics.remove(&name);
            }
            MetadataRecord::ProducerIds { next_producer_id, .. } => {
                if *next_producer_id < self.next_producer_id {
                    return Err(Error::Inconsistent("producer id blocks must move forward".into()));
                }
                self.next_producer_id = *next_producer_id;
            }
        }
        Ok(())
    }

    /// Checks the invariants every image must hold.
    pub fn validate(&self) -> Result<()> {
        for topic in self.topics.values() {
            for (index, partition) in &topic.partitions {
                if *index < 0 || *index as usize >= topic.partitions.len() {
                    return Err(Error::Inconsistent(format!("{} has a gap at partition {index}", topic.name)));
                }
                check_partition(&topic.name, *index, partition)?;
            }
        }
        Ok(())
    }
}

/// The invariants of one partition's registration: its leader is in the ISR, and the ISR and
/// a reassignment's adding and removing replicas are replicas (the last two disjoint).
fn check_partition(topic: &str, index: i32, partition: &PartitionRegistration) -> Result<()> {
    let fail = |what: &str| Err(Error::Inconsistent(format!("{topic}-{index}: {what}")));
    if !partition.leader.is_none() && !partition.isr.contains(&partition.leader) {
        return fail("leader not in ISR");
    }
    if partition.isr.iter().any(|b| !partition.replicas.contains(b)) {
        return fail("ISR not within replicas");
    }
    let (adding, removing) = (&partition.adding_replicas, &partition.removing_replicas);
    if adding.iter().chain(removing).any(|b| !partition.replicas.contains(b)) {
        return fail("a reassignment names a broker outside the replicas");
    }
    if adding.iter().any(|b| removing.contains(b)) {
        return fail("a replica both added and removed");
    }
    Ok(())
}
