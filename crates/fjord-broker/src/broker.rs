//! The broker's state and how its parts are put together (Kafka's `BrokerServer` and
//! `ControllerServer` in one process): the data directory, the metadata quorum, the controller
//! and observer paths, the replica manager, the group coordinators and the log cleaners; and
//! the housekeeping of hosted logs (checkpoints, flushing, retention, clean shutdown).

use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use fjord_log::DeletedSegment;
use fjord_metadata::controller::{self, CreatedTopic, Creator, NewTopic, TopicDefaults};
use fjord_metadata::{ControllerError, METADATA_TOPIC_DIR, MetadataImage, MetadataRecord};
use fjord_protocol::VersionTable;
use fjord_protocol::cluster as pb;
use fjord_quorum::{DirectoryId, NodeId, ReplicaKey};
use fjord_replication::{
    LOG_START_OFFSET_CHECKPOINT, OffsetCheckpoint, PartitionHandle, RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT, ReplicaManager,
};
use fjord_types::{BrokerId, Clock, ErrorCode, Offset, SystemClock, Timestamp, TopicId, TopicPartition};
use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;

use crate::cleaner::{CLEANER_OFFSET_CHECKPOINT, CleanerContext, CleanerManager};
use crate::cluster::channel::ControllerChannel;
use crate::cluster::service::ControllerService;
use crate::config::BrokerConfig;
use crate::error::{Error, Result};
use crate::groups::{GroupPublisher, Groups};
use crate::metadata::controller::{Controller, ControllerFailure, Duties};
use crate::metadata::loader::{self, MetadataPublisher, Published};
use crate::metadata::raft::{Peers, QuorumOptions, RaftQuorum};
use crate::replicas::{ReplicaPublisher, StartupCheckpoints};
use crate::replication::fetcher::Fetchers;
use crate::storage;

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
    ApiKey::ElectLeaders,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::DescribeQuorum,
    ApiKey::DescribeLogDirs,
    ApiKey::DescribeTopicPartitions,
];

/// The threads and tasks a clean shutdown stops, in order.
#[derive(Debug)]
struct Workers {
    controller: tokio::task::JoinHandle<()>,
    quorum: std::thread::JoinHandle<()>,
    loader: loader::Loader,
}

/// One node: a broker, a controller, or both (`process.roles`).
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
    /// This process's incarnation: registered anew at each start.
    pub(crate) incarnation_id: [u8; 16],
    /// The broker epoch of its registration, once registered.
    pub(crate) broker_epoch: AtomicI64,
    metadata: Published,
    controller: Controller,
    quorum: RaftQuorum,
    channel: ControllerChannel,
    /// The partitions hosted here.
    pub replicas: Arc<ReplicaManager>,
    /// The followers' fetch tasks.
    pub(crate) fetchers: Arc<Fetchers>,
    /// The group coordinators hosted here.
    pub groups: Arc<Groups>,
    /// The log cleaners' bookkeeping.
    cleaners: Arc<CleanerManager>,
    producer_ids: Mutex<Range<i64>>,
    workers: Mutex<Option<Workers>>,
    /// The data directory's `.lock`, and `metadata.log.dir`'s when that is elsewhere.
    _locks: Vec<File>,
}

impl Broker {
    /// The wall clock: the broker is where time enters.
    pub fn now() -> Timestamp {
        SystemClock.now()
    }

    /// Opens the data directory (lock, `meta.properties`, checkpoints), starts the metadata
    /// loader and the metadata quorum, which replays the local metadata log through it (opening,
    /// and if needed recovering, every partition hosted here), and the controller. Registration
    /// with the active controller is the lifecycle's work (the `cluster::lifecycle` module).
    pub async fn start(config: BrokerConfig) -> Result<Arc<Broker>> {
        let data_dir = config.data_dir().clone();
        let node_id = BrokerId(config.node_id);
        let dir = data_dir.clone();
        let metadata_root = config.metadata_dir().clone();
        let voters_text = config.properties.get("controller.quorum.voters").cloned().unwrap_or_default();
        let new_cluster_id = if config.cluster.is_multi_node(node_id.0) {
            storage::derived_cluster_id(&voters_text)
        } else {
            storage::random_base64_id()
        };
        let metadata_root_for_open = metadata_root.clone();
        let (locks, meta, metadata_meta, checkpoints, cleaner_checkpoint) = tokio::task::spawn_blocking(move || {
            let mut locks = vec![storage::lock(&dir)?];
            let meta = storage::meta_properties(&dir, node_id.0, &new_cluster_id)?;
            // A metadata.log.dir of its own is formatted like the data directory, with the same
            // cluster id; its directory id is the one the quorum knows this node by.
            let metadata_meta = if metadata_root_for_open == dir {
                meta.clone()
            } else {
                locks.push(storage::lock(&metadata_root_for_open)?);
                let m = storage::meta_properties(&metadata_root_for_open, node_id.0, &meta.cluster_id)?;
                if m.cluster_id != meta.cluster_id {
                    return Err(Error::DataDir(format!(
                        "metadata.log.dir {} belongs to cluster {}, but log.dirs {} to cluster {}",
                        metadata_root_for_open.display(),
                        m.cluster_id,
                        dir.display(),
                        meta.cluster_id
                    )));
                }
                m
            };
            storage::remove_deleted_dirs(&dir)?;
            let cleaner = OffsetCheckpoint::read(&dir.join(CLEANER_OFFSET_CHECKPOINT)).unwrap_or_default();
            Ok::<_, Error>((locks, meta, metadata_meta, StartupCheckpoints::read(&dir), cleaner))
        })
        .await??;
        let replicas = Arc::new(ReplicaManager::new(node_id));
        let groups = Arc::new(Groups::new(config.coordinator.clone(), Arc::clone(&replicas)));
        let fetchers = Arc::new(Fetchers::new(config.replication.clone()));
        let publishers: Vec<Box<dyn MetadataPublisher>> = vec![
            Box::new(ReplicaPublisher {
                replicas: Arc::clone(&replicas),
                fetchers: Arc::clone(&fetchers),
                config: config.clone(),
                data_dir: data_dir.clone(),
                checkpoints,
            }),
            Box::new(GroupPublisher { groups: Arc::clone(&groups), local: node_id }),
        ];
        let loader = loader::start(publishers).map_err(|e| Error::Task(format!("cannot start the loader: {e}")))?;
        let directory_id = metadata_meta.directory_id.parse::<DirectoryId>().ok();
        let options = QuorumOptions {
            cluster_id: meta.cluster_id.clone(),
            local: ReplicaKey { id: NodeId(node_id.0), directory_id },
            voters: config.cluster.voters.clone(),
            config: config.cluster.quorum.clone(),
            snapshot_bytes: config.cluster.snapshot_bytes,
        };
        let metadata_dir = metadata_root.join(METADATA_TOPIC_DIR);
        let (committed, runtime) = (loader.committed.clone(), tokio::runtime::Handle::current());
        let peers = Peers::new(config.cluster.voters.clone());
        let (quorum, quorum_thread) =
            tokio::task::spawn_blocking(move || RaftQuorum::start(options, &metadata_dir, committed, runtime, peers))
                .await?
                .map_err(Error::Controller)?;
        let metadata = loader.published.clone();
        let duties = Duties {
            session_timeout_ms: config.broker_session_timeout_ms,
            max_idle_interval_ms: config.cluster.max_idle_interval_ms,
            auto_leader_rebalance: config.cluster.auto_leader_rebalance_enable,
            imbalance_check_interval_ms: config.cluster.leader_imbalance_check_interval_ms,
            unclean_leader_election: config
                .topic_default("unclean.leader.election.enable")
                .is_some_and(|(value, _)| value.trim().eq_ignore_ascii_case("true")),
            // A quarter of a heartbeat interval of silence and a margin (750 ms by default): a
            // probe costs a live broker one accepted connection that often, and a dead process
            // is fenced within about a second, before librdkafka's next leader query (its topic
            // scan runs once a second).
            probe_after_ms: config.cluster.broker_liveness_probe.then(|| {
                let interval = config.broker_heartbeat_interval_ms as i64;
                (interval / 4).max(250) + 250
            }),
        };
        let (controller, controller_task) =
            Controller::start(Arc::new(quorum.clone()), metadata.clone(), quorum.leader(), NodeId(node_id.0), duties);
        let channel = ControllerChannel::new(NodeId(node_id.0), quorum.leader(), config.cluster.voters.clone());
        let controller_role = config.cluster.roles.controller;
        let broker = Arc::new(Broker {
            node_id,
            cluster_id: meta.cluster_id,
            versions: VersionTable::new(ENABLED_APIS),
            data_dir,
            incarnation_id: *uuid::Uuid::new_v4().as_bytes(),
            broker_epoch: AtomicI64::new(-1),
            metadata,
            controller,
            quorum,
            channel,
            replicas,
            fetchers,
            groups,
            cleaners: Arc::new(CleanerManager::load(cleaner_checkpoint)),
            producer_ids: Mutex::new(0..0),
            workers: Mutex::new(Some(Workers { controller: controller_task, quorum: quorum_thread, loader })),
            _locks: locks,
            config,
        });
        broker.fetchers.attach(Arc::downgrade(&broker));
        if controller_role {
            broker.channel.set_local(Arc::new(ControllerService { broker: Arc::downgrade(&broker) }));
        }
        Ok(broker)
    }

    /// The route to the active controller.
    pub(crate) fn channel(&self) -> &ControllerChannel {
        &self.channel
    }

    /// This node's controller (active or not).
    pub(crate) fn controller(&self) -> &Controller {
        &self.controller
    }

    /// This node's member of the metadata quorum.
    pub(crate) fn quorum(&self) -> &RaftQuorum {
        &self.quorum
    }

    /// The metadata offset this node's image has reached.
    pub(crate) fn metadata_offset(&self) -> Offset {
        self.metadata.offset()
    }

    /// Waits until this node's image has reached `offset`.
    pub(crate) async fn wait_for_metadata(&self, offset: Offset) -> bool {
        self.metadata.wait_for(offset).await
    }

    /// The current metadata image (what this broker has applied of the metadata log).
    pub fn image(&self) -> Arc<MetadataImage> {
        self.metadata.image()
    }

    /// A hosted partition.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<PartitionHandle>> {
        self.replicas.partition(tp)
    }

    /// Every hosted partition.
    pub fn all_partitions(&self) -> Vec<(TopicPartition, Arc<PartitionHandle>)> {
        self.replicas.partitions()
    }

    /// Runs a controller decision and, unless `validate_only`, proposes its records; answers
    /// once they have committed and this broker has applied them.
    pub(crate) async fn decide<T: Send + 'static>(
        &self,
        validate_only: bool,
        decide: impl FnOnce(&MetadataImage) -> (Vec<MetadataRecord>, T) + Send + 'static,
    ) -> Result<T, ControllerFailure> {
        self.controller.decide(validate_only, decide).await
    }

    /// Creates topics (CreateTopics, or auto-creation by Metadata).
    pub(crate) async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        creator: Creator,
        validate_only: bool,
    ) -> Result<Vec<Result<CreatedTopic, ControllerError>>, ControllerFailure> {
        let defaults = TopicDefaults {
            num_partitions: self.config.num_partitions,
            default_replication_factor: self.config.default_replication_factor,
            max_replication_factor: i16::MAX,
        };
        self.decide(validate_only, move |image| {
            controller::create_topics(image, &topics, defaults, creator, || TopicId(*uuid::Uuid::new_v4().as_bytes()))
        })
        .await
    }

    /// A fresh producer id, from this broker's block (the next block comes from the active
    /// controller, AllocateProducerIds, when it runs out: ids are unique in the cluster).
    pub(crate) async fn next_producer_id(&self) -> Result<i64, ErrorCode> {
        if let Some(id) = self.producer_ids.lock().next() {
            return Ok(id);
        }
        let request = pb::AllocateProducerIdsRequest {
            broker_id: self.node_id.0,
            broker_epoch: self.broker_epoch.load(Ordering::Acquire),
        };
        let answer =
            self.channel.allocate_producer_ids(request, Duration::from_secs(30)).await.map_err(|e| e.code())?;
        if answer.error_code != 0 {
            return Err(ErrorCode::from_code(answer.error_code as i16));
        }
        let mut ids = self.producer_ids.lock();
        // Another request may have refilled it meanwhile; the newer block is as good.
        *ids = answer.producer_id_start..answer.producer_id_start + i64::from(answer.producer_id_len);
        ids.next().ok_or(ErrorCode::UnknownServerError)
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
        let hosted = self.all_partitions().into_iter().map(|(tp, _)| tp).collect();
        self.cleaners.write_checkpoint(&self.data_dir, &hosted);
    }

    /// What the log cleaner threads work on.
    pub(crate) fn cleaner_context(&self) -> CleanerContext {
        CleanerContext {
            replicas: Arc::clone(&self.replicas),
            metadata: self.metadata.clone(),
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            manager: Arc::clone(&self.cleaners),
        }
    }

    /// Flushes the segments of logs that rolled since their last flush, so the recovery point
    /// keeps up, and applies `flush.ms`. The files are synced with the partition unlocked
    /// (Kafka flushes in the background too), so appends and fetches do not wait for the disk.
    pub fn flush_due(&self) {
        for (tp, handle) in self.all_partitions() {
            let plan = handle.state.lock().maintain(|log| {
                let active = log.active_segment_base();
                if active > log.recovery_point() {
                    log.plan_flush(active)
                } else {
                    log.plan_flush_if_due(Broker::now())
                }
            });
            let result = match plan {
                Ok(Some(plan)) => {
                    let synced = plan.sync();
                    handle.state.lock().maintain(|log| log.complete_flush(plan, synced, Broker::now()))
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
            match partition.maintain(|log| fjord_retention::enforce(log, high_watermark, &retention, now)) {
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

    /// Closes every log cleanly and writes the checkpoints, so the next start skips recovery;
    /// then stops the controller and closes the metadata log. Runs on a blocking thread.
    pub fn shutdown(&self) {
        self.fetchers.shutdown();
        self.write_checkpoints();
        for (tp, handle) in self.replicas.drain() {
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
        if let Some(Workers { controller, quorum, loader }) = self.workers.lock().take() {
            // The controller goes first, then the quorum (its thread ends its log cleanly, and
            // with it the last sender to the loader).
            controller.abort();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let _ = runtime.block_on(controller);
                }
                Err(_) => {
                    while !controller.is_finished() {
                        std::thread::yield_now();
                    }
                }
            }
            self.quorum.stop();
            let loader::Loader { committed, thread, .. } = loader;
            drop(committed);
            if quorum.join().is_err() {
                tracing::error!("the metadata quorum thread panicked");
            }
            if thread.join().is_err() {
                tracing::error!("the metadata loader thread panicked");
            }
        }
    }
}
