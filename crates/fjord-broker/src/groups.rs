//! Hosts the group coordinator (fjord-coordinator) on the `__consumer_offsets` partitions this
//! broker leads (Kafka's `GroupCoordinatorService` with its `CoordinatorRuntime`).
//!
//! Each partition of `__consumer_offsets` this broker leads has its own [`GroupCoordinator`]
//! for the groups that hash to it, behind a short lock that is never held across an `.await`.
//! A shard is loaded — rebuilt by replaying its partition — when the metadata makes this
//! broker the partition's leader, and unloaded when it stops being the leader
//! ([`GroupPublisher`]); a request for a group whose shard is not here gets NOT_COORDINATOR.
//!
//! A handler runs the coordinator, then carries out its effects in order: records are
//! appended to the partition through the replica manager, like user data, and only then
//! replayed into the coordinator; responses go to the request waiting for them, which may be
//! another connection's JoinGroup parked until the rebalance completes. If a write fails, the
//! shard is rebuilt from its log, so the group is what the log says, and the requests waiting
//! on it are answered with the error.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use fjord_coordinator::{
    CoordinatorConfig, CoordinatorRecord, Effect, GroupCoordinator, JoinRequest, JoinResponse, RequestId, Response,
    SyncRequest, SyncResponse, partition_for_group,
};
use fjord_log::BatchBuilder;
use fjord_metadata::controller::NewTopic;
use fjord_metadata::{MetadataDelta, MetadataImage};
use fjord_replication::{AcksError, DelayedProduce, ReplicaManager};
use fjord_types::{BrokerId, Clock, ErrorCode, SystemClock, Timestamp, TopicPartition};
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use crate::config::BrokerConfig;
use crate::errors;
use crate::metadata::loader::MetadataPublisher;

/// Kafka's `offsets.commit.timeout.ms`: how long an offset commit waits to be replicated.
const OFFSETS_COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(5000);

/// The internal topic holding groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

type Shard = Arc<Mutex<GroupCoordinator>>;

/// The coordinators of the `__consumer_offsets` partitions led here.
#[derive(Debug)]
pub struct Groups {
    config: CoordinatorConfig,
    replicas: Arc<ReplicaManager>,
    shards: RwLock<HashMap<i32, Shard>>,
    /// Requests parked until their response is ready, with the shard that will give it.
    waiting: Mutex<HashMap<RequestId, (i32, oneshot::Sender<Response>)>>,
    next_request: AtomicU64,
    /// `__consumer_offsets`' partition count, 0 until it exists.
    partitions: AtomicI32,
}

fn now() -> Timestamp {
    SystemClock.now()
}

impl Groups {
    /// No coordinators yet; they load as the metadata makes this broker a leader.
    pub(crate) fn new(config: CoordinatorConfig, replicas: Arc<ReplicaManager>) -> Groups {
        Groups {
            config,
            replicas,
            shards: RwLock::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
            partitions: AtomicI32::new(0),
        }
    }

    /// The `__consumer_offsets` partition of `group_id` (Kafka's hash), or `None` while the
    /// topic does not exist.
    pub fn partition_for(&self, group_id: &str) -> Option<i32> {
        let partitions = self.partitions.load(Ordering::Acquire);
        (partitions > 0).then(|| partition_for_group(group_id, partitions))
    }

    /// The coordinator of `group_id`: NOT_COORDINATOR unless this broker leads its partition
    /// and has loaded it.
    fn coordinator_for(&self, group_id: &str) -> Result<(i32, Shard), ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let partition = self.partition_for(group_id).ok_or(ErrorCode::NotCoordinator)?;
        let shard = self.shards.read().get(&partition).cloned().ok_or(ErrorCode::NotCoordinator)?;
        Ok((partition, shard))
    }

    fn all_shards(&self) -> Vec<(i32, Shard)> {
        self.shards.read().iter().map(|(p, s)| (*p, Arc::clone(s))).collect()
    }

    /// Every loaded coordinator, for ListGroups.
    pub(crate) fn coordinators(&self) -> Vec<Shard> {
        self.all_shards().into_iter().map(|(_, s)| s).collect()
    }

    /// Runs JoinGroup; the response comes when the coordinator gives it (at once, or when
    /// the rebalance completes).
    pub(crate) async fn join(&self, request: JoinRequest, new_member_id: String) -> JoinResponse {
        let member_id = request.member_id.clone();
        let (partition, shard) = match self.coordinator_for(&request.group_id) {
            Ok(found) => found,
            Err(error) => return JoinResponse::error(error, &member_id),
        };
        let (id, answer) = self.register(partition);
        {
            let mut coordinator = shard.lock();
            let effects = coordinator.handle_join(now(), id, request, new_member_id);
            self.carry_out(partition, &mut coordinator, effects);
        }
        match answer.await {
            Ok(Response::Join(response)) => response,
            _ => JoinResponse::error(ErrorCode::NotCoordinator, &member_id),
        }
    }

    /// Runs SyncGroup; followers wait for the leader's assignment.
    pub(crate) async fn sync(&self, request: SyncRequest) -> SyncResponse {
        let (partition, shard) = match self.coordinator_for(&request.group_id) {
            Ok(found) => found,
            Err(error) => return SyncResponse::error(error),
        };
        let (id, answer) = self.register(partition);
        {
            let mut coordinator = shard.lock();
            let effects = coordinator.handle_sync(now(), id, request);
            self.carry_out(partition, &mut coordinator, effects);
        }
        match answer.await {
            Ok(Response::Sync(response)) => response,
            _ => SyncResponse::error(ErrorCode::NotCoordinator),
        }
    }

    /// Runs a handler that returns records to persist with its answer, and persists them:
    /// `Err` if they could not be written (the group is then as its log says).
    pub(crate) fn write<T>(
        &self,
        group_id: &str,
        handler: impl FnOnce(&mut GroupCoordinator, Timestamp) -> (Vec<CoordinatorRecord>, T),
    ) -> Result<T, ErrorCode> {
        let (partition, shard) = self.coordinator_for(group_id)?;
        let mut coordinator = shard.lock();
        let now = now();
        let (records, answer) = handler(&mut coordinator, now);
        if let Err(error) = self.persist(partition, &mut coordinator, &records, now) {
            self.fail_waiting(partition);
            return Err(error);
        }
        Ok(answer)
    }

    /// [`Groups::write`], answered only once the records are replicated to the partition's
    /// ISR (its high watermark passed them), as Kafka's coordinator answers an offset commit:
    /// a commit acknowledged here survives the loss of the coordinator's broker. A write that
    /// does not replicate within `offsets.commit.timeout.ms` answers COORDINATOR_NOT_AVAILABLE
    /// (the client retries); one whose partition lost its leadership, NOT_COORDINATOR.
    pub(crate) async fn write_replicated<T>(
        &self,
        group_id: &str,
        handler: impl FnOnce(&mut GroupCoordinator, Timestamp) -> (Vec<CoordinatorRecord>, T),
    ) -> Result<T, ErrorCode> {
        let (partition, shard) = self.coordinator_for(group_id)?;
        let tp = TopicPartition::new(OFFSETS_TOPIC.to_owned(), partition);
        let (answer, written_to) = {
            let mut coordinator = shard.lock();
            let now = now();
            let (records, answer) = handler(&mut coordinator, now);
            if let Err(error) = self.persist(partition, &mut coordinator, &records, now) {
                self.fail_waiting(partition);
                return Err(error);
            }
            let end =
                (!records.is_empty()).then(|| self.replicas.partition(&tp).map(|h| h.state.lock().log_end_offset()));
            (answer, end.flatten())
        };
        let Some(end) = written_to else { return Ok(answer) };
        let mut waiting = DelayedProduce::new([(tp, end)]);
        let purgatory = self.replicas.produce_purgatory();
        crate::handlers::complete_within(&self.replicas, purgatory, &mut waiting, OFFSETS_COMMIT_TIMEOUT).await;
        match waiting.results().pop().map(|(_, r)| r) {
            Some(Ok(())) => Ok(answer),
            Some(Err(AcksError::NotLeader { .. })) => Err(ErrorCode::NotCoordinator),
            _ => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }

    /// Runs a handler whose effects are carried out here (Heartbeat, LeaveGroup).
    pub(crate) fn run<T>(
        &self,
        group_id: &str,
        handler: impl FnOnce(&mut GroupCoordinator, Timestamp) -> (T, Vec<Effect>),
    ) -> Result<T, ErrorCode> {
        let (partition, shard) = self.coordinator_for(group_id)?;
        let mut coordinator = shard.lock();
        let (answer, effects) = handler(&mut coordinator, now());
        self.carry_out(partition, &mut coordinator, effects);
        Ok(answer)
    }

    /// Reads a coordinator's state.
    pub(crate) fn read<T>(&self, group_id: &str, read: impl FnOnce(&GroupCoordinator) -> T) -> Result<T, ErrorCode> {
        let (_, shard) = self.coordinator_for(group_id)?;
        let coordinator = shard.lock();
        Ok(read(&coordinator))
    }

    /// Advances every coordinator's timers (rebalance and session timeouts).
    pub(crate) fn tick(&self) {
        let now = now();
        for (partition, shard) in self.all_shards() {
            let mut coordinator = shard.lock();
            let effects = coordinator.tick(now);
            self.carry_out(partition, &mut coordinator, effects);
        }
    }

    /// Removes expired offsets of empty groups (`offsets.retention.minutes`).
    pub(crate) fn expire_offsets(&self) {
        let now = now();
        for (partition, shard) in self.all_shards() {
            let mut coordinator = shard.lock();
            let expired = coordinator.expire_offsets(now);
            if !expired.is_empty() {
                tracing::info!(partition, offsets = expired.len(), "removing expired committed offsets");
                if self.persist(partition, &mut coordinator, &expired, now).is_err() {
                    self.fail_waiting(partition);
                }
            }
        }
    }

    fn register(&self, partition: i32) -> (RequestId, oneshot::Receiver<Response>) {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(id, (partition, tx));
        (id, rx)
    }

    /// Carries out effects in order. Responses that follow a failed write carry its error, so
    /// no member acts on a generation that was not stored; requests still parked on the shard
    /// then wait for a group that the reload forgot, and are answered NOT_COORDINATOR.
    fn carry_out(&self, partition: i32, coordinator: &mut GroupCoordinator, effects: Vec<Effect>) {
        let now = now();
        let mut failed = None;
        for effect in effects {
            match effect {
                Effect::Append(records) => {
                    if let Err(error) = self.persist(partition, coordinator, &records, now) {
                        failed = Some(error);
                    }
                }
                Effect::Respond(id, response) => {
                    let response = match (failed, response) {
                        (Some(error), Response::Sync(_)) => Response::Sync(SyncResponse::error(error)),
                        (Some(error), Response::Join(join)) => {
                            Response::Join(JoinResponse::error(error, &join.member_id))
                        }
                        (_, response) => response,
                    };
                    if let Some((_, waiting)) = self.waiting.lock().remove(&id) {
                        // The requester may have gone (connection closed): nothing to do.
                        let _ = waiting.send(response);
                    }
                }
            }
        }
        if failed.is_some() {
            self.fail_waiting(partition);
        }
    }

    /// Appends `records` to the group's partition as one batch, then replays them. If the
    /// write fails, the coordinator is rebuilt from the partition, dropping whatever it held
    /// that the log does not; the caller then fails the requests parked on it.
    fn persist(
        &self,
        partition: i32,
        coordinator: &mut GroupCoordinator,
        records: &[CoordinatorRecord],
        now: Timestamp,
    ) -> Result<(), ErrorCode> {
        if records.is_empty() {
            return Ok(());
        }
        let tp = TopicPartition::new(OFFSETS_TOPIC.to_owned(), partition);
        let mut builder = BatchBuilder::new();
        for record in records {
            builder.push(now, Some(&record.key()), record.value().as_deref(), &[]);
        }
        let bytes = builder.build().map_err(|_| ErrorCode::UnknownServerError)?;
        let appended = self.replicas.append_records(&tp, &bytes, -1, now).ok_or(ErrorCode::NotCoordinator)?;
        if let Err(e) = appended {
            tracing::error!(partition = %tp, error = %e, "cannot write group records; reloading the groups from the log");
            match self.load(partition) {
                Ok(reloaded) => *coordinator = reloaded,
                Err(code) => tracing::error!(partition = %tp, ?code, "cannot reload the groups"),
            }
            let offset_commit = records.iter().all(|r| matches!(r, CoordinatorRecord::Offset { offset: Some(_), .. }));
            return Err(errors::group_write_error(&e, offset_commit));
        }
        for record in records {
            coordinator.replay(record, now);
        }
        Ok(())
    }

    /// Drops the requests waiting on `partition`'s shard: they answer NOT_COORDINATOR and the
    /// clients find the coordinator again.
    fn fail_waiting(&self, partition: i32) {
        self.waiting.lock().retain(|_, (p, _)| *p != partition);
    }

    /// A coordinator rebuilt from a `__consumer_offsets` partition, up to its high watermark
    /// (records this build cannot read are skipped with a warning).
    fn load(&self, partition: i32) -> Result<GroupCoordinator, ErrorCode> {
        let tp = TopicPartition::new(OFFSETS_TOPIC.to_owned(), partition);
        let handle = self.replicas.partition(&tp).ok_or(ErrorCode::NotCoordinator)?;
        let mut coordinator = GroupCoordinator::new(self.config.clone());
        let now = now();
        let state = handle.state.lock();
        let log = state.log();
        let from = log.log_start_offset();
        let mut loaded = 0usize;
        let replayed = log.batches_from(from, Some(state.high_watermark()), |batch| {
            for record in batch.records()? {
                let record = record?;
                if record.offset() < from {
                    continue;
                }
                match record.key().and_then(|key| CoordinatorRecord::decode(key, record.value())) {
                    Some(decoded) => {
                        coordinator.replay(&decoded, now);
                        loaded += 1;
                    }
                    None => tracing::warn!(partition = %tp, offset = record.offset().0, "skipping unreadable record"),
                }
            }
            Ok::<(), fjord_log::Error>(())
        });
        if let Err(e) = replayed {
            tracing::error!(partition = %tp, error = %e, "unreadable batch; loaded what precedes it");
        }
        if loaded > 0 {
            tracing::info!(partition = %tp, records = loaded, "loaded group coordinator");
        }
        Ok(coordinator)
    }

    fn load_shard(&self, partition: i32) {
        if self.shards.read().contains_key(&partition) {
            return;
        }
        match self.load(partition) {
            Ok(coordinator) => {
                self.shards.write().insert(partition, Arc::new(Mutex::new(coordinator)));
            }
            Err(code) => tracing::error!(partition, ?code, "cannot load group coordinator"),
        }
    }

    fn unload_shard(&self, partition: i32) {
        if self.shards.write().remove(&partition).is_some() {
            self.fail_waiting(partition);
            tracing::info!(partition, "unloaded group coordinator: no longer the partition's leader");
        }
    }
}

/// `__consumer_offsets` as Kafka creates it: compacted, `offsets.topic.*` sized.
pub(crate) fn offsets_topic(config: &BrokerConfig) -> NewTopic {
    NewTopic {
        name: OFFSETS_TOPIC.to_owned(),
        num_partitions: config.offsets_topic_num_partitions,
        replication_factor: config.offsets_topic_replication_factor,
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".to_owned(), Some("compact".to_owned())),
            ("compression.type".to_owned(), Some("producer".to_owned())),
            ("segment.bytes".to_owned(), Some(config.offsets_topic_segment_bytes.to_string())),
        ],
    }
}

/// Loads and unloads coordinator shards as this broker gains and loses the leadership of
/// `__consumer_offsets` partitions. Runs after the replica publisher, which opens them.
#[derive(Debug)]
pub(crate) struct GroupPublisher {
    pub(crate) groups: Arc<Groups>,
    pub(crate) local: BrokerId,
}

impl MetadataPublisher for GroupPublisher {
    fn name(&self) -> &'static str {
        "group-coordinator"
    }

    fn publish(&mut self, delta: &MetadataDelta, image: &MetadataImage) {
        if delta.removed_topics.iter().any(|t| t.name == OFFSETS_TOPIC) {
            for (partition, _) in self.groups.all_shards() {
                self.groups.unload_shard(partition);
            }
        }
        let partitions = image.topics.get(OFFSETS_TOPIC).map_or(0, |t| t.partitions.len() as i32);
        self.groups.partitions.store(partitions, Ordering::Release);
        for change in delta.partitions.iter().filter(|p| p.topic == OFFSETS_TOPIC) {
            if change.current.leader == self.local {
                self.groups.load_shard(change.partition);
            } else {
                self.groups.unload_shard(change.partition);
            }
        }
    }
}
