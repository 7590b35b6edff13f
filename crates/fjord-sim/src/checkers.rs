//! The invariants, checked after every event. Each check has a name, printed with a
//! violation, so a failing seed says which property broke:
//!
//! - `election-safety`: at most one leader per epoch, across every node's memory and every
//!   persisted quorum-state (Kafka's `SingleLeader`).
//! - `durable-votes`: a granted vote is on disk before the grant leaves the voter, a voter never
//!   grants two candidates in one epoch (across crashes), and the persisted epoch never goes back
//!   (Kafka's `MonotonicEpoch`).
//! - `log-matching`: an (offset, epoch) names one batch, with one predecessor, in every log.
//! - `leader-completeness`: a new leader's log holds every batch committed before, at any time
//!   by any node (or its snapshot covers it whole).
//! - `state-machine-safety`: every node applies the same batch at each offset and reaches the
//!   same state there; committed batches never overlap, whichever was applied first.
//! - `monotonic-high-watermark`: a node's high watermark never goes back, nor does the leaders'
//!   as epochs advance; and a majority of voters has the leader's high watermark on disk
//!   (Kafka's `MajorityReachedHighWatermark`), a wiped voter counting for what its lost disk
//!   held.
//! - `no-truncation-below-high-watermark`: no node cuts below its high watermark, and no node
//!   ever removes a committed batch it holds, by a truncation or by emptying its log for a
//!   snapshot, whatever it remembers after a restart.
//! - `snapshot-consistency`: a snapshot holds exactly the state at its offset, names the epoch of
//!   its last record, covers only committed records, and a leader never loads one (KAFKA-12958).
//! - `node-validate`: every node's own `validate()`.
//! - `node-failure`: a node stopped on anything but an injected storage fault.

use std::collections::BTreeMap;
use std::fmt;

use fjord_quorum::{
    DriverEvent, Message, MessageBody, NodeId, OffsetAndEpoch, RaftLog, ReplicaKey, RoleKind, SnapshotId,
};
use fjord_types::{LeaderEpoch, Offset, Timestamp};

use crate::disk::AppendRecord;
use crate::kv::{AppliedBatch, fnv1a};
use crate::world::SimNode;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which checker.
    pub checker: &'static str,
    /// When (virtual ms).
    pub at: Timestamp,
    /// What it saw.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] at {} ms: {}", self.checker, self.at.0, self.message)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchIdentity {
    next_offset: Offset,
    hash: u64,
    previous_epoch: Option<LeaderEpoch>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Committed {
    epoch: LeaderEpoch,
    next_offset: Offset,
    hash: u64,
}

/// Everything the checkers remember across the run.
#[derive(Debug, Default)]
pub struct Checkers {
    now: Timestamp,
    leaders: BTreeMap<LeaderEpoch, NodeId>,
    votes: BTreeMap<(NodeId, LeaderEpoch), ReplicaKey>,
    stored_epochs: BTreeMap<NodeId, LeaderEpoch>,
    batches: BTreeMap<(Offset, LeaderEpoch), BatchIdentity>,
    committed: BTreeMap<Offset, Committed>,
    state_at: BTreeMap<Offset, u64>,
    committed_end: Offset,
    leader_high_watermarks: BTreeMap<LeaderEpoch, Offset>,
    /// Voters whose disk was wiped, with the durable end of the disk they lost: what they held
    /// still counts toward the majorities formed before the wipe.
    wiped: BTreeMap<ReplicaKey, Offset>,
    /// Skip the two checks that look at a mechanism rather than its consequence (a vote on disk
    /// at the moment it is granted; the high watermark on a majority of disks), to show that
    /// the consequences of a bug are caught too.
    pub consequences_only: bool,
    /// Counters of what the run exercised.
    pub coverage: Coverage,
}

/// What a run exercised, summed over runs by the sim tool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Truncations of a follower's log (divergence).
    pub truncations: u64,
    /// Snapshots loaded by a follower or at a restart.
    pub snapshot_loads: u64,
    /// Snapshots created.
    pub snapshots_created: u64,
    /// Binding votes granted.
    pub votes_granted: u64,
    /// Process and machine crashes.
    pub crashes: u64,
    /// Unflushed batches lost in crashes.
    pub lost_batches: u64,
    /// Injected fsync or quorum-state write failures that stopped a node.
    pub storage_failures: u64,
    /// Network partitions (full, split or one way).
    pub partitions: u64,
    /// Disks wiped.
    pub wipes: u64,
    /// Processes frozen for a while (SIGSTOP).
    pub stalls: u64,
    /// Requests whose sender heard that they failed.
    pub failed_requests: u64,
}

impl std::ops::AddAssign for Coverage {
    fn add_assign(&mut self, other: Coverage) {
        self.truncations += other.truncations;
        self.snapshot_loads += other.snapshot_loads;
        self.snapshots_created += other.snapshots_created;
        self.votes_granted += other.votes_granted;
        self.crashes += other.crashes;
        self.lost_batches += other.lost_batches;
        self.storage_failures += other.storage_failures;
        self.partitions += other.partitions;
        self.wipes += other.wipes;
        self.stalls += other.stalls;
        self.failed_requests += other.failed_requests;
    }
}

type Checked = Result<(), Violation>;

impl Checkers {
    fn fail(&self, checker: &'static str, message: String) -> Checked {
        Err(Violation { checker, at: self.now, message })
    }

    /// The end of the committed prefix seen so far.
    pub fn committed_end(&self) -> Offset {
        self.committed_end
    }

    /// Whether the batch holding `offset` is committed in `epoch`.
    pub fn is_committed(&self, proposal: OffsetAndEpoch) -> bool {
        self.committed
            .range(..=proposal.offset)
            .next_back()
            .is_some_and(|(_, c)| c.epoch == proposal.epoch && proposal.offset < c.next_offset)
    }

    pub(crate) fn set_now(&mut self, now: Timestamp) {
        self.now = now;
    }

    /// A node handled an input: its journal, the batches it applied, what its driver reported,
    /// and (if the input was a vote request) how it answered.
    pub(crate) fn after_step(
        &mut self,
        node: &mut SimNode,
        events: &[DriverEvent],
        delivered: Option<(NodeId, &Message)>,
        outbox: &[(NodeId, Message)],
        became_leader: bool,
    ) -> Checked {
        let id = node.id;
        let Some(driver) = node.driver() else { return Ok(()) };
        if let Err(reason) = driver.node().validate() {
            return self.fail("node-validate", format!("{id:?}: {reason}"));
        }
        let (appends, truncations) = {
            let mut probe = node.probe.borrow_mut();
            (std::mem::take(&mut probe.appends), std::mem::take(&mut probe.truncations))
        };
        for truncation in truncations {
            self.coverage.truncations += 1;
            let offset = truncation.offset;
            if node.high_watermark_before.is_some_and(|hw| offset < hw) {
                return self.fail(
                    "no-truncation-below-high-watermark",
                    format!("{id:?} truncated to {offset}, below its high watermark {:?}", node.high_watermark_before),
                );
            }
            // A node that holds a committed batch holds the leader's log up to it (log
            // matching), so no leader can tell it to drop it: a cut through committed records
            // is a bug even when the node forgot its high watermark in a restart.
            for (base, next_offset, hash) in &truncation.removed {
                let committed = Committed { epoch: base.epoch, next_offset: *next_offset, hash: *hash };
                if self.committed.get(&base.offset) == Some(&committed) {
                    let how = if truncation.to_snapshot { "emptied its log for a snapshot at" } else { "truncated to" };
                    return self.fail(
                        "no-truncation-below-high-watermark",
                        format!("{id:?} {how} {offset}, removing the committed batch at {base:?}"),
                    );
                }
            }
        }
        for append in appends {
            self.check_append(id, append)?;
        }
        let Some(driver) = node.driver_mut() else { return Ok(()) };
        let applied = std::mem::take(&mut driver.machine_mut().applied);
        for batch in applied {
            self.check_applied(id, batch)?;
        }
        for event in events {
            self.check_event(node, event)?;
        }
        if let Some((from, message)) = delivered {
            self.check_vote(node, from, message, outbox)?;
        }
        self.check_stored_state(node)?;
        self.check_high_watermark(node)?;
        if became_leader {
            self.check_leader_completeness(node)?;
        }
        Ok(())
    }

    fn check_append(&mut self, node: NodeId, append: AppendRecord) -> Checked {
        let identity =
            BatchIdentity { next_offset: append.next_offset, hash: append.hash, previous_epoch: append.previous_epoch };
        match self.batches.get(&(append.base.offset, append.base.epoch)) {
            None => {
                self.batches.insert((append.base.offset, append.base.epoch), identity);
                Ok(())
            }
            Some(known) if *known == identity => Ok(()),
            Some(known) => self.fail(
                "log-matching",
                format!("{node:?} appended {:?} as {identity:?}, but another log has it as {known:?}", append.base),
            ),
        }
    }

    fn check_applied(&mut self, node: NodeId, batch: AppliedBatch) -> Checked {
        let committed = Committed { epoch: batch.epoch, next_offset: batch.next_offset, hash: batch.hash };
        match self.committed.get(&batch.base_offset) {
            None => {
                if let Some((offset, before)) = self.committed.range(..batch.base_offset).next_back()
                    && before.next_offset > batch.base_offset
                {
                    return self.fail(
                        "state-machine-safety",
                        format!(
                            "{node:?} applied a batch at {} inside the committed batch at {offset}",
                            batch.base_offset
                        ),
                    );
                }
                // The other direction: a committed batch starts inside this one.
                if let Some((offset, _)) = self.committed.range(batch.base_offset..batch.next_offset).next() {
                    return self.fail(
                        "state-machine-safety",
                        format!(
                            "{node:?} applied a batch at [{}, {}) over the committed batch at {offset}",
                            batch.base_offset, batch.next_offset
                        ),
                    );
                }
                self.committed.insert(batch.base_offset, committed);
                self.committed_end = self.committed_end.max(batch.next_offset);
            }
            Some(known) if *known == committed => {}
            Some(known) => {
                return self.fail(
                    "state-machine-safety",
                    format!("{node:?} applied {committed:?} at {}, another node applied {known:?}", batch.base_offset),
                );
            }
        }
        self.check_state_at(node, batch.next_offset, batch.state_hash, "state-machine-safety")
    }

    fn check_state_at(&mut self, node: NodeId, offset: Offset, hash: u64, checker: &'static str) -> Checked {
        match self.state_at.get(&offset) {
            None => {
                self.state_at.insert(offset, hash);
                Ok(())
            }
            Some(known) if *known == hash => Ok(()),
            Some(_) => self.fail(checker, format!("{node:?}'s state at offset {offset} differs from another node's")),
        }
    }

    fn check_event(&mut self, node: &mut SimNode, event: &DriverEvent) -> Checked {
        let id = node.id;
        match event {
            DriverEvent::LeaderChange { epoch, leader_id } => {
                node.announced_leader = (*leader_id == Some(id)).then_some(*epoch);
                Ok(())
            }
            DriverEvent::SnapshotLoaded(snapshot) => {
                self.coverage.snapshot_loads += 1;
                if node.announced_leader.is_some() {
                    return self.fail("snapshot-consistency", format!("{id:?} loaded {snapshot:?} while leading"));
                }
                let restored = node.driver_mut().map(|d| d.machine_mut().restored.remove(0));
                match restored {
                    Some(hash) => self.check_snapshot(id, *snapshot, hash),
                    None => self.fail(
                        "snapshot-consistency",
                        format!("{id:?} reported loading {snapshot:?} but restored nothing"),
                    ),
                }
            }
            DriverEvent::SnapshotCreated(snapshot) => {
                self.coverage.snapshots_created += 1;
                // What is on disk, not what the state machine meant to write.
                let stored = node.driver().and_then(|d| {
                    let chunk = d.node().log().read_snapshot(*snapshot, 0, usize::MAX).ok().flatten()?;
                    fjord_quorum::decode_snapshot(&chunk.bytes).ok().map(|(_, payload)| fnv1a(payload))
                });
                match stored {
                    Some(hash) => self.check_snapshot(id, *snapshot, hash),
                    // A later snapshot of the same step replaced it.
                    None => Ok(()),
                }
            }
            DriverEvent::Applied(_) => Ok(()),
        }
    }

    fn check_snapshot(&mut self, node: NodeId, snapshot: SnapshotId, state_hash: u64) -> Checked {
        if snapshot.offset > self.committed_end {
            return self.fail(
                "snapshot-consistency",
                format!("{node:?} holds {snapshot:?} past the committed end {}", self.committed_end),
            );
        }
        if let Some((_, last)) = self.committed.range(..snapshot.offset).next_back()
            && last.next_offset == snapshot.offset
            && last.epoch != snapshot.epoch
        {
            return self.fail(
                "snapshot-consistency",
                format!("{node:?}'s {snapshot:?} names the wrong epoch ({:?})", last.epoch),
            );
        }
        self.check_state_at(node, snapshot.offset, state_hash, "snapshot-consistency")
    }

    fn check_vote(&mut self, node: &SimNode, from: NodeId, message: &Message, outbox: &[(NodeId, Message)]) -> Checked {
        let MessageBody::VoteRequest(request) = &message.body else { return Ok(()) };
        if request.pre_vote {
            return Ok(());
        }
        let granted = outbox.iter().any(|(to, m)| {
            *to == from
                && m.correlation_id == message.correlation_id
                && matches!(&m.body, MessageBody::VoteResponse(r) if r.vote_granted)
        });
        if !granted {
            return Ok(());
        }
        self.coverage.votes_granted += 1;
        let stored = node.stored_state();
        let durable = stored.is_some_and(|s| {
            s.epoch > request.candidate_epoch
                || (s.epoch == request.candidate_epoch && s.voted_key.is_some_and(|k| k.id == request.candidate_key.id))
        });
        if !durable && !self.consequences_only {
            return self.fail(
                "durable-votes",
                format!(
                    "{:?} granted {:?} in epoch {} but its quorum-state holds {stored:?}",
                    node.id, request.candidate_key, request.candidate_epoch
                ),
            );
        }
        match self.votes.get(&(node.id, request.candidate_epoch)) {
            Some(earlier) if earlier.id != request.candidate_key.id => self.fail(
                "durable-votes",
                format!(
                    "{:?} voted for {earlier:?} and for {:?} in epoch {}",
                    node.id, request.candidate_key, request.candidate_epoch
                ),
            ),
            _ => {
                self.votes.insert((node.id, request.candidate_epoch), request.candidate_key);
                Ok(())
            }
        }
    }

    /// The persisted election state: epochs only grow, and every leader it names is the one
    /// leader of its epoch.
    pub(crate) fn check_stored_state(&mut self, node: &SimNode) -> Checked {
        let Some(stored) = node.stored_state() else { return Ok(()) };
        if let Some(previous) = self.stored_epochs.get(&node.id)
            && stored.epoch < *previous
        {
            return self.fail(
                "durable-votes",
                format!("{:?}'s stored epoch went back from {previous} to {}", node.id, stored.epoch),
            );
        }
        self.stored_epochs.insert(node.id, stored.epoch);
        if let Some(leader) = stored.leader_id {
            self.record_leader(stored.epoch, leader, node.id, "its quorum-state")?;
        }
        Ok(())
    }

    /// Forgets a node's stored epoch (its disk was wiped), and remembers what the lost disk of
    /// replica `key` held durably.
    pub(crate) fn forget_disk(&mut self, node: NodeId, key: ReplicaKey, durable_end: Offset) {
        self.stored_epochs.remove(&node);
        let held = self.wiped.entry(key).or_insert(durable_end);
        *held = (*held).max(durable_end);
        self.coverage.wipes += 1;
    }

    fn record_leader(&mut self, epoch: LeaderEpoch, leader: NodeId, witness: NodeId, source: &str) -> Checked {
        match self.leaders.get(&epoch) {
            Some(known) if *known != leader => self.fail(
                "election-safety",
                format!("{witness:?} ({source}) says {leader:?} leads epoch {epoch}, but {known:?} does"),
            ),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(epoch, leader);
                Ok(())
            }
        }
    }

    fn check_high_watermark(&mut self, node: &mut SimNode) -> Checked {
        let Some(driver) = node.driver() else { return Ok(()) };
        let raft = driver.node();
        let high_watermark = raft.high_watermark();
        if let (Some(hw), Some(before)) = (high_watermark, node.high_watermark_max)
            && hw < before
        {
            return self.fail(
                "monotonic-high-watermark",
                format!("{:?}'s high watermark went back from {before} to {hw}", node.id),
            );
        }
        if raft.role() == RoleKind::Leader
            && let Some(hw) = high_watermark
        {
            let epoch = raft.epoch();
            if let Some((older, older_hw)) =
                self.leader_high_watermarks.range(..epoch).map(|(e, h)| (*e, *h)).max_by_key(|(_, h)| *h)
                && hw < older_hw
            {
                return self.fail(
                    "monotonic-high-watermark",
                    format!(
                        "{:?} leads epoch {epoch} at high watermark {hw}, below {older_hw} of epoch {older}",
                        node.id
                    ),
                );
            }
            let entry = self.leader_high_watermarks.entry(epoch).or_insert(hw);
            *entry = (*entry).max(hw);
        }
        if let Some(hw) = high_watermark {
            node.high_watermark_max = Some(node.high_watermark_max.map_or(hw, |m| m.max(hw)));
        }
        node.high_watermark_before = high_watermark;
        Ok(())
    }

    fn check_leader_completeness(&mut self, node: &SimNode) -> Checked {
        let Some(driver) = node.driver() else { return Ok(()) };
        let log = &driver.node().log().inner;
        let start = log.log_start_offset();
        // Below the log start the snapshot stands in, for whole batches only.
        if let Some((offset, straddling)) = self.committed.range(..start).next_back()
            && straddling.next_offset > start
        {
            return self.fail(
                "leader-completeness",
                format!(
                    "{:?} leads epoch {} with its log starting at {start}, inside the committed batch at {offset}",
                    node.id,
                    driver.node().epoch()
                ),
            );
        }
        let mut batches = log.batches().filter(|b| b.base_offset >= start).peekable();
        for (offset, committed) in self.committed.range(start..) {
            while batches.peek().is_some_and(|b| b.base_offset < *offset) {
                batches.next();
            }
            let present = batches.peek().is_some_and(|b| {
                b.base_offset == *offset && b.epoch == committed.epoch && crate::kv::batch_hash(b) == committed.hash
            });
            if !present {
                return self.fail(
                    "leader-completeness",
                    format!(
                        "{:?} leads epoch {} without the committed batch at {offset} ({committed:?})",
                        node.id,
                        driver.node().epoch()
                    ),
                );
            }
        }
        Ok(())
    }

    /// Checks that look at every node at once.
    pub(crate) fn global(&mut self, nodes: &[SimNode]) -> Checked {
        let mut top_leader: Option<(&SimNode, LeaderEpoch)> = None;
        for node in nodes {
            let Some(driver) = node.driver() else { continue };
            let raft = driver.node();
            if let Some(leader) = raft.leader_id() {
                self.record_leader(raft.epoch(), leader, node.id, "its memory")?;
            }
            if raft.role() == RoleKind::Leader && top_leader.is_none_or(|(_, e)| raft.epoch() > e) {
                top_leader = Some((node, raft.epoch()));
            }
        }
        if self.consequences_only {
            return Ok(());
        }
        let Some((leader, _)) = top_leader else { return Ok(()) };
        let Some(hw) = leader.driver().and_then(|d| d.node().high_watermark()) else { return Ok(()) };
        let voters =
            leader.driver().map(|d| d.node().voters().clone()).into_iter().flat_map(|v| v.keys().collect::<Vec<_>>());
        let mut holding = 0;
        let mut total = 0;
        for key in voters {
            total += 1;
            let on_a_disk = nodes.iter().any(|n| n.key == key && n.durable_end() >= hw);
            if on_a_disk || self.wiped.get(&key).is_some_and(|held| *held >= hw) {
                holding += 1;
            }
        }
        if holding < total / 2 + 1 {
            return self.fail(
                "monotonic-high-watermark",
                format!("{:?}'s high watermark {hw} is on the disks of only {holding} of {total} voters", leader.id),
            );
        }
        Ok(())
    }
}
