//! What the coordinator persists in `__consumer_offsets` (Kafka's `OffsetCommitKey/Value` and
//! `GroupMetadataKey/Value`), as records with a key (so the topic can be compacted) and a value
//! (absent for a tombstone), in a compact encoding of our own.

use fjord_types::{LeaderEpoch, Offset, Timestamp};

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to consume.
    pub offset: Offset,
    /// The leader epoch of the last consumed record, if the client sent it.
    pub leader_epoch: LeaderEpoch,
    /// The client's metadata string.
    pub metadata: String,
    /// When it was committed.
    pub commit_timestamp: Timestamp,
}

/// One record of a group's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoordinatorRecord {
    /// An offset commit (`offset: None` deletes it).
    Offset {
        /// The group.
        group_id: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The commit, or `None` for a tombstone.
        offset: Option<CommittedOffset>,
    },
    /// A group's membership after a completed rebalance (`None` deletes the group).
    Group {
        /// The group.
        group_id: String,
        /// The generation, protocol and members; `None` for a tombstone.
        metadata: Option<GroupMetadata>,
    },
}

/// A group as of its last completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    /// `consumer`, `connect`, ...
    pub protocol_type: String,
    /// The generation.
    pub generation: i32,
    /// The chosen protocol (assignor).
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// Static members' instance ids and their member ids.
    pub static_members: Vec<(String, String)>,
}

const OFFSET: u8 = 1;
const GROUP: u8 = 2;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8).map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")))
    }
    fn str(&mut self) -> Option<String> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.str().map(Some),
            _ => None,
        }
    }
}

impl CoordinatorRecord {
    /// The group this record belongs to.
    pub fn group_id(&self) -> &str {
        match self {
            CoordinatorRecord::Offset { group_id, .. } | CoordinatorRecord::Group { group_id, .. } => group_id,
        }
    }

    /// The record key: what compaction keeps the latest value of.
    pub fn key(&self) -> Vec<u8> {
        let mut key = Vec::new();
        match self {
            CoordinatorRecord::Offset { group_id, topic, partition, .. } => {
                key.push(OFFSET);
                put_str(&mut key, group_id);
                put_str(&mut key, topic);
                key.extend_from_slice(&partition.to_be_bytes());
            }
            CoordinatorRecord::Group { group_id, .. } => {
                key.push(GROUP);
                put_str(&mut key, group_id);
            }
        }
        key
    }

    /// The record value, or `None` for a tombstone.
    pub fn value(&self) -> Option<Vec<u8>> {
        let mut value = Vec::new();
        match self {
            CoordinatorRecord::Offset { offset, .. } => {
                let offset = offset.as_ref()?;
                value.extend_from_slice(&offset.offset.0.to_be_bytes());
                value.extend_from_slice(&offset.leader_epoch.0.to_be_bytes());
                put_str(&mut value, &offset.metadata);
                value.extend_from_slice(&offset.commit_timestamp.0.to_be_bytes());
            }
            CoordinatorRecord::Group { metadata, .. } => {
                let metadata = metadata.as_ref()?;
                put_str(&mut value, &metadata.protocol_type);
                value.extend_from_slice(&metadata.generation.to_be_bytes());
                put_opt(&mut value, metadata.protocol.as_deref());
                put_opt(&mut value, metadata.leader.as_deref());
                value.extend_from_slice(&(metadata.static_members.len() as u32).to_be_bytes());
                for (instance, member) in &metadata.static_members {
                    put_str(&mut value, instance);
                    put_str(&mut value, member);
                }
            }
        }
        Some(value)
    }

    /// Decodes a record from its key and value; `None` if the bytes are not one.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<CoordinatorRecord> {
        let mut k = Reader(key);
        let record = match k.u8()? {
            OFFSET => {
                let (group_id, topic, partition) = (k.str()?, k.str()?, k.i32()?);
                let offset = match value {
                    None => None,
                    Some(value) => {
                        let mut v = Reader(value);
                        let offset = CommittedOffset {
                            offset: Offset(v.i64()?),
                            leader_epoch: LeaderEpoch(v.i32()?),
                            metadata: v.str()?,
                            commit_timestamp: Timestamp(v.i64()?),
                        };
                        v.0.is_empty().then_some(())?;
                        Some(offset)
                    }
                };
                CoordinatorRecord::Offset { group_id, topic, partition, offset }
            }
            GROUP => {
                let group_id = k.str()?;
                let metadata = match value {
                    None => None,
                    Some(value) => {
                        let mut v = Reader(value);
                        let protocol_type = v.str()?;
                        let generation = v.i32()?;
                        let protocol = v.opt()?;
                        let leader = v.opt()?;
                        let count = u32::from_be_bytes(v.take(4)?.try_into().ok()?) as usize;
                        if count > v.0.len() / 8 {
                            return None;
                        }
                        let static_members =
                            (0..count).map(|_| Some((v.str()?, v.str()?))).collect::<Option<Vec<_>>>()?;
                        v.0.is_empty().then_some(())?;
                        Some(GroupMetadata { protocol_type, generation, protocol, leader, static_members })
                    }
                };
                CoordinatorRecord::Group { group_id, metadata }
            }
            _ => return None,
        };
        k.0.is_empty().then_some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_round_trip(group in ".*", topic in ".*", partition: i32, offset: i64, epoch: i32, metadata in ".*", ts: i64, tombstone: bool) {
            let record = CoordinatorRecord::Offset {
                group_id: group.clone(),
                topic,
                partition,
                offset: (!tombstone).then_some(CommittedOffset { offset: Offset(offset), leader_epoch: LeaderEpoch(epoch), metadata, commit_timestamp: Timestamp(ts) }),
            };
            prop_assert_eq!(CoordinatorRecord::decode(&record.key(), record.value().as_deref()), Some(record));
            let group_record = CoordinatorRecord::Group {
                group_id: group,
                metadata: (!tombstone).then(|| GroupMetadata {
                    protocol_type: "consumer".into(),
                    generation: partition,
                    protocol: Some("range".into()),
                    leader: None,
                    static_members: vec![("instance-1".into(), "member-1".into())],
                }),
            };
            prop_assert_eq!(CoordinatorRecord::decode(&group_record.key(), group_record.value().as_deref()), Some(group_record));
        }

        #[test]
        fn garbage_never_panics(key in prop::collection::vec(any::<u8>(), 0..40), value in prop::option::of(prop::collection::vec(any::<u8>(), 0..40))) {
            let _ = CoordinatorRecord::decode(&key, value.as_deref());
        }
    }
}
