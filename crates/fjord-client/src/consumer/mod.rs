//! Consuming: fetch from each partition's leader (one pipelined Fetch per broker), either from
//! partitions chosen by hand or as a member of a consumer group (JoinGroup/SyncGroup with the
//! range assignor, heartbeats, committed offsets).
//!
//! Like the producer it does no work in the background: [`Consumer::poll`] heartbeats,
//! commits and rejoins as needed before each fetch, and a fetch waits at most
//! `fetch.max.wait.ms`, well inside `heartbeat.interval.ms`.

mod membership;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use fjord_log::{Batches, Compression, Record, TimestampType};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, GroupId, LeaveGroupRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use self::membership::Membership;
use crate::pipeline::Pipeline;
use crate::{Client, Error};

/// Fetch v13 names topics by id; Fjord's client names them.
const FETCH_VERSION_CAP: i16 = 12;

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
            self.pipelines.insert(leader, Pipeline::new(connection));
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
}
