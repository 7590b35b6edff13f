//! The roles a node can be in, each a struct with its timers and a `validate()`: Kafka's
//! `UnattachedState`, `ProspectiveState`, `CandidateState`, `LeaderState`, `FollowerState` and
//! `ResignedState` behind `QuorumState`.
//!
//! Transitions (Kafka's `QuorumState` javadoc, with KIP-996):
//! - Unattached → Unattached (higher epoch, or a granted vote), Prospective (election timeout),
//!   Follower (a leader of this or a higher epoch).
//! - Prospective → Candidate (a majority of pre-votes), Unattached or Follower (pre-votes lost or
//!   timed out; Follower if a leader was known), and either on a higher epoch.
//! - Candidate → Leader (a majority of votes), Prospective (election timeout), Unattached/Follower
//!   (higher epoch).
//! - Leader → Resigned (check-quorum or a graceful resign), Unattached/Follower (higher epoch).
//! - Follower → Prospective (fetch timeout), Unattached/Follower (higher epoch).
//! - Resigned → Unattached (its election timeout, with the epoch bumped), Follower.
//!
//! Observers (nodes that are not voters) only move between Unattached and Follower.

mod election;
mod leader;

pub(crate) use election::EpochElection;
pub(crate) use leader::{LeaderState, ParkedFetch, ReplicaState};

use std::collections::BTreeSet;

use fjord_types::{LeaderEpoch, Offset, Timestamp};

use crate::ids::{NodeId, ReplicaKey, SnapshotId};
use crate::store::ElectionState;

/// Which role a node is in, for callers that inspect a node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RoleKind {
    /// Knows an epoch but no leader for it; may have voted in it.
    Unattached,
    /// Polling the voters with pre-votes before standing (KIP-996).
    Prospective,
    /// Standing in an election it started (its epoch is new and it voted for itself).
    Candidate,
    /// Leading the epoch.
    Leader,
    /// Fetching from the leader of the epoch.
    Follower,
    /// Was the leader of the epoch and stepped down (or restarted as it).
    Resigned,
}

#[derive(Clone, Debug)]
pub(crate) struct Unattached {
    pub(crate) epoch: LeaderEpoch,
    pub(crate) voted_key: Option<ReplicaKey>,
    /// `Timestamp(i64::MAX)` for observers, which never stand.
    pub(crate) election_deadline: Timestamp,
    pub(crate) high_watermark: Option<Offset>,
}

#[derive(Clone, Debug)]
pub(crate) struct Prospective {
    pub(crate) epoch: LeaderEpoch,
    /// The leader this node followed before its fetches timed out: if the pre-votes fail it goes
    /// back to following it.
    pub(crate) leader_id: Option<NodeId>,
    pub(crate) voted_key: Option<ReplicaKey>,
    pub(crate) election: EpochElection,
    pub(crate) election_deadline: Timestamp,
    pub(crate) high_watermark: Option<Offset>,
}

#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub(crate) epoch: LeaderEpoch,
    pub(crate) election: EpochElection,
    pub(crate) election_deadline: Timestamp,
    pub(crate) high_watermark: Option<Offset>,
}

/// A snapshot being downloaded from the leader. The bytes are kept in memory and written to
/// the log only once complete and checked, so a torn or corrupt download never reaches disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotDownload {
    pub(crate) id: SnapshotId,
    /// Bytes received so far.
    pub(crate) position: u64,
    pub(crate) bytes: Vec<u8>,
}

#[derive(Clone, Debug)]
pub(crate) struct Follower {
    pub(crate) epoch: LeaderEpoch,
    pub(crate) leader_id: NodeId,
    pub(crate) voted_key: Option<ReplicaKey>,
    pub(crate) fetch_deadline: Timestamp,
    /// Whether a fetch has succeeded since this node began following (Kafka's
    /// `hasFetchedFromLeader`): until then it may grant pre-votes, since the leader may be gone.
    pub(crate) has_fetched_from_leader: bool,
    pub(crate) high_watermark: Option<Offset>,
    pub(crate) fetching_snapshot: Option<SnapshotDownload>,
}

#[derive(Clone, Debug)]
pub(crate) struct Resigned {
    pub(crate) epoch: LeaderEpoch,
    pub(crate) election_deadline: Timestamp,
    pub(crate) preferred_successors: Vec<ReplicaKey>,
    /// Voters that have not yet answered our EndQuorumEpoch.
    pub(crate) unacknowledged: BTreeSet<NodeId>,
    pub(crate) high_watermark: Option<Offset>,
}

#[derive(Clone, Debug)]
pub(crate) enum Role {
    Unattached(Unattached),
    Prospective(Prospective),
    Candidate(Candidate),
    Leader(Box<LeaderState>),
    Follower(Follower),
    Resigned(Resigned),
}

impl Role {
    pub(crate) fn kind(&self) -> RoleKind {
        match self {
            Role::Unattached(_) => RoleKind::Unattached,
            Role::Prospective(_) => RoleKind::Prospective,
            Role::Candidate(_) => RoleKind::Candidate,
            Role::Leader(_) => RoleKind::Leader,
            Role::Follower(_) => RoleKind::Follower,
            Role::Resigned(_) => RoleKind::Resigned,
        }
    }

    pub(crate) fn epoch(&self) -> LeaderEpoch {
        match self {
            Role::Unattached(s) => s.epoch,
            Role::Prospective(s) => s.epoch,
            Role::Candidate(s) => s.epoch,
            Role::Leader(s) => s.epoch,
            Role::Follower(s) => s.epoch,
            Role::Resigned(s) => s.epoch,
        }
    }

    /// The leader of this epoch as far as this node knows (itself when leading or resigned).
    pub(crate) fn leader_id(&self, local: NodeId) -> Option<NodeId> {
        match self {
            Role::Unattached(_) | Role::Candidate(_) => None,
            Role::Prospective(s) => s.leader_id,
            Role::Follower(s) => Some(s.leader_id),
            Role::Leader(_) | Role::Resigned(_) => Some(local),
        }
    }

    pub(crate) fn voted_key(&self, local: ReplicaKey) -> Option<ReplicaKey> {
        match self {
            Role::Unattached(s) => s.voted_key,
            Role::Prospective(s) => s.voted_key,
            Role::Follower(s) => s.voted_key,
            Role::Candidate(_) | Role::Leader(_) | Role::Resigned(_) => Some(local),
        }
    }

    pub(crate) fn high_watermark(&self) -> Option<Offset> {
        match self {
            Role::Unattached(s) => s.high_watermark,
            Role::Prospective(s) => s.high_watermark,
            Role::Candidate(s) => s.high_watermark,
            Role::Leader(s) => s.high_watermark,
            Role::Follower(s) => s.high_watermark,
            Role::Resigned(s) => s.high_watermark,
        }
    }

    /// What this role makes durable. A resigned leader keeps its election (it must not vote
    /// again in its own epoch); a prospective persists nothing new (pre-votes are not binding).
    pub(crate) fn election(&self, local: ReplicaKey) -> ElectionState {
        let leader_id = match self {
            // A prospective that followed a leader still knows it.
            Role::Prospective(s) => s.leader_id,
            other => other.leader_id(local.id),
        };
        ElectionState { epoch: self.epoch(), leader_id, voted_key: self.voted_key(local) }
    }

    /// Checks the role's own invariants; the node adds the ones that involve the log.
    pub(crate) fn validate(&self, local: ReplicaKey) -> Result<(), String> {
        let epoch = self.epoch();
        if epoch.0 < 0 {
            return Err(format!("negative epoch {epoch}"));
        }
        match self {
            // An unattached node may hold a vote for itself: a candidate whose pre-votes then
            // failed keeps the vote it cast in its epoch, so it cannot vote again there.
            Role::Unattached(_) => {}
            Role::Prospective(s) => s.election.validate(local.id)?,
            Role::Candidate(s) => {
                s.election.validate(local.id)?;
                if epoch.0 == 0 {
                    return Err("a candidate in epoch 0".into());
                }
            }
            Role::Leader(s) => s.validate(local.id)?,
            Role::Follower(s) => {
                if s.leader_id == local.id {
                    return Err("following itself".into());
                }
            }
            Role::Resigned(s) => {
                if s.unacknowledged.contains(&local.id) {
                    return Err("waits for its own EndQuorumEpoch answer".into());
                }
            }
        }
        Ok(())
    }
}
