//! Unit tests of [`RaftNode`] in the style of openraft's engine tests: feed one input, assert
//! the exact effects. Each test is named after the `KafkaRaftClientTest` (or
//! `KafkaRaftClientSnapshotTest`, `KafkaRaftClientPreVoteTest`) case it mirrors where there is
//! one. Every input is followed by `validate()`.

mod election;
mod replication;
mod restart;
mod snapshot;

use std::collections::BTreeSet;

use fjord_types::{ErrorCode, LeaderEpoch, Offset, Timestamp};

use super::*;
use crate::log::MemoryLog;
use crate::message::{
    BeginQuorumEpochRequest, EndQuorumEpochRequest, EpochResponse, FetchRequest, FetchResponse, FetchSnapshotRequest,
    FetchSnapshotResponse, INVALID_VOTER_KEY, VoteRequest, VoteResponse,
};
use crate::record::{Batch, BatchKind};
use crate::store::MemoryQuorumStateStore;

pub(super) const CLUSTER: &str = "test-cluster";

pub(super) type Node = RaftNode<MemoryLog, MemoryQuorumStateStore>;

pub(super) fn options(local: i32, voters: &[i32]) -> NodeOptions {
    NodeOptions {
        cluster_id: CLUSTER.into(),
        local: ReplicaKey::of(local),
        voters: VoterSet::from_ids(voters.iter().copied()).unwrap(),
        config: QuorumConfig::default(),
        seed: 42,
    }
}

/// A node under test with its clock.
pub(super) struct Test {
    pub(super) node: Node,
    pub(super) now: Timestamp,
}

impl Test {
    pub(super) fn start(options: NodeOptions, log: MemoryLog, store: MemoryQuorumStateStore) -> Test {
        Test::start_with_bugs(options, log, store, BTreeSet::new())
    }

    pub(super) fn start_with_bugs(
        options: NodeOptions,
        log: MemoryLog,
        store: MemoryQuorumStateStore,
        bugs: BTreeSet<crate::bugs::Bug>,
    ) -> Test {
        let now = Timestamp(1_000);
        let node = RaftNode::new_with_bugs(options, log, store, now, bugs).unwrap();
        node.validate().unwrap();
        Test { node, now }
    }

    /// A voter of `voters` with empty storage.
    pub(super) fn fresh(local: i32, voters: &[i32]) -> Test {
        Test::start(options(local, voters), MemoryLog::new(), MemoryQuorumStateStore::new())
    }

    /// A voter that restarts from this election state.
    pub(super) fn with_state(local: i32, voters: &[i32], state: ElectionState, log: MemoryLog) -> Test {
        let mut store = MemoryQuorumStateStore::new();
        store.write(&state).unwrap();
        Test::start(options(local, voters), log, store)
    }

    pub(super) fn effects(&mut self) -> Vec<Effect> {
        self.node.take_effects()
    }

    /// Only the messages, in order.
    pub(super) fn sent(&mut self) -> Vec<(NodeId, Message)> {
        sends(self.effects())
    }

    pub(super) fn deliver(&mut self, from: i32, correlation_id: u64, body: MessageBody) -> Result<()> {
        let message = Message { cluster_id: CLUSTER.into(), correlation_id, body };
        let result = self.node.handle_message(self.now, NodeId(from), message);
        if result.is_ok() {
            self.node.validate().unwrap();
        }
        result
    }

    pub(super) fn advance(&mut self, millis: i64) {
        self.now = Timestamp(self.now.0 + millis);
        self.node.tick(self.now).unwrap();
        self.node.validate().unwrap();
    }

    pub(super) fn stored(&self) -> ElectionState {
        self.node.store().state().unwrap()
    }

    /// Drives the node until it is the leader of `voters`, granting every vote.
    pub(super) fn elect(&mut self) {
        self.advance(2_000);
        for round in 0..2 {
            for (to, message) in self.sent() {
                if let MessageBody::VoteRequest(r) = &message.body {
                    let response = vote_response(r.candidate_epoch, None, true);
                    self.deliver(to.0, message.correlation_id, response).unwrap();
                }
            }
            assert!(round == 0 || self.node.role() == RoleKind::Leader, "elected after two rounds");
        }
        assert_eq!(self.node.role(), RoleKind::Leader);
    }

    /// The single request sent to `to` among the effects, with its correlation id.
    pub(super) fn request_to(&mut self, to: i32) -> (u64, MessageBody) {
        let mut matching: Vec<(u64, MessageBody)> = self
            .sent()
            .into_iter()
            .filter(|(n, _)| *n == NodeId(to))
            .map(|(_, m)| (m.correlation_id, m.body))
            .collect();
        assert_eq!(matching.len(), 1, "one message to {to}");
        matching.remove(0)
    }
}

pub(super) fn sends(effects: Vec<Effect>) -> Vec<(NodeId, Message)> {
    effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Send { to, message } => Some((to, message)),
            _ => None,
        })
        .collect()
}

pub(super) fn message(correlation_id: u64, body: MessageBody) -> Message {
    Message { cluster_id: CLUSTER.into(), correlation_id, body }
}

pub(super) fn e(epoch: i32) -> LeaderEpoch {
    LeaderEpoch(epoch)
}

pub(super) fn o(offset: i64) -> Offset {
    Offset(offset)
}

pub(super) fn state(epoch: i32, leader: Option<i32>, voted: Option<i32>) -> ElectionState {
    ElectionState { epoch: e(epoch), leader_id: leader.map(NodeId), voted_key: voted.map(ReplicaKey::of) }
}

pub(super) fn vote_request(
    candidate: i32,
    epoch: i32,
    last_offset: i64,
    last_epoch: i32,
    pre_vote: bool,
    voter: i32,
) -> MessageBody {
    MessageBody::VoteRequest(VoteRequest {
        candidate_epoch: e(epoch),
        candidate_key: ReplicaKey::of(candidate),
        voter_key: ReplicaKey::of(voter),
        last_offset_epoch: e(last_epoch),
        last_offset: o(last_offset),
        pre_vote,
    })
}

pub(super) fn vote_response(epoch: LeaderEpoch, leader: Option<i32>, granted: bool) -> MessageBody {
    MessageBody::VoteResponse(VoteResponse {
        error: ErrorCode::None,
        leader_epoch: epoch,
        leader_id: leader.map(NodeId),
        vote_granted: granted,
    })
}

pub(super) fn granted(body: &MessageBody) -> Option<(ErrorCode, bool)> {
    match body {
        MessageBody::VoteResponse(r) => Some((r.error, r.vote_granted)),
        _ => None,
    }
}

pub(super) fn fetch(replica: i32, epoch: i32, offset: i64, last_epoch: i32, max_wait_ms: i64) -> MessageBody {
    MessageBody::FetchRequest(FetchRequest {
        replica_key: ReplicaKey::of(replica),
        current_leader_epoch: e(epoch),
        fetch_offset: o(offset),
        last_fetched_epoch: e(last_epoch),
        high_watermark: None,
        max_wait_ms,
        max_bytes: 1 << 20,
    })
}

pub(super) fn fetch_response(epoch: i32, leader: i32, high_watermark: Option<i64>, records: Vec<Batch>) -> MessageBody {
    MessageBody::FetchResponse(FetchResponse {
        error: ErrorCode::None,
        leader_epoch: e(epoch),
        leader_id: Some(NodeId(leader)),
        high_watermark: high_watermark.map(o),
        log_start_offset: o(0),
        records,
        diverging_epoch: None,
        snapshot_id: None,
    })
}

pub(super) fn data(base: i64, epoch: i32, count: usize) -> Batch {
    Batch {
        base_offset: o(base),
        epoch: e(epoch),
        append_timestamp: Timestamp(0),
        kind: BatchKind::Data,
        records: (0..count).map(|i| vec![i as u8; 3]).collect(),
    }
}

/// A log holding `batches`, all flushed.
pub(super) fn log_of(batches: impl IntoIterator<Item = Batch>) -> MemoryLog {
    let mut log = MemoryLog::new();
    for batch in batches {
        log.append(batch).unwrap();
    }
    log.flush().unwrap();
    log
}

pub(super) fn begin_epoch(leader: i32, epoch: i32, voter: i32) -> MessageBody {
    MessageBody::BeginQuorumEpochRequest(BeginQuorumEpochRequest {
        leader_id: NodeId(leader),
        leader_epoch: e(epoch),
        voter_key: ReplicaKey::of(voter),
    })
}

pub(super) fn end_epoch(leader: i32, epoch: i32, successors: &[i32]) -> MessageBody {
    MessageBody::EndQuorumEpochRequest(EndQuorumEpochRequest {
        leader_id: NodeId(leader),
        leader_epoch: e(epoch),
        preferred_successors: successors.iter().map(|s| ReplicaKey::of(*s)).collect(),
    })
}

pub(super) fn epoch_ok(epoch: i32, leader: Option<i32>) -> EpochResponse {
    EpochResponse { error: ErrorCode::None, leader_epoch: e(epoch), leader_id: leader.map(NodeId) }
}

pub(super) fn fetch_snapshot(replica: i32, epoch: i32, id: SnapshotId, position: u64, max_bytes: usize) -> MessageBody {
    MessageBody::FetchSnapshotRequest(FetchSnapshotRequest {
        replica_key: ReplicaKey::of(replica),
        current_leader_epoch: e(epoch),
        snapshot_id: id,
        position,
        max_bytes,
    })
}
