//! Hosts the group coordinator (fjord-coordinator) on the `__consumer_offsets` partitions this
//! broker leads (Kafka's `GroupCoordinatorService` role).
//!
//! Each partition of `__consumer_offsets` has its own [`GroupCoordinator`] for the groups that
//! hash to it, behind a short lock that is never held across an `.await`. A handler runs the
//! coordinator, then carries out its effects in order: records are appended to the partition
//! through the same `Partition::append_as_leader` path as user data and only then replayed into
//! the coordinator; responses go to the request waiting for them, which may be another
//! connection's JoinGroup parked until the rebalance completes. At start every hosted partition
//! is replayed, so groups' generations and committed offsets survive a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fjord_coordinator::{
    CoordinatorRecord, Effect, GroupCoordinator, JoinRequest, JoinResponse, RequestId, Response, SyncRequest,
    SyncResponse, partition_for_group,
};
use fjord_log::{BatchBuilder, Batches};
use fjord_metadata::ControllerError;
use fjord_metadata::controller::{Creator, NewTopic};
use fjord_types::{ErrorCode, Timestamp, TopicPartition};
use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::errors;

/// The internal topic holding groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The coordinators of the `__consumer_offsets` partitions hosted here.
#[derive(Debug, Default)]
pub struct Groups {
    shards: RwLock<HashMap<i32, Arc<Mutex<GroupCoordinator>>>>,
    waiting: Mutex<HashMap<RequestId, oneshot::Sender<Response>>>,
    next_request: AtomicU64,
}

impl Groups {
    /// Loads a coordinator for every hosted `__consumer_offsets` partition by replaying it.
    pub(crate) fn load_all(&self, broker: &Broker) {
        for (tp, _) in broker.all_partitions() {
            if tp.topic == OFFSETS_TOPIC {
                let _ = self.shard(broker, tp.partition);
            }
        }
    }

    /// The `__consumer_offsets` partition of `group_id`, or `None` while the topic does not
    /// exist.
    pub fn partition_for(&self, broker: &Broker, group_id: &str) -> Option<i32> {
        let image = broker.image();
        let topic = image.topics.get(OFFSETS_TOPIC)?;
        Some(partition_for_group(group_id, topic.partitions.len() as i32))
    }

    /// Creates `__consumer_offsets` if it does not exist yet (Kafka does so on the first
    /// FindCoordinator for a group). COORDINATOR_NOT_AVAILABLE if it cannot be created.
    pub(crate) fn ensure_topic(&self, broker: &Broker) -> Result<(), ErrorCode> {
        if broker.image().topics.contains_key(OFFSETS_TOPIC) {
            return Ok(());
        }
        let topic = offsets_topic(&broker.config);
        match broker.create_topics(&[topic], Creator::Broker, false) {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) => Ok(()),
                Some(Err(ControllerError::TopicExists(_))) => Ok(()),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC}");
                    Err(ErrorCode::CoordinatorNotAvailable)
                }
                None => Err(ErrorCode::CoordinatorNotAvailable),
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC}");
                Err(ErrorCode::CoordinatorNotAvailable)
            }
        }
    }

    /// The coordinator of `group_id`: NOT_COORDINATOR if its partition is not hosted here.
    pub(crate) fn coordinator_for(
        &self,
        broker: &Broker,
        group_id: &str,
    ) -> Result<(i32, Arc<Mutex<GroupCoordinator>>), ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let partition = self.partition_for(broker, group_id).ok_or(ErrorCode::NotCoordinator)?;
        Ok((partition, self.shard(broker, partition)?))
    }

    fn shard(&self, broker: &Broker, partition: i32) -> Result<Arc<Mutex<GroupCoordinator>>, ErrorCode> {
        if let Some(shard) = self.shards.read().get(&partition) {
            return Ok(Arc::clone(shard));
        }
        let mut shards = self.shards.write();
        if let Some(shard) = shards.get(&partition) {
            return Ok(Arc::clone(shard));
        }
        let coordinator = load(broker, partition)?;
        let shard = Arc::new(Mutex::new(coordinator));
        shards.insert(partition, Arc::clone(&shard));
        Ok(shard)
    }

    fn all_shards(&self) -> Vec<(i32, Arc<Mutex<GroupCoordinator>>)> {
        self.shards.read().iter().map(|(p, s)| (*p, Arc::clone(s))).collect()
    }

    /// Every loaded coordinator, for ListGroups.
    pub(crate) fn coordinators(&self) -> Vec<Arc<Mutex<GroupCoordinator>>> {
        self.all_shards().into_iter().map(|(_, s)| s).collect()
    }

    /// Runs JoinGroup; the response comes when the coordinator gives it (at once, or when
    /// the rebalance completes).
    pub(crate) async fn join(&self, broker: &Broker, request: JoinRequest, new_member_id: String) -> JoinResponse {
        let member_id = request.member_id.clone();
        let (partition, shard) = match self.coordinator_for(broker, &request.group_id) {
            Ok(found) => found,
            Err(error) => return JoinResponse::error(error, &member_id),
        };
        let (id, answer) = self.register();
        {
            let mut coordinator = shard.lock();
            let effects = coordinator.handle_join(Broker::now(), id, request, new_member_id);
            self.carry_out(broker, partition, &mut coordinator, effects);
        }
        match answer.await {
            Ok(Response::Join(response)) => response,
            _ => JoinResponse::error(ErrorCode::CoordinatorNotAvailable, &member_id),
        }
    }

    /// Runs SyncGroup; followers wait for the leader's assignment.
    pub(crate) async fn sync(&self, broker: &Broker, request: SyncRequest) -> SyncResponse {
        let (partition, shard) = match self.coordinator_for(broker, &request.group_id) {
            Ok(found) => found,
            Err(error) => return SyncResponse::error(error),
        };
        let (id, answer) = self.register();
        {
            let mut coordinator = shard.lock();
            let effects = coordinator.handle_sync(Broker::now(), id, request);
            self.carry_out(broker, partition, &mut coordinator, effects);
        }
        match answer.await {
            Ok(Response::Sync(response)) => response,
            _ => SyncResponse::error(ErrorCode::CoordinatorNotAvailable),
        }
    }

    /// Runs a handler that returns records to persist with its answer, and persists them:
    /// `Err` if they could not be written (nothing then changed).
    pub(crate) fn write<T>(
        &self,
        broker: &Broker,
        group_id: &str,
        handler: impl FnOnce(&mut GroupCoordinator, Timestamp) -> (Vec<CoordinatorRecord>, T),
    ) -> Result<T, ErrorCode> {
        let (partition, shard) = self.coordinator_for(broker, group_id)?;
        let mut coordinator = shard.lock();
        let now = Broker::now();
        let (records, answer) = handler(&mut coordinator, now);
        persist(broker, partition, &mut coordinator, &records, now)?;
        Ok(answer)
    }

    /// Runs a handler whose effects are carried out here (Heartbeat, LeaveGroup).
    pub(crate) fn run<T>(
        &self,
        broker: &Broker,
        group_id: &str,
        handler: impl FnOnce(&mut GroupCoordinator, Timestamp) -> (T, Vec<Effect>),
    ) -> Result<T, ErrorCode> {
        let (partition, shard) = self.coordinator_for(broker, group_id)?;
        let mut coordinator = shard.lock();
        let (answer, effects) = handler(&mut coordinator, Broker::now());
        self.carry_out(broker, partition, &mut coordinator, effects);
        Ok(answer)
    }

    /// Reads a coordinator's state.
    pub(crate) fn read<T>(
        &self,
        broker: &Broker,
        group_id: &str,
        read: impl FnOnce(&GroupCoordinator) -> T,
    ) -> Result<T, ErrorCode> {
        let (_, shard) = self.coordinator_for(broker, group_id)?;
        let coordinator = shard.lock();
        Ok(read(&coordinator))
    }

    /// Advances every coordinator's timers (rebalance and session timeouts).
    pub(crate) fn tick(&self, broker: &Broker) {
        let now = Broker::now();
        for (partition, shard) in self.all_shards() {
            let mut coordinator = shard.lock();
            let effects = coordinator.tick(now);
            self.carry_out(broker, partition, &mut coordinator, effects);
        }
    }

    /// Removes expired offsets of empty groups (`offsets.retention.minutes`).
    pub(crate) fn expire_offsets(&self, broker: &Broker) {
        let now = Broker::now();
        for (partition, shard) in self.all_shards() {
            let mut coordinator = shard.lock();
            let expired = coordinator.expire_offsets(now);
            if !expired.is_empty() {
                tracing::info!(partition, offsets = expired.len(), "removing expired committed offsets");
                let _ = persist(broker, partition, &mut coordinator, &expired, now);
            }
        }
    }

    fn register(&self) -> (RequestId, oneshot::Receiver<Response>) {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(id, tx);
        (id, rx)
    }

    /// Carries out effects in order. Responses that follow a failed write carry its error, so
    /// no member acts on a generation that was not stored.
    fn carry_out(&self, broker: &Broker, partition: i32, coordinator: &mut GroupCoordinator, effects: Vec<Effect>) {
        let now = Broker::now();
        let mut failed = None;
        for effect in effects {
            match effect {
                Effect::Append(records) => {
                    if let Err(error) = persist(broker, partition, coordinator, &records, now) {
                        failed = Some(error);
                    }
                }
                Effect::Respond(id, response) => {
                    let response = match (failed, response) {
                        (Some(error), Response::Sync(_)) => Response::Sync(SyncResponse::error(error)),
                        (_, response) => response,
                    };
                    if let Some(waiting) = self.waiting.lock().remove(&id) {
                        // The requester may have gone (connection closed): nothing to do.
                        let _ = waiting.send(response);
                    }
                }
            }
        }
    }
}

/// `__consumer_offsets` as Kafka creates it: compacted, `offsets.topic.*` sized.
fn offsets_topic(config: &BrokerConfig) -> NewTopic {
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

/// Appends `records` to the group's partition as one batch, then replays them.
fn persist(
    broker: &Broker,
    partition: i32,
    coordinator: &mut GroupCoordinator,
    records: &[CoordinatorRecord],
    now: Timestamp,
) -> Result<(), ErrorCode> {
    if records.is_empty() {
        return Ok(());
    }
    let tp = TopicPartition::new(OFFSETS_TOPIC.to_owned(), partition);
    let handle = broker.partition(&tp).ok_or(ErrorCode::NotCoordinator)?;
    let mut builder = BatchBuilder::new();
    for record in records {
        builder.push(now, Some(&record.key()), record.value().as_deref(), &[]);
    }
    let bytes = builder.build().map_err(|_| ErrorCode::UnknownServerError)?;
    let appended = handle.state.lock().append_as_leader(&bytes, -1, now);
    if let Err(e) = appended {
        tracing::error!(partition = %tp, error = %e, "cannot write group records");
        return Err(errors::group_write_error(&e));
    }
    broker.notify_appended();
    for record in records {
        coordinator.replay(record, now);
    }
    Ok(())
}

/// A coordinator rebuilt from a `__consumer_offsets` partition (records this build cannot read
/// are skipped with a warning).
fn load(broker: &Broker, partition: i32) -> Result<GroupCoordinator, ErrorCode> {
    let tp = TopicPartition::new(OFFSETS_TOPIC.to_owned(), partition);
    let handle = broker.partition(&tp).ok_or(ErrorCode::NotCoordinator)?;
    let mut coordinator = GroupCoordinator::new(broker.config.coordinator.clone());
    let now = Broker::now();
    let state = handle.state.lock();
    let log = state.log();
    let end = state.high_watermark();
    let mut next = log.log_start_offset();
    let mut loaded = 0usize;
    while next < end {
        let before = next;
        let bytes = log.read_bytes(next, 4 * 1024 * 1024, Some(end)).map_err(|e| {
            tracing::error!(partition = %tp, error = %e, "cannot load group coordinator");
            ErrorCode::CoordinatorNotAvailable
        })?;
        if bytes.is_empty() {
            break;
        }
        for batch in Batches::new(&bytes) {
            let Ok(batch) = batch else { break };
            let records = batch.records().map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
            for record in records {
                let Ok(record) = record else { break };
                if record.offset() < next {
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
            next = batch.next_offset();
        }
        if next == before {
            tracing::error!(partition = %tp, offset = next.0, "unreadable batch; loaded what precedes it");
            break;
        }
    }
    if loaded > 0 {
        tracing::info!(partition = %tp, records = loaded, "loaded group coordinator");
    }
    Ok(coordinator)
}
