//! Role transitions (Kafka's `QuorumState.transitionTo*` with `KafkaRaftClient.onBecome*`), the
//! restart rules, and the two upcalls that follow every input: commits and leader changes.

use fjord_types::{ErrorCode, LeaderEpoch, Offset, Timestamp};

use super::{RaftNode, bug};
use crate::effect::Effect;
use crate::error::{Error, Result};
use crate::ids::{NodeId, ReplicaKey};
use crate::log::RaftLog;
use crate::message::{FetchResponse, MessageBody};
use crate::record::{Batch, BatchKind, ControlRecord, LeaderChangeMessage};
use crate::state::{Candidate, EpochElection, Follower, LeaderState, Prospective, Resigned, Role, Unattached};
use crate::store::{ElectionState, QuorumStateStore};

/// How many bytes of committed batches one `Effect::Commit` carries at most.
const COMMIT_READ_BYTES: usize = 8 * 1024 * 1024;

impl<L: RaftLog, S: QuorumStateStore> RaftNode<L, S> {
    /// Kafka's `QuorumState.initialize`: the role a node resumes in after a restart.
    pub(super) fn restore(&mut self, stored: ElectionState) -> Result<()> {
        let local = self.options.local;
        let is_voter = self.is_voter();
        let log_epoch = self.log.last_fetched_epoch();
        let high_watermark = None;
        self.role = if stored.epoch < log_epoch {
            // The log knows a newer epoch than the state file (the file was lost or is old).
            Role::Unattached(Unattached {
                epoch: log_epoch,
                voted_key: None,
                election_deadline: Timestamp(i64::MAX),
                high_watermark,
            })
        } else if is_voter && stored.leader_id == Some(local.id) {
            if bug!(self, RestartAsLeader) {
                return self.resume_leadership(stored.epoch);
            }
            // Never lead the same epoch twice: records lost from an unflushed tail would be
            // written again under the same (offset, epoch) (KAFKA-10527). Resigned also keeps
            // the node from voting in its own epoch.
            Role::Resigned(Resigned {
                epoch: stored.epoch,
                election_deadline: Timestamp(i64::MAX),
                preferred_successors: Vec::new(),
                unacknowledged: self.other_voters().collect(),
                high_watermark,
            })
        } else if let Some(leader) = stored.leader_id.filter(|l| *l != local.id) {
            Role::Follower(Follower {
                epoch: stored.epoch,
                leader_id: leader,
                voted_key: stored.voted_key,
                fetch_deadline: Timestamp(i64::MAX),
                has_fetched_from_leader: false,
                high_watermark,
                fetching_snapshot: None,
            })
        } else if is_voter && stored.voted_key.is_some_and(|k| k.matches(&local)) {
            Role::Candidate(Candidate {
                epoch: stored.epoch,
                election: EpochElection::new(&self.options.voters, local.id),
                election_deadline: Timestamp(i64::MAX),
                high_watermark,
            })
        } else {
            Role::Unattached(Unattached {
                epoch: stored.epoch,
                voted_key: stored.voted_key.filter(|k| k.id != local.id),
                election_deadline: Timestamp(i64::MAX),
                high_watermark,
            })
        };
        // The timers start now, drawn fresh.
        let election_deadline = if is_voter { self.random_election_timeout() } else { Timestamp(i64::MAX) };
        let fetch_deadline = self.after(self.options.config.fetch_timeout_ms);
        match &mut self.role {
            Role::Unattached(s) => s.election_deadline = election_deadline,
            Role::Candidate(s) => s.election_deadline = election_deadline,
            Role::Resigned(s) => s.election_deadline = election_deadline,
            Role::Follower(s) => s.fetch_deadline = fetch_deadline,
            Role::Prospective(_) | Role::Leader(_) => {}
        }
        self.persist()?;
        if self.options.voters.is_only_voter(&local)
            && matches!(self.role, Role::Unattached(_) | Role::Follower(_) | Role::Resigned(_))
        {
            // A single voter stands at once: there is no one to wait for.
            return self.transition_to_prospective();
        }
        if let Role::Candidate(state) = &self.role
            && state.election.is_granted()
        {
            return self.become_leader();
        }
        Ok(())
    }

    pub(super) fn other_voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        let local = self.options.local.id;
        self.options.voters.ids().filter(move |id| *id != local)
    }

    /// Leaves the leader role: parked fetches are answered NOT_LEADER_OR_FOLLOWER (Kafka
    /// completes its purgatory exceptionally) and pending proposals are dropped.
    fn leave_leadership(&mut self) {
        if let Role::Leader(state) = &mut self.role {
            let parked = std::mem::take(&mut state.parked);
            let epoch = state.epoch;
            let leader = Some(self.options.local.id);
            for (to, fetch) in parked {
                let body = MessageBody::FetchResponse(FetchResponse {
                    error: ErrorCode::NotLeaderOrFollower,
                    leader_epoch: epoch,
                    leader_id: leader,
                    high_watermark: None,
                    log_start_offset: self.log.log_start_offset(),
                    records: Vec::new(),
                    diverging_epoch: None,
                    snapshot_id: None,
                });
                self.respond(to, fetch.correlation_id, body);
            }
        }
    }

    /// Kafka's `transitionToUnattached`: a higher epoch with no known leader, or (from
    /// prospective, or for an observer) the same epoch.
    pub(crate) fn transition_to_unattached(&mut self, epoch: LeaderEpoch) -> Result<()> {
        let current = self.role.epoch();
        let same_epoch_allowed = matches!(self.role, Role::Prospective(_)) || !self.is_voter();
        if epoch < current || (epoch == current && !same_epoch_allowed) {
            return Err(Error::InvariantViolated(format!(
                "transition to unattached in epoch {epoch} from {:?} in epoch {current}",
                self.role.kind()
            )));
        }
        let election_deadline = if !self.is_voter() {
            Timestamp(i64::MAX)
        } else {
            match &self.role {
                Role::Candidate(s) => s.election_deadline,
                Role::Unattached(s) => s.election_deadline,
                Role::Resigned(s) => s.election_deadline,
                Role::Prospective(s) if !s.election.is_rejected() => s.election_deadline,
                _ => self.random_election_timeout(),
            }
        };
        let voted_key = if epoch == current { self.role.voted_key(self.options.local) } else { None };
        let high_watermark = self.role.high_watermark();
        self.leave_leadership();
        self.role = Role::Unattached(Unattached { epoch, voted_key, election_deadline, high_watermark });
        self.persist()?;
        self.requests.reset_all();
        Ok(())
    }

    /// Kafka's `transitionToFollower`: the leader of `epoch` is `leader`.
    pub(crate) fn transition_to_follower(&mut self, epoch: LeaderEpoch, leader: NodeId) -> Result<()> {
        let current = self.role.epoch();
        if leader == self.options.local.id
            || epoch < current
            || (epoch == current && matches!(self.role, Role::Leader(_)))
        {
            return Err(Error::InvariantViolated(format!(
                "transition to follower of {leader} in epoch {epoch} from {:?} in epoch {current}",
                self.role.kind()
            )));
        }
        // A vote cast in this epoch stays: the node must not vote again in it.
        let voted_key = if epoch == current { self.role.voted_key(self.options.local) } else { None };
        let high_watermark = self.role.high_watermark();
        self.leave_leadership();
        self.role = Role::Follower(Follower {
            epoch,
            leader_id: leader,
            voted_key,
            fetch_deadline: self.after(self.options.config.fetch_timeout_ms),
            has_fetched_from_leader: false,
            high_watermark,
            fetching_snapshot: None,
        });
        self.persist()?;
        self.requests.reset_all();
        Ok(())
    }

    /// Kafka's `transitionToProspective`: poll the voters with pre-votes, in memory only.
    pub(crate) fn transition_to_prospective(&mut self) -> Result<()> {
        if !self.is_voter() || matches!(self.role, Role::Leader(_) | Role::Prospective(_)) {
            return Err(Error::InvariantViolated(format!("transition to prospective from {:?}", self.role.kind())));
        }
        let local = self.options.local;
        let state = Prospective {
            epoch: self.role.epoch(),
            leader_id: match &self.role {
                Role::Follower(s) => Some(s.leader_id),
                _ => None,
            },
            voted_key: self.role.voted_key(local),
            election: EpochElection::new(&self.options.voters, local.id),
            election_deadline: self.random_election_timeout(),
            high_watermark: self.role.high_watermark(),
        };
        let granted = state.election.is_granted();
        self.role = Role::Prospective(state);
        self.requests.reset_all();
        if granted { self.transition_to_candidate() } else { Ok(()) }
    }

    /// Kafka's `transitionToCandidate`: a new epoch, a durable vote for itself.
    pub(crate) fn transition_to_candidate(&mut self) -> Result<()> {
        if !matches!(self.role, Role::Prospective(_)) {
            return Err(Error::InvariantViolated(format!("transition to candidate from {:?}", self.role.kind())));
        }
        let epoch = LeaderEpoch(self.role.epoch().0 + 1);
        let state = Candidate {
            epoch,
            election: EpochElection::new(&self.options.voters, self.options.local.id),
            election_deadline: self.random_election_timeout(),
            high_watermark: self.role.high_watermark(),
        };
        let granted = state.election.is_granted();
        self.role = Role::Candidate(state);
        self.persist()?;
        self.requests.reset_all();
        if granted { self.become_leader() } else { Ok(()) }
    }

    /// Kafka's `onBecomeLeader`: durable leadership, then the epoch's LeaderChange record,
    /// appended and flushed at once so the high watermark can move (KAFKA-12619).
    pub(crate) fn become_leader(&mut self) -> Result<()> {
        let Role::Candidate(candidate) = &self.role else {
            return Err(Error::InvariantViolated(format!("become leader from {:?}", self.role.kind())));
        };
        if !candidate.election.is_granted() {
            return Err(Error::InvariantViolated("become leader without a majority".into()));
        }
        let (epoch, granting) = (candidate.epoch, candidate.election.granting());
        self.start_leading(epoch, granting)
    }

    fn start_leading(&mut self, epoch: LeaderEpoch, granting: Vec<NodeId>) -> Result<()> {
        let local = self.options.local;
        let epoch_start = self.log.log_end_offset();
        let mut state =
            LeaderState::new(epoch, epoch_start, local, &self.options.voters, &self.options.config, self.now);
        state.require_own_epoch = !bug!(self, HwPastOldEpoch);
        self.role = Role::Leader(Box::new(state));
        self.persist()?;
        let record = ControlRecord::LeaderChange(LeaderChangeMessage {
            leader_id: local.id,
            voters: self.options.voters.ids().collect(),
            granting_voters: granting,
        });
        self.append_to_log(Batch {
            base_offset: epoch_start,
            epoch,
            append_timestamp: self.now,
            kind: BatchKind::Control,
            records: vec![record.encode()],
        })?;
        self.log.flush()?;
        let end = self.log.log_end_offset();
        let now = self.now;
        if let Role::Leader(state) = &mut self.role {
            state.update_local_end_offset(end, now);
        }
        self.requests.reset_all();
        Ok(())
    }

    /// The planted bug `restart-as-leader`: lead the stored epoch again after a restart.
    fn resume_leadership(&mut self, epoch: LeaderEpoch) -> Result<()> {
        self.role = Role::Candidate(Candidate {
            epoch,
            election: EpochElection::new(&self.options.voters, self.options.local.id),
            election_deadline: Timestamp(i64::MAX),
            high_watermark: None,
        });
        self.start_leading(epoch, vec![self.options.local.id])
    }

    /// Kafka's `transitionToResigned`: stop leading, tell the voters, wait an election timeout.
    /// Nothing new is persisted: the stored state (leader = this node) already restores as
    /// resigned.
    pub(crate) fn transition_to_resigned(&mut self, preferred_successors: Vec<ReplicaKey>) {
        let Role::Leader(state) = &self.role else { return };
        let (epoch, high_watermark) = (state.epoch, state.high_watermark);
        self.leave_leadership();
        let election_deadline = self.random_election_timeout();
        self.role = Role::Resigned(Resigned {
            epoch,
            election_deadline,
            preferred_successors,
            unacknowledged: self.other_voters().collect(),
            high_watermark,
        });
        self.requests.reset_all();
    }

    /// Kafka's `maybeTransition`: what a request or response says about the leader of an epoch.
    pub(crate) fn maybe_transition(&mut self, leader: Option<NodeId>, epoch: LeaderEpoch) -> Result<()> {
        let current = self.role.epoch();
        let known = self.leader_id();
        if epoch == current && leader.is_some() && known.is_some() && leader != known {
            return Err(Error::InvariantViolated(format!(
                "told that {leader:?} leads epoch {epoch}, which {known:?} leads"
            )));
        }
        if epoch > current {
            match leader {
                Some(l) if l != self.options.local.id => self.transition_to_follower(epoch, l),
                // A node that lost its disk (a new directory id, so now an observer) may hear
                // that its former self led an epoch: it cannot follow itself, so it waits for
                // the next epoch's leader. A voter hearing this has lost its quorum-state.
                Some(_) if !self.is_voter() => self.transition_to_unattached(epoch),
                Some(_) => {
                    Err(Error::InvariantViolated(format!("told that this node leads epoch {epoch} it never led")))
                }
                None => self.transition_to_unattached(epoch),
            }
        } else if let Some(l) = leader
            && known.is_none()
            && l != self.options.local.id
            && epoch == current
        {
            self.transition_to_follower(epoch, l)
        } else {
            Ok(())
        }
    }

    /// Delivers what became committed since the last call.
    pub(super) fn deliver_commits(&mut self) -> Result<()> {
        let Some(high_watermark) = self.role.high_watermark() else { return Ok(()) };
        while self.next_commit < high_watermark {
            let batches = self.read_log(self.next_commit, COMMIT_READ_BYTES)?;
            let committed: Vec<Batch> = batches.into_iter().take_while(|b| b.next_offset() <= high_watermark).collect();
            let Some(last) = committed.last() else { break };
            if committed[0].base_offset != self.next_commit {
                return Err(Error::InvariantViolated(format!(
                    "commit upcall at {} found a batch starting at {}",
                    self.next_commit, committed[0].base_offset
                )));
            }
            self.next_commit = last.next_offset();
            self.effects.push(Effect::Commit { batches: committed, high_watermark });
        }
        Ok(())
    }

    /// Announces a new leader or epoch. A leader announces itself only once everything before
    /// its epoch is delivered, so its state machine is current when it starts deciding.
    pub(super) fn announce_leader(&mut self) {
        let epoch = self.role.epoch();
        let leader = self.leader_id();
        let ready = match &self.role {
            Role::Leader(state) => self.next_commit > state.epoch_start_offset,
            // A resigned leader's epoch is announced only as a change of leader.
            Role::Resigned(_) => false,
            _ => true,
        };
        if ready && self.announced != Some((epoch, leader)) {
            self.announced = Some((epoch, leader));
            self.effects.push(Effect::LeaderChange { epoch, leader_id: leader });
        }
    }

    /// The follower's high watermark: the leader's, but never past its own log (Kafka's
    /// `updateFollowerHighWatermark`), and never backwards.
    pub(super) fn update_follower_high_watermark(&mut self, leader_high_watermark: Option<Offset>) {
        let end = self.log.log_end_offset();
        if let (Role::Follower(state), Some(leader_hw)) = (&mut self.role, leader_high_watermark) {
            let new = leader_hw.min(end);
            if state.high_watermark.is_none_or(|hw| new > hw) {
                state.high_watermark = Some(new);
            }
        }
    }
}
