//! Vote, with KIP-996's pre-vote (Kafka's `handleVoteRequest` and `handleVoteResponse`, and the
//! `canGrantVote` of each state).

use fjord_types::ErrorCode;

use super::{RaftNode, bug};
use crate::error::Result;
use crate::ids::{NodeId, OffsetAndEpoch, ReplicaKey};
use crate::log::RaftLog;
use crate::message::{INVALID_VOTER_KEY, MessageBody, VoteRequest, VoteResponse};
use crate::requests::RequestKind;
use crate::state::Role;
use crate::store::QuorumStateStore;

impl<L: RaftLog, S: QuorumStateStore> RaftNode<L, S> {
    pub(super) fn vote_response(&self, error: ErrorCode, granted: bool) -> MessageBody {
        MessageBody::VoteResponse(VoteResponse {
            error,
            leader_epoch: self.role.epoch(),
            leader_id: self.leader_id(),
            vote_granted: granted,
        })
    }

    pub(super) fn handle_vote_request(
        &mut self,
        from: NodeId,
        correlation_id: u64,
        request: VoteRequest,
    ) -> Result<()> {
        let last = OffsetAndEpoch::new(request.last_offset, request.last_offset_epoch);
        // A candidate bumps its epoch before asking, so its log cannot hold records of that
        // epoch; a prospective asks in its current epoch, which its log may hold.
        let illegal_epoch =
            if request.pre_vote { last.epoch > request.candidate_epoch } else { last.epoch >= request.candidate_epoch };
        if last.offset.0 < 0 || last.epoch.0 < 0 || illegal_epoch || request.candidate_key.id.0 < 0 {
            let body = self.vote_response(ErrorCode::InvalidRequest, false);
            self.respond(from, correlation_id, body);
            return Ok(());
        }
        if request.candidate_epoch < self.role.epoch() {
            let body = self.vote_response(ErrorCode::FencedLeaderEpoch, false);
            self.respond(from, correlation_id, body);
            return Ok(());
        }
        if request.candidate_epoch > self.role.epoch() {
            self.transition_to_unattached(request.candidate_epoch)?;
        }
        if !request.voter_key.matches(&self.options.local) {
            let body = self.vote_response(INVALID_VOTER_KEY, false);
            self.respond(from, correlation_id, body);
            return Ok(());
        }
        let up_to_date = last >= self.log.end_offset();
        let granted = self.is_voter()
            && self.options.voters.is_voter(&request.candidate_key)
            && self.can_grant_vote(request.candidate_key, up_to_date, request.pre_vote);
        if granted && !request.pre_vote {
            self.record_vote(request.candidate_key)?;
        }
        let body = self.vote_response(ErrorCode::None, granted);
        self.respond(from, correlation_id, body);
        Ok(())
    }

    /// Each state's `canGrantVote`. Only a node with no vote and no leader in this epoch grants
    /// a binding vote; pre-votes are granted to any candidate whose log is at least as up to
    /// date, except by a follower that has heard from its leader (the leader is alive).
    fn can_grant_vote(&self, candidate: ReplicaKey, up_to_date: bool, pre_vote: bool) -> bool {
        let unattached_or_prospective = |voted: Option<ReplicaKey>, leader: Option<NodeId>| {
            if pre_vote {
                up_to_date
            } else if let Some(voted) = voted {
                // The same vote again (a retry) is fine; another is not.
                voted.id == candidate.id && voted.matches(&candidate)
            } else {
                leader.is_none() && up_to_date
            }
        };
        match &self.role {
            Role::Unattached(s) => unattached_or_prospective(s.voted_key, None),
            Role::Prospective(s) => unattached_or_prospective(s.voted_key, s.leader_id),
            Role::Follower(s) => pre_vote && !s.has_fetched_from_leader && up_to_date,
            Role::Candidate(_) | Role::Resigned(_) => pre_vote && up_to_date,
            Role::Leader(_) => false,
        }
    }

    /// Remembers a binding vote, durably, before the grant can leave the node.
    fn record_vote(&mut self, candidate: ReplicaKey) -> Result<()> {
        let deadline = self.random_election_timeout();
        let fresh_vote = match &mut self.role {
            Role::Unattached(s) if s.voted_key.is_none() => {
                s.voted_key = Some(candidate);
                // The candidate has as good a chance as we do: give it time.
                s.election_deadline = deadline;
                true
            }
            Role::Prospective(s) if s.voted_key.is_none() => {
                s.voted_key = Some(candidate);
                s.election_deadline = deadline;
                true
            }
            _ => false,
        };
        if fresh_vote && !bug!(self, VoteNotPersisted) {
            self.persist()?;
        }
        Ok(())
    }

    pub(super) fn handle_vote_response(
        &mut self,
        from: NodeId,
        correlation_id: u64,
        response: VoteResponse,
    ) -> Result<()> {
        // A prospective waits for answers to pre-votes, a candidate for answers to votes: a
        // grant of one kind never counts as the other.
        let kind = if matches!(self.role, Role::Prospective(_)) { RequestKind::PreVote } else { RequestKind::Vote };
        if !self.is_expected_answer(from, correlation_id, kind) {
            return Ok(());
        }
        if let Some(ok) =
            self.maybe_handle_common_response(response.error, response.leader_id, response.leader_epoch)?
        {
            self.finish_request(from, ok);
            return Ok(());
        }
        if !response.error.is_ok() {
            self.finish_request(from, false);
            return Ok(());
        }
        self.finish_request(from, true);
        if response.leader_epoch != self.role.epoch() {
            return Ok(());
        }
        let (won, lost) = match &mut self.role {
            Role::Prospective(s) => {
                if response.vote_granted {
                    s.election.record_granted(from)
                } else {
                    s.election.record_rejected(from)
                };
                (s.election.is_granted(), s.election.is_rejected())
            }
            Role::Candidate(s) => {
                if response.vote_granted {
                    s.election.record_granted(from)
                } else {
                    s.election.record_rejected(from)
                };
                (s.election.is_granted(), false)
            }
            _ => return Ok(()),
        };
        match (&self.role, won, lost) {
            (Role::Prospective(_), true, _) => self.transition_to_candidate(),
            (Role::Prospective(_), _, true) => self.prospective_lost(),
            (Role::Candidate(_), true, _) => self.become_leader(),
            // A candidate that lost waits out its election timeout, then polls again.
            _ => Ok(()),
        }
    }

    /// Kafka's `prospectiveTransitionAfterElectionLoss`: back to following the leader it had,
    /// or unattached in the same epoch.
    pub(super) fn prospective_lost(&mut self) -> Result<()> {
        let Role::Prospective(state) = &self.role else { return Ok(()) };
        let epoch = state.epoch;
        match state.leader_id {
            Some(leader) => self.transition_to_follower(epoch, leader),
            None => self.transition_to_unattached(epoch),
        }
    }
}
