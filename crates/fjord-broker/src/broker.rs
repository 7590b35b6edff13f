//! The broker's state: the metadata image and log, the partitions it hosts, and the glue that
//! keeps the partitions in step with the metadata (Kafka's `BrokerServer`, `ReplicaManager`,
//! `LogManager` roles, thinly).

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use fjord_log::{DeletedSegment, OpenOptions};
use fjord_metadata::controller::{self, CreatedTopic, Creator, NewTopic, TopicDefaults};
use fjord_metadata::{
    BrokerRegistration, ControllerError, METADATA_TOPIC_DIR, MetadataImage, MetadataLog, MetadataRecord,
};
use fjord_protocol::VersionTable;
use fjord_replication::{
    LOG_START_OFFSET_CHECKPOINT, OffsetCheckpoint, Partition, RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT,
};
use fjord_types::{BrokerId, Clock, Offset, SystemClock, Timestamp, TopicId, TopicPartition};
use kafka_protocol::messages::ApiKey;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::cleaner::{CLEANER_OFFSET_CHECKPOINT, CleanerManager};
use crate::config::BrokerConfig;
use crate::error::{Error, Result};
use crate::groups::Groups;
use crate::storage;

/// A hosted partition: its state behind a short lock. Long polls wait on the broker-wide
/// [`Broker::appended`] notifier.
#[derive(Debug)]
pub struct PartitionHandle {
    /// The replica state. Held only for an append or a read, never across an `.await`.
    pub state: Mutex<Partition>,
    /// The topic's id.
    pub topic_id: TopicId,
}

/// The APIs this broker answers; nothing else is advertised.
pub const ENABLED_APIS: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DeleteRecords,
    ApiKey::InitProducerId,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::CreatePartitions,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::DescribeCluster,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
];

/// One broker: a combined broker and single-voter controller.
#[derive(Debug)]
pub struct Broker {
    /// The configuration.
    pub config: BrokerConfig,
    /// `node.id`.
    pub node_id: BrokerId,
    /// The cluster id from `meta.properties`.
    pub cluster_id: String,
    /// The APIs and versions advertised.
    pub versions: VersionTable,
    pub(crate) data_dir: PathBuf,
    metadata: Mutex<Option<MetadataLog>>,
    image: RwLock<Arc<MetadataImage>>,
    partitions: RwLock<HashMap<TopicPartition, Arc<PartitionHandle>>>,
    producer_ids: Mutex<Range<i64>>,
    appended: Notify,
    /// The group coordinators hosted here.
    pub groups: Groups,
    /// The log cleaners' bookkeeping.
    pub(crate) cleaners: CleanerManager,
    _lock: File,
}

impl Broker {
    /// The wall clock: the broker is where time enters.
    pub fn now() -> Timestamp {
        SystemClock.now()
    }

    /// Opens the data directory: lock, `meta.properties`, the metadata log (replayed), this
    /// broker's registration, and every hosted partition (recovered if needed).
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>> {
        let data_dir = config.data_dir().clone();
        let lock = storage::lock(&data_dir)?;
        let cluster_id = storage::meta_properties(&data_dir, config.node_id)?;
        storage::remove_deleted_dirs(&data_dir)?;
        let metadata = MetadataLog::open(&data_dir.join(METADATA_TOPIC_DIR), Broker::now())?;
        let cleaner_checkpoint = OffsetCheckpoint::read(&data_dir.join(CLEANER_OFFSET_CHECKPOINT)).unwrap_or_default();
        let broker = Arc::new(Broker {
            node_id: BrokerId(config.node_id),
            cluster_id,
            versions: VersionTable::new(ENABLED_APIS),
            data_dir,
            image: RwLock::new(Arc::new(metadata.image().clone())),
            metadata: Mutex::new(Some(metadata)),
            partitions: RwLock::new(HashMap::new()),
            producer_ids: Mutex::new(0..0),
            appended: Notify::new(),
            groups: Groups::default(),
            cleaners: CleanerManager::load(cleaner_checkpoint),
            _lock: lock,
            config,
        });
        broker.open_partitions()?;
        broker.groups.load_all(&broker);
        let advertised = &broker.config.advertised_listeners[0];
        let registration = BrokerRegistration {
            broker_id: broker.node_id,
            host: advertised.host.clone(),
            port: advertised.port,
            rack: broker.config.rack.clone(),
        };
        let image = broker.image();
        if let Some(record) = controller::register_broker(&image, &registration) {
            broker.apply(vec![record])?;
        }
        Ok(broker)
    }

    fn open_partitions(&self) -> Result<()> {
        let image = self.image();
        let recovery = OffsetCheckpoint::read(&self.data_dir.join(RECOVERY_POINT_CHECKPOINT)).unwrap_or_default();
        let starts = OffsetCheckpoint::read(&self.data_dir.join(LOG_START_OFFSET_CHECKPOINT)).unwrap_or_default();
        for topic in image.topics.values() {
            for (&index, partition) in &topic.partitions {
                if !partition.replicas.contains(&self.node_id) {
                    continue;
                }
                let tp = TopicPartition::new(topic.name.clone(), index);
                let options = OpenOptions {
                    recovery_point: recovery.offsets.get(&tp).copied().unwrap_or(Offset(0)),
                    log_start_offset: starts.offsets.get(&tp).copied().unwrap_or(Offset(0)),
                };
                self.open_partition(&image, &tp, options)?;
            }
        }
        Ok(())
    }

    fn open_partition(&self, image: &MetadataImage, tp: &TopicPartition, options: OpenOptions) -> Result<()> {
        let topic = &image.topics[&tp.topic];
        let placement = &topic.partitions[&tp.partition];
        let dir = storage::partition_dir(&self.data_dir, tp);
        let partition = Partition::open(
            &dir,
            tp.clone(),
            self.config.partition_config(&topic.configs),
            options,
            placement.leader_epoch,
            placement.replicas.clone(),
            placement.isr.clone(),
            Broker::now(),
        )
        .map_err(|source| Error::Partition { partition: tp.clone(), source })?;
        let report = partition.log().open_report();
        if !report.clean_shutdown && !report.recovered_segments.is_empty() {
            tracing::info!(partition = %tp, segments = report.recovered_segments.len(), truncated_bytes = report.truncated_bytes, reason = ?report.reason, "recovered log");
        }
        let handle = PartitionHandle { state: Mutex::new(partition), topic_id: topic.id };
        self.partitions.write().insert(tp.clone(), Arc::new(handle));
        Ok(())
    }

    /// Wakes fetches waiting for data (after appends, and when partitions go away).
    pub fn notify_appended(&self) {
        self.appended.notify_waiters();
    }

    /// What a long poll waits on: notified after every produce that appended something.
    pub fn appended(&self) -> &Notify {
        &self.appended
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image.read())
    }

    /// A hosted partition.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<PartitionHandle>> {
        self.partitions.read().get(tp).cloned()
    }

    /// Every hosted partition.
    pub fn all_partitions(&self) -> Vec<(TopicPartition, Arc<PartitionHandle>)> {
        self.partitions.read().iter().map(|(tp, h)| (tp.clone(), Arc::clone(h))).collect()
    }

    /// Appends metadata records, applies them, and brings the hosted partitions in line.
    pub fn apply(&self, records: Vec<MetadataRecord>) -> Result<(), fjord_metadata::Error> {
        let mut metadata = self.metadata.lock();
        self.apply_locked(metadata.as_mut().expect("metadata log open"), records)
    }

    fn apply_locked(
        &self,
        metadata: &mut MetadataLog,
        records: Vec<MetadataRecord>,
    ) -> Result<(), fjord_metadata::Error> {
        let old = self.image();
        metadata.append(&records, Broker::now())?;
        let new = Arc::new(metadata.image().clone());
        *self.image.write() = Arc::clone(&new);
        self.sync_partitions(&old, &new);
        Ok(())
    }

    /// Opens partitions new to this broker, applies changed configs, and deletes the logs of
    /// removed topics.
    fn sync_partitions(&self, old: &MetadataImage, new: &MetadataImage) {
        for (name, topic) in &old.topics {
            if new.topics.get(name).is_none_or(|t| t.id != topic.id) {
                for &index in topic.partitions.keys() {
                    let tp = TopicPartition::new(name.clone(), index);
                    if let Some(handle) = self.partitions.write().remove(&tp) {
                        // The log's files go with the directory; long polls are woken at the end.
                        storage::delete_partition_dir(handle.state.lock().dir());
                    }
                }
            }
        }
        for topic in new.topics.values() {
            let changed_configs =
                old.topics.get(&topic.name).is_some_and(|t| t.id == topic.id && t.configs != topic.configs);
            for (&index, placement) in &topic.partitions {
                let tp = TopicPartition::new(topic.name.clone(), index);
                if !placement.replicas.contains(&self.node_id) {
                    continue;
                }
                match self.partition(&tp) {
                    None => {
                        if let Err(e) = self.open_partition(new, &tp, OpenOptions::default()) {
                            tracing::error!(partition = %tp, error = %e, "cannot create partition");
                        }
                    }
                    Some(handle) if changed_configs => {
                        handle.state.lock().set_config(self.config.partition_config(&topic.configs));
                    }
                    Some(_) => {}
                }
            }
        }
        // Fetches waiting on partitions that went away notice at once.
        self.notify_appended();
    }

    /// Runs a controller decision under the metadata lock and applies its records unless
    /// `validate_only`.
    pub fn decide<T>(
        &self,
        validate_only: bool,
        decide: impl FnOnce(&MetadataImage) -> (Vec<MetadataRecord>, T),
    ) -> Result<T, fjord_metadata::Error> {
        let mut metadata = self.metadata.lock();
        let metadata = metadata.as_mut().expect("metadata log open");
        let (records, answer) = decide(metadata.image());
        if !validate_only && !records.is_empty() {
            self.apply_locked(metadata, records)?;
        }
        Ok(answer)
    }

    /// Creates topics (CreateTopics, or auto-creation by Metadata).
    pub fn create_topics(
        &self,
        topics: &[NewTopic],
        creator: Creator,
        validate_only: bool,
    ) -> Result<Vec<Result<CreatedTopic, ControllerError>>, fjord_metadata::Error> {
        let defaults = TopicDefaults {
            num_partitions: self.config.num_partitions,
            default_replication_factor: self.config.default_replication_factor,
        };
        self.decide(validate_only, |image| {
            controller::create_topics(image, topics, defaults, creator, || TopicId(*uuid::Uuid::new_v4().as_bytes()))
        })
    }

    /// A fresh producer id, from this broker's block (a new block is allocated through the
    /// metadata log when it runs out).
    pub fn next_producer_id(&self) -> Result<i64, fjord_metadata::Error> {
        let mut block = self.producer_ids.lock();
        if block.is_empty() {
            let node = self.node_id;
            *block = self.decide(false, |image| {
                let (record, range) = controller::allocate_producer_ids(image, node);
                (vec![record], range)
            })?;
        }
        Ok(block.next().expect("a fresh block is not empty"))
    }

    /// Writes the high watermark, recovery point and log start checkpoints and each
    /// partition's leader epochs.
    pub fn write_checkpoints(&self) {
        let mut hw = OffsetCheckpoint::default();
        let mut recovery = OffsetCheckpoint::default();
        let mut starts = OffsetCheckpoint::default();
        for (tp, handle) in self.all_partitions() {
            let mut partition = handle.state.lock();
            hw.offsets.insert(tp.clone(), partition.high_watermark());
            recovery.offsets.insert(tp.clone(), partition.recovery_point());
            starts.offsets.insert(tp.clone(), partition.log_start_offset());
            if let Err(e) = partition.checkpoint_epochs() {
                tracing::error!(partition = %tp, error = %e, "cannot write leader-epoch-checkpoint");
            }
        }
        for (checkpoint, name) in [
            (hw, REPLICATION_OFFSET_CHECKPOINT),
            (recovery, RECOVERY_POINT_CHECKPOINT),
            (starts, LOG_START_OFFSET_CHECKPOINT),
        ] {
            if let Err(e) = checkpoint.write(&self.data_dir.join(name)) {
                tracing::error!(file = name, error = %e, "cannot write checkpoint");
            }
        }
        self.write_cleaner_checkpoint();
    }

    /// Flushes the segments of logs that rolled since their last flush, so the recovery point
    /// keeps up, and applies `flush.ms`. The files are synced with the partition unlocked
    /// (Kafka flushes in the background too), so appends and fetches do not wait for the disk.
    pub fn flush_due(&self) {
        for (tp, handle) in self.all_partitions() {
            let plan = {
                let mut partition = handle.state.lock();
                let log = partition.log_mut();
                let active = log.active_segment_base();
                if active > log.recovery_point() {
                    log.plan_flush(active)
                } else {
                    log.plan_flush_if_due(Broker::now())
                }
            };
            let result = match plan {
                Ok(Some(plan)) => {
                    let synced = plan.sync();
                    handle.state.lock().log_mut().complete_flush(plan, synced, Broker::now())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::error!(partition = %tp, error = %e, "flush failed");
            }
        }
    }

    /// Applies the delete policy to every hosted partition (Kafka's `LogManager`
    /// `cleanupLogs`, every `log.retention.check.interval.ms`): returns the segments taken out,
    /// each with its topic's `file.delete.delay.ms`, for the caller to remove later.
    pub fn enforce_retention(&self) -> Vec<(DeletedSegment, u64)> {
        let now = Broker::now();
        let image = self.image();
        let mut doomed = Vec::new();
        for (tp, handle) in self.all_partitions() {
            let Some(topic) = image.topics.get(&tp.topic) else { continue };
            let Some((retention, delay_ms)) = self.config.retention(&topic.configs) else { continue };
            let mut partition = handle.state.lock();
            let high_watermark = partition.high_watermark();
            match fjord_retention::enforce(partition.log_mut(), high_watermark, &retention, now) {
                Ok((plan, deleted)) => {
                    if let Some(start) = plan.delete_before {
                        tracing::info!(partition = %tp, segments = deleted.len(), log_start_offset = start.0, reasons = ?plan.segments.iter().map(|(_, r)| *r).collect::<Vec<_>>(), "deleted segments by retention");
                    }
                    doomed.extend(deleted.into_iter().map(|d| (d, delay_ms)));
                }
                Err(e) => tracing::error!(partition = %tp, error = %e, "retention failed"),
            }
        }
        doomed
    }

    /// Flushes and closes every log cleanly and writes the checkpoints: the next start skips
    /// recovery.
    pub fn shutdown(&self) {
        self.write_checkpoints();
        let partitions: Vec<_> = self.partitions.write().drain().collect();
        for (tp, handle) in partitions {
            match Arc::try_unwrap(handle) {
                Ok(handle) => {
                    if let Err(e) = handle.state.into_inner().close() {
                        tracing::error!(partition = %tp, error = %e, "cannot close log cleanly");
                    }
                }
                Err(handle) => {
                    // Still referenced by a request in flight: flush what we can.
                    if let Err(e) = handle.state.lock().flush(Broker::now()) {
                        tracing::error!(partition = %tp, error = %e, "cannot flush log");
                    }
                }
            }
        }
        if let Some(metadata) = self.metadata.lock().take()
            && let Err(e) = metadata.close()
        {
            tracing::error!(error = %e, "cannot close the metadata log cleanly");
        }
    }
}
