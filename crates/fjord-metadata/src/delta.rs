//! What a batch of committed records changed (Kafka's `MetadataDelta`, `TopicsDelta`): the
//! metadata loader applies each committed batch to the image and hands the delta to the
//! publishers (the replica manager, the group coordinator, config caches), which react to it
//! and to nothing else.

use std::collections::{BTreeMap, BTreeSet};

use fjord_types::{BrokerId, PartitionRegistration, TopicId};

use crate::batch::MetadataBatch;
use crate::error::Result;
use crate::image::{MetadataImage, TopicImage};
use crate::record::{ConfigResource, MetadataRecord};

/// A partition created or changed by a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDelta {
    /// Its topic's name.
    pub topic: String,
    /// Its topic's id.
    pub topic_id: TopicId,
    /// Its index.
    pub partition: i32,
    /// The registration before the batch; `None` for a new partition.
    pub previous: Option<PartitionRegistration>,
    /// The registration after it.
    pub current: PartitionRegistration,
}

/// The changes of one batch of records, relative to the image before it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataDelta {
    /// Partitions created or changed, in topic then partition order.
    pub partitions: Vec<PartitionDelta>,
    /// Topics removed, as they were before the batch.
    pub removed_topics: Vec<TopicImage>,
    /// Topics whose configs changed (by name, in the new image).
    pub changed_topic_configs: BTreeSet<String>,
    /// Brokers registered or re-registered.
    pub changed_brokers: BTreeSet<BrokerId>,
    /// Brokers whose dynamic configs changed (`BrokerId::NONE`: the cluster default).
    pub changed_broker_configs: BTreeSet<BrokerId>,
    /// Whether a block of producer ids was handed out.
    pub producer_ids_changed: bool,
}

impl MetadataDelta {
    /// Whether the batch changed nothing a publisher acts on.
    pub fn is_empty(&self) -> bool {
        *self == MetadataDelta::default()
    }
}

impl MetadataImage {
    /// Applies a batch of records at its offsets: returns the image after it, which contains
    /// up to the batch's last record, and what changed. `self` is untouched, so a batch that
    /// does not apply leaves the published image as it was.
    pub fn apply_batch(&self, batch: &MetadataBatch) -> Result<(MetadataImage, MetadataDelta)> {
        let records = &batch.records;
        let mut next = self.clone();
        let mut delta = MetadataDelta::default();
        // Partitions touched, by topic id; their before and after are compared at the end.
        let mut touched: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
        for (index, record) in records.iter().enumerate() {
            match record {
                MetadataRecord::RegisterBroker { broker_id, .. }
                | MetadataRecord::BrokerState { broker_id, .. }
                | MetadataRecord::BrokerRegistrationChange { broker_id, .. } => {
                    delta.changed_brokers.insert(*broker_id);
                }
                MetadataRecord::NoOp => {}
                MetadataRecord::Topic { .. } => {}
                MetadataRecord::Partition { topic_id, partition, .. }
                | MetadataRecord::PartitionChange { topic_id, partition, .. } => {
                    touched.entry(*topic_id).or_default().insert(*partition);
                }
                MetadataRecord::Config { resource: ConfigResource::Topic(name), .. } => {
                    delta.changed_topic_configs.insert(name.clone());
                }
                MetadataRecord::Config { resource: ConfigResource::Broker(broker), .. } => {
                    delta.changed_broker_configs.insert(*broker);
                }
                MetadataRecord::RemoveTopic { topic_id } => {
                    if let Some(topic) = next.topic_by_id(*topic_id) {
                        delta.changed_topic_configs.remove(&topic.name);
                        // A topic created and removed within the batch was never published.
                        if self.topic_by_id(*topic_id).is_some() {
                            delta.removed_topics.push(topic.clone());
                        }
                    }
                    touched.remove(topic_id);
                }
                MetadataRecord::ProducerIds { .. } => delta.producer_ids_changed = true,
            }
            next.apply(record, batch.base_offset.plus(index as i64))?;
        }
        for (topic_id, partitions) in touched {
            let Some(topic) = next.topic_by_id(topic_id) else { continue };
            let before = self.topic_by_id(topic_id);
            for partition in partitions {
                let Some(current) = topic.partitions.get(&partition) else { continue };
                let previous = before.and_then(|t| t.partitions.get(&partition)).cloned();
                if previous.as_ref() != Some(current) {
                    delta.partitions.push(PartitionDelta {
                        topic: topic.name.clone(),
                        topic_id,
                        partition,
                        previous,
                        current: current.clone(),
                    });
                }
            }
        }
        delta.partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        next.provenance = batch.last();
        Ok((next, delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_types::{LeaderEpoch, Offset, OffsetAndEpoch};

    fn at(offset: i64) -> OffsetAndEpoch {
        OffsetAndEpoch::new(Offset(offset), LeaderEpoch(1))
    }

    /// `records` as a batch ending at `last`.
    fn batch(records: &[MetadataRecord], last: OffsetAndEpoch) -> MetadataBatch {
        let base = last.offset.plus(1 - records.len() as i64);
        MetadataBatch { base_offset: base, epoch: last.epoch, records: records.to_vec() }
    }

    fn partition(topic_id: TopicId, partition: i32, replicas: &[i32], leader: i32, epoch: i32) -> MetadataRecord {
        let replicas: Vec<BrokerId> = replicas.iter().copied().map(BrokerId).collect();
        MetadataRecord::Partition {
            topic_id,
            partition,
            isr: replicas.clone(),
            replicas,
            leader: BrokerId(leader),
            leader_epoch: LeaderEpoch(epoch),
            partition_epoch: epoch,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    #[test]
    fn a_delta_names_new_changed_and_removed_partitions() {
        let (a, b) = (TopicId([1; 16]), TopicId([2; 16]));
        let created = vec![
            MetadataRecord::Topic { name: "a".into(), topic_id: a },
            partition(a, 0, &[1, 2], 1, 0),
            partition(a, 1, &[2, 1], 2, 0),
            MetadataRecord::Topic { name: "b".into(), topic_id: b },
            partition(b, 0, &[1], 1, 0),
        ];
        let (image, delta) = MetadataImage::default().apply_batch(&batch(&created, at(4))).unwrap();
        assert_eq!(image.provenance, at(4));
        assert_eq!(delta.partitions.len(), 3);
        assert!(delta.partitions.iter().all(|p| p.previous.is_none()));

        let changes = vec![
            partition(a, 0, &[1, 2], 2, 1), // a new leader
            partition(a, 1, &[2, 1], 2, 0), // the same registration again: no change
            MetadataRecord::RemoveTopic { topic_id: b },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("a".into()),
                name: "retention.ms".into(),
                value: Some("1".into()),
            },
        ];
        let (next, delta) = image.apply_batch(&batch(&changes, at(8))).unwrap();
        assert_eq!(delta.partitions.len(), 1);
        let changed = &delta.partitions[0];
        assert_eq!((changed.topic.as_str(), changed.partition), ("a", 0));
        assert_eq!(changed.previous.as_ref().map(|p| p.leader), Some(BrokerId(1)));
        assert_eq!(changed.current.leader, BrokerId(2));
        assert_eq!(delta.removed_topics.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(delta.changed_topic_configs.contains("a"));
        assert!(!next.topics.contains_key("b"));
        assert_eq!(image.provenance, at(4), "the image a batch applies to is left alone");
    }

    #[test]
    fn a_batch_that_does_not_apply_changes_nothing() {
        let bad = vec![MetadataRecord::RemoveTopic { topic_id: TopicId([9; 16]) }];
        let image = MetadataImage::default();
        assert!(image.apply_batch(&batch(&bad, at(0))).is_err());
        assert_eq!(image, MetadataImage::default());
    }

    #[test]
    fn a_topic_created_and_removed_in_one_batch_leaves_no_trace() {
        let t = TopicId([3; 16]);
        let records = vec![
            MetadataRecord::Topic { name: "t".into(), topic_id: t },
            partition(t, 0, &[1], 1, 0),
            MetadataRecord::RemoveTopic { topic_id: t },
        ];
        let (_, delta) = MetadataImage::default().apply_batch(&batch(&records, at(2))).unwrap();
        assert!(delta.is_empty(), "{delta:?}");
    }
}
