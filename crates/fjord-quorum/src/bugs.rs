//! Deliberately broken variants of the core, compiled only for tests and for `fjord-sim` (the
//! `sim-bugs` feature), so the simulator can show that each of its checkers finds the bug it is
//! there for. A build without the feature has none of this code.

use std::fmt;
use std::str::FromStr;

/// A planted bug.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Bug {
    /// A vote is granted without being written to the quorum-state store first, so a restarted
    /// voter may vote again in the same epoch.
    VoteNotPersisted,
    /// A voting follower acknowledges (fetches past) records it has not flushed, so the leader
    /// counts records toward the high watermark that a crash takes away (KAFKA-10533's cousin
    /// on the follower side).
    CommitBeforeFlush,
    /// The leader advances the high watermark over records of older epochs without first
    /// replicating a record of its own epoch (Raft's figure 8; KAFKA-12619).
    HwPastOldEpoch,
    /// On a diverging-epoch answer the follower cuts at the start of the diverging epoch instead
    /// of its end, and the guard that refuses truncation below the high watermark is off.
    TruncateBelowHw,
    /// The leader never resigns for lack of fetches from a majority (KAFKA-15489).
    NoCheckQuorum,
    /// A restarted leader takes up its old epoch again instead of resigning (KAFKA-10527).
    RestartAsLeader,
    /// Correlation ids start at 1 on every start and an answer is matched by (peer,
    /// correlation id) alone, not by the kind and epoch of the request: a late answer to the
    /// previous incarnation's request is taken for the answer to a new one.
    ReusedCorrelationIds,
}

impl Bug {
    /// Every bug, with its command-line name.
    pub const ALL: &'static [(Bug, &'static str)] = &[
        (Bug::VoteNotPersisted, "vote-not-persisted"),
        (Bug::CommitBeforeFlush, "commit-before-flush"),
        (Bug::HwPastOldEpoch, "hw-past-old-epoch"),
        (Bug::TruncateBelowHw, "truncate-below-hw"),
        (Bug::NoCheckQuorum, "no-check-quorum"),
        (Bug::RestartAsLeader, "restart-as-leader"),
        (Bug::ReusedCorrelationIds, "reused-correlation-ids"),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        Bug::ALL.iter().find(|(b, _)| *b == self).map_or("?", |(_, n)| n)
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Bug, String> {
        Bug::ALL.iter().find(|(_, n)| *n == s).map(|(b, _)| *b).ok_or_else(|| {
            let names: Vec<&str> = Bug::ALL.iter().map(|(_, n)| *n).collect();
            format!("unknown bug {s:?}; known: {}", names.join(", "))
        })
    }
}
