//! The followers' fetch tasks (Kafka's `ReplicaFetcherManager` and `ReplicaFetcherThread`):
//! `num.replica.fetchers` tasks per source broker, each fetching all of its partitions in one
//! long-poll call to the leader's `Replica` service. An answer is applied only if the
//! partition still follows that leader in the same epoch from the same offset (an answer to
//! an older question is dropped, KAFKA-7040); a divergence truncates before anything else of
//! the answer is used (KAFKA-14704); records are appended as the leader stored them, and the
//! leader's high watermark is taken after them.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use fjord_protocol::cluster as pb;
use fjord_replication::Role;
use fjord_types::{BrokerId, ErrorCode, LeaderEpoch, Offset, TopicId, TopicPartition};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::broker::Broker;
use crate::config::ReplicationConfig;

type Client = pb::replica_client::ReplicaClient<Channel>;

/// What a fetcher knows of one partition it fetches.
#[derive(Debug, Clone)]
struct Followed {
    topic_id: TopicId,
    /// No fetch before this (after an error, until the metadata says something new).
    backoff_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct Shared {
    partitions: Mutex<BTreeMap<TopicPartition, Followed>>,
    wake: Notify,
}

#[derive(Debug)]
struct Fetcher {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// The fetch tasks of this broker, by (source broker, fetcher index).
#[derive(Debug)]
pub(crate) struct Fetchers {
    config: ReplicationConfig,
    runtime: tokio::runtime::Handle,
    broker: OnceLock<Weak<Broker>>,
    fetchers: Mutex<HashMap<(BrokerId, usize), Fetcher>>,
    /// Which fetcher each followed partition is with.
    assigned: Mutex<HashMap<TopicPartition, (BrokerId, usize)>>,
    /// Set at shutdown: no new tasks start.
    stopped: std::sync::atomic::AtomicBool,
}

impl Fetchers {
    /// No fetchers yet; tasks start on the current runtime as partitions are followed.
    pub(crate) fn new(config: ReplicationConfig) -> Fetchers {
        Fetchers {
            config,
            runtime: tokio::runtime::Handle::current(),
            broker: OnceLock::new(),
            fetchers: Mutex::new(HashMap::new()),
            assigned: Mutex::new(HashMap::new()),
            stopped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The broker the tasks work for (set once it exists).
    pub(crate) fn attach(&self, broker: Weak<Broker>) {
        let _ = self.broker.set(broker);
    }

    /// Fetches `tp` from `leader` (Kafka's `addFetcherForPartitions`); moves it from any other
    /// leader's fetcher, and clears a backoff (the metadata changed).
    pub(crate) fn follow(&self, tp: &TopicPartition, topic_id: TopicId, leader: BrokerId) {
        if leader.is_none() || self.stopped.load(Ordering::Acquire) {
            self.unfollow(tp);
            return;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        tp.hash(&mut hasher);
        let key = (leader, (hasher.finish() % self.config.num_fetchers as u64) as usize);
        let previous = self.assigned.lock().insert(tp.clone(), key);
        let mut fetchers = self.fetchers.lock();
        if let Some(previous) = previous.filter(|p| *p != key)
            && let Some(fetcher) = fetchers.get(&previous)
        {
            fetcher.shared.partitions.lock().remove(tp);
        }
        let fetcher = fetchers.entry(key).or_insert_with(|| {
            let shared = Arc::new(Shared::default());
            let broker = self.broker.get().cloned().unwrap_or_default();
            let task = self.runtime.spawn(run(leader, Arc::clone(&shared), broker, self.config.clone()));
            Fetcher { shared, task }
        });
        fetcher.shared.partitions.lock().insert(tp.clone(), Followed { topic_id, backoff_until: None });
        fetcher.shared.wake.notify_one();
    }

    /// Stops fetching `tp` (it is led here now, or no longer hosted).
    pub(crate) fn unfollow(&self, tp: &TopicPartition) {
        let Some(key) = self.assigned.lock().remove(tp) else { return };
        if let Some(fetcher) = self.fetchers.lock().get(&key) {
            fetcher.shared.partitions.lock().remove(tp);
        }
    }

    /// Stops every task (shutdown).
    pub(crate) fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        for (_, fetcher) in self.fetchers.lock().drain() {
            fetcher.task.abort();
        }
        self.assigned.lock().clear();
    }
}

/// Where broker `leader` takes replica fetches: its inter-broker listener, as registered.
fn leader_address(broker: &Broker, leader: BrokerId) -> Option<String> {
    let image = broker.image();
    let registration = image.brokers.get(&leader)?;
    let endpoint = registration.endpoint(&broker.config.cluster.inter_broker_listener_name)?;
    Some(format!("{}:{}", endpoint.host, endpoint.port))
}

/// The HTTP/2 flow-control window of a replica fetch connection.
pub(crate) const REPLICA_WINDOW: u32 = 16 * 1024 * 1024;

fn connect(address: &str) -> Option<Client> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        // HTTP/2's default 64 KiB window would cap a follower at one window per round trip
        // (about 40 MB/s here); a replica fetch answer is up to replica.fetch.response.max.bytes.
        .initial_stream_window_size(Some(REPLICA_WINDOW))
        .initial_connection_window_size(Some(REPLICA_WINDOW))
        .connect_lazy();
    Some(
        Client::new(channel)
            .max_decoding_message_size(crate::cluster::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::cluster::MAX_MESSAGE_BYTES),
    )
}

async fn run(leader: BrokerId, shared: Arc<Shared>, broker: Weak<Broker>, config: ReplicationConfig) {
    let backoff = Duration::from_millis(config.fetch_backoff_ms.max(1));
    let mut client: Option<(String, Client)> = None;
    loop {
        let Some(strong) = broker.upgrade() else { return };
        let Some(request) = build_request(&strong, &shared, &config) else {
            drop(strong);
            // Nothing to fetch now: wait for a partition, or for a backoff to end.
            let _ = tokio::time::timeout(backoff, shared.wake.notified()).await;
            continue;
        };
        let Some(address) = leader_address(&strong, leader) else {
            drop(strong);
            tokio::time::sleep(backoff).await;
            continue;
        };
        if client.as_ref().is_none_or(|(a, _)| *a != address) {
            client = connect(&address).map(|c| (address.clone(), c));
        }
        let Some((_, rpc)) = client.as_mut() else {
            drop(strong);
            tokio::time::sleep(backoff).await;
            continue;
        };
        let sent = request.partitions.clone();
        drop(strong);
        let timeout = Duration::from_millis(config.fetch_wait_max_ms.max(0) as u64) + Duration::from_secs(30);
        let answer = tokio::time::timeout(timeout, rpc.fetch(request)).await;
        let Some(strong) = broker.upgrade() else { return };
        match answer {
            Ok(Ok(response)) => {
                let response = response.into_inner();
                if response.error_code != 0 {
                    tracing::warn!(leader = leader.0, error = ?ErrorCode::from_code(response.error_code as i16), "replica fetch refused");
                    drop(strong);
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                for (sent, answer) in sent.iter().zip(response.partitions) {
                    apply(&strong, leader, sent, answer, &shared, backoff);
                }
            }
            Ok(Err(status)) => {
                tracing::debug!(leader = leader.0, %status, "replica fetch failed");
                client = None;
                drop(strong);
                tokio::time::sleep(backoff).await;
            }
            Err(_) => {
                tracing::debug!(leader = leader.0, "replica fetch timed out");
                client = None;
            }
        }
    }
}

/// The fetch for every partition of this fetcher that still follows its leader and is not
/// backing off; `None` if there is none.
fn build_request(broker: &Broker, shared: &Shared, config: &ReplicationConfig) -> Option<pb::ReplicaFetchRequest> {
    let now = Instant::now();
    let followed: Vec<(TopicPartition, Followed)> = {
        let mut partitions = shared.partitions.lock();
        for f in partitions.values_mut() {
            if f.backoff_until.is_some_and(|t| t <= now) {
                f.backoff_until = None;
            }
        }
        partitions.iter().filter(|(_, f)| f.backoff_until.is_none()).map(|(tp, f)| (tp.clone(), f.clone())).collect()
    };
    let mut partitions = Vec::with_capacity(followed.len());
    for (tp, f) in followed {
        let Some(handle) = broker.replicas.partition(&tp).filter(|h| h.topic_id == f.topic_id) else { continue };
        let partition = handle.state.lock();
        if !matches!(partition.role(), Role::Follower { leader } if !leader.is_none()) {
            continue;
        }
        partitions.push(pb::ReplicaFetchPartition {
            topic: tp.topic.clone(),
            topic_id: f.topic_id.0.to_vec(),
            partition: tp.partition,
            current_leader_epoch: partition.leader_epoch().0,
            fetch_offset: partition.log_end_offset().0,
            last_fetched_epoch: partition.last_fetched_epoch().map_or(-1, |e| e.0),
            log_start_offset: partition.log_start_offset().0,
        });
    }
    if partitions.is_empty() {
        return None;
    }
    Some(pb::ReplicaFetchRequest {
        cluster_id: broker.cluster_id.clone(),
        replica_id: broker.node_id.0,
        broker_epoch: broker.broker_epoch.load(Ordering::Acquire),
        max_wait_ms: config.fetch_wait_max_ms,
        min_bytes: config.fetch_min_bytes,
        max_bytes: config.fetch_response_max_bytes,
        partition_max_bytes: config.fetch_max_bytes,
        partitions,
    })
}

/// Applies one partition's answer, if it still answers the partition's current question.
fn apply(
    broker: &Broker,
    leader: BrokerId,
    sent: &pb::ReplicaFetchPartition,
    answer: pb::ReplicaFetchPartitionResponse,
    shared: &Shared,
    backoff: Duration,
) {
    let tp = TopicPartition::new(sent.topic.clone(), sent.partition);
    let Some(handle) = broker.replicas.partition(&tp) else { return };
    let now = Broker::now();
    let mut partition = handle.state.lock();
    let current = partition.role() == Role::Follower { leader }
        && partition.leader_epoch() == LeaderEpoch(sent.current_leader_epoch)
        && partition.log_end_offset() == Offset(sent.fetch_offset);
    if !current {
        return;
    }
    let error = ErrorCode::from_code(answer.error_code as i16);
    let outcome: Result<(), String> = match error {
        ErrorCode::None => match answer.diverging_epoch {
            Some(diverging) => {
                let cut =
                    partition.divergence_truncation_offset(LeaderEpoch(diverging.epoch), Offset(diverging.offset));
                if cut.0 < sent.fetch_offset {
                    tracing::info!(partition = %tp, from = sent.fetch_offset, to = cut.0, leader = leader.0, "truncating to the leader's log");
                }
                partition.truncate_to(cut, now).map(|_| ()).map_err(|e| e.to_string())
            }
            None => {
                let appended = if answer.records.is_empty() {
                    Ok(())
                } else {
                    partition.append_as_follower(&answer.records, now).map_err(|e| {
                        if let fjord_replication::AppendError::Storage(e) = &e {
                            crate::errors::warn_storage(e);
                        }
                        e.to_string()
                    })
                };
                appended.map(|()| {
                    partition.apply_leader_offsets(Offset(answer.high_watermark), Offset(answer.log_start_offset));
                })
            }
        },
        ErrorCode::OffsetOutOfRange => {
            let (start, end) = (Offset(answer.log_start_offset), Offset(answer.log_end_offset));
            let fetch_offset = Offset(sent.fetch_offset);
            if fetch_offset > end && !end.is_none() {
                tracing::info!(partition = %tp, from = fetch_offset.0, to = end.0, "truncating to the leader's log end");
                partition.truncate_to(end, now).map(|_| ()).map_err(|e| e.to_string())
            } else if fetch_offset < start {
                tracing::info!(partition = %tp, start = start.0, "restarting the log at the leader's log start");
                partition.truncate_fully_and_start_at(start, now).map_err(|e| e.to_string())
            } else {
                Err(format!("{error:?}"))
            }
        }
        other => Err(format!("{other:?}")),
    };
    drop(partition);
    if let Err(reason) = outcome {
        tracing::debug!(partition = %tp, leader = leader.0, reason, "replica fetch of a partition failed; backing off");
        if let Some(f) = shared.partitions.lock().get_mut(&tp) {
            f.backoff_until = Some(Instant::now() + backoff);
        }
    }
}
