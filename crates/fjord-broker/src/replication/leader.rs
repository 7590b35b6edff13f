//! The leader's side of follower replication: the `Replica` gRPC service. A follower's fetch
//! names each partition with its log end offset and last fetched epoch; the leader answers
//! from `Partition::read_for_replica` (records to its log end, a diverging epoch, or Kafka's
//! error), holding the fetch up to `max_wait_ms` in the fetch purgatory while nothing is new.
//! A fetch that moves a high watermark wakes the `acks=all` produces waiting on it; one that
//! shows a follower caught up proposes it for the ISR.

use std::sync::{Arc, Weak};
use std::time::Duration;

use fjord_log::FileRange;
use fjord_protocol::cluster as pb;
use fjord_replication::{ReadError, ReplicaAnswer};
use fjord_types::{BrokerId, ErrorCode, LeaderEpoch, Offset, TopicPartition};
use tonic::{Request, Response, Status};

use super::isr;
use crate::broker::Broker;
use crate::errors;

/// The `Replica` service of a broker.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaService {
    pub(crate) broker: Weak<Broker>,
}

/// The longest a leader holds a fetch, whatever the follower asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

#[tonic::async_trait]
impl pb::replica_server::Replica for ReplicaService {
    async fn fetch(
        &self,
        request: Request<pb::ReplicaFetchRequest>,
    ) -> Result<Response<pb::ReplicaFetchResponse>, Status> {
        let broker = self.broker.upgrade().ok_or_else(|| Status::unavailable("this broker is shutting down"))?;
        let request = request.into_inner();
        if request.cluster_id != broker.cluster_id {
            let error_code = i32::from(ErrorCode::InconsistentClusterId.code());
            return Ok(Response::new(pb::ReplicaFetchResponse { error_code, partitions: Vec::new() }));
        }
        let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        let keys: Vec<TopicPartition> =
            request.partitions.iter().map(|p| TopicPartition::new(p.topic.clone(), p.partition)).collect();
        loop {
            // Watch before reading, so an append between the read and the wait still wakes us.
            let watch = broker.replicas.fetch_purgatory().watch(keys.iter().cloned());
            let (response, bytes, urgent) = read(&broker, &request);
            let min_bytes = request.min_bytes.max(1) as usize;
            if bytes >= min_bytes || urgent || tokio::time::Instant::now() >= deadline {
                return Ok(Response::new(response));
            }
            let _ = tokio::time::timeout_at(deadline, watch).await;
        }
    }
}

/// Reads every partition of a fetch. Returns the answer, the bytes of records in it, and
/// whether something in it cannot wait (an error or a divergence).
fn read(broker: &Arc<Broker>, request: &pb::ReplicaFetchRequest) -> (pb::ReplicaFetchResponse, usize, bool) {
    let replica = BrokerId(request.replica_id);
    let image = broker.image();
    // KIP-841/903: only an active broker, fetching under its current registration, may join an ISR.
    let eligible = image
        .brokers
        .get(&replica)
        .is_some_and(|b| b.is_active() && (request.broker_epoch == -1 || b.broker_epoch == request.broker_epoch));
    let now = Broker::now();
    let mut budget = request.max_bytes.max(0) as u64;
    let mut total = 0usize;
    let mut urgent = false;
    let mut partitions = Vec::with_capacity(request.partitions.len());
    for p in &request.partitions {
        let tp = TopicPartition::new(p.topic.clone(), p.partition);
        let mut answer = pb::ReplicaFetchPartitionResponse {
            topic: p.topic.clone(),
            partition: p.partition,
            error_code: 0,
            high_watermark: -1,
            log_start_offset: -1,
            log_end_offset: -1,
            diverging_epoch: None,
            records: Default::default(),
        };
        let Some(handle) =
            broker.replicas.partition(&tp).filter(|h| p.topic_id.is_empty() || h.topic_id.0[..] == p.topic_id[..])
        else {
            answer.error_code = i32::from(ErrorCode::UnknownTopicOrPartition.code());
            urgent = true;
            partitions.push(answer);
            continue;
        };
        let max_bytes = (request.partition_max_bytes.max(1) as u64).min(budget.max(1));
        let current = (p.current_leader_epoch >= 0).then_some(LeaderEpoch(p.current_leader_epoch));
        let last_fetched = (p.last_fetched_epoch >= 0).then_some(LeaderEpoch(p.last_fetched_epoch));
        let mut range: Option<FileRange> = None;
        let (moved, proposal) = {
            let mut partition = handle.state.lock();
            match partition.read_for_replica(
                replica,
                Offset(p.fetch_offset),
                last_fetched,
                current,
                max_bytes,
                eligible,
                now,
            ) {
                Ok(read) => {
                    answer.high_watermark = read.high_watermark.0;
                    answer.log_start_offset = read.log_start_offset.0;
                    answer.log_end_offset = read.log_end_offset.0;
                    match read.answer {
                        ReplicaAnswer::Diverging { epoch, end_offset } => {
                            answer.diverging_epoch = Some(pb::OffsetAndEpoch { offset: end_offset.0, epoch: epoch.0 });
                            urgent = true;
                        }
                        ReplicaAnswer::Records(found) => range = found,
                    }
                    let proposal = partition.state().isr_to_expand(replica, eligible).map(|isr| {
                        let at = (partition.leader_epoch(), partition.state().partition_epoch());
                        partition.begin_isr_change(isr.clone());
                        (isr, at)
                    });
                    (read.high_watermark_moved || proposal.is_some(), proposal)
                }
                Err(e) => {
                    answer.error_code = i32::from(errors::read_error(&e).code());
                    if let ReadError::OffsetOutOfRange { log_start_offset, log_end_offset, .. } = e {
                        answer.log_start_offset = log_start_offset.0;
                        answer.log_end_offset = log_end_offset.0;
                    }
                    urgent = true;
                    (false, None)
                }
            }
        };
        if moved {
            // acks=all produces and consumers' long polls waiting on this partition.
            broker.replicas.complete_delayed(&tp);
        }
        if let Some((isr, (leader_epoch, partition_epoch))) = proposal {
            tracing::info!(partition = %tp, follower = replica.0, ?isr, "expanding the ISR");
            isr::propose(broker, tp.clone(), handle.topic_id, isr, leader_epoch, partition_epoch);
        }
        if let Some(range) = range {
            // Read outside the partition's lock: the range's file stays valid while we hold it.
            match range.read_to_vec() {
                Ok(bytes) => {
                    total += bytes.len();
                    budget = budget.saturating_sub(bytes.len() as u64);
                    answer.records = bytes.into();
                }
                Err(e) => {
                    tracing::warn!(partition = %tp, error = %e, "cannot read records for a follower");
                    answer.error_code = i32::from(ErrorCode::KafkaStorageError.code());
                    urgent = true;
                }
            }
        }
        partitions.push(answer);
    }
    (pb::ReplicaFetchResponse { error_code: 0, partitions }, total, urgent)
}
