//! The leader's view of its epoch: what every replica has fetched, the high watermark,
//! check-quorum, the BeginQuorumEpoch heartbeat, pending proposals and parked fetches (Kafka's
//! `LeaderState`, `BatchAccumulator` and fetch purgatory).

use std::collections::{BTreeMap, BTreeSet};

use fjord_types::{LeaderEpoch, Offset, Timestamp};

use crate::config::QuorumConfig;
use crate::ids::{NodeId, ReplicaKey};
use crate::message::FetchRequest;
use crate::voters::VoterSet;

/// Observers that have not fetched for this long drop out of DescribeQuorum (Kafka's
/// `OBSERVER_SESSION_TIMEOUT_MS`).
const OBSERVER_SESSION_TIMEOUT_MS: i64 = 300_000;

/// What the leader knows of one replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReplicaState {
    pub(crate) key: ReplicaKey,
    /// The replica's last valid fetch offset: its durable log end offset at the time.
    pub(crate) end_offset: Option<Offset>,
    pub(crate) last_fetch: Option<Timestamp>,
    pub(crate) last_caught_up: Option<Timestamp>,
    /// The leader's log end offset when the replica last fetched.
    leader_end_at_last_fetch: Option<Offset>,
}

impl ReplicaState {
    fn new(key: ReplicaKey) -> ReplicaState {
        ReplicaState { key, end_offset: None, last_fetch: None, last_caught_up: None, leader_end_at_last_fetch: None }
    }

    /// Kafka's `updateFollowerState`: caught up now if it fetched from our end, or at its
    /// previous fetch if it has now read everything we had then.
    fn record_fetch(&mut self, fetch_offset: Offset, leader_end: Offset, now: Timestamp) {
        if fetch_offset >= leader_end {
            self.last_caught_up = Some(now);
        } else if let (Some(previous_end), Some(previous_fetch)) = (self.leader_end_at_last_fetch, self.last_fetch)
            && fetch_offset >= previous_end
        {
            self.last_caught_up = Some(self.last_caught_up.map_or(previous_fetch, |t| t.max(previous_fetch)));
        }
        self.end_offset = Some(fetch_offset);
        self.last_fetch = Some(now);
        self.leader_end_at_last_fetch = Some(leader_end);
    }
}

/// A fetch held by the leader until there is something new, its wait runs out, or leadership
/// changes.
#[derive(Clone, Debug)]
pub(crate) struct ParkedFetch {
    pub(crate) correlation_id: u64,
    pub(crate) request: FetchRequest,
    pub(crate) deadline: Timestamp,
}

/// Proposals accepted but not yet appended (Kafka's `BatchAccumulator`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Accumulator {
    pub(crate) records: Vec<Vec<u8>>,
    pub(crate) bytes: usize,
    /// When the oldest pending proposal arrived: the linger runs from here.
    pub(crate) since: Option<Timestamp>,
}

#[derive(Clone, Debug)]
pub(crate) struct LeaderState {
    pub(crate) epoch: LeaderEpoch,
    /// Where this epoch's records begin: the offset of its LeaderChange record.
    pub(crate) epoch_start_offset: Offset,
    pub(crate) high_watermark: Option<Offset>,
    pub(crate) local: ReplicaKey,
    /// Every voter, the leader included.
    pub(crate) voters: BTreeMap<NodeId, ReplicaState>,
    pub(crate) observers: BTreeMap<NodeId, ReplicaState>,
    /// Voters that fetched since check-quorum was last satisfied (never the leader).
    fetched_voters: BTreeSet<NodeId>,
    /// `None` with a single voter, which has no one to hear from (KAFKA-16144).
    pub(crate) check_quorum_deadline: Option<Timestamp>,
    check_quorum_timeout_ms: i64,
    /// When to repeat BeginQuorumEpoch to voters that have not fetched lately.
    pub(crate) begin_quorum_epoch_due: Timestamp,
    begin_quorum_epoch_interval_ms: i64,
    pub(crate) pending: Accumulator,
    pub(crate) parked: BTreeMap<NodeId, ParkedFetch>,
    /// The commit rule of KAFKA-12619: the high watermark moves only past this epoch's start.
    /// Always true, except in the planted bug `hw-past-old-epoch` of the simulator.
    pub(crate) require_own_epoch: bool,
}

impl LeaderState {
    pub(crate) fn new(
        epoch: LeaderEpoch,
        epoch_start_offset: Offset,
        local: ReplicaKey,
        voters: &VoterSet,
        config: &QuorumConfig,
        now: Timestamp,
    ) -> LeaderState {
        let voter_states: BTreeMap<NodeId, ReplicaState> =
            voters.keys().map(|k| (k.id, ReplicaState::new(k))).collect();
        let single = voters.len() == 1;
        LeaderState {
            epoch,
            epoch_start_offset,
            high_watermark: None,
            local,
            voters: voter_states,
            observers: BTreeMap::new(),
            fetched_voters: BTreeSet::new(),
            check_quorum_deadline: (!single).then(|| Timestamp(now.0.saturating_add(config.check_quorum_timeout_ms()))),
            check_quorum_timeout_ms: config.check_quorum_timeout_ms(),
            begin_quorum_epoch_due: now,
            begin_quorum_epoch_interval_ms: config.begin_quorum_epoch_interval_ms(),
            pending: Accumulator::default(),
            parked: BTreeMap::new(),
            require_own_epoch: true,
        }
    }

    /// Whether `key` counts as a voter (its id is a voter with a matching directory).
    pub(crate) fn is_voter(&self, key: &ReplicaKey) -> bool {
        self.voters.get(&key.id).is_some_and(|v| v.key.matches(key))
    }

    /// The leader's own durable log end offset. Returns whether the high watermark moved.
    pub(crate) fn update_local_end_offset(&mut self, end: Offset, now: Timestamp) -> bool {
        if let Some(state) = self.voters.get_mut(&self.local.id) {
            state.end_offset = Some(end);
            state.last_fetch = Some(now);
            state.last_caught_up = Some(now);
        }
        self.maybe_update_high_watermark()
    }

    /// A valid fetch from `key` at `fetch_offset`. Returns whether the high watermark moved.
    pub(crate) fn update_replica(
        &mut self,
        key: ReplicaKey,
        fetch_offset: Offset,
        leader_end: Offset,
        now: Timestamp,
    ) -> bool {
        if key.id == self.local.id {
            return false;
        }
        if self.is_voter(&key) {
            if let Some(state) = self.voters.get_mut(&key.id) {
                state.record_fetch(fetch_offset, leader_end, now);
            }
            self.update_check_quorum(key, now);
            self.maybe_update_high_watermark()
        } else {
            self.observers.entry(key.id).or_insert_with(|| ReplicaState::new(key)).key = key;
            if let Some(state) = self.observers.get_mut(&key.id) {
                state.record_fetch(fetch_offset, leader_end, now);
            }
            false
        }
    }

    /// Kafka's `updateCheckQuorumForFollowingVoter`: once a majority (the leader counting
    /// itself) has fetched, the check-quorum timer starts over.
    pub(crate) fn update_check_quorum(&mut self, key: ReplicaKey, now: Timestamp) {
        if !self.is_voter(&key) || key.id == self.local.id {
            return;
        }
        self.fetched_voters.insert(key.id);
        let majority = self.voters.len() / 2 + 1;
        if self.fetched_voters.len() + 1 >= majority {
            self.fetched_voters.clear();
            if self.check_quorum_deadline.is_some() {
                self.check_quorum_deadline = Some(Timestamp(now.0.saturating_add(self.check_quorum_timeout_ms)));
            }
        }
    }

    /// Kafka's `maybeUpdateHighWatermark`: the offset a majority of voters has reached, if it is
    /// past the start of this epoch (KAFKA-12619) and ahead of the current one.
    fn maybe_update_high_watermark(&mut self) -> bool {
        let mut ends: Vec<Offset> = self.voters.values().filter_map(|v| v.end_offset).collect();
        let majority = self.voters.len() / 2 + 1;
        if ends.len() < majority {
            return false;
        }
        ends.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = ends[majority - 1];
        if self.require_own_epoch && candidate <= self.epoch_start_offset {
            return false;
        }
        match self.high_watermark {
            Some(current) if candidate <= current => false,
            _ => {
                self.high_watermark = Some(candidate);
                true
            }
        }
    }

    pub(crate) fn check_quorum_expired(&self, now: Timestamp) -> bool {
        self.check_quorum_deadline.is_some_and(|deadline| now >= deadline)
    }

    /// Voters other than the leader that have not fetched within the heartbeat interval.
    pub(crate) fn voters_needing_begin_quorum_epoch(&self, now: Timestamp) -> Vec<ReplicaKey> {
        self.voters
            .values()
            .filter(|v| v.key.id != self.local.id)
            .filter(|v| v.last_fetch.is_none_or(|t| now.0 - t.0 >= self.begin_quorum_epoch_interval_ms))
            .map(|v| v.key)
            .collect()
    }

    pub(crate) fn schedule_begin_quorum_epoch(&mut self, now: Timestamp) {
        self.begin_quorum_epoch_due = Timestamp(now.0.saturating_add(self.begin_quorum_epoch_interval_ms));
    }

    /// The other voters, most caught up first: the order of EndQuorumEpoch's successors.
    pub(crate) fn successors_by_descending_fetch_offset(&self) -> Vec<ReplicaKey> {
        let mut others: Vec<&ReplicaState> = self.voters.values().filter(|v| v.key.id != self.local.id).collect();
        others.sort_by_key(|v| (std::cmp::Reverse(v.end_offset), v.key.id));
        others.into_iter().map(|v| v.key).collect()
    }

    /// Observers seen within the observer session timeout.
    pub(crate) fn live_observers(&self, now: Timestamp) -> impl Iterator<Item = &ReplicaState> + '_ {
        self.observers.values().filter(move |o| o.last_fetch.is_some_and(|t| now.0 - t.0 < OBSERVER_SESSION_TIMEOUT_MS))
    }

    pub(crate) fn validate(&self, local: NodeId) -> Result<(), String> {
        if self.local.id != local {
            return Err("leader state of another node".into());
        }
        if !self.voters.contains_key(&local) {
            return Err("a leader that is not a voter".into());
        }
        if let Some(hw) = self.high_watermark {
            if hw <= self.epoch_start_offset && self.require_own_epoch {
                return Err(format!("high watermark {hw} at or below the epoch start {}", self.epoch_start_offset));
            }
            let local_end = self.voters.get(&local).and_then(|v| v.end_offset);
            if local_end.is_none_or(|end| end < hw) {
                return Err(format!("high watermark {hw} beyond the leader's flushed end {local_end:?}"));
            }
        }
        if self.observers.keys().any(|id| self.voters.get(id).is_some_and(|v| self.observers[id].key == v.key)) {
            return Err("a voter listed as an observer".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(voters: &[i32]) -> LeaderState {
        let set = VoterSet::from_ids(voters.iter().copied()).unwrap();
        LeaderState::new(
            LeaderEpoch(3),
            Offset(10),
            ReplicaKey::of(voters[0]),
            &set,
            &QuorumConfig::default(),
            Timestamp(0),
        )
    }

    #[test]
    fn high_watermark_is_the_majority_offset_past_the_epoch_start() {
        let mut state = leader(&[1, 2, 3]);
        assert!(!state.update_local_end_offset(Offset(11), Timestamp(0)));
        // A follower at the epoch start: the LeaderChange record is not on a majority yet.
        assert!(!state.update_replica(ReplicaKey::of(2), Offset(10), Offset(11), Timestamp(1)));
        assert_eq!(state.high_watermark, None);
        assert!(state.update_replica(ReplicaKey::of(2), Offset(11), Offset(11), Timestamp(2)));
        assert_eq!(state.high_watermark, Some(Offset(11)));
        // It never moves back, even if a follower reports less (it truncated, or a late fetch).
        assert!(!state.update_replica(ReplicaKey::of(2), Offset(5), Offset(11), Timestamp(3)));
        assert_eq!(state.high_watermark, Some(Offset(11)));
    }

    #[test]
    fn an_observer_never_counts() {
        let mut state = leader(&[1, 2, 3]);
        state.update_local_end_offset(Offset(20), Timestamp(0));
        assert!(!state.update_replica(ReplicaKey::of(9), Offset(20), Offset(20), Timestamp(1)));
        assert_eq!(state.high_watermark, None);
        assert_eq!(state.observers.len(), 1);
    }

    #[test]
    fn check_quorum_needs_a_majority_within_the_timeout() {
        let mut state = leader(&[1, 2, 3, 4, 5]);
        assert!(!state.check_quorum_expired(Timestamp(2999)));
        assert!(state.check_quorum_expired(Timestamp(3000)));
        state.update_check_quorum(ReplicaKey::of(2), Timestamp(2000));
        assert!(state.check_quorum_expired(Timestamp(3000)), "two of five is not a majority");
        state.update_check_quorum(ReplicaKey::of(3), Timestamp(2500));
        assert!(!state.check_quorum_expired(Timestamp(5499)));
        assert!(state.check_quorum_expired(Timestamp(5500)));
        assert_eq!(leader(&[1]).check_quorum_deadline, None, "a single voter never resigns");
    }

    #[test]
    fn successors_are_ordered_by_fetch_offset() {
        let mut state = leader(&[1, 2, 3]);
        state.update_replica(ReplicaKey::of(3), Offset(7), Offset(11), Timestamp(1));
        assert_eq!(state.successors_by_descending_fetch_offset(), vec![ReplicaKey::of(3), ReplicaKey::of(2)]);
    }
}
