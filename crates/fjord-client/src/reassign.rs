//! Partition reassignment as Kafka's `Admin` offers it: AlterPartitionReassignments (move
//! partitions to new replicas, or cancel a move) and ListPartitionReassignments (the moves
//! under way).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::{Client, Error};

/// A partition's move under way, from [`Client::list_partition_reassignments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Its replicas now: the target's, then those leaving.
    pub replicas: Vec<i32>,
    /// The replicas being added.
    pub adding: Vec<i32>,
    /// The replicas being removed.
    pub removing: Vec<i32>,
}

/// One partition's answer from [`Client::alter_partition_reassignments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentResult {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Kafka's error code: 0 accepted, 39 INVALID_REPLICA_ASSIGNMENT, 85 NO_REASSIGNMENT_IN_PROGRESS...
    pub error_code: i16,
    /// The broker's message, if any.
    pub message: Option<String>,
}

/// `items` grouped by topic name, each topic's in order, topics sorted.
pub(crate) fn by_topic<T>(items: impl IntoIterator<Item = (String, T)>) -> BTreeMap<String, Vec<T>> {
    let mut grouped: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for (topic, item) in items {
        grouped.entry(topic).or_default().push(item);
    }
    grouped
}

fn name(topic: String) -> TopicName {
    TopicName(StrBytes::from_string(topic))
}

fn ids(brokers: &[BrokerId]) -> Vec<i32> {
    brokers.iter().map(|b| b.0).collect()
}

impl Client {
    /// Moves each partition to its target replicas (preferred leader first), or with `None`
    /// cancels its move under way. The answer comes once the controller has recorded the
    /// moves; the data moves afterwards, and each move completes when its new replicas have
    /// caught up. Fails only if the request as a whole fails.
    pub async fn alter_partition_reassignments(
        &mut self,
        moves: &[(String, i32, Option<Vec<i32>>)],
    ) -> Result<Vec<ReassignmentResult>, Error> {
        let topics = by_topic(moves.iter().map(|(topic, partition, target)| {
            let replicas = target.as_ref().map(|t| t.iter().copied().map(BrokerId).collect());
            (topic.clone(), ReassignablePartition::default().with_partition_index(*partition).with_replicas(replicas))
        }))
        .into_iter()
        .map(|(topic, partitions)| ReassignableTopic::default().with_name(name(topic)).with_partitions(partitions))
        .collect();
        let request = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_allow_replication_factor_change(true)
            .with_topics(topics);
        let connection = self.any_connection().await?;
        let version = connection.version_for::<AlterPartitionReassignmentsRequest>()?;
        let response = connection.send(&request, version).await?;
        Error::check(response.error_code, || "cannot reassign partitions".to_owned())?;
        let mut results: Vec<ReassignmentResult> = response
            .responses
            .into_iter()
            .flat_map(|topic| {
                let topic_name = topic.name.0.to_string();
                topic.partitions.into_iter().map(move |p| ReassignmentResult {
                    topic: topic_name.clone(),
                    partition: p.partition_index,
                    error_code: p.error_code,
                    message: p.error_message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
                })
            })
            .collect();
        results.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(results)
    }

    /// The moves under way among `partitions`, or all of them with `None`.
    pub async fn list_partition_reassignments(
        &mut self,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<OngoingReassignment>, Error> {
        let topics = partitions.map(|partitions| {
            by_topic(partitions.iter().cloned())
                .into_iter()
                .map(|(topic, indexes)| {
                    ListPartitionReassignmentsTopics::default().with_name(name(topic)).with_partition_indexes(indexes)
                })
                .collect()
        });
        let request =
            ListPartitionReassignmentsRequest::default().with_timeout_ms(self.timeout_ms()).with_topics(topics);
        let connection = self.any_connection().await?;
        let version = connection.version_for::<ListPartitionReassignmentsRequest>()?;
        let response = connection.send(&request, version).await?;
        Error::check(response.error_code, || "cannot list partition reassignments".to_owned())?;
        let mut ongoing: Vec<OngoingReassignment> = response
            .topics
            .into_iter()
            .flat_map(|topic| {
                let topic_name = topic.name.0.to_string();
                topic.partitions.into_iter().map(move |p| OngoingReassignment {
                    topic: topic_name.clone(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect();
        ongoing.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(ongoing)
    }
}
