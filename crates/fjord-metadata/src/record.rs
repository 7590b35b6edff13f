//! Metadata records and their encoding (Kafka's `metadata/*Record.json`, in a compact binary
//! form of our own: a type byte, a version byte, then the fields big-endian).

use fjord_types::{BrokerId, LeaderEpoch, TopicId};

use crate::error::{Error, Result};

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
    /// A broker joined (or came back with a new endpoint).
    RegisterBroker {
        /// Its `node.id`.
        broker_id: BrokerId,
        /// The advertised host.
        host: String,
        /// The advertised port.
        port: u16,
        /// `broker.rack`, if set.
        rack: Option<String>,
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
}

const REGISTER_BROKER: u8 = 1;
const TOPIC: u8 = 2;
const PARTITION: u8 = 3;
const CONFIG: u8 = 4;
const REMOVE_TOPIC: u8 = 5;
const PRODUCER_IDS: u8 = 6;
const VERSION: u8 = 0;

impl MetadataRecord {
    /// Appends the record's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer(out);
        match self {
            MetadataRecord::RegisterBroker { broker_id, host, port, rack } => {
                w.header(REGISTER_BROKER);
                w.i32(broker_id.0);
                w.string(host);
                w.u16(*port);
                w.optional_string(rack.as_deref());
            }
            MetadataRecord::Topic { name, topic_id } => {
                w.header(TOPIC);
                w.string(name);
                w.bytes16(&topic_id.0);
            }
            MetadataRecord::Partition { topic_id, partition, replicas, isr, leader, leader_epoch, partition_epoch } => {
                w.header(PARTITION);
                w.bytes16(&topic_id.0);
                w.i32(*partition);
                w.brokers(replicas);
                w.brokers(isr);
                w.i32(leader.0);
                w.i32(leader_epoch.0);
                w.i32(*partition_epoch);
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
        }
    }

    /// Decodes one record.
    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord> {
        let mut r = Reader { bytes, pos: 0 };
        let kind = r.u8()?;
        let version = r.u8()?;
        if version != VERSION {
            return Err(Error::CorruptRecord(format!("unknown version {version} of record type {kind}")));
        }
        let record = match kind {
            REGISTER_BROKER => MetadataRecord::RegisterBroker {
                broker_id: BrokerId(r.i32()?),
                host: r.string()?,
                port: r.u16()?,
                rack: r.optional_string()?,
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
    fn brokers(&mut self) -> Result<Vec<BrokerId>> {
        let count = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        // Bounded by the bytes present before anything is allocated.
        if count > (self.bytes.len() - self.pos) / 4 {
            return Err(Error::CorruptRecord("broker list longer than the record".into()));
        }
        (0..count).map(|_| self.i32().map(BrokerId)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = MetadataRecord> {
        let id = any::<[u8; 16]>().prop_map(TopicId);
        let brokers = prop::collection::vec(any::<i32>().prop_map(BrokerId), 0..5);
        prop_oneof![
            (any::<i32>(), ".*", any::<u16>(), prop::option::of(".*")).prop_map(|(b, host, port, rack)| {
                MetadataRecord::RegisterBroker { broker_id: BrokerId(b), host, port, rack }
            }),
            (".*", id.clone()).prop_map(|(name, topic_id)| MetadataRecord::Topic { name, topic_id }),
            (id.clone(), any::<i32>(), brokers.clone(), brokers, any::<i32>(), any::<i32>(), any::<i32>()).prop_map(
                |(topic_id, partition, replicas, isr, leader, epoch, pe)| MetadataRecord::Partition {
                    topic_id,
                    partition,
                    replicas,
                    isr,
                    leader: BrokerId(leader),
                    leader_epoch: LeaderEpoch(epoch),
                    partition_epoch: pe,
                }
            ),
            (".*", ".*", prop::option::of(".*")).prop_map(|(t, name, value)| MetadataRecord::Config {
                resource: ConfigResource::Topic(t),
                name,
                value
            }),
            id.prop_map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
            (any::<i32>(), any::<i64>())
                .prop_map(|(b, next)| MetadataRecord::ProducerIds { broker_id: BrokerId(b), next_producer_id: next }),
        ]
    }

    proptest! {
        #[test]
        fn records_round_trip(record in arb_record()) {
            let mut bytes = Vec::new();
            record.encode(&mut bytes);
            prop_assert_eq!(MetadataRecord::decode(&bytes).unwrap(), record);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = MetadataRecord::decode(&bytes);
        }
    }
}
