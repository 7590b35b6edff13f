//! Deterministic simulation of Fjord's quorum (`fjord-quorum`), in the manner of Kafka's
//! `RaftEventSimulationTest`, FoundationDB's simulator and TigerBeetle's VOPR.
//!
//! A run is a seeded world: one virtual clock and one event queue; a network that delays,
//! drops, duplicates and reorders messages and cuts links one way or both; disks that lose
//! unflushed writes on a crash (keeping a random prefix of them, tearing the next), fail an
//! fsync or a quorum-state write on demand, and can be wiped; processes that crash and restart
//! at any event. A cluster of 1, 3 or 5 voters and up to 2 observers replicates a small
//! key-value state machine while a client writes to it, through a chaos phase of mixed faults,
//! then everything heals and the run checks that a proposal commits and every node catches up.
//!
//! After every event the [`checkers`] test the safety invariants (election safety, durable
//! votes, log matching, leader completeness, state-machine safety, monotonic high watermark, no
//! truncation below it, snapshot consistency, each node's `validate()`), and a periodic audit
//! tests check-quorum and, after healing, liveness. One `u64` seed reproduces a run exactly; a
//! failing run reports its seed, the broken invariant and a readable trace.
//!
//! `--bug NAME` switches on one of `fjord-quorum`'s planted bugs (the `sim-bugs` feature, which
//! only this crate enables) to show that the checkers find it.
//!
//! This crate is a test tool: it depends on `fjord-quorum` and `fjord-types` only, and uses its
//! own seeded generator ([`fjord_quorum::Prng`]) rather than a randomness crate, so a seed means
//! the same run on every machine and every version of its dependencies.

#![warn(missing_docs)]

pub mod checkers;
mod disk;
mod kv;
mod network;
mod scenario;
mod trace;
mod world;

pub use fjord_quorum::Bug;
pub use scenario::{CATCH_UP_BOUND_MS, LIVENESS_BOUND_MS, Outcome, RunOptions, election_after_leader_loss, run};

/// Runs seeds `first..first + count` and returns the first that breaks an invariant.
pub fn hunt(first: u64, count: u64, bug: Option<Bug>, consequences_only: bool) -> Option<Outcome> {
    (first..first + count)
        .map(|seed| run(&RunOptions { seed, bug, full_trace: false, consequences_only }))
        .find(|o| o.violation.is_some())
}
