//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs and
//! IncrementalAlterConfigs, as Kafka's `Admin` client offers them.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::{Client, Error};

/// DescribeConfigs' resource type for a topic.
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs' source for a topic's own override.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Its name.
    pub name: String,
    /// Partitions, or -1 for the broker's `num.partitions`.
    pub partitions: i32,
    /// Replication factor, or -1 for the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic config overrides.
    pub configs: Vec<(String, String)>,
}

/// One topic config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Kafka's name.
    pub name: String,
    /// The value in force (`None` for a sensitive one).
    pub value: Option<String>,
    /// Whether the topic overrides the default (the configs `kafka-topics --describe` shows).
    pub is_override: bool,
    /// Whether it cannot be changed.
    pub read_only: bool,
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// The error for a per-resource error code, with the broker's message when it sent one.
fn check(code: i16, message: Option<&StrBytes>, what: impl FnOnce() -> String) -> Result<(), Error> {
    Error::check(code, || match message {
        Some(m) if !m.is_empty() => format!("{} ({m})", what()),
        _ => what(),
    })
}

impl Client {
    /// Creates topics (CreateTopics, sent to any broker: the single-node controller answers).
    /// Fails with the first topic's error, e.g. TOPIC_ALREADY_EXISTS.
    pub async fn create_topics(&mut self, topics: &[NewTopic]) -> Result<(), Error> {
        let request = CreateTopicsRequest::default().with_timeout_ms(self.timeout_ms()).with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(name(&t.name))
                        .with_num_partitions(t.partitions)
                        .with_replication_factor(t.replication_factor)
                        .with_configs(
                            t.configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default().with_name(text(k)).with_value(Some(text(v)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        let (response, _) = self.any_connection().await?.call(&request).await?;
        for topic in &response.topics {
            check(topic.error_code, topic.error_message.as_ref(), || {
                format!("cannot create topic '{}'", topic.name.0)
            })?;
        }
        Ok(())
    }

    /// Deletes topics by name (DeleteTopics).
    pub async fn delete_topics(&mut self, names: &[&str]) -> Result<(), Error> {
        let connection = self.any_connection().await?;
        let version = connection.version_for::<DeleteTopicsRequest>()?;
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(30_000);
        if version >= 6 {
            request.topics = names.iter().map(|n| DeleteTopicState::default().with_name(Some(name(n)))).collect();
        } else {
            request.topic_names = names.iter().map(|n| name(n)).collect();
        }
        let response = connection.send(&request, version).await?;
        for topic in &response.responses {
            let topic_name = topic.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            check(topic.error_code, topic.error_message.as_ref(), || format!("cannot delete topic '{topic_name}'"))?;
        }
        Ok(())
    }

    /// Raises a topic's partition count to `total` (CreatePartitions).
    pub async fn create_partitions(&mut self, topic: &str, total: i32) -> Result<(), Error> {
        let request = CreatePartitionsRequest::default().with_timeout_ms(self.timeout_ms()).with_topics(vec![
            CreatePartitionsTopic::default().with_name(name(topic)).with_count(total).with_assignments(None),
        ]);
        let (response, _) = self.any_connection().await?.call(&request).await?;
        for result in &response.results {
            check(result.error_code, result.error_message.as_ref(), || {
                format!("cannot raise the partitions of '{topic}' to {total}")
            })?;
        }
        Ok(())
    }

    /// A topic's configs in force, sorted by name (DescribeConfigs).
    pub async fn describe_topic_configs(&mut self, topic: &str) -> Result<Vec<ConfigEntry>, Error> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(text(topic))
                .with_configuration_keys(None),
        ]);
        let (response, _) = self.any_connection().await?.call(&request).await?;
        let mut entries = Vec::new();
        for result in response.results {
            check(result.error_code, result.error_message.as_ref(), || format!("cannot describe topic '{topic}'"))?;
            for config in result.configs {
                let is_override = config.config_source == DYNAMIC_TOPIC_CONFIG;
                entries.push(ConfigEntry {
                    name: config.name.to_string(),
                    value: config.value.map(|v| v.to_string()),
                    is_override,
                    read_only: config.read_only,
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Sets and removes topic config overrides in one request (IncrementalAlterConfigs).
    pub async fn alter_topic_configs(
        &mut self,
        topic: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<(), Error> {
        let configs = set
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default().with_name(text(k)).with_config_operation(0).with_value(Some(text(v)))
            })
            .chain(delete.iter().map(|k| AlterableConfig::default().with_name(text(k)).with_config_operation(1)))
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(text(topic))
                .with_configs(configs),
        ]);
        let (response, _) = self.any_connection().await?.call(&request).await?;
        for result in &response.responses {
            check(result.error_code, result.error_message.as_ref(), || format!("cannot alter topic '{topic}'"))?;
        }
        Ok(())
    }
}
