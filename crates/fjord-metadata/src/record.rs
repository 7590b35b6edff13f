//! Metadata records and their encoding (Kafka's `metadata/*Record.json`, in a compact binary
//! form of our own: a type byte, a version byte, then the fields big-endian).

use fjord_types::{BrokerId, LeaderEpoch, PartitionRegistration, TopicId};

use crate::error::{Error, Result};

/// A listener a broker advertises: its name and where clients reach it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT`, `INTERNAL`, ...).
    pub listener: String,
    /// The advertised host.
    pub host: String,
    /// The port.
    pub port: u16,
}

/// What a config record is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// A broker; `BrokerId::NONE` is the cluster-wide default.
    Broker(BrokerId),
}

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A broker registered (Kafka's `RegisterBrokerRecord`): a new process of it, fenced until
    /// it has caught up with the metadata log. Its broker epoch is this record's offset.
    RegisterBroker {
        /// Its `node.id`.
        broker_id: BrokerId,
        /// A random id of the process that registered (a restart registers anew).
        incarnation_id: [u8; 16],
        /// Its advertised listeners.
        listeners: Vec<Endpoint>,
        /// `broker.rack`, if set.
        rack: Option<String>,
        /// Whether it starts fenced (a real registration does; `false` only for one read back
        /// from an older log, where brokers were never fenced).
        fenced: bool,
    },
    /// A broker was fenced or unfenced, or began a controlled shutdown (Kafka's
    /// `BrokerRegistrationChangeRecord`); `None` leaves a field as it was.
    BrokerRegistrationChange {
        /// The broker.
        broker_id: BrokerId,
        /// The registration it applies to; a stale one is ignored.
        broker_epoch: i64,
        /// Fenced or not.
        fenced: Option<bool>,
        /// In controlled shutdown or not.
        in_controlled_shutdown: Option<bool>,
    },
    /// A topic was created.
    Topic {
        /// Its name.
        name: String,
        /// Its id.
        topic_id: TopicId,
    },
    /// A partition was created or changed leader, ISR or replicas.
    Partition {
        /// Its topic.
        topic_id: TopicId,
        /// Its index.
        partition: i32,
        /// The replicas, preferred leader first.
        replicas: Vec<BrokerId>,
        /// The in-sync replicas.
        isr: Vec<BrokerId>,
        /// The leader, or `BrokerId::NONE`.
        leader: BrokerId,
        /// Bumped at every leader change.
        leader_epoch: LeaderEpoch,
        /// Bumped at every change of the partition.
        partition_epoch: i32,
        /// Replicas a reassignment is adding (empty when none is under way).
        adding_replicas: Vec<BrokerId>,
        /// Replicas a reassignment is removing.
        removing_replicas: Vec<BrokerId>,
    },
    /// A config was set (`Some`) or removed (`None`).
    Config {
        /// What it configures.
        resource: ConfigResource,
        /// The property name.
        name: String,
        /// The value.
        value: Option<String>,
    },
    /// A topic was deleted.
    RemoveTopic {
        /// The deleted topic.
        topic_id: TopicId,
    },
    /// A block of producer ids was handed out; the next block starts at `next_producer_id`.
    ProducerIds {
        /// The broker the block went to.
        broker_id: BrokerId,
        /// The first id not yet handed out.
        next_producer_id: i64,
    },
    /// A partition's leader, ISR or replicas changed (Kafka's `PartitionChangeRecord`); `None`
    /// leaves a field as it was. Every change bumps the partition epoch, a new leader (even
    /// none) the leader epoch too.
    PartitionChange {
        /// Its topic.
        topic_id: TopicId,
        /// Its index.
        partition: i32,
        /// The new leader (`BrokerId::NONE`: no leader), if it changes.
        leader: Option<BrokerId>,
        /// The new ISR, if it changes.
        isr: Option<Vec<BrokerId>>,
        /// The new replicas, if they change.
        replicas: Option<Vec<BrokerId>>,
        /// The replicas a reassignment is adding, if that changes (KIP-455).
        adding_replicas: Option<Vec<BrokerId>>,
        /// The replicas a reassignment is removing, if that changes.
        removing_replicas: Option<Vec<BrokerId>>,
    },
    /// A broker's whole registration as a snapshot holds it (a snapshot has no record at the
    /// registration's offset to give the epoch).
    BrokerState {
        /// Its `node.id`.
        broker_id: BrokerId,
        /// Its process.
        incarnation_id: [u8; 16],
        /// Its registration's epoch.
        broker_epoch: i64,
        /// Its advertised listeners.
        listeners: Vec<Endpoint>,
        /// `broker.rack`.
        rack: Option<String>,
        /// Fenced or not.
        fenced: bool,
        /// In controlled shutdown or not.
        in_controlled_shutdown: bool,
    },
    /// Nothing: the active controller writes one when idle, so the high watermark keeps moving
    /// and brokers can show they are caught up (Kafka's `NoOpRecord`, KAFKA-13883).
    NoOp,
}

const REGISTER_BROKER: u8 = 1;
const TOPIC: u8 = 2;
const PARTITION: u8 = 3;
const CONFIG: u8 = 4;
const REMOVE_TOPIC: u8 = 5;
const PRODUCER_IDS: u8 = 6;
const BROKER_REGISTRATION_CHANGE: u8 = 7;
const PARTITION_CHANGE: u8 = 8;
const NO_OP: u8 = 9;
const BROKER_STATE: u8 = 10;
const VERSION: u8 = 0;
/// RegisterBroker's version since brokers have incarnations, listeners and fencing.
const REGISTER_BROKER_VERSION: u8 = 1;
/// Partition's and PartitionChange's version since they carry reassignments.
const PARTITION_VERSION: u8 = 1;

/// The newest version of each record type; every older one still decodes.
fn newest_version(kind: u8) -> u8 {
    match kind {
        REGISTER_BROKER => REGISTER_BROKER_VERSION,
        PARTITION | PARTITION_CHANGE => PARTITION_VERSION,
        _ => VERSION,
    }
}

impl MetadataRecord {
    /// The `Partition` record that registers `registration` whole.
    pub fn partition(topic_id: TopicId, partition: i32, registration: &PartitionRegistration) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: registration.replicas.clone(),
            isr: registration.isr.clone(),
            leader: registration.leader,
            leader_epoch: registration.leader_epoch,
            partition_epoch: registration.partition_epoch,
            adding_replicas: registration.adding_replicas.clone(),
            removing_replicas: registration.removing_replicas.clone(),
        }
    }

    /// The `PartitionChange` that turns `current` into `next`, or `None` if they agree. The
    /// leader field is written when the leader or its epoch changes: applying it bumps the
    /// epoch, so a leader kept under a new epoch is written too.
    pub fn partition_change(
        topic_id: TopicId,
        partition: i32,
        current: &PartitionRegistration,
        next: &PartitionRegistration,
    ) -> Option<MetadataRecord> {
        fn changed<T: PartialEq + Clone>(current: &T, next: &T) -> Option<T> {
            (current != next).then(|| next.clone())
        }
        let leader =
            (next.leader != current.leader || next.leader_epoch != current.leader_epoch).then_some(next.leader);
        let record = MetadataRecord::PartitionChange {
            topic_id,
            partition,
            leader,
            isr: changed(&current.isr, &next.isr),
            replicas: changed(&current.replicas, &next.replicas),
            adding_replicas: changed(&current.adding_replicas, &next.adding_replicas),
            removing_replicas: changed(&current.removing_replicas, &next.removing_replicas),
        };
        let MetadataRecord::PartitionChange { leader, isr, replicas, adding_replicas, removing_replicas, .. } = &record
        else {
            unreachable!("built above")
        };
        let any = leader.is_some()
            || isr.is_some()
            || replicas.is_some()
            || adding_replicas.is_some()
            || removing_replicas.is_some();
        any.then_some(record)
    }

    /// Appends the record's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        match self {
            MetadataRecord::RegisterBroker { broker_id, incarnation_id, listeners, rack, fenced } => {
                w.0.extend_from_slice(&[REGISTER_BROKER, REGISTER_BROKER_VERSION]);
                w.i32(broker_id.0);
                w.bytes16(incarnation_id);
                w.endpoints(listeners);
                w.optional_string(rack.as_deref());
                w.0.push(u8::from(*fenced));
            }
            MetadataRecord::BrokerRegistrationChange { broker_id, broker_epoch, fenced, in_controlled_shutdown } => {
                w.header(BROKER_REGISTRATION_CHANGE);
                w.i32(broker_id.0);
                w.i64(*broker_epoch);
                w.optional_bool(*fenced);
                w.optional_bool(*in_controlled_shutdown);
            }
            MetadataRecord::Topic { name, topic_id } => {
                w.header(TOPIC);
                w.string(name);
                w.bytes16(&topic_id.0);
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
                w.0.extend_from_slice(&[PARTITION, PARTITION_VERSION]);
                w.bytes16(&topic_id.0);
                w.i32(*partition);
                w.brokers(replicas);
                w.brokers(isr);
                w.i32(leader.0);
                w.i32(leader_epoch.0);
                w.i32(*partition_epoch);
                w.brokers(adding_replicas);
                w.brokers(removing_replicas);
            }
            MetadataRecord::Config { resource, name, value } => {
                w.header(CONFIG);
                match resource {
                    ConfigResource::Topic(topic) => {
                        w.0.push(2);
                        w.string(topic);
                    }
                    ConfigResource::Broker(broker) => {
                        w.0.push(4);
                        w.i32(broker.0);
                    }
                }
                w.string(name);
                w.optional_string(value.as_deref());
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                w.header(REMOVE_TOPIC);
                w.bytes16(&topic_id.0);
            }
            MetadataRecord::ProducerIds { broker_id, next_producer_id } => {
                w.header(PRODUCER_IDS);
                w.i32(broker_id.0);
                w.i64(*next_producer_id);
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
                w.0.extend_from_slice(&[PARTITION_CHANGE, PARTITION_VERSION]);
                w.bytes16(&topic_id.0);
                w.i32(*partition);
                match leader {
                    None => w.0.push(0),
                    Some(leader) => {
                        w.0.push(1);
                        w.i32(leader.0);
                    }
                }
                w.optional_brokers(isr.as_deref());
                w.optional_brokers(replicas.as_deref());
                w.optional_brokers(adding_replicas.as_deref());
                w.optional_brokers(removing_replicas.as_deref());
            }
            MetadataRecord::NoOp => w.header(NO_OP),
            MetadataRecord::BrokerState {
                broker_id,
                incarnation_id,
                broker_epoch,
                listeners,
                rack,
                fenced,
                in_controlled_shutdown,
            } => {
                w.header(BROKER_STATE);
                w.i32(broker_id.0);
                w.bytes16(incarnation_id);
                w.i64(*broker_epoch);
                w.endpoints(listeners);
                w.optional_string(rack.as_deref());
                w.0.push(u8::from(*fenced));
                w.0.push(u8::from(*in_controlled_shutdown));
            }
        }
    }

    /// Decodes one record.
    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord> {
        let mut r = Reader { bytes, pos: 0 };
        let kind = r.u8()?;
        let version = r.u8()?;
        if version > newest_version(kind) {
            return Err(Error::CorruptRecord(format!("unknown version {version} of record type {kind}")));
        }
        let record = match kind {
            // Version 0, from a single node that never fenced: one PLAINTEXT endpoint.
            REGISTER_BROKER if version == 0 => {
                let broker_id = BrokerId(r.i32()?);
                let (host, port) = (r.string()?, r.u16()?);
                MetadataRecord::RegisterBroker {
                    broker_id,
                    incarnation_id: [0; 16],
                    listeners: vec![Endpoint { listener: "PLAINTEXT".into(), host, port }],
                    rack: r.optional_string()?,
                    fenced: false,
                }
            }
            REGISTER_BROKER => {
                let broker_id = BrokerId(r.i32()?);
                let incarnation_id = r.bytes16()?;
                let listeners = r.endpoints()?;
                MetadataRecord::RegisterBroker {
                    broker_id,
                    incarnation_id,
                    listeners,
                    rack: r.optional_string()?,
                    fenced: r.bool()?,
                }
            }
            BROKER_REGISTRATION_CHANGE => MetadataRecord::BrokerRegistrationChange {
                broker_id: BrokerId(r.i32()?),
                broker_epoch: r.i64()?,
                fenced: r.optional_bool()?,
                in_controlled_shutdown: r.optional_bool()?,
            },
            PARTITION_CHANGE => MetadataRecord::PartitionChange {
                topic_id: TopicId(r.bytes16()?),
                partition: r.i32()?,
                leader: match r.u8()? {
                    0 => None,
                    1 => Some(BrokerId(r.i32()?)),
                    other => return Err(Error::CorruptRecord(format!("bad option tag {other}"))),
                },
                isr: r.optional_brokers()?,
                replicas: r.optional_brokers()?,
                adding_replicas: if version >= 1 { r.optional_brokers()? } else { None },
                removing_replicas: if version >= 1 { r.optional_brokers()? } else { None },
            },
            NO_OP => MetadataRecord::NoOp,
            BROKER_STATE => MetadataRecord::BrokerState {
                broker_id: BrokerId(r.i32()?),
                incarnation_id: r.bytes16()?,
                broker_epoch: r.i64()?,
                listeners: r.endpoints()?,
                rack: r.optional_string()?,
                fenced: r.bool()?,
                in_controlled_shutdown: r.bool()?,
            },
            TOPIC => MetadataRecord::Topic { name: r.string()?, topic_id: TopicId(r.bytes16()?) },
            PARTITION => MetadataRecord::Partition {
                topic_id: TopicId(r.bytes16()?),
                partition: r.i32()?,
                replicas: r.brokers()?,
                isr: r.brokers()?,
                leader: BrokerId(r.i32()?),
                leader_epoch: LeaderEpoch(r.i32()?),
                partition_epoch: r.i32()?,
                adding_replicas: if version >= 1 { r.brokers()? } else { Vec::new() },
                removing_replicas: if version >= 1 { r.brokers()? } else { Vec::new() },
            },
            CONFIG => {
                let resource = match r.u8()? {
                    2 => ConfigResource::Topic(r.string()?),
                    4 => ConfigResource::Broker(BrokerId(r.i32()?)),
                    other => return Err(Error::CorruptRecord(format!("unknown config resource type {other}"))),
                };
                MetadataRecord::Config { resource, name: r.string()?, value: r.optional_string()? }
            }
            REMOVE_TOPIC => MetadataRecord::RemoveTopic { topic_id: TopicId(r.bytes16()?) },
            PRODUCER_IDS => MetadataRecord::ProducerIds { broker_id: BrokerId(r.i32()?), next_producer_id: r.i64()? },
            other => return Err(Error::CorruptRecord(format!("unknown record type {other}"))),
        };
        if r.pos != bytes.len() {
            return Err(Error::CorruptRecord(format!("{} bytes after the record", bytes.len() - r.pos)));
        }
        Ok(record)
    }
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn header(&mut self, kind: u8) {
        self.0.extend_from_slice(&[kind, VERSION]);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes16(&mut self, v: &[u8; 16]) {
        self.0.extend_from_slice(v);
    }
    fn string(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn optional_string(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.string(s);
            }
        }
    }
    fn brokers(&mut self, brokers: &[BrokerId]) {
        self.0.extend_from_slice(&(brokers.len() as u32).to_be_bytes());
        for b in brokers {
            self.i32(b.0);
        }
    }
    fn optional_brokers(&mut self, brokers: Option<&[BrokerId]>) {
        match brokers {
            None => self.0.push(0),
            Some(brokers) => {
                self.0.push(1);
                self.brokers(brokers);
            }
        }
    }
    fn endpoints(&mut self, endpoints: &[Endpoint]) {
        self.0.extend_from_slice(&(endpoints.len() as u32).to_be_bytes());
        for endpoint in endpoints {
            self.string(&endpoint.listener);
            self.string(&endpoint.host);
            self.u16(endpoint.port);
        }
    }
    fn optional_bool(&mut self, v: Option<bool>) {
        self.0.push(match v {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| Error::CorruptRecord("record truncated".into()))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes16(&mut self) -> Result<[u8; 16]> {
        Ok(self.take(16)?.try_into().expect("16 bytes"))
    }
    fn string(&mut self) -> Result<String> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Error::CorruptRecord("string is not UTF-8".into()))
    }
    fn optional_string(&mut self) -> Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            other => Err(Error::CorruptRecord(format!("bad option tag {other}"))),
        }
    }
    /// A list length, refused if the bytes left cannot hold that many items of at least
    /// `min_item` bytes: checked before anything is allocated.
    fn count(&mut self, min_item: usize) -> Result<usize> {
        let count = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        if count > (self.bytes.len() - self.pos) / min_item {
            return Err(Error::CorruptRecord("list longer than the record".into()));
        }
        Ok(count)
    }
    fn brokers(&mut self) -> Result<Vec<BrokerId>> {
        let count = self.count(4)?;
        (0..count).map(|_| self.i32().map(BrokerId)).collect()
    }
    fn optional_brokers(&mut self) -> Result<Option<Vec<BrokerId>>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.brokers().map(Some),
            other => Err(Error::CorruptRecord(format!("bad option tag {other}"))),
        }
    }
    fn endpoints(&mut self) -> Result<Vec<Endpoint>> {
        let count = self.count(10)?;
        (0..count).map(|_| Ok(Endpoint { listener: self.string()?, host: self.string()?, port: self.u16()? })).collect()
    }
    fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(Error::CorruptRecord(format!("bad bool {other}"))),
        }
    }
    fn optional_bool(&mut self) -> Result<Option<bool>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(false)),
            2 => Ok(Some(true)),
            other => Err(Error::CorruptRecord(format!("bad optional bool {other}"))),
        }
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
