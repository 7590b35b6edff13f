//! BeginQuorumEpoch and EndQuorumEpoch, and what every response says about the leader
//! (Kafka's `maybeHandleCommonResponse`).

use fjord_types::{ErrorCode, LeaderEpoch, Offset};

use super::RaftNode;
use crate::error::Result;
use crate::ids::{NodeId, SnapshotId};
use crate::log::RaftLog;
use crate::message::{
    BeginQuorumEpochRequest, EndQuorumEpochRequest, EpochResponse, FetchResponse, FetchSnapshotResponse,
    INVALID_VOTER_KEY, MessageBody,
};
use crate::requests::RequestKind;
use crate::state::Role;
use crate::store::QuorumStateStore;

impl<L: RaftLog, S: QuorumStateStore> RaftNode<L, S> {
    fn epoch_response(&self, error: ErrorCode) -> EpochResponse {
        EpochResponse { error, leader_epoch: self.role.epoch(), leader_id: self.leader_id() }
    }

    /// The answer to `request` when it fails before it is looked at (a foreign cluster id).
    pub(super) fn error_response(&self, request: &MessageBody, error: ErrorCode) -> MessageBody {
        let epoch = self.role.epoch();
        let leader = self.leader_id();
        match request {
            MessageBody::VoteRequest(_) => self.vote_response(error, false),
            MessageBody::BeginQuorumEpochRequest(_) => {
                MessageBody::BeginQuorumEpochResponse(self.epoch_response(error))
            }
            MessageBody::EndQuorumEpochRequest(_) => MessageBody::EndQuorumEpochResponse(self.epoch_response(error)),
            MessageBody::FetchSnapshotRequest(r) => MessageBody::FetchSnapshotResponse(FetchSnapshotResponse {
                error,
                leader_epoch: epoch,
                leader_id: leader,
                snapshot_id: r.snapshot_id,
                size: 0,
                position: r.position,
                bytes: Vec::new(),
            }),
            _ => MessageBody::FetchResponse(self.empty_fetch_response(error, None)),
        }
    }

    pub(super) fn empty_fetch_response(&self, error: ErrorCode, high_watermark: Option<Offset>) -> FetchResponse {
        FetchResponse {
            error,
            leader_epoch: self.role.epoch(),
            leader_id: self.leader_id(),
            high_watermark,
            log_start_offset: self.log.log_start_offset(),
            records: Vec::new(),
            diverging_epoch: None,
            snapshot_id: None,
        }
    }

    pub(super) fn empty_snapshot_response(&self, error: ErrorCode, snapshot_id: SnapshotId) -> FetchSnapshotResponse {
        FetchSnapshotResponse {
            error,
            leader_epoch: self.role.epoch(),
            leader_id: self.leader_id(),
            snapshot_id,
            size: 0,
            position: 0,
            bytes: Vec::new(),
        }
    }

    /// Kafka's `maybeHandleCommonResponse`. `Some(ok)` when the response was fully handled
    /// here (`ok` false means back off), `None` when the caller should go on with it.
    pub(super) fn maybe_handle_common_response(
        &mut self,
        error: ErrorCode,
        leader: Option<NodeId>,
        epoch: LeaderEpoch,
    ) -> Result<Option<bool>> {
        let current = self.role.epoch();
        if epoch < current || error == ErrorCode::UnknownLeaderEpoch {
            // We have moved on; the answer no longer matters.
            return Ok(Some(true));
        }
        if epoch > current || error == ErrorCode::FencedLeaderEpoch || error == ErrorCode::NotLeaderOrFollower {
            self.maybe_transition(leader, epoch)?;
            // Nobody knows a leader yet: ask again after the retry backoff, not at once.
            let learned_nothing = leader.is_none() && epoch == current;
            return Ok(Some(!learned_nothing));
        }
        if let Some(l) = leader
            && self.leader_id().is_none()
            && l != self.options.local.id
        {
            // The answer names this epoch's leader: follow it, and (for an observer's first
            // fetch) use the records in the same answer.
            self.transition_to_follower(epoch, l)?;
            return Ok(if error.is_ok() { None } else { Some(true) });
        }
        match error {
            ErrorCode::BrokerNotAvailable | ErrorCode::InvalidRequest => Ok(Some(false)),
            e if e == INVALID_VOTER_KEY => Ok(Some(true)),
            _ => Ok(None),
        }
    }

    pub(super) fn handle_begin_quorum_epoch(
        &mut self,
        from: NodeId,
        correlation_id: u64,
        request: BeginQuorumEpochRequest,
    ) -> Result<()> {
        if let Some(error) = self.validate_voter_only(request.leader_id, request.leader_epoch) {
            let body = MessageBody::BeginQuorumEpochResponse(self.epoch_response(error));
            self.respond(from, correlation_id, body);
            return Ok(());
        }
        self.maybe_transition(Some(request.leader_id), request.leader_epoch)?;
        let error = if request.voter_key.matches(&self.options.local) { ErrorCode::None } else { INVALID_VOTER_KEY };
        let body = MessageBody::BeginQuorumEpochResponse(self.epoch_response(error));
        self.respond(from, correlation_id, body);
        Ok(())
    }

    pub(super) fn handle_end_quorum_epoch(
        &mut self,
        from: NodeId,
        correlation_id: u64,
        request: EndQuorumEpochRequest,
    ) -> Result<()> {
        if let Some(error) = self.validate_voter_only(request.leader_id, request.leader_epoch) {
            let body = MessageBody::EndQuorumEpochResponse(self.epoch_response(error));
            self.respond(from, correlation_id, body);
            return Ok(());
        }
        self.maybe_transition(Some(request.leader_id), request.leader_epoch)?;
        let backoff = self.successor_backoff_ms(&request.preferred_successors);
        let deadline = self.after(backoff);
        if let Role::Follower(state) = &mut self.role
            && state.leader_id == request.leader_id
        {
            // The leader is going: stand after a backoff that is shorter the more caught up we
            // are, instead of waiting out the fetch timeout.
            state.fetch_deadline = state.fetch_deadline.min(deadline);
        }
        let body = MessageBody::EndQuorumEpochResponse(self.epoch_response(ErrorCode::None));
        self.respond(from, correlation_id, body);
        Ok(())
    }

    /// Kafka's `strictExponentialElectionBackoffMs`: 0 for the first successor, then doubling
    /// up to `controller.quorum.election.backoff.max.ms`.
    fn successor_backoff_ms(&self, successors: &[crate::ids::ReplicaKey]) -> i64 {
        let max = self.options.config.election_backoff_max_ms;
        let position = successors.iter().position(|k| k.matches(&self.options.local)).unwrap_or(successors.len());
        let total = successors.len();
        if position == 0 {
            0
        } else if position >= total {
            max
        } else {
            let base = max >> (total - 1).min(62);
            max.min(base << (position - 1).min(62))
        }
    }

    /// Kafka's `validateVoterOnlyRequest`.
    fn validate_voter_only(&self, remote: NodeId, epoch: LeaderEpoch) -> Option<ErrorCode> {
        if epoch < self.role.epoch() {
            Some(ErrorCode::FencedLeaderEpoch)
        } else if remote.0 < 0 {
            Some(ErrorCode::InvalidRequest)
        } else {
            None
        }
    }

    /// Kafka's `validateLeaderOnlyRequest`.
    pub(super) fn validate_leader_only(&self, epoch: LeaderEpoch) -> Option<ErrorCode> {
        let current = self.role.epoch();
        if epoch < current {
            Some(ErrorCode::FencedLeaderEpoch)
        } else if epoch > current {
            Some(ErrorCode::UnknownLeaderEpoch)
        } else if !matches!(self.role, Role::Leader(_)) {
            Some(ErrorCode::NotLeaderOrFollower)
        } else {
            None
        }
    }

    pub(super) fn handle_epoch_response(
        &mut self,
        from: NodeId,
        correlation_id: u64,
        response: EpochResponse,
        end_quorum_epoch: bool,
    ) -> Result<()> {
        let kind = if end_quorum_epoch { RequestKind::EndQuorumEpoch } else { RequestKind::BeginQuorumEpoch };
        if !self.is_expected_answer(from, correlation_id, kind) {
            return Ok(());
        }
        if let Some(ok) =
            self.maybe_handle_common_response(response.error, response.leader_id, response.leader_epoch)?
        {
            self.finish_request(from, ok);
            return Ok(());
        }
        let ok = response.error.is_ok();
        if ok
            && end_quorum_epoch
            && let Role::Resigned(state) = &mut self.role
        {
            state.unacknowledged.remove(&from);
        }
        self.finish_request(from, ok);
        Ok(())
    }
}
