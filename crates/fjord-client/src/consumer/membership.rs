//! Group membership for the consumer: JoinGroup/SyncGroup with the range assignor (this
//! member runs it when it leads), heartbeats, auto-commits and rejoining.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{GroupId, HeartbeatRequest, JoinGroupRequest, SyncGroupRequest};
use kafka_protocol::protocol::StrBytes;

use super::{Consumer, OffsetReset, PartitionState, StartOffset};
use crate::Error;
use crate::groups::assigned_partitions;

/// The assignor this consumer offers and runs as group leader.
const RANGE: &str = "range";

/// This consumer's place in its group.
#[derive(Debug)]
pub(super) struct Membership {
    pub(super) group: String,
    pub(super) topics: Vec<String>,
    pub(super) member_id: String,
    pub(super) generation: i32,
    pub(super) coordinator: i32,
    pub(super) next_heartbeat: Instant,
    pub(super) next_commit: Instant,
    pub(super) rejoin: bool,
}

impl Consumer {
    /// Heartbeats, auto-commits and rejoins as due.
    pub(super) async fn maintain_group(&mut self) -> Result<(), Error> {
        let Some(membership) = &mut self.membership else { return Ok(()) };
        let now = Instant::now();
        if self.config.enable_auto_commit && !membership.rejoin && now >= membership.next_commit {
            membership.next_commit = now + self.config.auto_commit_interval;
            match self.commit().await {
                Ok(()) => {}
                Err(e) if matches!(e.code(), Some(22 | 25 | 27)) => self.rejoin_needed(),
                Err(e) => return Err(e),
            }
        }
        let Some(membership) = &mut self.membership else { return Ok(()) };
        if !membership.rejoin && now >= membership.next_heartbeat {
            membership.next_heartbeat = now + self.config.heartbeat_interval;
            let request = HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(membership.group.clone())))
                .with_generation_id(membership.generation)
                .with_member_id(StrBytes::from_string(membership.member_id.clone()));
            let coordinator = membership.coordinator;
            let response = match self.client.connection(coordinator).await {
                Ok(connection) => connection.call(&request).await.map(|(r, _)| r.error_code),
                Err(e) => Err(e),
            };
            match response {
                Ok(0) => {}
                // REBALANCE_IN_PROGRESS: commit what was consumed, then rejoin.
                Ok(27) => {
                    if self.config.enable_auto_commit {
                        let _ = self.commit().await;
                    }
                    self.rejoin_needed();
                }
                // ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID: rejoin afresh.
                Ok(22 | 25) => {
                    self.rejoin_needed();
                    if let Some(m) = &mut self.membership {
                        m.member_id.clear();
                    }
                }
                Ok(code) if Error::kafka(code, "").is_retriable() => self.coordinator_lost(),
                Ok(code) => return Err(Error::kafka(code, "heartbeat")),
                Err(e) if e.is_retriable() => self.coordinator_lost(),
                Err(e) => return Err(e),
            }
        }
        if self.membership.as_ref().is_some_and(|m| m.rejoin) {
            self.join().await?;
        }
        Ok(())
    }

    pub(super) fn rejoin_needed(&mut self) {
        if let Some(m) = &mut self.membership {
            m.rejoin = true;
        }
    }

    fn coordinator_lost(&mut self) {
        if let Some(m) = &mut self.membership {
            m.coordinator = -1;
            m.rejoin = true;
        }
    }

    /// JoinGroup and SyncGroup until this member has an assignment.
    pub(super) async fn join(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + self.config.rebalance_timeout + self.config.session_timeout;
        loop {
            match self.join_once().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    if let Some(m) = &mut self.membership {
                        self.client.forget_connection(m.coordinator);
                        m.coordinator = -1;
                    }
                    tokio::time::sleep(self.config.retry_backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One JoinGroup/SyncGroup round; false if it must be tried again.
    async fn join_once(&mut self) -> Result<bool, Error> {
        let membership = self.membership.as_mut().expect("joining needs a membership");
        if membership.coordinator < 0 {
            membership.coordinator = self.client.group_coordinator(&membership.group).await?;
        }
        let group_id = GroupId(StrBytes::from_string(membership.group.clone()));
        let join = JoinGroupRequest::default()
            .with_group_id(group_id.clone())
            .with_session_timeout_ms(millis(self.config.session_timeout))
            .with_rebalance_timeout_ms(millis(self.config.rebalance_timeout))
            .with_member_id(StrBytes::from_string(membership.member_id.clone()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(RANGE))
                    .with_metadata(encode_subscription(&membership.topics)),
            ]);
        let wait = self.config.rebalance_timeout + self.config.request_timeout;
        let coordinator = membership.coordinator;
        let connection = self.client.connection(coordinator).await?;
        let version = connection.version_for::<JoinGroupRequest>()?;
        let joined = connection.send_within(&join, version, wait).await?;
        let membership = self.membership.as_mut().expect("checked above");
        match joined.error_code {
            0 => {}
            // MEMBER_ID_REQUIRED (KIP-394): join again with the id the coordinator gave.
            79 => {
                membership.member_id = joined.member_id.to_string();
                return Ok(false);
            }
            25 => {
                membership.member_id.clear();
                return Ok(false);
            }
            27 => return Ok(false),
            code => return Err(Error::kafka(code, format!("joining group {}", membership.group))),
        }
        membership.member_id = joined.member_id.to_string();
        membership.generation = joined.generation_id;
        let assignments = if joined.leader == joined.member_id {
            let members: Vec<(String, Vec<String>)> =
                joined.members.iter().map(|m| (m.member_id.to_string(), subscribed_topics(&m.metadata))).collect();
            let mut topics: Vec<&str> = members.iter().flat_map(|(_, ts)| ts.iter().map(String::as_str)).collect();
            topics.sort_unstable();
            topics.dedup();
            let topics: Vec<String> = topics.into_iter().map(str::to_owned).collect();
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            let counts: BTreeMap<String, i32> = self
                .client
                .metadata_topics(&refs, false)
                .await?
                .into_iter()
                .filter(|t| t.error_code == 0)
                .map(|t| (t.name, t.partitions.len() as i32))
                .collect();
            range_assign(&members, &counts)
                .into_iter()
                .map(|(member, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(member))
                        .with_assignment(encode_assignment(&assignment))
                })
                .collect()
        } else {
            Vec::new()
        };
        let membership = self.membership.as_mut().expect("checked above");
        let sync = SyncGroupRequest::default()
            .with_group_id(group_id)
            .with_generation_id(membership.generation)
            .with_member_id(StrBytes::from_string(membership.member_id.clone()))
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str(RANGE)))
            .with_assignments(assignments);
        let connection = self.client.connection(coordinator).await?;
        let version = connection.version_for::<SyncGroupRequest>()?;
        let synced = connection.send_within(&sync, version, wait).await?;
        let membership = self.membership.as_mut().expect("checked above");
        match synced.error_code {
            0 => {}
            27 => return Ok(false),
            22 | 25 => {
                membership.member_id.clear();
                return Ok(false);
            }
            code => return Err(Error::kafka(code, format!("syncing group {}", membership.group))),
        }
        let now = Instant::now();
        membership.rejoin = false;
        membership.next_heartbeat = now + self.config.heartbeat_interval;
        let start = match self.config.auto_offset_reset {
            OffsetReset::Earliest => StartOffset::Earliest,
            OffsetReset::Latest => StartOffset::Latest,
        };
        let assigned: Vec<(String, i32)> = assigned_partitions(&synced.assignment)
            .into_iter()
            .flat_map(|(topic, partitions)| partitions.into_iter().map(move |p| (topic.clone(), p)))
            .collect();
        // Keep positions of partitions this member still owns; the rest come from commits.
        let mut previous = std::mem::take(&mut self.partitions);
        for tp in &assigned {
            let state = previous.remove(tp).unwrap_or(PartitionState {
                position: None,
                start,
                committed: None,
                high_watermark: -1,
            });
            self.partitions.insert(tp.clone(), state);
        }
        if !assigned.is_empty() {
            self.refresh_leaders(&assigned).await?;
        }
        Ok(true)
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// `ConsumerProtocolSubscription` v0: the topics, no user data.
fn encode_subscription(topics: &[String]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i32(topics.len() as i32);
    for topic in topics {
        out.put_i16(topic.len() as i16);
        out.put_slice(topic.as_bytes());
    }
    out.put_i32(-1);
    out.freeze()
}

/// The topics of a `ConsumerProtocolSubscription` (any version: later ones only append), with
/// every length checked against the bytes left. Empty for bytes that are not one.
fn subscribed_topics(bytes: &[u8]) -> Vec<String> {
    fn parse(mut buf: &[u8]) -> Option<Vec<String>> {
        if buf.remaining() < 6 {
            return None;
        }
        buf.get_i16();
        let count = usize::try_from(buf.get_i32()).ok()?;
        if count.checked_mul(2)? > buf.remaining() {
            return None;
        }
        let mut topics = Vec::with_capacity(count);
        for _ in 0..count {
            if buf.remaining() < 2 {
                return None;
            }
            let len = usize::try_from(buf.get_i16()).ok()?;
            if buf.remaining() < len {
                return None;
            }
            topics.push(String::from_utf8_lossy(&buf[..len]).into_owned());
            buf.advance(len);
        }
        Some(topics)
    }
    parse(bytes).unwrap_or_default()
}

/// `ConsumerProtocolAssignment` v0: the partitions by topic, no user data.
fn encode_assignment(assignment: &[(String, Vec<i32>)]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    out.put_i32(assignment.len() as i32);
    for (topic, partitions) in assignment {
        out.put_i16(topic.len() as i16);
        out.put_slice(topic.as_bytes());
        out.put_i32(partitions.len() as i32);
        for p in partitions {
            out.put_i32(*p);
        }
    }
    out.put_i32(-1);
    out.freeze()
}

/// Kafka's range assignor: per topic, its subscribers in member-id order each take a
/// contiguous range, the first `partitions % members` one extra. Every member gets an entry.
fn range_assign(
    members: &[(String, Vec<String>)],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<(String, Vec<i32>)>> {
    let mut out: BTreeMap<String, Vec<(String, Vec<i32>)>> =
        members.iter().map(|(m, _)| (m.clone(), Vec::new())).collect();
    for (topic, &count) in partitions {
        let mut subscribers: Vec<&str> =
            members.iter().filter(|(_, ts)| ts.contains(topic)).map(|(m, _)| m.as_str()).collect();
        subscribers.sort_unstable();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len() as i32;
        let (each, extra) = (count / n, count % n);
        for (i, member) in subscribers.into_iter().enumerate() {
            let i = i as i32;
            let start = i * each + i.min(extra);
            let len = each + i32::from(i < extra);
            if len > 0 {
                out.get_mut(member)
                    .expect("every member has an entry")
                    .push((topic.clone(), (start..start + len).collect()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignor_splits_like_kafka() {
        let members =
            vec![("b".to_owned(), vec!["t".to_owned(), "u".to_owned()]), ("a".to_owned(), vec!["t".to_owned()])];
        let counts = BTreeMap::from([("t".to_owned(), 5), ("u".to_owned(), 1)]);
        let out = range_assign(&members, &counts);
        assert_eq!(out["a"], vec![("t".to_owned(), vec![0, 1, 2])]);
        assert_eq!(out["b"], vec![("t".to_owned(), vec![3, 4]), ("u".to_owned(), vec![0])]);
    }

    #[test]
    fn subscriptions_and_assignments_round_trip() {
        let topics = vec!["orders".to_owned(), "users".to_owned()];
        assert_eq!(subscribed_topics(&encode_subscription(&topics)), topics);
        let assignment = vec![("orders".to_owned(), vec![0, 2])];
        assert_eq!(assigned_partitions(&encode_assignment(&assignment)), assignment);
        assert!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_empty(), "a huge count allocates nothing");
    }
}
