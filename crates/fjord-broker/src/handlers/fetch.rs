//! Fetch: whole batches below the high watermark, with long polling on `fetch.min.bytes` /
//! `fetch.max.wait.ms` (Kafka's `DelayedFetch`, completed through the fetch purgatory when one
//! of the fetched partitions changes). A response holds at most the broker's `fetch.max.bytes`,
//! whatever the client asks for.
//!
//! No KIP-951 leader hints: Fetch carries them (a partition's `current_leader`, the response's
//! `node_endpoints`) only from v16, and Fjord serves Fetch up to v12, since v13 onwards names
//! topics by id. A consumer answered NOT_LEADER_OR_FOLLOWER refreshes its metadata instead.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_replication::{DelayedFetch, FetchPartition};
use fjord_types::{ErrorCode, LeaderEpoch, Offset, TopicPartition};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::topic_name;
use crate::broker::Broker;
use crate::errors;

/// Fetch sessions (KIP-227) are declined: every response carries session id 0, so clients send
/// full fetch requests, which the protocol allows.
const NO_SESSION: i32 = 0;

/// `fetch.max.wait.ms` is capped so a hostile client cannot park a task for days.
const MAX_WAIT_MS: i32 = 60_000;

/// The client's `max_bytes` within the broker's `fetch.max.bytes` (Kafka's rule: the smaller).
fn response_limit(broker: &Broker, requested: i32) -> u64 {
    let requested = if requested <= 0 { u64::MAX } else { requested as u64 };
    requested.min(broker.config.fetch_max_bytes)
}

fn current_epoch(epoch: i32) -> Option<LeaderEpoch> {
    (epoch >= 0).then_some(LeaderEpoch(epoch))
}

pub(super) async fn handle(broker: &Arc<Broker>, version: i16, request: FetchRequest) -> FetchResponse {
    if request.session_id != NO_SESSION {
        return FetchResponse::default().with_error_code(ErrorCode::FetchSessionIdNotFound.code());
    }
    let max_wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_WAIT_MS) as u64);
    let min_bytes = request.min_bytes.max(0) as u64;
    if min_bytes > 0 && !max_wait.is_zero() {
        let limit = response_limit(broker, request.max_bytes);
        let partitions = request
            .topics
            .iter()
            .flat_map(|topic| {
                topic.partitions.iter().map(|p| FetchPartition {
                    tp: TopicPartition::new(topic.topic.0.to_string(), p.partition),
                    fetch_offset: Offset(p.fetch_offset),
                    max_bytes: (p.partition_max_bytes.max(0) as u64).min(limit),
                    current_leader_epoch: current_epoch(p.current_leader_epoch),
                })
            })
            .collect();
        // Until enough is readable, or an error is to be answered, or max.wait.ms is up.
        let mut fetch = DelayedFetch::new(partitions, min_bytes);
        super::complete_within(&broker.replicas, broker.replicas.fetch_purgatory(), &mut fetch, max_wait).await;
    }
    read_all(broker, version, &request)
}

/// One pass over the requested partitions.
fn read_all(broker: &Arc<Broker>, version: i16, request: &FetchRequest) -> FetchResponse {
    // The log start offset is in the response from v5.
    let log_start = |offset: i64| if version >= 5 { offset } else { -1 };
    let read_committed = request.isolation_level == 1;
    let response_limit = response_limit(broker, request.max_bytes);
    let mut total = 0u64;
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.topic.0.to_string();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut data = PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_aborted_transactions(read_committed.then(Vec::new))
                        // An empty partition answers empty bytes, not null (librdkafka insists).
                        .with_records(Some(Bytes::new()));
                    let tp = TopicPartition::new(name.clone(), p.partition);
                    let Some(handle) = broker.partition(&tp) else {
                        let known =
                            broker.image().topics.get(&name).is_some_and(|t| t.partitions.contains_key(&p.partition));
                        let code =
                            if known { ErrorCode::NotLeaderOrFollower } else { ErrorCode::UnknownTopicOrPartition };
                        data.error_code = code.code();
                        return data;
                    };
                    let budget = (p.partition_max_bytes.max(0) as u64).min(response_limit.saturating_sub(total));
                    let read = {
                        let partition = handle.state.lock();
                        partition.read(
                            Offset(p.fetch_offset),
                            budget,
                            total == 0,
                            current_epoch(p.current_leader_epoch),
                        )
                    };
                    match read {
                        Ok(read) => {
                            data.high_watermark = read.high_watermark.0;
                            data.last_stable_offset = read.last_stable_offset.0;
                            data.log_start_offset = log_start(read.log_start_offset.0);
                            if let Some(range) = read.range {
                                match range.read_to_vec() {
                                    Ok(bytes) => {
                                        total += bytes.len() as u64;
                                        data.records = Some(Bytes::from(bytes));
                                    }
                                    Err(e) => {
                                        tracing::error!(partition = %tp, error = %e, "cannot read log");
                                        data.error_code = ErrorCode::KafkaStorageError.code();
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            data.error_code = errors::read_error(&e).code();
                            let partition = handle.state.lock();
                            data.high_watermark = partition.high_watermark().0;
                            data.log_start_offset = log_start(partition.log_start_offset().0);
                            data.last_stable_offset = partition.high_watermark().0;
                        }
                    }
                    data
                })
                .collect();
            FetchableTopicResponse::default().with_topic(topic_name(&name)).with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_session_id(NO_SESSION).with_responses(topics)
}
