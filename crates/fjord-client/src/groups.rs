//! Consumer groups from the outside: listing, describing, committed offsets and lag (what
//! `kafka-consumer-groups.sh --list/--describe` shows).

use std::collections::BTreeMap;

use bytes::Buf;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::{Client, Error};

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// `consumer` for consumer groups.
    pub protocol_type: String,
    /// Its state (brokers answering ListGroups v4+), else empty.
    pub state: String,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// Its client id.
    pub client_id: String,
    /// Its host, as the coordinator saw it.
    pub client_host: String,
    /// The partitions assigned to it (consumer groups), by topic.
    pub assignment: Vec<(String, Vec<i32>)>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// Its state: Empty, PreparingRebalance, CompletingRebalance, Stable, or Dead.
    pub state: String,
    /// Its protocol type.
    pub protocol_type: String,
    /// The chosen protocol (assignor).
    pub protocol: String,
    /// Its members.
    pub members: Vec<GroupMember>,
}

/// One partition's position for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The committed offset, if any.
    pub committed: Option<i64>,
    /// The partition's log end offset (high watermark).
    pub log_end: i64,
    /// `log_end - committed`, when something is committed.
    pub lag: Option<i64>,
    /// The member the partition is assigned to, if any.
    pub member: Option<GroupMember>,
}

/// The partitions in a consumer-protocol assignment (`ConsumerProtocolAssignment`: int16
/// version, then topics, each a string and an array of int32 partitions; later versions only
/// append fields). Read by hand with every count checked against the bytes left, because the
/// bytes come from other clients through the broker. Empty for bytes that are not one.
pub(crate) fn assigned_partitions(bytes: &[u8]) -> Vec<(String, Vec<i32>)> {
    fn parse(mut buf: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
        let count = |buf: &mut &[u8], width: usize| -> Option<usize> {
            if buf.remaining() < 4 {
                return None;
            }
            let n = usize::try_from(buf.get_i32()).ok()?;
            (n.checked_mul(width)? <= buf.remaining()).then_some(n)
        };
        if buf.remaining() < 2 {
            return None;
        }
        buf.get_i16();
        let topics = count(&mut buf, 6)?;
        let mut out = Vec::with_capacity(topics);
        for _ in 0..topics {
            if buf.remaining() < 2 {
                return None;
            }
            let len = usize::try_from(buf.get_i16()).ok()?;
            if buf.remaining() < len {
                return None;
            }
            let topic = String::from_utf8_lossy(&buf[..len]).into_owned();
            buf.advance(len);
            let partitions = count(&mut buf, 4)?;
            out.push((topic, (0..partitions).map(|_| buf.get_i32()).collect()));
        }
        Some(out)
    }
    parse(bytes).unwrap_or_default()
}

impl Client {
    /// Every group on every broker (ListGroups), sorted by id.
    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>, Error> {
        self.metadata(Some(&[])).await?;
        let mut nodes: Vec<i32> = self.known_brokers().keys().copied().collect();
        nodes.sort_unstable();
        let mut groups = Vec::new();
        for node in nodes {
            let (response, _) = self.connection(node).await?.call(&ListGroupsRequest::default()).await?;
            Error::check(response.error_code, || format!("listing groups on broker {node}"))?;
            groups.extend(response.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    /// Describes `group` (DescribeGroups at its coordinator). An unknown group is Dead.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupDescription, Error> {
        let node = self.group_coordinator(group).await?;
        let request =
            DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let (response, _) = self.connection(node).await?.call(&request).await?;
        let described = response
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("DescribeGroups answered no group".into()))?;
        Error::check(described.error_code, || format!("describing group {group}"))?;
        let consumer = described.protocol_type.as_str() == "consumer";
        Ok(GroupDescription {
            group_id: described.group_id.0.to_string(),
            state: described.group_state.to_string(),
            protocol_type: described.protocol_type.to_string(),
            protocol: described.protocol_data.to_string(),
            members: described
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment: if consumer { assigned_partitions(&m.member_assignment) } else { Vec::new() },
                })
                .collect(),
        })
    }

    /// The offsets `group` has committed, by partition (OffsetFetch for all its partitions).
    pub async fn committed_offsets(&mut self, group: &str) -> Result<BTreeMap<(String, i32), i64>, Error> {
        let node = self.group_coordinator(group).await?;
        let connection = self.connection(node).await?;
        let version = connection.version_for::<OffsetFetchRequest>()?;
        let group_id = GroupId(StrBytes::from_string(group.to_owned()));
        let request = if version >= 8 {
            OffsetFetchRequest::default()
                .with_groups(vec![OffsetFetchRequestGroup::default().with_group_id(group_id).with_topics(None)])
        } else {
            OffsetFetchRequest::default().with_group_id(group_id).with_topics(None)
        };
        let response = connection.send(&request, version).await?;
        let mut out = BTreeMap::new();
        if version >= 8 {
            for g in response.groups {
                Error::check(g.error_code, || format!("committed offsets of group {group}"))?;
                for t in g.topics {
                    for p in t.partitions.into_iter().filter(|p| p.committed_offset >= 0) {
                        Error::check(p.error_code, || {
                            format!("committed offset of {}-{}", t.name.0, p.partition_index)
                        })?;
                        out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
                    }
                }
            }
        } else {
            Error::check(response.error_code, || format!("committed offsets of group {group}"))?;
            for t in response.topics {
                for p in t.partitions.into_iter().filter(|p| p.committed_offset >= 0) {
                    Error::check(p.error_code, || format!("committed offset of {}-{}", t.name.0, p.partition_index))?;
                    out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
        Ok(out)
    }

    /// Commits `offsets` for `group` from outside it (generation -1, no member id), as
    /// `kafka-consumer-groups --reset-offsets --execute` does. The coordinator accepts this
    /// only while the group has no members (else UNKNOWN_MEMBER_ID or REBALANCE_IN_PROGRESS).
    pub async fn commit_offsets(&mut self, group: &str, offsets: &BTreeMap<(String, i32), i64>) -> Result<(), Error> {
        let node = self.group_coordinator(group).await?;
        self.commit_as(node, group, -1, "", offsets).await
    }

    /// OffsetCommit of `offsets` to coordinator `node`, as member `member_id` of generation
    /// `generation` (-1 and "" from outside the group). Fails on the first partition error.
    pub(crate) async fn commit_as(
        &mut self,
        node: i32,
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), Error> {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), offset) in offsets {
            topics.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str(""))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member_id.to_owned()))
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let (response, _) = self.connection(node).await?.call(&request).await?;
        for topic in response.topics {
            for p in topic.partitions {
                Error::check(p.error_code, || {
                    format!("committing {}-{} for group {group}", topic.name.0, p.partition_index)
                })?;
            }
        }
        Ok(())
    }

    /// Deletes groups with no members, and their committed offsets (DeleteGroups at each
    /// group's coordinator). Returns each group's outcome.
    pub async fn delete_groups(&mut self, groups: &[&str]) -> Result<Vec<(String, Result<(), Error>)>, Error> {
        let mut out = Vec::new();
        for group in groups {
            let node = self.group_coordinator(group).await?;
            let request = DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(StrBytes::from_string((*group).to_owned()))]);
            let (response, _) = self.connection(node).await?.call(&request).await?;
            for result in response.results {
                let id = result.group_id.0.to_string();
                let outcome = Error::check(result.error_code, || format!("deleting group {id}"));
                out.push((id, outcome));
            }
        }
        Ok(out)
    }

    /// Per partition the group has committed to or is assigned: the committed offset, the log
    /// end offset and the lag, with the member that owns the partition. Sorted by topic and
    /// partition.
    pub async fn group_lag(&mut self, group: &str) -> Result<Vec<PartitionLag>, Error> {
        let description = self.describe_group(group).await?;
        let committed = self.committed_offsets(group).await?;
        let mut owners: BTreeMap<(String, i32), GroupMember> = BTreeMap::new();
        for member in &description.members {
            for (topic, partitions) in &member.assignment {
                for p in partitions {
                    owners.insert((topic.clone(), *p), member.clone());
                }
            }
        }
        let mut partitions: Vec<(String, i32)> = committed.keys().chain(owners.keys()).cloned().collect();
        partitions.sort();
        partitions.dedup();
        let ends = self.list_offsets(&partitions, -1).await?;
        Ok(partitions
            .into_iter()
            .map(|tp| {
                let committed = committed.get(&tp).copied();
                let log_end = ends.get(&tp).copied().unwrap_or(-1);
                PartitionLag {
                    lag: committed.map(|c| (log_end - c).max(0)),
                    committed,
                    log_end,
                    member: owners.get(&tp).cloned(),
                    topic: tp.0,
                    partition: tp.1,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_decode_and_garbage_gives_nothing() {
        // version 0, one topic "t" with partitions 1 and 4, null user data
        let mut bytes = vec![0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4];
        bytes.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(assigned_partitions(&bytes), vec![("t".to_owned(), vec![1, 4])]);
        assert!(assigned_partitions(&[]).is_empty());
        assert!(assigned_partitions(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_empty(), "a huge count allocates nothing");
        assert!(assigned_partitions(&bytes[..12]).is_empty(), "truncated");
    }
}
