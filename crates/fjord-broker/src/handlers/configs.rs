//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics, and DescribeConfigs
//! for the broker's static configs (with Kafka's types, sources and synonyms).

use std::collections::BTreeMap;
use std::sync::Arc;

use fjord_metadata::controller::{self, ConfigOp};
use fjord_metadata::topic_config::TOPIC_CONFIGS;
use fjord_types::ErrorCode;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
    incremental_alter_configs_response,
};

use super::text;
use crate::broker::Broker;
use crate::config::catalog::BROKER_PROPERTIES;
use crate::errors;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Kafka's `ConfigSource` codes.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// A topic config's effective value and where it comes from.
pub(crate) struct ConfigEntry {
    pub(crate) name: &'static str,
    pub(crate) value: String,
    pub(crate) source: i8,
    pub(crate) synonyms: Vec<(String, String, i8)>,
    pub(crate) ty: i8,
    pub(crate) doc: &'static str,
}

/// Every topic config (or those in `keys`) with its value: the topic's override, else the
/// broker's `server.properties` synonym, else Kafka's default.
pub(crate) fn topic_config_entries(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
    keys: Option<&[String]>,
) -> Vec<ConfigEntry> {
    TOPIC_CONFIGS
        .iter()
        .filter(|def| keys.is_none_or(|k| k.iter().any(|k| k == def.name)))
        .map(|def| {
            let (broker_value, from_file) = broker.config.topic_default(def.name).expect("a topic config");
            let mut synonyms = Vec::new();
            if let Some(value) = overrides.get(def.name) {
                synonyms.push((def.name.to_owned(), value.clone(), SOURCE_TOPIC));
            }
            if from_file {
                synonyms.push((def.broker_name.to_owned(), broker_value.clone(), SOURCE_STATIC_BROKER));
            }
            synonyms.push((def.broker_name.to_owned(), def.default.to_owned(), SOURCE_DEFAULT));
            let (value, source) = match overrides.get(def.name) {
                Some(value) => (value.clone(), SOURCE_TOPIC),
                None if from_file => (broker_value, SOURCE_STATIC_BROKER),
                None => (broker_value, SOURCE_DEFAULT),
            };
            ConfigEntry { name: def.name, value, source, synonyms, ty: def.ty.code(), doc: def.doc }
        })
        .collect()
}

/// A broker config's value (`None`: unset) and where it comes from.
struct BrokerEntry {
    name: &'static str,
    value: Option<String>,
    source: i8,
    synonyms: Vec<(String, Option<String>, i8)>,
    ty: i8,
    doc: &'static str,
}

/// Every broker property (or those in `keys`): the broker's own and the topic configs'
/// broker synonyms, each from `server.properties` (STATIC_BROKER_CONFIG) or its default
/// (DEFAULT_CONFIG). None can change at run time, so all are read-only.
fn broker_config_entries(broker: &Broker, keys: Option<&[String]>) -> Vec<BrokerEntry> {
    let own = BROKER_PROPERTIES.iter().map(|p| (p.name, p.default, p.ty.code(), p.doc));
    let synonyms = TOPIC_CONFIGS.iter().map(|d| (d.broker_name, Some(d.default), d.ty.code(), d.doc));
    let mut entries: Vec<BrokerEntry> = own
        .chain(synonyms)
        .filter(|(name, ..)| keys.is_none_or(|k| k.iter().any(|k| k == name)))
        .map(|(name, default, ty, doc)| {
            let given = broker.config.properties.get(name).map(|v| v.trim().to_owned());
            let mut synonyms = Vec::new();
            if let Some(value) = &given {
                synonyms.push((name.to_owned(), Some(value.clone()), SOURCE_STATIC_BROKER));
            }
            if let Some(default) = default {
                synonyms.push((name.to_owned(), Some(default.to_owned()), SOURCE_DEFAULT));
            }
            let (value, source) = match given {
                Some(value) => (Some(value), SOURCE_STATIC_BROKER),
                None => (default.map(str::to_owned), SOURCE_DEFAULT),
            };
            BrokerEntry { name, value, source, synonyms, ty, doc }
        })
        .collect();
    entries.sort_by_key(|e| e.name);
    entries.dedup_by_key(|e| e.name);
    entries
}

pub(super) fn describe(broker: &Arc<Broker>, version: i16, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let image = broker.image();
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let keys: Option<Vec<String>> =
                resource.configuration_keys.as_ref().map(|k| k.iter().map(|k| k.to_string()).collect());
            // kafka-protocol's default message is "", not null: clients read "" as a message.
            let result = DescribeConfigsResult::default()
                .with_error_message(None)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries: Vec<DescribeConfigsResourceResult> = match resource.resource_type {
                TOPIC => match image.topics.get(&name) {
                    None => {
                        return result
                            .with_error_code(ErrorCode::UnknownTopicOrPartition.code())
                            .with_error_message(Some(text(&format!("Topic {name} does not exist"))));
                    }
                    Some(topic) => topic_config_entries(broker, &topic.configs, keys.as_deref())
                        .into_iter()
                        .map(|e| {
                            let synonyms = if request.include_synonyms {
                                e.synonyms
                                    .iter()
                                    .map(|(n, v, s)| {
                                        DescribeConfigsSynonym::default()
                                            .with_name(text(n))
                                            .with_value(Some(text(v)))
                                            .with_source(*s)
                                    })
                                    .collect()
                            } else {
                                Vec::new()
                            };
                            DescribeConfigsResourceResult::default()
                                .with_name(text(e.name))
                                .with_value(Some(text(&e.value)))
                                .with_config_source(e.source)
                                .with_read_only(false)
                                .with_synonyms(synonyms)
                                .with_config_type(if version >= 3 { e.ty } else { 0 })
                                .with_documentation(
                                    (request.include_documentation && version >= 3).then(|| text(e.doc)),
                                )
                        })
                        .collect(),
                },
                BROKER => {
                    if !name.is_empty() && name != broker.node_id.to_string() {
                        return result
                            .with_error_code(ErrorCode::InvalidRequest.code())
                            .with_error_message(Some(text(&format!("Unexpected broker id {name}"))));
                    }
                    broker_config_entries(broker, keys.as_deref())
                        .into_iter()
                        .map(|e| {
                            let synonyms = if request.include_synonyms {
                                e.synonyms
                                    .iter()
                                    .map(|(n, v, s)| {
                                        DescribeConfigsSynonym::default()
                                            .with_name(text(n))
                                            .with_value(v.as_deref().map(text))
                                            .with_source(*s)
                                    })
                                    .collect()
                            } else {
                                Vec::new()
                            };
                            DescribeConfigsResourceResult::default()
                                .with_name(text(e.name))
                                .with_value(e.value.as_deref().map(text))
                                .with_config_source(e.source)
                                .with_read_only(true)
                                .with_is_sensitive(false)
                                .with_synonyms(synonyms)
                                .with_config_type(if version >= 3 { e.ty } else { 0 })
                                .with_documentation(
                                    (request.include_documentation && version >= 3).then(|| text(e.doc)),
                                )
                        })
                        .collect()
                }
                other => {
                    return result
                        .with_error_code(ErrorCode::InvalidRequest.code())
                        .with_error_message(Some(text(&format!("Unsupported resource type {other}"))));
                }
            };
            result.with_configs(entries)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Applies a topic config change unless `validate_only`. Returns the error code and message.
async fn alter_topic(
    broker: &Broker,
    topic: &str,
    changes: Vec<(String, ConfigOp)>,
    replace_all: bool,
    validate_only: bool,
) -> (ErrorCode, Option<String>) {
    let topic = topic.to_owned();
    let decided = broker
        .decide(validate_only, move |image| {
            match controller::alter_topic_configs(image, &topic, &changes, replace_all) {
                Ok(records) => (records, Ok(())),
                Err(e) => (Vec::new(), Err(e)),
            }
        })
        .await;
    match decided {
        Ok(Ok(())) => (ErrorCode::None, None),
        Ok(Err(e)) => (errors::controller_error(&e), Some(e.to_string())),
        Err(e) => (errors::controller_failure(&e), None),
    }
}

fn broker_configs_refused() -> (ErrorCode, Option<String>) {
    (ErrorCode::InvalidRequest, Some("Dynamic broker configs are not supported yet; edit server.properties".into()))
}

pub(crate) async fn alter(broker: &Arc<Broker>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let (code, message) = match resource.resource_type {
            TOPIC => {
                let changes: Vec<(String, ConfigOp)> = resource
                    .configs
                    .iter()
                    .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), ConfigOp::Set(v.to_string()))))
                    .collect();
                alter_topic(broker, &resource.resource_name, changes, true, request.validate_only).await
            }
            BROKER => broker_configs_refused(),
            other => (ErrorCode::InvalidRequest, Some(format!("Unsupported resource type {other}"))),
        };
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(code.code())
                .with_error_message(message.map(|m| text(&m))),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub(crate) async fn incremental_alter(
    broker: &Arc<Broker>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let (code, message) = match resource.resource_type {
            TOPIC => {
                let changes: Result<Vec<(String, ConfigOp)>, String> = resource
                    .configs
                    .iter()
                    .map(|c| {
                        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                        let op = match c.config_operation {
                            0 => ConfigOp::Set(value),
                            1 => ConfigOp::Delete,
                            2 => ConfigOp::Append(value),
                            3 => ConfigOp::Subtract(value),
                            other => return Err(format!("Unknown config operation {other}")),
                        };
                        Ok((c.name.to_string(), op))
                    })
                    .collect();
                match changes {
                    Ok(changes) => {
                        alter_topic(broker, &resource.resource_name, changes, false, request.validate_only).await
                    }
                    Err(message) => (ErrorCode::InvalidRequest, Some(message)),
                }
            }
            BROKER => broker_configs_refused(),
            other => (ErrorCode::InvalidRequest, Some(format!("Unsupported resource type {other}"))),
        };
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(code.code())
                .with_error_message(message.map(|m| text(&m))),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
