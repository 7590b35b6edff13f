//! What the replicated log holds: batches of opaque records, and the control records the quorum
//! writes itself (Kafka's `ControlRecordType.LEADER_CHANGE` with a `LeaderChangeMessage`).

use fjord_types::{LeaderEpoch, Offset, Timestamp};

use crate::ids::NodeId;

/// Whether a batch carries the application's records or the quorum's own control records.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BatchKind {
    /// Records proposed by the application; opaque to the quorum.
    Data,
    /// Control records written by the quorum ([`ControlRecord`]); the control bit of a Kafka
    /// record batch. Applications skip them or decode them with [`ControlRecord::decode`].
    Control,
}

/// A batch of records as the quorum replicates it: one Kafka record batch.
///
/// Record `i` has offset `base_offset + i`. Every record of a batch was appended by the leader of
/// `epoch`; (offset, epoch) names a record uniquely across the cluster.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Batch {
    /// The offset of the first record.
    pub base_offset: Offset,
    /// The epoch of the leader that appended it.
    pub epoch: LeaderEpoch,
    /// When the leader appended it (its `now`).
    pub append_timestamp: Timestamp,
    /// Data or control.
    pub kind: BatchKind,
    /// The records, in offset order; never empty.
    pub records: Vec<Vec<u8>>,
}

/// Bytes a batch counts for beyond its records, for size limits (a v2 batch header).
pub(crate) const BATCH_OVERHEAD_BYTES: usize = 61;
/// Bytes each record counts for beyond its value (a v2 record's framing, roughly).
pub(crate) const RECORD_OVERHEAD_BYTES: usize = 8;

impl Batch {
    /// The offset of the last record.
    pub fn last_offset(&self) -> Offset {
        self.base_offset.plus(self.records.len() as i64 - 1)
    }

    /// The offset just past the batch.
    pub fn next_offset(&self) -> Offset {
        self.base_offset.plus(self.records.len() as i64)
    }

    /// The size the batch counts for against byte limits.
    pub fn size_bytes(&self) -> usize {
        BATCH_OVERHEAD_BYTES + self.records.iter().map(|r| r.len() + RECORD_OVERHEAD_BYTES).sum::<usize>()
    }

    /// Whether this is a control batch.
    pub fn is_control(&self) -> bool {
        self.kind == BatchKind::Control
    }
}

/// Kafka's control record types (`ControlRecordType`).
pub const LEADER_CHANGE_TYPE: i16 = 2;

/// A control record the quorum writes into the log.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ControlRecord {
    /// The first record of every epoch: who leads and who voted for it. The high watermark of an
    /// epoch first moves only once this record is on a majority (KAFKA-12619).
    LeaderChange(LeaderChangeMessage),
}

/// Kafka's `LeaderChangeMessage` (version 0).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LeaderChangeMessage {
    /// The new leader.
    pub leader_id: NodeId,
    /// The voters of the quorum at the time.
    pub voters: Vec<NodeId>,
    /// The voters that granted the leader's election.
    pub granting_voters: Vec<NodeId>,
}

/// A control record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt control record: {0}")]
pub struct ControlRecordError(pub String);

impl ControlRecord {
    /// The record as it is stored: Kafka's 4-byte control key (version 0, type) followed by the
    /// message in Kafka's flexible encoding.
    pub fn encode(&self) -> Vec<u8> {
        let ControlRecord::LeaderChange(message) = self;
        let mut out = Vec::with_capacity(16 + 5 * (message.voters.len() + message.granting_voters.len()));
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&LEADER_CHANGE_TYPE.to_be_bytes());
        // LeaderChangeMessage v0: Version, LeaderId, Voters, GrantingVoters, tagged fields.
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&message.leader_id.0.to_be_bytes());
        for list in [&message.voters, &message.granting_voters] {
            put_uvarint(&mut out, list.len() as u64 + 1);
            for voter in list {
                out.extend_from_slice(&voter.0.to_be_bytes());
                out.push(0); // no tagged fields in Voter
            }
        }
        out.push(0); // no tagged fields
        out
    }

    /// Decodes a stored control record. Never panics on arbitrary bytes.
    pub fn decode(bytes: &[u8]) -> Result<ControlRecord, ControlRecordError> {
        let mut reader = Reader { bytes, at: 0 };
        let key_version = reader.i16()?;
        let kind = reader.i16()?;
        if key_version != 0 {
            return Err(ControlRecordError(format!("control key version {key_version}")));
        }
        if kind != LEADER_CHANGE_TYPE {
            return Err(ControlRecordError(format!("control record type {kind} is not LeaderChange")));
        }
        let version = reader.i16()?;
        if version != 0 {
            return Err(ControlRecordError(format!("LeaderChangeMessage version {version}")));
        }
        let leader_id = NodeId(reader.i32()?);
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let count = reader.uvarint()?;
            if count == 0 {
                return Err(ControlRecordError("null voter array".into()));
            }
            let count = (count - 1) as usize;
            // Each voter takes at least 5 bytes: refuse counts the bytes cannot hold.
            if count > reader.remaining() / 5 {
                return Err(ControlRecordError(format!("{count} voters in {} bytes", reader.remaining())));
            }
            for _ in 0..count {
                list.push(NodeId(reader.i32()?));
                reader.skip_tagged_fields()?;
            }
        }
        reader.skip_tagged_fields()?;
        if reader.remaining() != 0 {
            return Err(ControlRecordError(format!("{} trailing bytes", reader.remaining())));
        }
        let [voters, granting_voters] = lists;
        Ok(ControlRecord::LeaderChange(LeaderChangeMessage { leader_id, voters, granting_voters }))
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], ControlRecordError> {
        let slice = self
            .bytes
            .get(self.at..self.at + N)
            .ok_or_else(|| ControlRecordError(format!("ends at byte {} reading {N} more", self.at)))?;
        self.at += N;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, ControlRecordError> {
        self.take::<2>().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, ControlRecordError> {
        self.take::<4>().map(i32::from_be_bytes)
    }

    fn uvarint(&mut self) -> Result<u64, ControlRecordError> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let [byte] = self.take::<1>()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ControlRecordError("varint longer than 5 bytes".into()))
    }

    fn skip_tagged_fields(&mut self) -> Result<(), ControlRecordError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            if size > self.remaining() {
                return Err(ControlRecordError(format!("tagged field of {size} bytes past the end")));
            }
            self.at += size;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn leader_change(leader: i32, voters: &[i32], granting: &[i32]) -> ControlRecord {
        ControlRecord::LeaderChange(LeaderChangeMessage {
            leader_id: NodeId(leader),
            voters: voters.iter().copied().map(NodeId).collect(),
            granting_voters: granting.iter().copied().map(NodeId).collect(),
        })
    }

    #[test]
    fn leader_change_has_kafkas_layout() {
        let bytes = leader_change(2, &[1, 2], &[2]).encode();
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 2,           // control key: version 0, type LEADER_CHANGE
            0, 0,                 // Version
            0, 0, 0, 2,           // LeaderId
            3, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, // Voters: compact array of 2, no tags each
            2, 0, 0, 0, 2, 0,     // GrantingVoters
            0,                    // no tagged fields
        ];
        assert_eq!(bytes, expected);
        assert_eq!(ControlRecord::decode(&bytes).unwrap(), leader_change(2, &[1, 2], &[2]));
    }

    #[test]
    fn batch_offsets() {
        let batch = Batch {
            base_offset: Offset(10),
            epoch: LeaderEpoch(1),
            append_timestamp: Timestamp(0),
            kind: BatchKind::Data,
            records: vec![b"a".to_vec(), b"b".to_vec()],
        };
        assert_eq!(batch.last_offset(), Offset(11));
        assert_eq!(batch.next_offset(), Offset(12));
        assert!(!batch.is_control());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ControlRecord::decode(&bytes);
        }

        #[test]
        fn round_trips(leader in 0..100i32, voters in proptest::collection::vec(0..1000i32, 0..10)) {
            let record = leader_change(leader, &voters, &voters[..voters.len() / 2]);
            prop_assert_eq!(ControlRecord::decode(&record.encode()).unwrap(), record);
        }
    }
}
