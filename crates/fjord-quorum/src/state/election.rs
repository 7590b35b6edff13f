//! The tally of one election or pre-vote round (Kafka's `EpochElection`).

use std::collections::BTreeMap;

use crate::ids::NodeId;
use crate::voters::VoterSet;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Vote {
    Unrecorded,
    Granted,
    Rejected,
}

/// Every voter's answer so far; the local node has granted its own.
#[derive(Clone, Debug)]
pub(crate) struct EpochElection {
    votes: BTreeMap<NodeId, Vote>,
}

impl EpochElection {
    pub(crate) fn new(voters: &VoterSet, local: NodeId) -> EpochElection {
        let mut votes: BTreeMap<NodeId, Vote> = voters.ids().map(|id| (id, Vote::Unrecorded)).collect();
        votes.insert(local, Vote::Granted);
        EpochElection { votes }
    }

    fn majority(&self) -> usize {
        self.votes.len() / 2 + 1
    }

    fn count(&self, vote: Vote) -> usize {
        self.votes.values().filter(|v| **v == vote).count()
    }

    /// Records a grant; a voter's first answer is the one that counts. Returns whether it was new.
    pub(crate) fn record_granted(&mut self, voter: NodeId) -> bool {
        self.record(voter, Vote::Granted)
    }

    /// Records a rejection; see [`EpochElection::record_granted`].
    pub(crate) fn record_rejected(&mut self, voter: NodeId) -> bool {
        self.record(voter, Vote::Rejected)
    }

    fn record(&mut self, voter: NodeId, vote: Vote) -> bool {
        match self.votes.get_mut(&voter) {
            Some(slot @ Vote::Unrecorded) => {
                *slot = vote;
                true
            }
            _ => false,
        }
    }

    /// A majority granted.
    pub(crate) fn is_granted(&self) -> bool {
        self.count(Vote::Granted) >= self.majority()
    }

    /// Too many rejected for a majority to grant.
    pub(crate) fn is_rejected(&self) -> bool {
        self.count(Vote::Granted) + self.count(Vote::Unrecorded) < self.majority()
    }

    /// Voters that have not answered.
    pub(crate) fn unrecorded(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.votes.iter().filter(|(_, v)| **v == Vote::Unrecorded).map(|(id, _)| *id)
    }

    /// Voters that granted.
    pub(crate) fn granting(&self) -> Vec<NodeId> {
        self.votes.iter().filter(|(_, v)| **v == Vote::Granted).map(|(id, _)| *id).collect()
    }

    pub(crate) fn validate(&self, local: NodeId) -> Result<(), String> {
        if self.votes.get(&local) != Some(&Vote::Granted) {
            return Err("the local node's own vote is missing from its election".into());
        }
        if self.is_granted() && self.is_rejected() {
            return Err("an election both won and lost".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_voters() {
        let voters = VoterSet::from_ids([1, 2, 3]).unwrap();
        let mut election = EpochElection::new(&voters, NodeId(1));
        assert!(!election.is_granted() && !election.is_rejected());
        assert!(election.record_rejected(NodeId(2)));
        assert!(!election.record_granted(NodeId(2)), "the first answer counts");
        assert!(!election.is_rejected());
        assert!(election.record_granted(NodeId(3)));
        assert!(election.is_granted());
        assert_eq!(election.granting(), vec![NodeId(1), NodeId(3)]);
        assert!(!election.record_granted(NodeId(9)), "not a voter");
    }

    #[test]
    fn a_single_voter_wins_alone() {
        let voters = VoterSet::from_ids([1]).unwrap();
        assert!(EpochElection::new(&voters, NodeId(1)).is_granted());
    }
}
