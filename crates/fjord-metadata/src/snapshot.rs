//! Metadata snapshots (KIP-630): the image written out as the records that rebuild it, so the
//! quorum can trim its log and a node far behind (or new) can start from the snapshot instead
//! of replaying from the first record. Loading a snapshot replaces the image; the delta
//! between the two images is what publishers act on, as after any batch.

use std::collections::BTreeSet;

use fjord_types::{BrokerId, LeaderEpoch, Offset, OffsetAndEpoch};

use crate::delta::{MetadataDelta, PartitionDelta};
use crate::error::{Error, Result};
use crate::image::MetadataImage;
use crate::record::{ConfigResource, MetadataRecord};

/// The first byte of a snapshot payload: its format.
const SNAPSHOT_VERSION: u8 = 1;

impl MetadataImage {
    /// The records that rebuild this image from nothing (brokers with their epochs as
    /// `BrokerState`, topics with their configs and partitions, broker configs, the next
    /// producer id).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for b in self.brokers.values() {
            records.push(MetadataRecord::BrokerState {
                broker_id: b.broker_id,
                incarnation_id: b.incarnation_id,
                broker_epoch: b.broker_epoch,
                listeners: b.listeners.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
                in_controlled_shutdown: b.in_controlled_shutdown,
            });
        }
        for topic in self.topics.values() {
            records.push(MetadataRecord::Topic { name: topic.name.clone(), topic_id: topic.id });
            for (name, value) in &topic.configs {
                records.push(MetadataRecord::Config {
                    resource: ConfigResource::Topic(topic.name.clone()),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
            for (&partition, p) in &topic.partitions {
                records.push(MetadataRecord::partition(topic.id, partition, p));
            }
        }
        for (broker, configs) in &self.broker_configs {
            for (name, value) in configs {
                records.push(MetadataRecord::Config {
                    resource: ConfigResource::Broker(*broker),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if self.next_producer_id > 0 {
            records.push(MetadataRecord::ProducerIds {
                broker_id: BrokerId::NONE,
                next_producer_id: self.next_producer_id,
            });
        }
        records
    }

    /// The snapshot payload of this image: a version byte, the image's provenance (offset,
    /// epoch), then each record length-prefixed.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut out = vec![SNAPSHOT_VERSION];
        out.extend_from_slice(&self.provenance.offset.0.to_be_bytes());
        out.extend_from_slice(&self.provenance.epoch.0.to_be_bytes());
        let mut record = Vec::new();
        for r in self.to_records() {
            record.clear();
            r.encode(&mut record);
            out.extend_from_slice(&(record.len() as u32).to_be_bytes());
            out.extend_from_slice(&record);
        }
        out
    }

    /// The image a snapshot payload holds.
    pub fn decode_snapshot(payload: &[u8]) -> Result<MetadataImage> {
        let corrupt = |why: &str| Error::CorruptRecord(format!("metadata snapshot: {why}"));
        let (&version, rest) = payload.split_first().ok_or_else(|| corrupt("empty"))?;
        if version != SNAPSHOT_VERSION {
            return Err(corrupt(&format!("unknown version {version}")));
        }
        let (offset, rest) = rest.split_first_chunk::<8>().ok_or_else(|| corrupt("truncated provenance"))?;
        let (epoch, mut rest) = rest.split_first_chunk::<4>().ok_or_else(|| corrupt("truncated provenance"))?;
        let provenance =
            OffsetAndEpoch::new(Offset(i64::from_be_bytes(*offset)), LeaderEpoch(i32::from_be_bytes(*epoch)));
        let mut image = MetadataImage::default();
        while !rest.is_empty() {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else { return Err(corrupt("truncated length")) };
            let len = u32::from_be_bytes(*len) as usize;
            if len > tail.len() {
                return Err(corrupt("record longer than the snapshot"));
            }
            let (bytes, tail) = tail.split_at(len);
            image.apply(&MetadataRecord::decode(bytes)?, provenance.offset)?;
            rest = tail;
        }
        image.validate()?;
        image.provenance = provenance;
        Ok(image)
    }
}

impl MetadataDelta {
    /// What differs between two images (after loading a snapshot over an image): every
    /// partition whose registration changed or that is new, topics gone, brokers and configs
    /// that differ.
    pub fn between(old: &MetadataImage, new: &MetadataImage) -> MetadataDelta {
        let mut delta = MetadataDelta::default();
        for topic in old.topics.values() {
            if new.topic_by_id(topic.id).is_none() {
                delta.removed_topics.push(topic.clone());
            }
        }
        for topic in new.topics.values() {
            let before = old.topic_by_id(topic.id);
            if before.is_some_and(|b| b.configs != topic.configs) || (before.is_none() && !topic.configs.is_empty()) {
                delta.changed_topic_configs.insert(topic.name.clone());
            }
            for (&partition, current) in &topic.partitions {
                let previous = before.and_then(|b| b.partitions.get(&partition)).cloned();
                if previous.as_ref() != Some(current) {
                    delta.partitions.push(PartitionDelta {
                        topic: topic.name.clone(),
                        topic_id: topic.id,
                        partition,
                        previous,
                        current: current.clone(),
                    });
                }
            }
        }
        let ids: BTreeSet<BrokerId> = old.brokers.keys().chain(new.brokers.keys()).copied().collect();
        delta.changed_brokers = ids.into_iter().filter(|b| old.brokers.get(b) != new.brokers.get(b)).collect();
        let ids: BTreeSet<BrokerId> = old.broker_configs.keys().chain(new.broker_configs.keys()).copied().collect();
        delta.changed_broker_configs =
            ids.into_iter().filter(|b| old.broker_configs.get(b) != new.broker_configs.get(b)).collect();
        delta.producer_ids_changed = old.next_producer_id != new.next_producer_id;
        delta.partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        delta
    }
}

#[cfg(test)]
mod tests {
    use fjord_types::TopicId;

    use super::*;
    use crate::MetadataBatch;
    use crate::record::Endpoint;

    #[test]
    fn a_snapshot_rebuilds_the_image_and_the_delta_names_what_changed() {
        let t = TopicId([4; 16]);
        let records = vec![
            MetadataRecord::RegisterBroker {
                broker_id: BrokerId(1),
                incarnation_id: [1; 16],
                listeners: vec![Endpoint { listener: "PLAINTEXT".into(), host: "h".into(), port: 9092 }],
                rack: Some("r1".into()),
                fenced: false,
            },
            MetadataRecord::Topic { name: "t".into(), topic_id: t },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "retention.ms".into(),
                value: Some("5".into()),
            },
            MetadataRecord::Partition {
                topic_id: t,
                partition: 0,
                replicas: vec![BrokerId(1), BrokerId(2)],
                isr: vec![BrokerId(1)],
                leader: BrokerId(1),
                leader_epoch: LeaderEpoch(3),
                partition_epoch: 4,
                adding_replicas: vec![BrokerId(2)],
                removing_replicas: Vec::new(),
            },
            MetadataRecord::ProducerIds { broker_id: BrokerId(1), next_producer_id: 2000 },
        ];
        let batch = MetadataBatch { base_offset: Offset(10), epoch: LeaderEpoch(2), records };
        let (image, _) = MetadataImage::default().apply_batch(&batch).unwrap();
        let payload = image.encode_snapshot();
        let loaded = MetadataImage::decode_snapshot(&payload).unwrap();
        assert_eq!(loaded, image);
        assert_eq!(loaded.brokers[&BrokerId(1)].broker_epoch, 10, "the registration's epoch survives");

        let delta = MetadataDelta::between(&MetadataImage::default(), &loaded);
        assert_eq!(delta.partitions.len(), 1);
        assert!(delta.changed_topic_configs.contains("t") && delta.changed_brokers.contains(&BrokerId(1)));
        let gone = MetadataDelta::between(&loaded, &MetadataImage::default());
        assert_eq!(gone.removed_topics.len(), 1);
        assert!(MetadataDelta::between(&loaded, &loaded).is_empty());

        assert!(MetadataImage::decode_snapshot(&payload[..payload.len() - 1]).is_err());
        assert!(MetadataImage::decode_snapshot(&[9]).is_err());
        assert!(MetadataImage::decode_snapshot(&payload[..5]).is_err());
    }
}
