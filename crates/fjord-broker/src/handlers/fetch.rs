//! Fetch: whole batches below the high watermark, with long polling on `fetch.min.bytes` /
//! `fetch.max.wait.ms` (Kafka's `DelayedFetch`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
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

pub(super) async fn handle(broker: &Arc<Broker>, version: i16, request: FetchRequest) -> FetchResponse {
    if request.session_id != NO_SESSION {
        return FetchResponse::default().with_error_code(ErrorCode::FetchSessionIdNotFound.code());
    }
    let max_wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_WAIT_MS) as u64);
    let deadline = tokio::time::Instant::now() + max_wait;
    loop {
        // Register for wake-ups before reading, so an append between the read and the wait is
        // not missed.
        let notified = broker.appended().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (response, bytes, errored) = read_all(broker, version, &request);
        let satisfied = bytes >= request.min_bytes.max(0) as u64 || errored;
        if satisfied || tokio::time::Instant::now() >= deadline {
            return response;
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// One pass over the requested partitions. Returns the response, the record bytes in it, and
/// whether any partition failed (which answers at once, as Kafka does).
fn read_all(broker: &Arc<Broker>, version: i16, request: &FetchRequest) -> (FetchResponse, u64, bool) {
    // The log start offset is in the response from v5.
    let log_start = |offset: i64| if version >= 5 { offset } else { -1 };
    let read_committed = request.isolation_level == 1;
    let response_limit = if request.max_bytes <= 0 { i32::MAX as u64 } else { request.max_bytes as u64 };
    let mut total = 0u64;
    let mut errored = false;
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
                        errored = true;
                        data.error_code = ErrorCode::UnknownTopicOrPartition.code();
                        return data;
                    };
                    let budget = (p.partition_max_bytes.max(0) as u64).min(response_limit.saturating_sub(total));
                    let epoch = (p.current_leader_epoch >= 0).then_some(LeaderEpoch(p.current_leader_epoch));
                    let read = {
                        let partition = handle.state.lock();
                        partition.read(Offset(p.fetch_offset), budget, total == 0, epoch)
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
                                        errored = true;
                                        data.error_code = ErrorCode::KafkaStorageError.code();
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            errored = true;
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
    (FetchResponse::default().with_session_id(NO_SESSION).with_responses(topics), total, errored)
}
