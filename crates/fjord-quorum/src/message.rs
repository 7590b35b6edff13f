//! The quorum's RPCs as plain structs: KIP-595's Vote (with KIP-996's pre-vote),
//! BeginQuorumEpoch, EndQuorumEpoch and Fetch on `__cluster_metadata-0`, and KIP-630's
//! FetchSnapshot.
//!
//! The fields are Kafka's, flattened to the single partition the quorum has; every field is a
//! number, a string, a list or bytes, so each struct maps onto a protobuf message one to one.
//! A request and its response share a `correlation_id`, which the transport carries back.

use std::fmt;

use fjord_types::{ErrorCode, LeaderEpoch, Offset};

use crate::ids::{NodeId, OffsetAndEpoch, ReplicaKey, SnapshotId};
use crate::record::Batch;

/// Kafka's `INVALID_VOTER_KEY` (125, KIP-853): the request was meant for another replica key.
pub const INVALID_VOTER_KEY: ErrorCode = ErrorCode::from_code(125);

/// One message between two quorum members.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    /// The cluster the sender belongs to; a receiver of another cluster refuses requests with
    /// `INCONSISTENT_CLUSTER_ID` and drops responses.
    pub cluster_id: String,
    /// Chosen by the requester; echoed in the response, so a late answer to an abandoned
    /// request is recognised and dropped.
    pub correlation_id: u64,
    /// The request or response.
    pub body: MessageBody,
}

/// The RPCs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MessageBody {
    /// A candidate's (or with `pre_vote`, a prospective's) request for a vote.
    VoteRequest(VoteRequest),
    /// The answer to a [`VoteRequest`].
    VoteResponse(VoteResponse),
    /// A new leader announcing its epoch; repeated as a heartbeat every half fetch timeout.
    BeginQuorumEpochRequest(BeginQuorumEpochRequest),
    /// The answer to a [`BeginQuorumEpochRequest`].
    BeginQuorumEpochResponse(EpochResponse),
    /// A leader resigning gracefully, naming its preferred successors.
    EndQuorumEpochRequest(EndQuorumEpochRequest),
    /// The answer to an [`EndQuorumEpochRequest`].
    EndQuorumEpochResponse(EpochResponse),
    /// A follower or observer fetching from the leader; its fetch offset acknowledges.
    FetchRequest(FetchRequest),
    /// The answer to a [`FetchRequest`].
    FetchResponse(FetchResponse),
    /// A follower downloading a snapshot the leader redirected it to.
    FetchSnapshotRequest(FetchSnapshotRequest),
    /// The answer to a [`FetchSnapshotRequest`].
    FetchSnapshotResponse(FetchSnapshotResponse),
}

impl MessageBody {
    /// Whether this is a request (an answer is expected) rather than a response.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            MessageBody::VoteRequest(_)
                | MessageBody::BeginQuorumEpochRequest(_)
                | MessageBody::EndQuorumEpochRequest(_)
                | MessageBody::FetchRequest(_)
                | MessageBody::FetchSnapshotRequest(_)
        )
    }
}

/// Vote (API 52), one partition.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VoteRequest {
    /// The candidate's epoch: its new epoch, or for a pre-vote its current one.
    pub candidate_epoch: LeaderEpoch,
    /// Who asks.
    pub candidate_key: ReplicaKey,
    /// Whom the request is for; a receiver with another key answers `INVALID_VOTER_KEY`.
    pub voter_key: ReplicaKey,
    /// The epoch of the candidate's last record.
    pub last_offset_epoch: LeaderEpoch,
    /// The candidate's log end offset.
    pub last_offset: Offset,
    /// KIP-996: a non-binding poll that changes no state at the receiver.
    pub pre_vote: bool,
}

/// The answer to a Vote.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VoteResponse {
    /// `NONE`, `INCONSISTENT_CLUSTER_ID`, `FENCED_LEADER_EPOCH`, `INVALID_REQUEST`,
    /// `INVALID_VOTER_KEY`.
    pub error: ErrorCode,
    /// The responder's epoch.
    pub leader_epoch: LeaderEpoch,
    /// The leader the responder knows in that epoch.
    pub leader_id: Option<NodeId>,
    /// Whether the vote is granted.
    pub vote_granted: bool,
}

/// BeginQuorumEpoch (API 53).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BeginQuorumEpochRequest {
    /// The leader.
    pub leader_id: NodeId,
    /// Its epoch.
    pub leader_epoch: LeaderEpoch,
    /// Whom the request is for.
    pub voter_key: ReplicaKey,
}

/// BeginQuorumEpoch's and EndQuorumEpoch's answer: an error and what the responder knows.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EpochResponse {
    /// `NONE`, `INCONSISTENT_CLUSTER_ID`, `FENCED_LEADER_EPOCH`, `INVALID_VOTER_KEY`, ...
    pub error: ErrorCode,
    /// The responder's epoch.
    pub leader_epoch: LeaderEpoch,
    /// The leader the responder knows in that epoch.
    pub leader_id: Option<NodeId>,
}

/// EndQuorumEpoch (API 54).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EndQuorumEpochRequest {
    /// The resigning leader.
    pub leader_id: NodeId,
    /// Its epoch.
    pub leader_epoch: LeaderEpoch,
    /// Voters by descending fetch offset: the first should stand at once, the others later.
    pub preferred_successors: Vec<ReplicaKey>,
}

/// Fetch (API 1) on the metadata partition.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FetchRequest {
    /// The fetching replica (`ReplicaState.ReplicaId` and `ReplicaDirectoryId`).
    pub replica_key: ReplicaKey,
    /// The epoch of the leader the fetcher believes in.
    pub current_leader_epoch: LeaderEpoch,
    /// The fetcher's log end offset: everything below it is on the fetcher's disk (voters flush
    /// before fetching), so this is also its acknowledgement.
    pub fetch_offset: Offset,
    /// The epoch of the fetcher's record at `fetch_offset - 1`.
    pub last_fetched_epoch: LeaderEpoch,
    /// The fetcher's high watermark (KIP-1166), so the leader answers at once when it has a
    /// newer one. `None` when unknown.
    pub high_watermark: Option<Offset>,
    /// How long the leader may hold the request for new records.
    pub max_wait_ms: i64,
    /// The most record bytes to return (at least one batch is returned regardless).
    pub max_bytes: usize,
}

/// The answer to a Fetch. At most one of `records`, `diverging_epoch` and `snapshot_id` carries
/// something.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FetchResponse {
    /// `NONE`, `FENCED_LEADER_EPOCH`, `UNKNOWN_LEADER_EPOCH`, `NOT_LEADER_OR_FOLLOWER`,
    /// `INVALID_REQUEST`, `INCONSISTENT_CLUSTER_ID`, `BROKER_NOT_AVAILABLE`.
    pub error: ErrorCode,
    /// The leader's epoch (or the responder's, when it is not the leader).
    pub leader_epoch: LeaderEpoch,
    /// The leader as the responder knows it.
    pub leader_id: Option<NodeId>,
    /// The leader's high watermark, `None` until it is known in this epoch.
    pub high_watermark: Option<Offset>,
    /// The leader's log start offset.
    pub log_start_offset: Offset,
    /// Records from the fetch offset.
    pub records: Vec<Batch>,
    /// The fetcher's log diverges: truncate to this epoch's end offset and fetch again.
    pub diverging_epoch: Option<OffsetAndEpoch>,
    /// The fetch offset is below the leader's log start: download this snapshot.
    pub snapshot_id: Option<SnapshotId>,
}

/// FetchSnapshot (API 59).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FetchSnapshotRequest {
    /// The fetching replica.
    pub replica_key: ReplicaKey,
    /// The epoch of the leader the fetcher believes in.
    pub current_leader_epoch: LeaderEpoch,
    /// The snapshot.
    pub snapshot_id: SnapshotId,
    /// The byte position to read from: what the fetcher already has.
    pub position: u64,
    /// The most bytes to return.
    pub max_bytes: usize,
}

/// The answer to a FetchSnapshot.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FetchSnapshotResponse {
    /// `NONE`, `SNAPSHOT_NOT_FOUND`, `POSITION_OUT_OF_RANGE`, or a leader-epoch error.
    pub error: ErrorCode,
    /// The leader's epoch.
    pub leader_epoch: LeaderEpoch,
    /// The leader.
    pub leader_id: Option<NodeId>,
    /// The snapshot these bytes belong to.
    pub snapshot_id: SnapshotId,
    /// The snapshot's whole size.
    pub size: u64,
    /// Where `bytes` start.
    pub position: u64,
    /// A slice of the snapshot file (KIP-630's `UnalignedRecords`).
    pub bytes: Vec<u8>,
}

impl fmt::Display for Message {
    /// One line for traces: the RPC and its interesting fields, without record payloads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} ", self.correlation_id)?;
        match &self.body {
            MessageBody::VoteRequest(r) => write!(
                f,
                "{}Vote(epoch {}, last ({}, e{}))",
                if r.pre_vote { "Pre" } else { "" },
                r.candidate_epoch,
                r.last_offset,
                r.last_offset_epoch
            ),
            MessageBody::VoteResponse(r) => write!(
                f,
                "VoteResponse({:?}, e{}, leader {:?}, {})",
                r.error,
                r.leader_epoch,
                r.leader_id,
                if r.vote_granted { "granted" } else { "rejected" }
            ),
            MessageBody::BeginQuorumEpochRequest(r) => {
                write!(f, "BeginQuorumEpoch(e{}, leader {})", r.leader_epoch, r.leader_id)
            }
            MessageBody::BeginQuorumEpochResponse(r) => {
                write!(f, "BeginQuorumEpochResponse({:?}, e{}, leader {:?})", r.error, r.leader_epoch, r.leader_id)
            }
            MessageBody::EndQuorumEpochRequest(r) => {
                write!(
                    f,
                    "EndQuorumEpoch(e{}, leader {}, successors {:?})",
                    r.leader_epoch, r.leader_id, r.preferred_successors
                )
            }
            MessageBody::EndQuorumEpochResponse(r) => {
                write!(f, "EndQuorumEpochResponse({:?}, e{}, leader {:?})", r.error, r.leader_epoch, r.leader_id)
            }
            MessageBody::FetchRequest(r) => write!(
                f,
                "Fetch(e{}, offset {}, last epoch {}, hw {:?})",
                r.current_leader_epoch, r.fetch_offset, r.last_fetched_epoch, r.high_watermark
            ),
            MessageBody::FetchResponse(r) => {
                write!(
                    f,
                    "FetchResponse({:?}, e{}, leader {:?}, hw {:?}",
                    r.error, r.leader_epoch, r.leader_id, r.high_watermark
                )?;
                if let (Some(first), Some(last)) = (r.records.first(), r.records.last()) {
                    write!(f, ", records {}..{}", first.base_offset, last.next_offset())?;
                }
                if let Some(d) = r.diverging_epoch {
                    write!(f, ", diverging {d:?}")?;
                }
                if let Some(s) = r.snapshot_id {
                    write!(f, ", snapshot {s:?}")?;
                }
                write!(f, ")")
            }
            MessageBody::FetchSnapshotRequest(r) => {
                write!(f, "FetchSnapshot(e{}, {:?}, position {})", r.current_leader_epoch, r.snapshot_id, r.position)
            }
            MessageBody::FetchSnapshotResponse(r) => write!(
                f,
                "FetchSnapshotResponse({:?}, e{}, {:?}, {}+{} of {})",
                r.error,
                r.leader_epoch,
                r.snapshot_id,
                r.position,
                r.bytes.len(),
                r.size
            ),
        }
    }
}
