//! This broker's replicas as the metadata says they should be: the replica manager's publisher
//! (Kafka's `ReplicaManager.applyDelta`, with `LogManager`'s opening and deleting of logs).
//!
//! Each delta becomes the replica changes `fjord_replication::local_changes` decides for this
//! broker, and those are carried out here: a partition's log opened (recovered if needed,
//! with the checkpoints found at start-up), led, followed, reconfigured or deleted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use fjord_log::OpenOptions;
use fjord_metadata::{MetadataDelta, MetadataImage};
use fjord_replication::{
    LOG_START_OFFSET_CHECKPOINT, OffsetCheckpoint, Partition, PartitionChange, RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT, ReplicaChange, ReplicaManager, local_changes,
};
use fjord_types::{Clock, Offset, SystemClock, TopicPartition};

use crate::config::BrokerConfig;
use crate::metadata::loader::MetadataPublisher;
use crate::replication::fetcher::Fetchers;
use crate::storage;

/// The offsets checkpointed for each partition when the broker last ran.
#[derive(Debug, Default)]
pub(crate) struct StartupCheckpoints {
    recovery_points: BTreeMap<TopicPartition, Offset>,
    log_start_offsets: BTreeMap<TopicPartition, Offset>,
    high_watermarks: BTreeMap<TopicPartition, Offset>,
}

impl StartupCheckpoints {
    /// Reads the checkpoint files of the data directory (a missing or damaged one is empty:
    /// recovery then starts from the log's beginning).
    pub(crate) fn read(data_dir: &std::path::Path) -> StartupCheckpoints {
        let read = |name: &str| OffsetCheckpoint::read(&data_dir.join(name)).unwrap_or_default().offsets;
        StartupCheckpoints {
            recovery_points: read(RECOVERY_POINT_CHECKPOINT),
            log_start_offsets: read(LOG_START_OFFSET_CHECKPOINT),
            high_watermarks: read(REPLICATION_OFFSET_CHECKPOINT),
        }
    }
}

/// Opens, leads, follows, reconfigures and deletes this broker's replicas by delta.
#[derive(Debug)]
pub(crate) struct ReplicaPublisher {
    pub(crate) replicas: Arc<ReplicaManager>,
    /// The followers' fetch tasks, told which leader each followed partition has.
    pub(crate) fetchers: Arc<Fetchers>,
    pub(crate) config: BrokerConfig,
    pub(crate) data_dir: PathBuf,
    /// Consumed as each partition first opens; partitions created later start empty.
    pub(crate) checkpoints: StartupCheckpoints,
}

/// The metadata's changes in the replica manager's terms.
fn partition_changes(delta: &MetadataDelta, image: &MetadataImage) -> Vec<PartitionChange> {
    let mut changes = Vec::new();
    for topic in &delta.removed_topics {
        for (&index, registration) in &topic.partitions {
            let tp = TopicPartition::new(topic.name.clone(), index);
            changes.push(PartitionChange::Removed { tp, registration: registration.clone() });
        }
    }
    for p in &delta.partitions {
        changes.push(PartitionChange::Registered {
            tp: TopicPartition::new(p.topic.clone(), p.partition),
            topic_id: p.topic_id,
            previous: p.previous.clone(),
            current: p.current.clone(),
        });
    }
    for name in &delta.changed_topic_configs {
        let Some(topic) = image.topics.get(name) else { continue };
        for (&index, registration) in &topic.partitions {
            let tp = TopicPartition::new(name.clone(), index);
            changes.push(PartitionChange::Reconfigured { tp, registration: registration.clone() });
        }
    }
    changes
}

impl ReplicaPublisher {
    fn open(&mut self, image: &MetadataImage, tp: &TopicPartition) -> Result<Partition, fjord_log::Error> {
        let configs = image.topics.get(&tp.topic).map(|t| t.configs.clone()).unwrap_or_default();
        let options = OpenOptions {
            recovery_point: self.checkpoints.recovery_points.remove(tp).unwrap_or(Offset(0)),
            log_start_offset: self.checkpoints.log_start_offsets.remove(tp).unwrap_or(Offset(0)),
        };
        let high_watermark = self.checkpoints.high_watermarks.remove(tp).unwrap_or(Offset(0));
        let dir = storage::partition_dir(&self.data_dir, tp);
        let partition = Partition::open(
            &dir,
            tp.clone(),
            self.config.partition_config(&configs),
            options,
            self.replicas.local_broker(),
            high_watermark,
            SystemClock.now(),
        )?;
        let report = partition.log().open_report();
        if !report.clean_shutdown && !report.recovered_segments.is_empty() {
            tracing::info!(partition = %tp, segments = report.recovered_segments.len(), truncated_bytes = report.truncated_bytes, reason = ?report.reason, "recovered log");
        }
        Ok(partition)
    }
}

impl MetadataPublisher for ReplicaPublisher {
    fn name(&self) -> &'static str {
        "replica-manager"
    }

    fn publish(&mut self, delta: &MetadataDelta, image: &MetadataImage) {
        let changes = partition_changes(delta, image);
        let replicas = Arc::clone(&self.replicas);
        for change in local_changes(&changes, replicas.local_broker()) {
            let result = match &change {
                ReplicaChange::BecomeLeader { tp, topic_id, registration } => {
                    self.fetchers.unfollow(tp);
                    replicas.become_leader(tp, *topic_id, registration, SystemClock.now(), || self.open(image, tp))
                }
                ReplicaChange::BecomeFollower { tp, topic_id, registration } => {
                    let followed = replicas.become_follower(tp, *topic_id, registration, || self.open(image, tp));
                    if followed.is_ok() {
                        self.fetchers.follow(tp, *topic_id, registration.leader);
                    }
                    followed
                }
                ReplicaChange::Stop { tp, delete } => {
                    self.fetchers.unfollow(tp);
                    if let Some(handle) = replicas.stop_replica(tp) {
                        let partition = handle.state.lock();
                        if *delete {
                            // The log's files go with the directory; reads in flight keep theirs.
                            storage::delete_partition_dir(partition.dir());
                            tracing::info!(partition = %tp, "deleted replica");
                        }
                    }
                    Ok(())
                }
                ReplicaChange::UpdateConfig { tp } => {
                    let configs = image.topics.get(&tp.topic).map(|t| t.configs.clone()).unwrap_or_default();
                    replicas.update_config(tp, self.config.partition_config(&configs));
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::error!(change = ?change, error = %e, "cannot apply a replica change");
            }
        }
    }
}
