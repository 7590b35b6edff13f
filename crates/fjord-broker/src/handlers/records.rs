//! InitProducerId, DeleteRecords and OffsetForLeaderEpoch.

use std::sync::Arc;

use fjord_types::{ErrorCode, LeaderEpoch, Offset, TopicPartition};
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, InitProducerIdRequest, InitProducerIdResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProducerId,
};

use super::topic_name;
use crate::broker::Broker;
use crate::errors;

/// Hands an idempotent producer its id: always a fresh one at epoch 0, as Kafka does for a
/// producer without a transactional id, even one that names its current id and epoch (only a
/// transaction coordinator may bump an epoch, KIP-360; a broker that bumped any id a client
/// named would let one producer fence another's). Transactional ids need the transaction
/// coordinator, which does not exist yet: refused with INVALID_REQUEST.
pub(super) async fn init_producer_id(broker: &Arc<Broker>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default();
    if request.transactional_id.is_some() {
        return response.with_error_code(ErrorCode::InvalidRequest.code());
    }
    match broker.next_producer_id().await {
        Ok(id) => response.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(code) => response.with_error_code(code.code()),
    }
}

pub(super) fn delete_records(broker: &Arc<Broker>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let response = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let tp = TopicPartition::new(name.clone(), p.partition_index);
                    let Some(handle) = broker.partition(&tp) else {
                        return response.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                    };
                    let result = handle.state.lock().delete_records(Offset(p.offset));
                    match result {
                        Ok(low) => response.with_low_watermark(low.0),
                        Err(e) => response.with_error_code(errors::read_error(&e).code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(topic_name(&name)).with_partitions(partitions)
        })
        .collect();
    broker.write_checkpoints();
    DeleteRecordsResponse::default().with_topics(topics)
}

pub(super) fn offset_for_leader_epoch(
    broker: &Arc<Broker>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.topic.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let response =
                        EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
                    let tp = TopicPartition::new(name.clone(), p.partition);
                    let Some(handle) = broker.partition(&tp) else {
                        return response.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                    };
                    let current = (p.current_leader_epoch >= 0).then_some(LeaderEpoch(p.current_leader_epoch));
                    let result = handle.state.lock().end_offset_for_epoch(LeaderEpoch(p.leader_epoch), current);
                    match result {
                        Ok(Some((epoch, end))) => response.with_leader_epoch(epoch.0).with_end_offset(end.0),
                        Ok(None) => response,
                        Err(e) => response.with_error_code(errors::read_error(&e).code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(topic_name(&name)).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
