//! Deliberately broken variants of the replication core, compiled only into this crate's
//! tests, so the replication simulation (`sim_tests.rs`) can show that each of its checkers
//! finds the bug it is there for. A release build has none of this code.

use std::cell::Cell;

/// A planted bug.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Bug {
    /// A follower joins the ISR once it reaches the high watermark, even if it does not yet
    /// hold the start of the leader's epoch (KAFKA-7128).
    ExpandBeforeEpochStart,
    /// The high watermark advances while the committed ISR is below `min.insync.replicas`
    /// (KAFKA-15583).
    HwBelowMinIsr,
    /// A follower truncates at the start of the diverging epoch the leader names, not at its
    /// end, cutting records the leader still holds.
    TruncateAtEpochStart,
    /// The leader counts a diverging follower's fetch offset as what it holds.
    CountDivergingFetch,
}

thread_local! {
    static ACTIVE: Cell<Option<Bug>> = const { Cell::new(None) };
}

/// Whether `bug` is planted on this thread.
pub(crate) fn active(bug: Bug) -> bool {
    ACTIVE.with(|a| a.get() == Some(bug))
}

/// Plants `bug` (or none) on this thread, for the rest of a test.
pub(crate) fn plant(bug: Option<Bug>) {
    ACTIVE.with(|a| a.set(bug));
}
