//! What a node does when time passes (Kafka's `pollCurrentState` and its `poll*` per state):
//! timeouts, retries, heartbeats, linger; then the upcalls and the next wake-up.

use fjord_types::Timestamp;

use super::{RaftNode, bug};
use crate::effect::Effect;
use crate::error::Result;
use crate::ids::NodeId;
use crate::log::RaftLog;
use crate::message::{
    BeginQuorumEpochRequest, EndQuorumEpochRequest, FetchRequest, FetchSnapshotRequest, MessageBody, VoteRequest,
};
use crate::state::Role;
use crate::store::QuorumStateStore;

/// A transition during a poll polls again (the new role may have something to send); this
/// bounds the chain.
const MAX_POLL_ROUNDS: usize = 8;

impl<L: RaftLog, S: QuorumStateStore> RaftNode<L, S> {
    /// Runs the timers of the current role, then delivers commits, announces leader changes and
    /// asks for the next wake-up.
    pub(super) fn poll(&mut self) -> Result<()> {
        for _ in 0..MAX_POLL_ROUNDS {
            let before = (self.role.kind(), self.role.epoch());
            self.poll_role()?;
            if (self.role.kind(), self.role.epoch()) == before {
                break;
            }
        }
        self.deliver_commits()?;
        self.announce_leader();
        self.schedule_wake_up();
        Ok(())
    }

    fn poll_role(&mut self) -> Result<()> {
        let now = self.now;
        match &self.role {
            Role::Leader(_) => self.poll_leader(),
            Role::Candidate(s) => {
                if now >= s.election_deadline {
                    self.transition_to_prospective()
                } else {
                    self.send_vote_requests(false);
                    Ok(())
                }
            }
            Role::Prospective(s) => {
                if now >= s.election_deadline {
                    self.prospective_lost()
                } else {
                    self.send_vote_requests(true);
                    Ok(())
                }
            }
            Role::Follower(s) => {
                if now >= s.fetch_deadline {
                    if self.is_voter() {
                        self.transition_to_prospective()
                    } else {
                        let epoch = s.epoch;
                        self.transition_to_unattached(epoch)
                    }
                } else {
                    self.send_fetch_as_follower();
                    Ok(())
                }
            }
            Role::Unattached(s) => {
                if self.is_voter() && now >= s.election_deadline {
                    self.transition_to_prospective()
                } else {
                    self.send_fetch_to_any_bootstrap();
                    Ok(())
                }
            }
            Role::Resigned(s) => {
                if now >= s.election_deadline {
                    // Leave the epoch we led: nobody may follow us in it any more.
                    let next = fjord_types::LeaderEpoch(s.epoch.0 + 1);
                    self.transition_to_unattached(next)
                } else {
                    self.send_end_quorum_epoch();
                    Ok(())
                }
            }
        }
    }

    fn poll_leader(&mut self) -> Result<()> {
        let now = self.now;
        let linger = self.options.config.append_linger_ms;
        let Role::Leader(state) = &self.role else { return Ok(()) };
        if state.check_quorum_expired(now) && !bug!(self, NoCheckQuorum) {
            // Not heard from a majority within 1.5 fetch timeouts: another leader may exist by
            // now, and observers must not keep following us (KAFKA-15489).
            let successors = state.successors_by_descending_fetch_offset();
            self.transition_to_resigned(successors);
            return Ok(());
        }
        if state.pending.since.is_some_and(|since| now.0 - since.0 >= linger) {
            self.drain_proposals()?;
        }
        self.complete_parked(|parked| now >= parked.deadline)?;
        let Role::Leader(state) = &self.role else { return Ok(()) };
        if now >= state.begin_quorum_epoch_due {
            let (epoch, local) = (state.epoch, self.options.local.id);
            for voter in state.voters_needing_begin_quorum_epoch(now) {
                if self.requests.is_ready(voter.id, now) {
                    let body = MessageBody::BeginQuorumEpochRequest(BeginQuorumEpochRequest {
                        leader_id: local,
                        leader_epoch: epoch,
                        voter_key: voter,
                    });
                    self.send_request(voter.id, body);
                }
            }
            if let Role::Leader(state) = &mut self.role {
                state.schedule_begin_quorum_epoch(now);
            }
        }
        Ok(())
    }

    fn send_vote_requests(&mut self, pre_vote: bool) {
        let now = self.now;
        let (epoch, targets) = match &self.role {
            Role::Prospective(s) if !s.election.is_rejected() => (s.epoch, s.election.unrecorded().collect::<Vec<_>>()),
            Role::Candidate(s) if !s.election.is_rejected() => (s.epoch, s.election.unrecorded().collect::<Vec<_>>()),
            _ => return,
        };
        let last = self.log.end_offset();
        for voter in targets {
            if voter == self.options.local.id || !self.requests.is_ready(voter, now) {
                continue;
            }
            let Some(voter_key) = self.options.voters.get(voter).map(|v| v.key) else { continue };
            let body = MessageBody::VoteRequest(VoteRequest {
                candidate_epoch: epoch,
                candidate_key: self.options.local,
                voter_key,
                last_offset_epoch: last.epoch,
                last_offset: last.offset,
                pre_vote,
            });
            self.send_request(voter, body);
        }
    }

    /// Kafka's `maybeSendFetchToBestNode`: fetch from the leader, or, if it stopped answering,
    /// ask another voter who leads now.
    fn send_fetch_as_follower(&mut self) {
        let now = self.now;
        let Role::Follower(state) = &self.role else { return };
        let leader = state.leader_id;
        if self.requests.has_timed_out(leader, now) {
            self.requests.reset(leader);
            self.send_fetch_to_any_bootstrap();
        } else if self.requests.is_backing_off(leader, now) {
            self.send_fetch_to_any_bootstrap();
        } else if !self.requests.has_inflight(now) {
            let body = self.fetch_body();
            self.send_request(leader, body);
        }
    }

    fn fetch_body(&self) -> MessageBody {
        let config = &self.options.config;
        if let Role::Follower(state) = &self.role
            && let Some(download) = &state.fetching_snapshot
        {
            return MessageBody::FetchSnapshotRequest(FetchSnapshotRequest {
                replica_key: self.options.local,
                current_leader_epoch: state.epoch,
                snapshot_id: download.id,
                position: download.position,
                max_bytes: config.fetch_snapshot_max_bytes,
            });
        }
        MessageBody::FetchRequest(FetchRequest {
            replica_key: self.options.local,
            current_leader_epoch: self.role.epoch(),
            fetch_offset: self.log.log_end_offset(),
            last_fetched_epoch: self.log.last_fetched_epoch(),
            high_watermark: self.role.high_watermark(),
            max_wait_ms: config.fetch_max_wait_ms,
            max_bytes: config.fetch_max_bytes,
        })
    }

    /// Kafka's `maybeSendFetchToAnyBootstrap`: a Fetch to some voter that can take a request,
    /// so an unattached node or an observer learns the leader from the answer.
    fn send_fetch_to_any_bootstrap(&mut self) {
        let now = self.now;
        if self.requests.has_inflight(now) {
            return;
        }
        let ready: Vec<NodeId> = self.other_voters().filter(|id| self.requests.is_ready(*id, now)).collect();
        if ready.is_empty() {
            return;
        }
        let target = ready[self.rng.below(ready.len() as u64) as usize];
        let body = match self.fetch_body() {
            // A snapshot download goes only to the leader.
            MessageBody::FetchSnapshotRequest(_) => return,
            body => body,
        };
        self.send_request(target, body);
    }

    fn send_end_quorum_epoch(&mut self) {
        let now = self.now;
        let Role::Resigned(state) = &self.role else { return };
        let request = EndQuorumEpochRequest {
            leader_id: self.options.local.id,
            leader_epoch: state.epoch,
            preferred_successors: state.preferred_successors.clone(),
        };
        let targets: Vec<NodeId> =
            state.unacknowledged.iter().copied().filter(|id| self.requests.is_ready(*id, now)).collect();
        for voter in targets {
            self.send_request(voter, MessageBody::EndQuorumEpochRequest(request.clone()));
        }
    }

    /// Emits `WakeUp` for the earliest moment something will be due, if it changed.
    fn schedule_wake_up(&mut self) {
        let now = self.now;
        let mut deadlines: Vec<Timestamp> = Vec::new();
        match &self.role {
            Role::Unattached(s) => deadlines.push(s.election_deadline),
            Role::Prospective(s) => deadlines.push(s.election_deadline),
            Role::Candidate(s) => deadlines.push(s.election_deadline),
            Role::Follower(s) => deadlines.push(s.fetch_deadline),
            Role::Resigned(s) => deadlines.push(s.election_deadline),
            Role::Leader(s) => {
                deadlines.extend(s.check_quorum_deadline);
                deadlines.push(s.begin_quorum_epoch_due);
                deadlines.extend(
                    s.pending.since.map(|t| Timestamp(t.0.saturating_add(self.options.config.append_linger_ms))),
                );
                deadlines.extend(s.parked.values().map(|p| p.deadline));
            }
        }
        deadlines.extend(self.requests.next_deadline(now));
        let at = deadlines.into_iter().filter(|t| t.0 != i64::MAX).map(|t| t.max(Timestamp(now.0 + 1))).min();
        if let Some(at) = at
            && self.wake_up != Some(at)
        {
            self.wake_up = Some(at);
            self.effects.push(Effect::WakeUp { at });
        }
    }
}
