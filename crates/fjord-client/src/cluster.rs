//! The cluster as operators see it: DescribeCluster (brokers, fenced or not), DescribeQuorum
//! (the metadata quorum's leader and replicas) and ElectLeaders, as Kafka's `Admin` offers
//! them.

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest, ElectLeadersRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::{Client, Error};

/// One broker of [`Client::describe_cluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerDescription {
    /// Its id.
    pub id: i32,
    /// `host:port` on the listener the client uses.
    pub endpoint: String,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Whether the controller has fenced it (silent too long, or not caught up yet).
    pub fenced: bool,
    /// Its broker epoch, when the cluster reports it (a Fjord extension).
    pub epoch: Option<i64>,
}

/// [`Client::describe_cluster`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: String,
    /// The broker named as controller (in KRaft, a broker that forwards to the controller).
    pub controller_id: i32,
    /// The brokers, by id.
    pub brokers: Vec<BrokerDescription>,
}

/// One replica of the metadata log in [`QuorumInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    /// Its node id.
    pub id: i32,
    /// Its directory id (Kafka's base64 form; `AAAAAAAAAAAAAAAAAAAAAA` when unknown).
    pub directory_id: String,
    /// Its log end offset at its last fetch (-1: unknown).
    pub log_end_offset: i64,
    /// When it last fetched, in ms since the epoch (-1: never).
    pub last_fetch_timestamp: i64,
    /// When it was last caught up with the leader, in ms since the epoch (-1: never).
    pub last_caught_up_timestamp: i64,
}

/// [`Client::describe_quorum`]'s answer: the leader's view of the metadata quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    /// The leader (the active controller's node).
    pub leader_id: i32,
    /// Its epoch.
    pub leader_epoch: i32,
    /// The metadata log's high watermark.
    pub high_watermark: i64,
    /// The voters.
    pub voters: Vec<QuorumReplica>,
    /// The observers (brokers that follow the log without voting).
    pub observers: Vec<QuorumReplica>,
    /// Each voter's controller endpoints (`NAME://host:port`), from DescribeQuorum v2.
    pub endpoints: Vec<(i32, Vec<String>)>,
}

/// Which leader election ElectLeaders runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the first replica if it is in sync.
    Preferred,
    /// Give a leaderless partition any live replica, in sync or not (may lose records).
    Unclean,
}

/// One partition's outcome of [`Client::elect_leaders`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionResult {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Kafka's error code: 0 elected, 84 ELECTION_NOT_NEEDED, 80 PREFERRED_LEADER_NOT_AVAILABLE...
    pub error_code: i16,
    /// The broker's message, if any.
    pub message: Option<String>,
}

/// The metadata log's topic, the one partition DescribeQuorum describes.
const METADATA_TOPIC: &str = "__cluster_metadata";

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn directory_id(uuid: &uuid::Uuid) -> String {
    // Kafka prints Uuids as URL-safe base64 without padding.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut out, mut bits, mut count) = (String::with_capacity(22), 0u32, 0);
    for &byte in uuid.as_bytes() {
        bits = (bits << 8) | u32::from(byte);
        count += 8;
        while count >= 6 {
            count -= 6;
            out.push(ALPHABET[((bits >> count) & 63) as usize] as char);
        }
    }
    if count > 0 {
        out.push(ALPHABET[((bits << (6 - count)) & 63) as usize] as char);
    }
    out
}

impl Client {
    /// The brokers, fenced ones included when the broker supports DescribeCluster v2.
    pub async fn describe_cluster(&mut self) -> Result<ClusterDescription, Error> {
        let request = DescribeClusterRequest::default().with_include_fenced_brokers(true);
        let (response, _) = self.any_connection().await?.call(&request).await?;
        Error::check(response.error_code, || "cannot describe the cluster".to_owned())?;
        let mut brokers: Vec<BrokerDescription> = response
            .brokers
            .into_iter()
            .map(|b| {
                let epoch = b
                    .unknown_tagged_fields
                    .get(&fjord_protocol::extensions::DESCRIBE_CLUSTER_BROKER_EPOCH_TAG)
                    .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
                    .map(i64::from_be_bytes);
                BrokerDescription {
                    id: b.broker_id.0,
                    endpoint: format!("{}:{}", b.host, b.port),
                    rack: b.rack.map(|r| r.to_string()),
                    fenced: b.is_fenced,
                    epoch,
                }
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        Ok(ClusterDescription {
            cluster_id: response.cluster_id.to_string(),
            controller_id: response.controller_id.0,
            brokers,
        })
    }

    /// The metadata quorum as its leader describes it (DescribeQuorum, forwarded by the broker
    /// to the active controller).
    pub async fn describe_quorum(&mut self) -> Result<QuorumInfo, Error> {
        let request = DescribeQuorumRequest::default().with_topics(vec![
            TopicData::default()
                .with_topic_name(TopicName(text(METADATA_TOPIC)))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
        ]);
        let (response, _) = self.any_connection().await?.call(&request).await?;
        Error::check(response.error_code, || "cannot describe the metadata quorum".to_owned())?;
        let partition = response
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()
            .ok_or_else(|| Error::Protocol("DescribeQuorum answered without a partition".into()))?;
        Error::check(partition.error_code, || "cannot describe the metadata quorum".to_owned())?;
        let replica = |r: kafka_protocol::messages::describe_quorum_response::ReplicaState| QuorumReplica {
            id: r.replica_id.0,
            directory_id: directory_id(&r.replica_directory_id),
            log_end_offset: r.log_end_offset,
            last_fetch_timestamp: r.last_fetch_timestamp,
            last_caught_up_timestamp: r.last_caught_up_timestamp,
        };
        Ok(QuorumInfo {
            leader_id: partition.leader_id.0,
            leader_epoch: partition.leader_epoch,
            high_watermark: partition.high_watermark,
            voters: partition.current_voters.into_iter().map(replica).collect(),
            observers: partition.observers.into_iter().map(replica).collect(),
            endpoints: response
                .nodes
                .into_iter()
                .map(|n| {
                    let listeners = n.listeners.iter().map(|l| format!("{}://{}:{}", l.name, l.host, l.port)).collect();
                    (n.node_id.0, listeners)
                })
                .collect(),
        })
    }

    /// Runs leader elections (ElectLeaders) on `partitions`, or on every partition with
    /// `None` (then partitions that needed none are not reported). Fails only if the
    /// request as a whole fails; each partition's outcome is in its result.
    pub async fn elect_leaders(
        &mut self,
        election: ElectionType,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<ElectionResult>, Error> {
        let topic_partitions = partitions.map(|partitions| {
            crate::reassign::by_topic(partitions.iter().cloned())
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicPartitions::default().with_topic(TopicName(text(&topic))).with_partitions(partitions)
                })
                .collect()
        });
        let election_type = match election {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        };
        let request = ElectLeadersRequest::default()
            .with_election_type(election_type)
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(self.timeout_ms());
        let connection = self.any_connection().await?;
        let version = connection.version_for::<ElectLeadersRequest>()?;
        if version == 0 && election == ElectionType::Unclean {
            return Err(Error::Protocol("the broker supports only preferred elections (ElectLeaders v0)".into()));
        }
        let response = connection.send(&request, version).await?;
        Error::check(response.error_code, || "cannot elect leaders".to_owned())?;
        let mut results: Vec<ElectionResult> = response
            .replica_election_results
            .into_iter()
            .flat_map(|topic| {
                let name = topic.topic.0.to_string();
                topic.partition_result.into_iter().map(move |p| ElectionResult {
                    topic: name.clone(),
                    partition: p.partition_id,
                    error_code: p.error_code,
                    message: p.error_message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
                })
            })
            .collect();
        results.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_ids_print_as_kafka_does() {
        assert_eq!(directory_id(&uuid::Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
        let id = uuid::Uuid::from_bytes([0xff; 16]);
        assert_eq!(directory_id(&id), "_____________________w");
    }
}
