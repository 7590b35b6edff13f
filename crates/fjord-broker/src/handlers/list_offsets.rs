//! ListOffsets: offsets by timestamp, and the latest, earliest and max-timestamp sentinels.

use std::sync::Arc;

use fjord_types::{ErrorCode, LeaderEpoch, Timestamp, TopicPartition};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::topic_name;
use crate::broker::Broker;
use crate::errors;

pub(super) fn handle(broker: &Arc<Broker>, version: i16, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.0.to_string();
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let tp = TopicPartition::new(name.clone(), p.partition_index);
                    let Some(handle) = broker.partition(&tp) else {
                        return response.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                    };
                    let epoch = (p.current_leader_epoch >= 0).then_some(LeaderEpoch(p.current_leader_epoch));
                    let result = handle.state.lock().list_offset(Timestamp(p.timestamp), epoch);
                    match result {
                        Ok(Some((timestamp, offset, epoch))) => {
                            // The leader epoch is in the response from v4.
                            let epoch = if version >= 4 { epoch.0 } else { -1 };
                            response.with_timestamp(timestamp.0).with_offset(offset.0).with_leader_epoch(epoch)
                        }
                        Ok(None) => response,
                        // Before v5 a client does not know OFFSET_NOT_AVAILABLE; Kafka gives
                        // those LEADER_NOT_AVAILABLE, which they retry the same way.
                        Err(fjord_replication::ReadError::OffsetNotAvailable { .. }) if version < 5 => {
                            response.with_error_code(ErrorCode::LeaderNotAvailable.code())
                        }
                        Err(e) => response.with_error_code(errors::read_error(&e).code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(topic_name(&name)).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
