//! Consuming: fetch from each partition's leader (one pipelined Fetch per broker), either from
//! partitions chosen by hand or as a member of a consumer group (JoinGroup/SyncGroup with the
//! range assignor, heartbeats, committed offsets).
//!
//! Like the producer it does no work in the background: [`Consumer::poll`] heartbeats,
//! commits and rejoins as needed before each fetch, and a fetch waits at most
//! `fetch.max.wait.ms`, well inside `heartbeat.interval.ms`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use fjord_log::{Batches, Compression, Record, TimestampType};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::groups::assigned_partitions;
use crate::pipeline::Pipeline;
use crate::{Client, Error};

/// Fetch v13 names topics by id; Fjord's client names them.
const FETCH_VERSION_CAP: i16 = 12;
/// The assignor this consumer offers and runs as group leader.
const RANGE: &str = "range";

/// Where a partition with no committed offset starts (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset.
    Earliest,
    /// The log end offset: only new records.
    Latest,
}

/// Where an assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The log start offset.
    Earliest,
    /// The log end offset.
    Latest,
    /// This offset (out of range falls back to `auto.offset.reset`).
    At(i64),
    /// The first offset whose timestamp is at least this (ms since the epoch).
    Timestamp(i64),
}

/// Consumer settings, with Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `client.id`.
    pub client_id: String,
    /// `group.id`, needed by [`Consumer::subscribe`].
    pub group_id: Option<String>,
    /// `auto.offset.reset`.
    pub auto_offset_reset: OffsetReset,
    /// `fetch.max.wait.ms`.
    pub fetch_max_wait: Duration,
    /// `fetch.min.bytes`.
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes`.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    pub max_partition_fetch_bytes: i32,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`, sent as the rebalance timeout.
    pub rebalance_timeout: Duration,
    /// `enable.auto.commit`.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`.
    pub auto_commit_interval: Duration,
    /// `request.timeout.ms`.
    pub request_timeout: Duration,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            client_id: "fjord-consumer".into(),
            group_id: None,
            auto_offset_reset: OffsetReset::Latest,
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            rebalance_timeout: Duration::from_secs(300),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// A fetched record and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct ConsumedRecord<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// Whether the timestamp is the producer's or the broker's.
    pub timestamp_type: TimestampType,
    /// The record: offset, timestamp, key, value, headers.
    pub record: &'a Record<'a>,
}

#[derive(Debug, Clone)]
struct PartitionState {
    /// The next offset to fetch; `None` until resolved.
    position: Option<i64>,
    /// Where to start when there is no position.
    start: StartOffset,
    /// The last committed position.
    committed: Option<i64>,
    /// The high watermark from the last fetch.
    high_watermark: i64,
}

#[derive(Debug)]
struct Membership {
    group: String,
    topics: Vec<String>,
    member_id: String,
    generation: i32,
    coordinator: i32,
    next_heartbeat: Instant,
    next_commit: Instant,
    rejoin: bool,
}

/// A Kafka consumer. See the module docs.
///
/// ```no_run
/// # async fn demo() -> Result<(), fjord_client::Error> {
/// use fjord_client::{Consumer, ConsumerConfig, OffsetReset};
/// let config = ConsumerConfig {
///     group_id: Some("orders-app".into()),
///     auto_offset_reset: OffsetReset::Earliest,
///     ..ConsumerConfig::default()
/// };
/// let mut consumer = Consumer::connect("127.0.0.1:9092", config).await?;
/// consumer.subscribe(&["orders"]).await?;
/// consumer
///     .poll(|r| {
///         println!("{}-{}@{}: {:?}", r.topic, r.partition, r.record.offset().0, r.record.value());
///         true
///     })
///     .await?;
/// consumer.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    partitions: BTreeMap<(String, i32), PartitionState>,
    leaders: HashMap<(String, i32), i32>,
    pipelines: HashMap<i32, Pipeline>,
    membership: Option<Membership>,
    scratch: Vec<u8>,
}

impl Consumer {
    /// Connects to the cluster at `bootstrap` (comma-separated `host:port`s).
    pub async fn connect(bootstrap: &str, config: ConsumerConfig) -> Result<Consumer, Error> {
        let client = Client::with_options(bootstrap, &config.client_id, config.request_timeout).await?;
        Ok(Consumer {
            client,
            config,
            partitions: BTreeMap::new(),
            leaders: HashMap::new(),
            pipelines: HashMap::new(),
            membership: None,
            scratch: Vec::new(),
        })
    }

    /// Consumes `partitions` without a group (replacing any earlier assignment), each from
    /// `start`. Every partition must exist.
    pub async fn assign(&mut self, partitions: &[(String, i32)], start: StartOffset) -> Result<(), Error> {
        self.refresh_leaders(partitions).await?;
        for (topic, partition) in partitions {
            if !self.leaders.contains_key(&(topic.clone(), *partition)) {
                return Err(Error::kafka(3, format!("partition {topic}-{partition}")));
            }
        }
        self.partitions = partitions
            .iter()
            .map(|tp| (tp.clone(), PartitionState { position: None, start, committed: None, high_watermark: -1 }))
            .collect();
        Ok(())
    }

    /// Every partition of `topic`, as the cluster knows it now.
    pub async fn partitions_of(&mut self, topic: &str) -> Result<Vec<(String, i32)>, Error> {
        let topics = self.client.topics(Some(&[topic])).await?;
        Ok(topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition))).collect())
    }

    /// Joins the consumer group `group.id` for `topics` and waits for an assignment. Partitions
    /// start from the group's committed offsets, else by `auto.offset.reset`.
    pub async fn subscribe(&mut self, topics: &[&str]) -> Result<(), Error> {
        let group =
            self.config.group_id.clone().ok_or_else(|| Error::Protocol("subscribing needs a group.id".into()))?;
        for topic in topics {
            self.client.topics(Some(&[topic])).await?;
        }
        let now = Instant::now();
        self.membership = Some(Membership {
            group,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            member_id: String::new(),
            generation: -1,
            coordinator: -1,
            next_heartbeat: now,
            next_commit: now + self.config.auto_commit_interval,
            rejoin: true,
        });
        self.join().await
    }

    /// The partitions being consumed.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.partitions.keys().cloned().collect()
    }

    /// The next offset to fetch from a partition, once known.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions.get(&(topic.to_owned(), partition)).and_then(|s| s.position)
    }

    /// A partition's high watermark from the last fetch (-1 before one).
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions.get(&(topic.to_owned(), partition)).map(|s| s.high_watermark)
    }

    /// Whether every partition's position has reached its high watermark as of the last fetch.
    pub fn caught_up(&self) -> bool {
        self.partitions.values().all(|s| s.high_watermark >= 0 && s.position.is_some_and(|p| p >= s.high_watermark))
    }

    /// One round: heartbeat, commit and rejoin as due, then fetch once from every leader and
    /// pass each new record to `visit` in offset order per partition. `visit` returns false to
    /// stop after that record; later records are fetched again next time. Returns the number
    /// of records visited.
    pub async fn poll(&mut self, mut visit: impl FnMut(&ConsumedRecord<'_>) -> bool) -> Result<usize, Error> {
        self.maintain_group().await?;
        self.resolve_positions().await?;
        if self.partitions.is_empty() {
            tokio::time::sleep(self.config.fetch_max_wait).await;
            return Ok(0);
        }
        let mut by_leader: BTreeMap<i32, Vec<(String, i32, i64)>> = BTreeMap::new();
        let mut missing = Vec::new();
        for ((topic, partition), state) in &self.partitions {
            let Some(position) = state.position else { continue };
            match self.leaders.get(&(topic.clone(), *partition)) {
                Some(&leader) if leader >= 0 => {
                    by_leader.entry(leader).or_default().push((topic.clone(), *partition, position));
                }
                _ => missing.push((topic.clone(), *partition)),
            }
        }
        if !missing.is_empty() {
            self.refresh_leaders(&missing).await?;
        }
        if by_leader.is_empty() {
            tokio::time::sleep(self.config.retry_backoff).await;
            return Ok(0);
        }
        // Send every fetch first, so the brokers wait in parallel, then read the answers.
        // A broken connection is retried next round; an answer that does not decode is not.
        let mut sent = Vec::new();
        let mut failure = None;
        for (leader, partitions) in by_leader {
            let request = self.fetch_request(&partitions);
            match self.send_fetch(leader, &request).await {
                Ok(()) => sent.push(leader),
                Err(e) => failure = failure.or(self.lost_broker(leader, e)),
            }
        }
        let mut responses = Vec::new();
        for leader in sent {
            let received = match self.pipelines.get_mut(&leader) {
                Some(pipeline) => pipeline.receive::<FetchRequest>().await,
                None => continue,
            };
            match received {
                Ok((response, _)) => responses.push(response),
                Err(e) => failure = failure.or(self.lost_broker(leader, e)),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let mut visited = 0;
        for response in responses {
            let (count, go_on) = self.process(response, &mut visit)?;
            visited += count;
            if !go_on {
                break;
            }
        }
        Ok(visited)
    }

    /// Commits every partition's position to the group (OffsetCommit at the coordinator).
    pub async fn commit(&mut self) -> Result<(), Error> {
        let Some(membership) = &self.membership else {
            return Err(Error::Protocol("committing needs a group".into()));
        };
        let offsets: BTreeMap<(String, i32), i64> = self
            .partitions
            .iter()
            .filter_map(|(tp, state)| match state.position {
                Some(position) if state.committed != Some(position) => Some((tp.clone(), position)),
                _ => None,
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let (node, group, generation, member) =
            (membership.coordinator, membership.group.clone(), membership.generation, membership.member_id.clone());
        self.client.commit_as(node, &group, generation, &member, &offsets).await?;
        for (tp, offset) in offsets {
            if let Some(state) = self.partitions.get_mut(&tp) {
                state.committed = Some(offset);
            }
        }
        Ok(())
    }

    /// Commits (with `enable.auto.commit`) and leaves the group, if in one.
    pub async fn close(mut self) -> Result<(), Error> {
        let Some(membership) = &self.membership else { return Ok(()) };
        let commit =
            if self.config.enable_auto_commit && membership.generation >= 0 { self.commit().await } else { Ok(()) };
        let membership = self.membership.take().expect("checked above");
        if membership.generation >= 0 {
            let connection = self.client.connection(membership.coordinator).await?;
            let version = connection.version_for::<LeaveGroupRequest>()?;
            let member_id = StrBytes::from_string(membership.member_id.clone());
            let request = if version >= 3 {
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(membership.group.clone())))
                    .with_members(vec![MemberIdentity::default().with_member_id(member_id)])
            } else {
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(membership.group.clone())))
                    .with_member_id(member_id)
            };
            let response = connection.send(&request, version).await?;
            Error::check(response.error_code, || format!("leaving group {}", membership.group))?;
        }
        commit
    }

    fn fetch_request(&self, partitions: &[(String, i32, i64)]) -> FetchRequest {
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (topic, partition, position) in partitions {
            let fetch = FetchPartition::default()
                .with_partition(*partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(*position)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(self.config.max_partition_fetch_bytes);
            match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
                Some(t) => t.partitions.push(fetch),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                        .with_partitions(vec![fetch]),
                ),
            }
        }
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(i32::try_from(self.config.fetch_max_wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(self.config.fetch_min_bytes)
            .with_max_bytes(self.config.fetch_max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics)
    }

    async fn send_fetch(&mut self, leader: i32, request: &FetchRequest) -> Result<(), Error> {
        if !self.pipelines.contains_key(&leader) {
            let connection = self.client.new_connection(leader).await?;
            self.pipelines.insert(leader, connection.into_pipeline());
        }
        let pipeline = self.pipelines.get_mut(&leader).expect("inserted above");
        let version = pipeline.version_for::<FetchRequest>(Some(FETCH_VERSION_CAP))?;
        pipeline.send(request, version, true).await
    }

    /// A broker's connection failed: forget it and where its partitions led. Returns the
    /// error unless it is worth retrying.
    fn lost_broker(&mut self, node: i32, error: Error) -> Option<Error> {
        self.pipelines.remove(&node);
        self.leaders.retain(|_, leader| *leader != node);
        (!error.is_retriable()).then_some(error)
    }

    /// Hands one Fetch response's new records to `visit`; returns how many, and false if
    /// `visit` asked to stop.
    fn process(
        &mut self,
        response: FetchResponse,
        visit: &mut impl FnMut(&ConsumedRecord<'_>) -> bool,
    ) -> Result<(usize, bool), Error> {
        Error::check(response.error_code, || "fetching".into())?;
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut visited = 0;
        for topic in &response.responses {
            let name = topic.topic.0.as_str();
            for p in &topic.partitions {
                let key = (name.to_owned(), p.partition_index);
                let Some(state) = self.partitions.get_mut(&key) else { continue };
                match p.error_code {
                    0 => {}
                    // OFFSET_OUT_OF_RANGE: start again by auto.offset.reset.
                    1 => {
                        state.position = None;
                        state.start = match self.config.auto_offset_reset {
                            OffsetReset::Earliest => StartOffset::Earliest,
                            OffsetReset::Latest => StartOffset::Latest,
                        };
                        continue;
                    }
                    code => {
                        let error = Error::kafka(code, format!("fetching {name}-{}", p.partition_index));
                        if error.is_retriable() {
                            self.leaders.remove(&key);
                            continue;
                        }
                        self.scratch = scratch;
                        return Err(error);
                    }
                }
                state.high_watermark = p.high_watermark;
                let Some(records) = &p.records else { continue };
                let Some(mut position) = state.position else { continue };
                for batch in Batches::new(records) {
                    // A partial batch ends a fetch response; it comes whole next time.
                    let Ok(batch) = batch else { break };
                    if batch.next_offset().0 <= position {
                        continue;
                    }
                    if batch.is_control() {
                        position = batch.next_offset().0;
                        continue;
                    }
                    let section: &[u8] = if batch.compression() == Compression::None {
                        batch.records_bytes()
                    } else {
                        scratch.clear();
                        let limit = self.config.fetch_max_bytes.max(self.config.max_partition_fetch_bytes);
                        batch
                            .decompress_records(&mut scratch, (limit as usize).saturating_mul(4).max(64 << 20))
                            .map_err(|e| Error::Protocol(format!("{name}-{}: {e}", p.partition_index)))?;
                        &scratch
                    };
                    for record in batch.records_in(section) {
                        let record =
                            record.map_err(|e| Error::Protocol(format!("{name}-{}: {e}", p.partition_index)))?;
                        if record.offset().0 < position {
                            continue;
                        }
                        position = record.offset().0 + 1;
                        visited += 1;
                        let consumed = ConsumedRecord {
                            topic: name,
                            partition: p.partition_index,
                            timestamp_type: batch.timestamp_type(),
                            record: &record,
                        };
                        if !visit(&consumed) {
                            state.position = Some(position);
                            self.scratch = scratch;
                            return Ok((visited, false));
                        }
                    }
                    position = position.max(batch.next_offset().0);
                }
                state.position = Some(position);
            }
        }
        self.scratch = scratch;
        Ok((visited, true))
    }

    async fn refresh_leaders(&mut self, partitions: &[(String, i32)]) -> Result<(), Error> {
        let mut names: Vec<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for topic in self.client.metadata_topics(&names, false).await? {
            if topic.error_code == 3 {
                return Err(Error::kafka(3, format!("topic {}", topic.name)));
            }
            for p in topic.partitions {
                self.leaders.insert((topic.name.clone(), p.partition), p.leader);
            }
        }
        Ok(())
    }

    /// Gives every partition without a position one: the committed offset (in a group), else
    /// its start setting, looked up with ListOffsets.
    async fn resolve_positions(&mut self) -> Result<(), Error> {
        if self.partitions.values().all(|s| s.position.is_some()) {
            return Ok(());
        }
        if let Some(membership) = &self.membership
            && self.partitions.values().any(|s| s.position.is_none() && s.committed.is_none())
        {
            let group = membership.group.clone();
            let committed = self.client.committed_offsets(&group).await?;
            for (tp, state) in self.partitions.iter_mut() {
                if state.position.is_none()
                    && let Some(&offset) = committed.get(tp)
                {
                    state.position = Some(offset);
                    state.committed = Some(offset);
                }
            }
        }
        let mut by_time: BTreeMap<i64, Vec<(String, i32)>> = BTreeMap::new();
        for (tp, state) in &mut self.partitions {
            if state.position.is_some() {
                continue;
            }
            let time = match state.start {
                StartOffset::Earliest => -2,
                StartOffset::Latest => -1,
                StartOffset::Timestamp(t) => t,
                StartOffset::At(offset) => {
                    // Checked by the first fetch: out of range resets by auto.offset.reset.
                    state.position = Some(offset);
                    continue;
                }
            };
            by_time.entry(time).or_default().push(tp.clone());
        }
        for (time, partitions) in by_time {
            let mut offsets = self.client.list_offsets(&partitions, time).await?;
            // No record that late: start at the log end.
            let past_the_end: Vec<(String, i32)> =
                offsets.iter().filter(|(_, o)| **o < 0).map(|(tp, _)| tp.clone()).collect();
            if !past_the_end.is_empty() {
                offsets.extend(self.client.list_offsets(&past_the_end, -1).await?);
            }
            for (tp, offset) in offsets {
                if let Some(state) = self.partitions.get_mut(&tp) {
                    state.position = Some(offset);
                }
            }
        }
        Ok(())
    }

    /// Heartbeats, auto-commits and rejoins as due.
    async fn maintain_group(&mut self) -> Result<(), Error> {
        let Some(membership) = &mut self.membership else { return Ok(()) };
        let now = Instant::now();
        if self.config.enable_auto_commit && !membership.rejoin && now >= membership.next_commit {
            membership.next_commit = now + self.config.auto_commit_interval;
            match self.commit().await {
                Ok(()) => {}
                Err(e) if matches!(e.code(), Some(22 | 25 | 27)) => self.rejoin_needed(),
                Err(e) => return Err(e),
            }
        }
        let Some(membership) = &mut self.membership else { return Ok(()) };
        if !membership.rejoin && now >= membership.next_heartbeat {
            membership.next_heartbeat = now + self.config.heartbeat_interval;
            let request = HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(membership.group.clone())))
                .with_generation_id(membership.generation)
                .with_member_id(StrBytes::from_string(membership.member_id.clone()));
            let coordinator = membership.coordinator;
            let response = match self.client.connection(coordinator).await {
                Ok(connection) => connection.call(&request).await.map(|(r, _)| r.error_code),
                Err(e) => Err(e),
            };
            match response {
                Ok(0) => {}
                // REBALANCE_IN_PROGRESS: commit what was consumed, then rejoin.
                Ok(27) => {
                    if self.config.enable_auto_commit {
                        let _ = self.commit().await;
                    }
                    self.rejoin_needed();
                }
                // ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID: rejoin afresh.
                Ok(22 | 25) => {
                    self.rejoin_needed();
                    if let Some(m) = &mut self.membership {
                        m.member_id.clear();
                    }
                }
                Ok(code) if Error::kafka(code, "").is_retriable() => self.coordinator_lost(),
                Ok(code) => return Err(Error::kafka(code, "heartbeat")),
                Err(e) if e.is_retriable() => self.coordinator_lost(),
                Err(e) => return Err(e),
            }
        }
        if self.membership.as_ref().is_some_and(|m| m.rejoin) {
            self.join().await?;
        }
        Ok(())
    }

    fn rejoin_needed(&mut self) {
        if let Some(m) = &mut self.membership {
            m.rejoin = true;
        }
    }

    fn coordinator_lost(&mut self) {
        if let Some(m) = &mut self.membership {
            m.coordinator = -1;
            m.rejoin = true;
        }
    }

    /// JoinGroup and SyncGroup until this member has an assignment.
    async fn join(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + self.config.rebalance_timeout + self.config.session_timeout;
        loop {
            match self.join_once().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    if let Some(m) = &mut self.membership {
                        self.client.forget_connection(m.coordinator);
                        m.coordinator = -1;
                    }
                    tokio::time::sleep(self.config.retry_backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One JoinGroup/SyncGroup round; false if it must be tried again.
    async fn join_once(&mut self) -> Result<bool, Error> {
        let membership = self.membership.as_mut().expect("joining needs a membership");
        if membership.coordinator < 0 {
            membership.coordinator = self.client.group_coordinator(&membership.group).await?;
        }
        let group_id = GroupId(StrBytes::from_string(membership.group.clone()));
        let join = JoinGroupRequest::default()
            .with_group_id(group_id.clone())
            .with_session_timeout_ms(millis(self.config.session_timeout))
            .with_rebalance_timeout_ms(millis(self.config.rebalance_timeout))
            .with_member_id(StrBytes::from_string(membership.member_id.clone()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(RANGE))
                    .with_metadata(encode_subscription(&membership.topics)),
            ]);
        let wait = self.config.rebalance_timeout + self.config.request_timeout;
        let coordinator = membership.coordinator;
        let connection = self.client.connection(coordinator).await?;
        let version = connection.version_for::<JoinGroupRequest>()?;
        let joined = connection.send_within(&join, version, wait).await?;
        let membership = self.membership.as_mut().expect("checked above");
        match joined.error_code {
            0 => {}
            // MEMBER_ID_REQUIRED (KIP-394): join again with the id the coordinator gave.
            79 => {
                membership.member_id = joined.member_id.to_string();
                return Ok(false);
            }
            25 => {
                membership.member_id.clear();
                return Ok(false);
            }
            27 => return Ok(false),
            code => return Err(Error::kafka(code, format!("joining group {}", membership.group))),
        }
        membership.member_id = joined.member_id.to_string();
        membership.generation = joined.generation_id;
        let assignments = if joined.leader == joined.member_id {
            let members: Vec<(String, Vec<String>)> =
                joined.members.iter().map(|m| (m.member_id.to_string(), subscribed_topics(&m.metadata))).collect();
            let mut topics: Vec<&str> = members.iter().flat_map(|(_, ts)| ts.iter().map(String::as_str)).collect();
            topics.sort_unstable();
            topics.dedup();
            let topics: Vec<String> = topics.into_iter().map(str::to_owned).collect();
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            let counts: BTreeMap<String, i32> = self
                .client
                .metadata_topics(&refs, false)
                .await?
                .into_iter()
                .filter(|t| t.error_code == 0)
                .map(|t| (t.name, t.partitions.len() as i32))
                .collect();
            range_assign(&members, &counts)
                .into_iter()
                .map(|(member, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(member))
                        .with_assignment(encode_assignment(&assignment))
                })
                .collect()
        } else {
            Vec::new()
        };
        let membership = self.membership.as_mut().expect("checked above");
        let sync = SyncGroupRequest::default()
            .with_group_id(group_id)
            .with_generation_id(membership.generation)
            .with_member_id(StrBytes::from_string(membership.member_id.clone()))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str(RANGE)))
            .with_assignments(assignments);
        let connection = self.client.connection(coordinator).await?;
        let version = connection.version_for::<SyncGroupRequest>()?;
        let synced = connection.send_within(&sync, version, wait).await?;
        let membership = self.membership.as_mut().expect("checked above");
        match synced.error_code {
            0 => {}
            27 => return Ok(false),
            22 | 25 => {
                membership.member_id.clear();
                return Ok(false);
            }
            code => return Err(Error::kafka(code, format!("syncing group {}", membership.group))),
        }
        let now = Instant::now();
        membership.rejoin = false;
        membership.next_heartbeat = now + self.config.heartbeat_interval;
        let start = match self.config.auto_offset_reset {
            OffsetReset::Earliest => StartOffset::Earliest,
            OffsetReset::Latest => StartOffset::Latest,
        };
        let assigned: Vec<(String, i32)> = assigned_partitions(&synced.assignment)
            .into_iter()
            .flat_map(|(topic, partitions)| partitions.into_iter().map(move |p| (topic.clone(), p)))
            .collect();
        // Keep positions of partitions this member still owns; the rest come from commits.
        let mut previous = std::mem::take(&mut self.partitions);
        for tp in &assigned {
            let state = previous.remove(tp).unwrap_or(PartitionState {
                position: None,
                start,
                committed: None,
                high_watermark: -1,
            });
            self.partitions.insert(tp.clone(), state);
        }
        if !assigned.is_empty() {
            self.refresh_leaders(&assigned).await?;
        }
        Ok(true)
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// `ConsumerProtocolSubscription` v0: the topics, no user data.
fn encode_subscription(topics: &[String]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i32(topics.len() as i32);
    for topic in topics {
        out.put_i16(topic.len() as i16);
        out.put_slice(topic.as_bytes());
    }
    out.put_i32(-1);
    out.freeze()
}

/// The topics of a `ConsumerProtocolSubscription` (any version: later ones only append), with
/// every length checked against the bytes left. Empty for bytes that are not one.
fn subscribed_topics(bytes: &[u8]) -> Vec<String> {
    fn parse(mut buf: &[u8]) -> Option<Vec<String>> {
        if buf.remaining() < 6 {
            return None;
        }
        buf.get_i16();
        let count = usize::try_from(buf.get_i32()).ok()?;
        if count.checked_mul(2)? > buf.remaining() {
            return None;
        }
        let mut topics = Vec::with_capacity(count);
        for _ in 0..count {
            if buf.remaining() < 2 {
                return None;
            }
            let len = usize::try_from(buf.get_i16()).ok()?;
            if buf.remaining() < len {
                return None;
            }
            topics.push(String::from_utf8_lossy(&buf[..len]).into_owned());
            buf.advance(len);
        }
        Some(topics)
    }
    parse(bytes).unwrap_or_default()
}

/// `ConsumerProtocolAssignment` v0: the partitions by topic, no user data.
fn encode_assignment(assignment: &[(String, Vec<i32>)]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i32(assignment.len() as i32);
    for (topic, partitions) in assignment {
        out.put_i16(topic.len() as i16);
        out.put_slice(topic.as_bytes());
        out.put_i32(partitions.len() as i32);
        for p in partitions {
            out.put_i32(*p);
        }
    }
    out.put_i32(-1);
    out.freeze()
}

/// Kafka's range assignor: per topic, its subscribers in member-id order each take a
/// contiguous range, the first `partitions % members` one extra. Every member gets an entry.
fn range_assign(
    members: &[(String, Vec<String>)],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<(String, Vec<i32>)>> {
    let mut out: BTreeMap<String, Vec<(String, Vec<i32>)>> =
        members.iter().map(|(m, _)| (m.clone(), Vec::new())).collect();
    for (topic, &count) in partitions {
        let mut subscribers: Vec<&str> =
            members.iter().filter(|(_, ts)| ts.contains(topic)).map(|(m, _)| m.as_str()).collect();
        subscribers.sort_unstable();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len() as i32;
        let (each, extra) = (count / n, count % n);
        for (i, member) in subscribers.into_iter().enumerate() {
            let i = i as i32;
            let start = i * each + i.min(extra);
            let len = each + i32::from(i < extra);
            if len > 0 {
                out.get_mut(member)
                    .expect("every member has an entry")
                    .push((topic.clone(), (start..start + len).collect()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignor_splits_like_kafka() {
        let members =
            vec![("b".to_owned(), vec!["t".to_owned(), "u".to_owned()]), ("a".to_owned(), vec!["t".to_owned()])];
        let counts = BTreeMap::from([("t".to_owned(), 5), ("u".to_owned(), 1)]);
        let out = range_assign(&members, &counts);
        assert_eq!(out["a"], vec![("t".to_owned(), vec![0, 1, 2])]);
        assert_eq!(out["b"], vec![("t".to_owned(), vec![3, 4]), ("u".to_owned(), vec![0])]);
    }

    #[test]
    fn subscriptions_and_assignments_round_trip() {
        let topics = vec!["orders".to_owned(), "users".to_owned()];
        assert_eq!(subscribed_topics(&encode_subscription(&topics)), topics);
        let assignment = vec![("orders".to_owned(), vec![0, 2])];
        assert_eq!(assigned_partitions(&encode_assignment(&assignment)), assignment);
        assert!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_empty(), "a huge count allocates nothing");
    }
}
