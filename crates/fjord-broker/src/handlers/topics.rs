//! CreateTopics, DeleteTopics and CreatePartitions.

use std::sync::Arc;

use fjord_metadata::controller::{self, Creator, NewTopic};
use fjord_types::{BrokerId, ErrorCode, TopicId};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse,
};

use super::configs::topic_config_entries;
use super::{text, topic_name, wire_uuid};
use crate::broker::Broker;
use crate::errors;

pub(crate) async fn create_topics(
    broker: &Arc<Broker>,
    version: i16,
    request: CreateTopicsRequest,
    creator: Creator,
) -> CreateTopicsResponse {
    let topics: Vec<NewTopic> = request
        .topics
        .iter()
        .map(|t| NewTopic {
            name: t.name.0.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| (a.partition_index, a.broker_ids.iter().map(|b| BrokerId(b.0)).collect()))
                .collect(),
            configs: t.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))).collect(),
        })
        .collect();
    let results = match broker.create_topics(topics.clone(), creator, request.validate_only).await {
        Ok(results) => results,
        Err(e) => {
            let code = errors::controller_failure(&e);
            let results = topics
                .iter()
                .map(|t| {
                    CreatableTopicResult::default()
                        .with_name(topic_name(&t.name))
                        .with_error_code(code.code())
                        .with_error_message(Some(text(&e.to_string())))
                })
                .collect();
            return CreateTopicsResponse::default().with_topics(results);
        }
    };
    let results = topics
        .iter()
        .zip(results)
        .map(|(topic, result)| match result {
            Ok(created) => {
                let configs = (version >= 5).then(|| {
                    topic_config_entries(broker, &created.configs, None)
                        .into_iter()
                        .map(|entry| {
                            CreatableTopicConfigs::default()
                                .with_name(text(entry.name))
                                .with_value(Some(text(&entry.value)))
                                .with_config_source(entry.source)
                        })
                        .collect()
                });
                let id = if request.validate_only || version < 7 { TopicId::ZERO } else { created.topic_id };
                let (partitions, factor) =
                    if version >= 5 { (created.num_partitions, created.replication_factor) } else { (-1, -1) };
                // kafka-protocol's default message is "", not null: clients read "" as a message.
                CreatableTopicResult::default()
                    .with_error_message(None)
                    .with_name(topic_name(&created.name))
                    .with_topic_id(wire_uuid(id))
                    .with_num_partitions(partitions)
                    .with_replication_factor(factor)
                    .with_configs(configs)
            }
            Err(e) => CreatableTopicResult::default()
                .with_name(topic_name(&topic.name))
                .with_error_code(errors::controller_error(&e).code())
                .with_error_message(Some(text(&e.to_string())))
                .with_num_partitions(-1)
                .with_replication_factor(-1),
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

pub(crate) async fn delete_topics(
    broker: &Arc<Broker>,
    version: i16,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let image = broker.image();
    // v6 names topics by name or id; earlier versions by name only.
    let requested: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        request.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)).collect()
    } else {
        request.topic_names.iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect()
    };
    let names: Vec<String> = requested
        .iter()
        .map(|(name, id)| match name {
            Some(name) => name.clone(),
            None => image.topic_by_id(TopicId(*id.as_bytes())).map(|t| t.name.clone()).unwrap_or_default(),
        })
        .collect();
    let deleting = names.clone();
    let results = match broker.decide(false, move |image| controller::delete_topics(image, &deleting)).await {
        Ok(results) => results,
        Err(e) => vec![Err(fjord_metadata::ControllerError::InvalidRequest(e.to_string())); names.len()],
    };
    let responses = requested
        .iter()
        .zip(names.iter().zip(results))
        .map(|((_, requested_id), (name, result))| {
            let response = DeletableTopicResult::default().with_name((!name.is_empty()).then(|| topic_name(name)));
            match result {
                Ok(id) => {
                    tracing::info!(topic = %name, "deleted topic");
                    response.with_topic_id(wire_uuid(if version >= 6 { id } else { TopicId::ZERO }))
                }
                Err(e) if name.is_empty() => {
                    let _ = e;
                    response.with_topic_id(*requested_id).with_error_code(ErrorCode::UnknownTopicId.code())
                }
                Err(e) => response
                    .with_error_code(errors::controller_error(&e).code())
                    .with_error_message((version >= 5).then(|| text(&e.to_string()))),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub(crate) async fn create_partitions(
    broker: &Arc<Broker>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let assignments: Option<Vec<Vec<BrokerId>>> = topic
            .assignments
            .as_ref()
            .map(|a| a.iter().map(|a| a.broker_ids.iter().map(|b| BrokerId(b.0)).collect()).collect());
        let (deciding, count) = (name.clone(), topic.count);
        let decided = broker
            .decide(request.validate_only, move |image| {
                match controller::create_partitions(image, &deciding, count, assignments.as_deref()) {
                    Ok(records) => (records, Ok(())),
                    Err(e) => (Vec::new(), Err(e)),
                }
            })
            .await;
        let response = CreatePartitionsTopicResult::default().with_name(topic_name(&name));
        results.push(match decided {
            Ok(Ok(())) => response,
            Ok(Err(e)) => response
                .with_error_code(errors::controller_error(&e).code())
                .with_error_message(Some(text(&e.to_string()))),
            Err(e) => response.with_error_code(errors::controller_failure(&e).code()),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
