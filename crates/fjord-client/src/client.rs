//! The cluster as a whole: bootstrap, metadata, routing to leaders and coordinators.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, FindCoordinatorRequest, ListOffsetsRequest, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::{Connection, Error};

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id, or -1.
    pub leader: i32,
    /// The replicas' node ids.
    pub replicas: Vec<i32>,
    /// The in-sync replicas' node ids.
    pub isr: Vec<i32>,
    /// The replicas on brokers that are down (Metadata v5+).
    pub offline_replicas: Vec<i32>,
    /// Kafka's error code for this partition (0 when fine).
    pub error_code: i16,
}

/// The [`PartitionInfo`] of a partition in a Metadata or a DescribeTopicPartitions response,
/// whose partition structs are distinct types with the same fields.
macro_rules! partition_info {
    ($partition:expr) => {{
        let p = $partition;
        let ids = |ids: &[BrokerId]| ids.iter().map(|b| b.0).collect();
        PartitionInfo {
            partition: p.partition_index,
            leader: p.leader_id.0,
            replicas: ids(&p.replica_nodes),
            isr: ids(&p.isr_nodes),
            offline_replicas: ids(&p.offline_replicas),
            error_code: p.error_code,
        }
    }};
}

/// How many partitions [`Client::describe_topics`] asks for in one response: Kafka's
/// default, as kafka-topics.sh's `--partition-size-limit-per-response` has it.
const PARTITIONS_PER_RESPONSE: i32 = 2000;

/// One topic as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Its name.
    pub name: String,
    /// Its topic id (all zeros from a broker older than Metadata v10).
    pub topic_id: String,
    /// Whether it is one of Kafka's internal topics.
    pub internal: bool,
    /// Its partitions, by index.
    pub partitions: Vec<PartitionInfo>,
    /// Kafka's error code for the topic (0 when fine; [`Client::topics`] fails instead).
    pub error_code: i16,
}

/// A client for one cluster.
#[derive(Debug)]
pub struct Client {
    bootstrap: Vec<String>,
    client_id: String,
    timeout: Duration,
    /// node id -> `host:port`, from the last Metadata.
    brokers: HashMap<i32, String>,
    connections: HashMap<i32, Connection>,
    bootstrap_connection: Option<Connection>,
}

impl Client {
    /// Connects to the first reachable of the comma-separated `bootstrap` addresses.
    pub async fn connect(bootstrap: &str) -> Result<Client, Error> {
        Client::with_options(bootstrap, "fjord-client", Duration::from_secs(30)).await
    }

    /// As [`Client::connect`], with a client id and a per-request timeout.
    pub async fn with_options(bootstrap: &str, client_id: &str, timeout: Duration) -> Result<Client, Error> {
        let bootstrap: Vec<String> =
            bootstrap.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let mut last = Error::Protocol("no bootstrap servers given".into());
        for address in &bootstrap {
            match Connection::connect(address, client_id, timeout).await {
                Ok(connection) => {
                    let mut client = Client {
                        bootstrap: bootstrap.clone(),
                        client_id: client_id.to_owned(),
                        timeout,
                        brokers: HashMap::new(),
                        connections: HashMap::new(),
                        bootstrap_connection: Some(connection),
                    };
                    client.metadata(Some(&[])).await?;
                    return Ok(client);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The brokers from the last Metadata: node id to `host:port`.
    pub fn known_brokers(&self) -> &HashMap<i32, String> {
        &self.brokers
    }

    /// The bootstrap addresses.
    pub fn bootstrap(&self) -> &[String] {
        &self.bootstrap
    }

    /// A connection to any broker (the bootstrap one while it lasts).
    pub async fn any_connection(&mut self) -> Result<&mut Connection, Error> {
        if self.bootstrap_connection.is_none() {
            let mut last = Error::Protocol("no brokers known".into());
            let mut addresses: Vec<String> = self.brokers.values().cloned().collect();
            addresses.extend(self.bootstrap.iter().cloned());
            for address in addresses {
                match Connection::connect(&address, &self.client_id, self.timeout).await {
                    Ok(connection) => {
                        self.bootstrap_connection = Some(connection);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            if self.bootstrap_connection.is_none() {
                return Err(last);
            }
        }
        Ok(self.bootstrap_connection.as_mut().expect("connected above"))
    }

    /// A connection to broker `node`.
    pub async fn connection(&mut self, node: i32) -> Result<&mut Connection, Error> {
        if !self.connections.contains_key(&node) {
            if !self.brokers.contains_key(&node) {
                self.metadata(Some(&[])).await?;
            }
            let address =
                self.brokers.get(&node).cloned().ok_or_else(|| Error::Protocol(format!("unknown broker {node}")))?;
            let connection = Connection::connect(&address, &self.client_id, self.timeout).await?;
            self.connections.insert(node, connection);
        }
        Ok(self.connections.get_mut(&node).expect("inserted above"))
    }

    /// Drops the connection to `node` (after a timeout left it out of step).
    pub fn forget_connection(&mut self, node: i32) {
        self.connections.remove(&node);
    }

    /// A new connection to broker `node`, not shared with other calls (for pipelining).
    pub(crate) async fn new_connection(&mut self, node: i32) -> Result<Connection, Error> {
        if !self.brokers.contains_key(&node) {
            self.metadata(Some(&[])).await?;
        }
        let address =
            self.brokers.get(&node).cloned().ok_or_else(|| Error::Protocol(format!("unknown broker {node}")))?;
        Connection::connect(&address, &self.client_id, self.timeout).await
    }

    /// Metadata for `topics` (`None`: every topic; `Some(&[])`: brokers only). Refreshes the
    /// broker addresses.
    pub async fn metadata(&mut self, topics: Option<&[&str]>) -> Result<MetadataResponse, Error> {
        self.metadata_with(topics, false).await
    }

    /// As [`Client::metadata`], asking the broker to create missing topics if it
    /// auto-creates them (as producers do).
    pub async fn metadata_with(
        &mut self,
        topics: Option<&[&str]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse, Error> {
        let request = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string((*t).to_owned()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_topic_creation);
        let (response, _) = self.any_connection().await?.call(&request).await?;
        self.brokers = response.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port))).collect();
        Ok(response)
    }

    /// The topics (`None`: all), sorted by name. A named topic that does not exist is an
    /// error (UNKNOWN_TOPIC_OR_PARTITION).
    pub async fn topics(&mut self, names: Option<&[&str]>) -> Result<Vec<TopicInfo>, Error> {
        let topics = self.topic_infos(names, false).await?;
        for topic in &topics {
            Error::check(topic.error_code, || format!("topic {}", topic.name))?;
        }
        Ok(topics)
    }

    /// The named topics as Metadata describes them, errors included (a topic the broker
    /// does not know has UNKNOWN_TOPIC_OR_PARTITION, one being created LEADER_NOT_AVAILABLE).
    pub async fn metadata_topics(&mut self, names: &[&str], auto_create: bool) -> Result<Vec<TopicInfo>, Error> {
        self.topic_infos(Some(names), auto_create).await
    }

    async fn topic_infos(&mut self, names: Option<&[&str]>, auto_create: bool) -> Result<Vec<TopicInfo>, Error> {
        let response = self.metadata_with(names, auto_create).await?;
        let mut topics = Vec::new();
        for topic in response.topics {
            let name = topic.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let mut partitions: Vec<PartitionInfo> = topic.partitions.iter().map(|p| partition_info!(p)).collect();
            partitions.sort_by_key(|p| p.partition);
            let topic_id = topic.topic_id.to_string();
            topics.push(TopicInfo {
                name,
                topic_id,
                internal: topic.is_internal,
                partitions,
                error_code: topic.error_code,
            });
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// The topics (`None`: all), sorted by name, as [`Client::topics`] has them, described
    /// through DescribeTopicPartitions (KIP-966) in bounded responses when the broker offers
    /// it, else through Metadata: what kafka-topics.sh does since Kafka 3.8.
    pub async fn describe_topics(&mut self, names: Option<&[&str]>) -> Result<Vec<TopicInfo>, Error> {
        self.describe_topics_in_pages(names, PARTITIONS_PER_RESPONSE).await
    }

    /// As [`Client::describe_topics`], asking for at most `partitions_per_response`
    /// partitions in each DescribeTopicPartitions response and following the broker's cursor
    /// until it is done.
    pub async fn describe_topics_in_pages(
        &mut self,
        names: Option<&[&str]>,
        partitions_per_response: i32,
    ) -> Result<Vec<TopicInfo>, Error> {
        if self.any_connection().await?.version_for::<DescribeTopicPartitionsRequest>().is_err() {
            return self.topics(names).await;
        }
        // An empty list asks DescribeTopicPartitions for every topic, Metadata for none.
        if names.is_some_and(|n| n.is_empty()) {
            return Ok(Vec::new());
        }
        let requested: Vec<TopicRequest> = names
            .unwrap_or_default()
            .iter()
            .map(|t| TopicRequest::default().with_name(TopicName(StrBytes::from_string((*t).to_owned()))))
            .collect();
        let mut topics: Vec<TopicInfo> = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let request = DescribeTopicPartitionsRequest::default()
                .with_topics(requested.clone())
                .with_response_partition_limit(partitions_per_response)
                .with_cursor(cursor.clone());
            let (response, _) = self.any_connection().await?.call(&request).await?;
            for topic in response.topics {
                let name = topic.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                Error::check(topic.error_code, || format!("topic {name}"))?;
                let partitions = topic.partitions.iter().map(|p| partition_info!(p));
                match topics.last_mut() {
                    // A topic cut short by the last response goes on where it stopped.
                    Some(last) if last.name == name => last.partitions.extend(partitions),
                    _ => topics.push(TopicInfo {
                        name,
                        topic_id: topic.topic_id.to_string(),
                        internal: topic.is_internal,
                        partitions: partitions.collect(),
                        error_code: topic.error_code,
                    }),
                }
            }
            let Some(next) = response.next_cursor else { break };
            let next = Cursor::default().with_topic_name(next.topic_name).with_partition_index(next.partition_index);
            if cursor.as_ref() == Some(&next) {
                return Err(Error::Protocol(format!(
                    "DescribeTopicPartitions answered the cursor {}-{} with itself",
                    next.topic_name.0, next.partition_index
                )));
            }
            cursor = Some(next);
        }
        for topic in &mut topics {
            topic.partitions.sort_by_key(|p| p.partition);
        }
        Ok(topics)
    }

    /// The per-request timeout in milliseconds, as admin requests carry it.
    pub(crate) fn timeout_ms(&self) -> i32 {
        i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX)
    }

    /// The node coordinating `group` (FindCoordinator).
    pub async fn group_coordinator(&mut self, group: &str) -> Result<i32, Error> {
        let connection = self.any_connection().await?;
        let version = connection.version_for::<FindCoordinatorRequest>()?;
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![StrBytes::from_string(group.to_owned())])
        } else {
            FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_owned()))
        };
        let response = connection.send(&request, version).await?;
        let (error, node) = match response.coordinators.first() {
            Some(c) if version >= 4 => (c.error_code, c.node_id.0),
            _ => (response.error_code, response.node_id.0),
        };
        Error::check(error, || format!("finding the coordinator of group {group}"))?;
        Ok(node)
    }

    /// Each partition's offset for `timestamp` (ListOffsets: -1 latest, -2 earliest, or a
    /// time in ms), asking each partition's leader.
    pub async fn list_offsets(
        &mut self,
        partitions: &[(String, i32)],
        timestamp: i64,
    ) -> Result<BTreeMap<(String, i32), i64>, Error> {
        let names: Vec<&str> = {
            let mut names: Vec<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            names
        };
        let topics = self.topics(Some(&names)).await?;
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for (topic, partition) in partitions {
            let leader = topics
                .iter()
                .find(|t| t.name == *topic)
                .and_then(|t| t.partitions.iter().find(|p| p.partition == *partition))
                .map(|p| p.leader)
                .ok_or_else(|| Error::kafka(3, format!("partition {topic}-{partition}")))?;
            by_leader.entry(leader).or_default().entry(topic.clone()).or_default().push(*partition);
        }
        let mut out = BTreeMap::new();
        for (leader, topics) in by_leader {
            let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.clone())))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(*p)
                                            .with_timestamp(timestamp)
                                            .with_current_leader_epoch(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
            let (response, _) = self.connection(leader).await?.call(&request).await?;
            for topic in response.topics {
                for p in topic.partitions {
                    Error::check(p.error_code, || format!("offsets of {}-{}", topic.name.0, p.partition_index))?;
                    out.insert((topic.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
        Ok(out)
    }
}
