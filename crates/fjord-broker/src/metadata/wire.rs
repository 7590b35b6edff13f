//! The quorum's messages on the wire: `fjord_quorum::Message` to and from the protobuf
//! messages of `fjord_protocol::cluster`. Bytes from the network are checked as they are
//! converted: a message that does not hold together is refused, never guessed at.

use fjord_protocol::cluster as pb;
use fjord_protocol::cluster::raft_message::Body;
use fjord_quorum::{
    Batch, BatchKind, BeginQuorumEpochRequest, DirectoryId, EndQuorumEpochRequest, EpochResponse, FetchRequest,
    FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse, Message, MessageBody, NodeId, OffsetAndEpoch,
    ReplicaKey, VoteRequest, VoteResponse,
};
use fjord_types::{ErrorCode, LeaderEpoch, Offset, Timestamp};

/// A protobuf message that is not a quorum message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed quorum message: {0}")]
pub(crate) struct Malformed(String);

fn key(k: ReplicaKey) -> pb::ReplicaKey {
    pb::ReplicaKey { id: k.id.0, directory_id: k.directory_id.map(|d| d.0.to_vec()) }
}

fn key_from(k: Option<pb::ReplicaKey>, what: &str) -> Result<ReplicaKey, Malformed> {
    let k = k.ok_or_else(|| Malformed(format!("{what} is missing")))?;
    let directory_id = match k.directory_id {
        None => None,
        Some(bytes) => {
            Some(DirectoryId(bytes.try_into().map_err(|_| Malformed(format!("{what}: a directory id is 16 bytes")))?))
        }
    };
    Ok(ReplicaKey { id: NodeId(k.id), directory_id })
}

fn position(p: OffsetAndEpoch) -> pb::OffsetAndEpoch {
    pb::OffsetAndEpoch { offset: p.offset.0, epoch: p.epoch.0 }
}

fn position_from(p: pb::OffsetAndEpoch) -> OffsetAndEpoch {
    OffsetAndEpoch::new(Offset(p.offset), LeaderEpoch(p.epoch))
}

fn error(code: ErrorCode) -> i32 {
    i32::from(code.code())
}

fn error_from(code: i32) -> Result<ErrorCode, Malformed> {
    i16::try_from(code).map(ErrorCode::from_code).map_err(|_| Malformed(format!("error code {code}")))
}

fn leader(id: Option<NodeId>) -> Option<i32> {
    id.map(|n| n.0)
}

fn leader_from(id: Option<i32>) -> Option<NodeId> {
    id.map(NodeId)
}

fn batch(b: Batch) -> pb::RaftBatch {
    pb::RaftBatch {
        base_offset: b.base_offset.0,
        epoch: b.epoch.0,
        append_timestamp: b.append_timestamp.0,
        control: b.kind == BatchKind::Control,
        records: b.records,
    }
}

fn batch_from(b: pb::RaftBatch) -> Result<Batch, Malformed> {
    if b.records.is_empty() {
        return Err(Malformed(format!("an empty batch at offset {}", b.base_offset)));
    }
    Ok(Batch {
        base_offset: Offset(b.base_offset),
        epoch: LeaderEpoch(b.epoch),
        append_timestamp: Timestamp(b.append_timestamp),
        kind: if b.control { BatchKind::Control } else { BatchKind::Data },
        records: b.records,
    })
}

fn epoch_response(r: EpochResponse) -> pb::EpochResponse {
    pb::EpochResponse { error_code: error(r.error), leader_epoch: r.leader_epoch.0, leader_id: leader(r.leader_id) }
}

fn epoch_response_from(r: pb::EpochResponse) -> Result<EpochResponse, Malformed> {
    Ok(EpochResponse {
        error: error_from(r.error_code)?,
        leader_epoch: LeaderEpoch(r.leader_epoch),
        leader_id: leader_from(r.leader_id),
    })
}

/// A quorum message from `from`, as the wire carries it.
pub(crate) fn to_wire(from: NodeId, message: Message) -> pb::RaftMessage {
    let body = match message.body {
        MessageBody::VoteRequest(r) => Body::VoteRequest(pb::VoteRequest {
            candidate_epoch: r.candidate_epoch.0,
            candidate_key: Some(key(r.candidate_key)),
            voter_key: Some(key(r.voter_key)),
            last_offset_epoch: r.last_offset_epoch.0,
            last_offset: r.last_offset.0,
            pre_vote: r.pre_vote,
        }),
        MessageBody::VoteResponse(r) => Body::VoteResponse(pb::VoteResponse {
            error_code: error(r.error),
            leader_epoch: r.leader_epoch.0,
            leader_id: leader(r.leader_id),
            vote_granted: r.vote_granted,
        }),
        MessageBody::BeginQuorumEpochRequest(r) => Body::BeginQuorumEpochRequest(pb::BeginQuorumEpochRequest {
            leader_id: r.leader_id.0,
            leader_epoch: r.leader_epoch.0,
            voter_key: Some(key(r.voter_key)),
        }),
        MessageBody::BeginQuorumEpochResponse(r) => Body::BeginQuorumEpochResponse(epoch_response(r)),
        MessageBody::EndQuorumEpochRequest(r) => Body::EndQuorumEpochRequest(pb::EndQuorumEpochRequest {
            leader_id: r.leader_id.0,
            leader_epoch: r.leader_epoch.0,
            preferred_successors: r.preferred_successors.into_iter().map(key).collect(),
        }),
        MessageBody::EndQuorumEpochResponse(r) => Body::EndQuorumEpochResponse(epoch_response(r)),
        MessageBody::FetchRequest(r) => Body::FetchRequest(pb::RaftFetchRequest {
            replica_key: Some(key(r.replica_key)),
            current_leader_epoch: r.current_leader_epoch.0,
            fetch_offset: r.fetch_offset.0,
            last_fetched_epoch: r.last_fetched_epoch.0,
            high_watermark: r.high_watermark.map(|o| o.0),
            max_wait_ms: r.max_wait_ms,
            max_bytes: r.max_bytes as u64,
        }),
        MessageBody::FetchResponse(r) => Body::FetchResponse(pb::RaftFetchResponse {
            error_code: error(r.error),
            leader_epoch: r.leader_epoch.0,
            leader_id: leader(r.leader_id),
            high_watermark: r.high_watermark.map(|o| o.0),
            log_start_offset: r.log_start_offset.0,
            records: r.records.into_iter().map(batch).collect(),
            diverging_epoch: r.diverging_epoch.map(position),
            snapshot_id: r.snapshot_id.map(position),
        }),
        MessageBody::FetchSnapshotRequest(r) => Body::FetchSnapshotRequest(pb::FetchSnapshotRequest {
            replica_key: Some(key(r.replica_key)),
            current_leader_epoch: r.current_leader_epoch.0,
            snapshot_id: Some(position(r.snapshot_id)),
            position: r.position,
            max_bytes: r.max_bytes as u64,
        }),
        MessageBody::FetchSnapshotResponse(r) => Body::FetchSnapshotResponse(pb::FetchSnapshotResponse {
            error_code: error(r.error),
            leader_epoch: r.leader_epoch.0,
            leader_id: leader(r.leader_id),
            snapshot_id: Some(position(r.snapshot_id)),
            size: r.size,
            position: r.position,
            bytes: r.bytes,
        }),
    };
    pb::RaftMessage {
        cluster_id: message.cluster_id,
        correlation_id: message.correlation_id,
        from: from.0,
        body: Some(body),
    }
}

/// The sender and the quorum message a wire message holds.
pub(crate) fn from_wire(message: pb::RaftMessage) -> Result<(NodeId, Message), Malformed> {
    let body = match message.body.ok_or_else(|| Malformed("no body".into()))? {
        Body::VoteRequest(r) => MessageBody::VoteRequest(VoteRequest {
            candidate_epoch: LeaderEpoch(r.candidate_epoch),
            candidate_key: key_from(r.candidate_key, "candidate key")?,
            voter_key: key_from(r.voter_key, "voter key")?,
            last_offset_epoch: LeaderEpoch(r.last_offset_epoch),
            last_offset: Offset(r.last_offset),
            pre_vote: r.pre_vote,
        }),
        Body::VoteResponse(r) => MessageBody::VoteResponse(VoteResponse {
            error: error_from(r.error_code)?,
            leader_epoch: LeaderEpoch(r.leader_epoch),
            leader_id: leader_from(r.leader_id),
            vote_granted: r.vote_granted,
        }),
        Body::BeginQuorumEpochRequest(r) => MessageBody::BeginQuorumEpochRequest(BeginQuorumEpochRequest {
            leader_id: NodeId(r.leader_id),
            leader_epoch: LeaderEpoch(r.leader_epoch),
            voter_key: key_from(r.voter_key, "voter key")?,
        }),
        Body::BeginQuorumEpochResponse(r) => MessageBody::BeginQuorumEpochResponse(epoch_response_from(r)?),
        Body::EndQuorumEpochRequest(r) => MessageBody::EndQuorumEpochRequest(EndQuorumEpochRequest {
            leader_id: NodeId(r.leader_id),
            leader_epoch: LeaderEpoch(r.leader_epoch),
            preferred_successors: r
                .preferred_successors
                .into_iter()
                .map(|k| key_from(Some(k), "successor"))
                .collect::<Result<_, _>>()?,
        }),
        Body::EndQuorumEpochResponse(r) => MessageBody::EndQuorumEpochResponse(epoch_response_from(r)?),
        Body::FetchRequest(r) => MessageBody::FetchRequest(FetchRequest {
            replica_key: key_from(r.replica_key, "replica key")?,
            current_leader_epoch: LeaderEpoch(r.current_leader_epoch),
            fetch_offset: Offset(r.fetch_offset),
            last_fetched_epoch: LeaderEpoch(r.last_fetched_epoch),
            high_watermark: r.high_watermark.map(Offset),
            max_wait_ms: r.max_wait_ms,
            max_bytes: usize::try_from(r.max_bytes).unwrap_or(usize::MAX),
        }),
        Body::FetchResponse(r) => MessageBody::FetchResponse(FetchResponse {
            error: error_from(r.error_code)?,
            leader_epoch: LeaderEpoch(r.leader_epoch),
            leader_id: leader_from(r.leader_id),
            high_watermark: r.high_watermark.map(Offset),
            log_start_offset: Offset(r.log_start_offset),
            records: r.records.into_iter().map(batch_from).collect::<Result<_, _>>()?,
            diverging_epoch: r.diverging_epoch.map(position_from),
            snapshot_id: r.snapshot_id.map(position_from),
        }),
        Body::FetchSnapshotRequest(r) => MessageBody::FetchSnapshotRequest(FetchSnapshotRequest {
            replica_key: key_from(r.replica_key, "replica key")?,
            current_leader_epoch: LeaderEpoch(r.current_leader_epoch),
            snapshot_id: position_from(r.snapshot_id.ok_or_else(|| Malformed("no snapshot id".into()))?),
            position: r.position,
            max_bytes: usize::try_from(r.max_bytes).unwrap_or(usize::MAX),
        }),
        Body::FetchSnapshotResponse(r) => MessageBody::FetchSnapshotResponse(FetchSnapshotResponse {
            error: error_from(r.error_code)?,
            leader_epoch: LeaderEpoch(r.leader_epoch),
            leader_id: leader_from(r.leader_id),
            snapshot_id: position_from(r.snapshot_id.ok_or_else(|| Malformed("no snapshot id".into()))?),
            size: r.size,
            position: r.position,
            bytes: r.bytes,
        }),
    };
    Ok((NodeId(message.from), Message { cluster_id: message.cluster_id, correlation_id: message.correlation_id, body }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_message_crosses_the_wire_unchanged() {
        let k = ReplicaKey { id: NodeId(2), directory_id: Some(DirectoryId([7; 16])) };
        let bodies = vec![
            MessageBody::VoteRequest(VoteRequest {
                candidate_epoch: LeaderEpoch(3),
                candidate_key: k,
                voter_key: ReplicaKey::of(1),
                last_offset_epoch: LeaderEpoch(2),
                last_offset: Offset(9),
                pre_vote: true,
            }),
            MessageBody::VoteResponse(VoteResponse {
                error: ErrorCode::None,
                leader_epoch: LeaderEpoch(3),
                leader_id: None,
                vote_granted: true,
            }),
            MessageBody::FetchResponse(FetchResponse {
                error: ErrorCode::FencedLeaderEpoch,
                leader_epoch: LeaderEpoch(4),
                leader_id: Some(NodeId(3)),
                high_watermark: Some(Offset(5)),
                log_start_offset: Offset(0),
                records: vec![Batch {
                    base_offset: Offset(4),
                    epoch: LeaderEpoch(4),
                    append_timestamp: Timestamp(11),
                    kind: BatchKind::Control,
                    records: vec![vec![1, 2, 3]],
                }],
                diverging_epoch: Some(OffsetAndEpoch::new(Offset(3), LeaderEpoch(2))),
                snapshot_id: None,
            }),
            MessageBody::EndQuorumEpochRequest(EndQuorumEpochRequest {
                leader_id: NodeId(1),
                leader_epoch: LeaderEpoch(5),
                preferred_successors: vec![k, ReplicaKey::of(3)],
            }),
        ];
        for body in bodies {
            let message = Message { cluster_id: "c".into(), correlation_id: 42, body };
            let (from, back) = from_wire(to_wire(NodeId(2), message.clone())).unwrap();
            assert_eq!((from, back), (NodeId(2), message));
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        let empty = pb::RaftMessage { cluster_id: "c".into(), correlation_id: 1, from: 1, body: None };
        assert!(from_wire(empty).is_err());
        let bad_key = pb::RaftMessage {
            cluster_id: "c".into(),
            correlation_id: 1,
            from: 1,
            body: Some(Body::BeginQuorumEpochRequest(pb::BeginQuorumEpochRequest {
                leader_id: 1,
                leader_epoch: 1,
                voter_key: Some(pb::ReplicaKey { id: 1, directory_id: Some(vec![1, 2]) }),
            })),
        };
        assert!(from_wire(bad_key).is_err());
    }
}
