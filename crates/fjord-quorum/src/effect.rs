//! What a node asks its caller to do. The caller executes effects strictly in order.

use fjord_types::{LeaderEpoch, Offset, Timestamp};

use crate::ids::{NodeId, SnapshotId};
use crate::message::Message;
use crate::record::Batch;

/// One instruction from a [`RaftNode`](crate::RaftNode) to whoever drives it.
///
/// Nothing here needs to be made durable by the caller: the node has already written its log
/// and its election state through [`RaftLog`](crate::RaftLog) and
/// [`QuorumStateStore`](crate::QuorumStateStore) before it emits an effect that depends on them.
/// A send may therefore go out at once, and may be lost: the protocol retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Deliver `message` to node `to`. Requests and responses alike; a response carries its
    /// request's correlation id, so an RPC transport completes that call with it.
    Send {
        /// The destination.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// These batches are committed: apply them in order. Each `Commit` continues exactly where
    /// the previous one (or the last [`Effect::LoadSnapshot`]) ended. Control batches are
    /// included (they have [`BatchKind::Control`](crate::BatchKind::Control)); applications skip
    /// them or read them with [`ControlRecord::decode`](crate::ControlRecord::decode).
    Commit {
        /// Whole batches, ascending, contiguous.
        batches: Vec<Batch>,
        /// The node's high watermark: everything below is committed.
        high_watermark: Offset,
    },
    /// Replace the state machine's state with the snapshot `snapshot_id` (read it with
    /// [`RaftLog::read_snapshot`](crate::RaftLog::read_snapshot) and
    /// [`decode_snapshot`](crate::decode_snapshot)). Commits continue from its end offset. A
    /// leader never gets this.
    LoadSnapshot {
        /// The snapshot.
        snapshot_id: SnapshotId,
    },
    /// The leader of the quorum changed, or became unknown (Kafka's `handleLeaderChange`).
    LeaderChange {
        /// The new epoch.
        epoch: LeaderEpoch,
        /// The leader, if known.
        leader_id: Option<NodeId>,
    },
    /// Call [`RaftNode::tick`](crate::RaftNode::tick) at or soon after `at`. Replaces every
    /// earlier wake-up.
    WakeUp {
        /// When.
        at: Timestamp,
    },
}
