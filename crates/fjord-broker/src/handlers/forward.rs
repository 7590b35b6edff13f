//! Admin requests run on the active controller (Kafka's forwarding, KIP-590): the broker a
//! client reached sends the request on, the controller runs it and answers with the response
//! and the metadata offset its records committed at, and the broker answers the client once
//! its own metadata has reached that offset — so a client that creates a topic and then asks
//! the same broker about it finds it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fjord_metadata::controller::{Creator, NewTopic};
use fjord_protocol::cluster as pb;
use fjord_protocol::{Request, decode_request};
use fjord_types::{ErrorCode, Offset};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::{Outcome, configs, quorum, reassign, topics};
use crate::broker::Broker;

/// The APIs only the active controller answers.
pub(crate) const FORWARDED: &[ApiKey] = &[
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::ElectLeaders,
    ApiKey::DescribeQuorum,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
];

/// How long a forwarded request may wait for a controller (through an election).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

fn encode_frame(request: &Request) -> Option<Vec<u8>> {
    let version = request.header.request_api_version;
    let mut frame = BytesMut::new();
    request.header.encode(&mut frame, request.api_key.request_header_version(version)).ok()?;
    request.body.encode(&mut frame, version).ok()?;
    Some(frame.to_vec())
}

/// Sends a client's admin request to the active controller and relays its answer.
pub(crate) async fn forward(broker: &Arc<Broker>, request: Request, internal: bool) -> Result<ResponseKind, ErrorCode> {
    let (api_key, version) = (request.api_key, request.header.request_api_version);
    let frame = encode_frame(&request).ok_or(ErrorCode::UnknownServerError)?;
    let forwarded = pb::ForwardRequest {
        api_key: i32::from(api_key as i16),
        api_version: i32::from(version),
        request: frame,
        client_id: request.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        internal,
    };
    let answer = broker.channel().forward(forwarded, FORWARD_TIMEOUT).await.map_err(|e| e.code())?;
    if answer.error_code != 0 {
        return Err(ErrorCode::from_code(answer.error_code as i16));
    }
    // Answer once this broker's own metadata holds what the controller committed.
    let _ = tokio::time::timeout(FORWARD_TIMEOUT, broker.wait_for_metadata(Offset(answer.committed_offset))).await;
    let mut body = Bytes::from(answer.response);
    ResponseKind::decode(api_key, &mut body, version).map_err(|_| ErrorCode::UnknownServerError)
}

/// Forwards a client's admin request; if no controller answers, every part of the request
/// gets the error.
pub(crate) async fn forward_or_error(broker: &Arc<Broker>, request: Request) -> Outcome {
    let (api_key, version) = (request.api_key, request.header.request_api_version);
    let body = request.body.clone();
    match forward(broker, request, false).await {
        Ok(response) => Outcome::Respond(Box::new(response)),
        Err(code) => {
            tracing::warn!(?api_key, version, ?code, "cannot forward to the controller");
            match error_response(&body, code) {
                Some(response) => Outcome::Respond(Box::new(response)),
                None => Outcome::Close,
            }
        }
    }
}

/// The response that gives every part of `request` the error `code`.
fn error_response(request: &RequestKind, code: ErrorCode) -> Option<ResponseKind> {
    use kafka_protocol::messages::*;
    let error = code.code();
    Some(match request {
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(
            CreateTopicsResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        create_topics_response::CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(error)
                            .with_error_message(None)
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                    })
                    .collect(),
            ),
        ),
        RequestKind::DeleteTopics(r) => {
            let names: Vec<TopicName> = if r.topics.is_empty() {
                r.topic_names.clone()
            } else {
                r.topics.iter().filter_map(|t| t.name.clone()).collect()
            };
            ResponseKind::DeleteTopics(
                DeleteTopicsResponse::default().with_responses(
                    names
                        .into_iter()
                        .map(|n| {
                            delete_topics_response::DeletableTopicResult::default()
                                .with_name(Some(n))
                                .with_error_code(error)
                        })
                        .collect(),
                ),
            )
        }
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(
            CreatePartitionsResponse::default().with_results(
                r.topics
                    .iter()
                    .map(|t| {
                        create_partitions_response::CreatePartitionsTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(error)
                    })
                    .collect(),
            ),
        ),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(
            AlterConfigsResponse::default().with_responses(
                r.resources
                    .iter()
                    .map(|c| {
                        alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(c.resource_type)
                            .with_resource_name(c.resource_name.clone())
                            .with_error_code(error)
                            .with_error_message(None)
                    })
                    .collect(),
            ),
        ),
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(
                r.resources
                    .iter()
                    .map(|c| {
                        incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(c.resource_type)
                            .with_resource_name(c.resource_name.clone())
                            .with_error_code(error)
                            .with_error_message(None)
                    })
                    .collect(),
            ),
        ),
        RequestKind::ElectLeaders(_) => {
            ResponseKind::ElectLeaders(ElectLeadersResponse::default().with_error_code(error))
        }
        RequestKind::DescribeQuorum(_) => {
            ResponseKind::DescribeQuorum(DescribeQuorumResponse::default().with_error_code(error))
        }
        RequestKind::AlterPartitionReassignments(_) => ResponseKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsResponse::default().with_error_code(error),
        ),
        RequestKind::ListPartitionReassignments(_) => ResponseKind::ListPartitionReassignments(
            ListPartitionReassignmentsResponse::default().with_error_code(error),
        ),
        _ => return None,
    })
}

/// Whether any part of a forwarded request's answer is NOT_CONTROLLER.
fn lost_leadership(response: &ResponseKind) -> bool {
    let not_controller = ErrorCode::NotController.code();
    match response {
        ResponseKind::CreateTopics(r) => r.topics.iter().any(|t| t.error_code == not_controller),
        ResponseKind::DeleteTopics(r) => r.responses.iter().any(|t| t.error_code == not_controller),
        ResponseKind::CreatePartitions(r) => r.results.iter().any(|t| t.error_code == not_controller),
        ResponseKind::AlterConfigs(r) => r.responses.iter().any(|c| c.error_code == not_controller),
        ResponseKind::IncrementalAlterConfigs(r) => r.responses.iter().any(|c| c.error_code == not_controller),
        ResponseKind::ElectLeaders(r) => r.error_code == not_controller,
        ResponseKind::AlterPartitionReassignments(r) => r.error_code == not_controller,
        ResponseKind::ListPartitionReassignments(r) => r.error_code == not_controller,
        _ => false,
    }
}

/// Runs a forwarded request on this node, the active controller (the Controller service's
/// Forward).
pub(crate) async fn serve(broker: &Arc<Broker>, request: pb::ForwardRequest) -> pb::ForwardResponse {
    let refuse = |code: ErrorCode| pb::ForwardResponse {
        error_code: i32::from(code.code()),
        response: Vec::new(),
        committed_offset: -1,
    };
    if !broker.controller().is_active() {
        return refuse(ErrorCode::NotController);
    }
    let Ok(request) = decode_request(Bytes::from(request.request), &broker.versions).map(|r| (r, request.internal))
    else {
        return refuse(ErrorCode::InvalidRequest);
    };
    let (request, internal) = request;
    let (api_key, version) = (request.api_key, request.header.request_api_version);
    if !FORWARDED.contains(&api_key) {
        return refuse(ErrorCode::InvalidRequest);
    }
    let creator = if internal { Creator::Broker } else { Creator::User };
    let response = match request.body {
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(topics::create_topics(broker, version, r, creator).await)
        }
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(topics::delete_topics(broker, version, r).await),
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(topics::create_partitions(broker, r).await),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(configs::alter(broker, r).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(broker, r).await)
        }
        RequestKind::ElectLeaders(r) => ResponseKind::ElectLeaders(quorum::elect_leaders(broker, r).await),
        RequestKind::DescribeQuorum(r) => ResponseKind::DescribeQuorum(quorum::describe_quorum(broker, r).await),
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(reassign::alter(broker, version, r).await)
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(reassign::list(broker, r).await)
        }
        _ => return refuse(ErrorCode::InvalidRequest),
    };
    if lost_leadership(&response) {
        // This node stopped leading while deciding: nothing of it committed, so the broker
        // sends the request again to the next active controller instead of failing it.
        return refuse(ErrorCode::NotController);
    }
    let mut body = BytesMut::new();
    if response.encode(&mut body, version).is_err() {
        tracing::error!(?api_key, version, "cannot encode a forwarded request's response");
        return refuse(ErrorCode::UnknownServerError);
    }
    pb::ForwardResponse { error_code: 0, response: body.to_vec(), committed_offset: broker.metadata_offset().0 }
}

/// Creates topics wherever the active controller is: CreateTopics, forwarded, marked internal
/// for the broker's own topics. Returns each topic's outcome.
pub(crate) async fn create_topics(
    broker: &Arc<Broker>,
    topics: Vec<NewTopic>,
    creator: Creator,
) -> Result<Vec<(String, ErrorCode, Option<String>)>, ErrorCode> {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let creatable = topics
        .iter()
        .map(|t| {
            CreatableTopic::default()
                .with_name(super::topic_name(&t.name))
                .with_num_partitions(t.num_partitions)
                .with_replication_factor(t.replication_factor)
                .with_configs(
                    t.configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.clone()))
                                .with_value(v.clone().map(StrBytes::from_string))
                        })
                        .collect(),
                )
        })
        .collect();
    let version = 7;
    let request = Request {
        api_key: ApiKey::CreateTopics,
        header: RequestHeader::default()
            .with_request_api_key(ApiKey::CreateTopics as i16)
            .with_request_api_version(version)
            .with_client_id(Some(StrBytes::from_static_str("fjord-broker"))),
        body: RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(creatable).with_timeout_ms(30_000)),
    };
    let ResponseKind::CreateTopics(response) = forward(broker, request, creator == Creator::Broker).await? else {
        return Err(ErrorCode::UnknownServerError);
    };
    Ok(response
        .topics
        .into_iter()
        .map(|t| (t.name.0.to_string(), ErrorCode::from_code(t.error_code), t.error_message.map(|m| m.to_string())))
        .collect())
}
