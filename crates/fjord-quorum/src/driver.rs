//! A small harness that runs a node against the state machine it replicates: it executes the
//! node's effects (applying commits, loading snapshots, taking snapshots by policy) and hands
//! the caller what must cross the network and when to call again. No threads, no async runtime:
//! the example, the benchmarks and the simulator all drive it from their own loops.

use fjord_types::{LeaderEpoch, Offset, Timestamp};

use crate::effect::Effect;
use crate::error::{Error, Result};
use crate::ids::{NodeId, OffsetAndEpoch, SnapshotId};
use crate::log::{RaftLog, decode_snapshot};
use crate::message::Message;
use crate::node::RaftNode;
use crate::record::{Batch, BatchKind};
use crate::store::QuorumStateStore;

/// The application the quorum replicates (Kafka's `RaftClient.Listener`, for one listener).
///
/// It sees every committed batch exactly once and in offset order, or a snapshot that replaces
/// everything before its end offset. Its state must depend on nothing else, so every node that
/// applies the same prefix holds the same state.
pub trait StateMachine {
    /// Applies a committed batch (data or control; most machines skip control batches). An
    /// error is fatal: a controller that cannot apply a committed record must stop
    /// (KAFKA-14275), not continue with a hole.
    fn apply(&mut self, batch: &Batch) -> std::result::Result<(), String>;
    /// The state as of the last applied batch, serialized.
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the state with a snapshot's.
    fn restore(&mut self, snapshot: &[u8]) -> std::result::Result<(), String>;
}

/// When the driver asks the state machine for a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// `metadata.log.max.record.bytes.between.snapshots` (20 MiB): snapshot once this many
    /// record bytes were applied since the last snapshot. `u64::MAX` never snapshots.
    pub max_bytes_between_snapshots: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy { max_bytes_between_snapshots: 20 * 1024 * 1024 }
    }
}

/// A batch the state machine applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Its first offset.
    pub base_offset: Offset,
    /// Its last offset.
    pub last_offset: Offset,
    /// The epoch it was written in.
    pub epoch: LeaderEpoch,
    /// Data or control.
    pub kind: BatchKind,
}

impl Applied {
    /// Whether this batch holds the proposal that `propose` answered with `proposal`.
    pub fn contains(&self, proposal: OffsetAndEpoch) -> bool {
        self.epoch == proposal.epoch && self.base_offset <= proposal.offset && proposal.offset <= self.last_offset
    }
}

/// What happened while the driver ran the node's effects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriverEvent {
    /// A committed batch was applied.
    Applied(Applied),
    /// The state machine was replaced by a snapshot.
    SnapshotLoaded(SnapshotId),
    /// A snapshot of the state machine was stored and the log trimmed below it.
    SnapshotCreated(SnapshotId),
    /// The leader changed (for a new leader: once its state machine is current).
    LeaderChange {
        /// The epoch.
        epoch: LeaderEpoch,
        /// The leader, if known.
        leader_id: Option<NodeId>,
    },
}

/// A [`RaftNode`] and its [`StateMachine`], run together.
#[derive(Debug)]
pub struct Driver<L: RaftLog, S: QuorumStateStore, M: StateMachine> {
    node: RaftNode<L, S>,
    machine: M,
    policy: SnapshotPolicy,
    applied: Offset,
    bytes_since_snapshot: u64,
    outbox: Vec<(NodeId, Message)>,
    events: Vec<DriverEvent>,
    wake_up: Option<Timestamp>,
    /// Why the driver stopped: the state machine failed to apply or restore, so nothing after
    /// that point may be applied (it would be applied over a hole).
    failed: Option<String>,
}

impl<L: RaftLog, S: QuorumStateStore, M: StateMachine> Driver<L, S, M> {
    /// Runs `node` with `machine`. The node must be fresh from [`RaftNode::new`], its effects
    /// not yet taken: they start with loading its latest snapshot, or commits from its log start.
    pub fn new(node: RaftNode<L, S>, machine: M, policy: SnapshotPolicy, now: Timestamp) -> Result<Driver<L, S, M>> {
        let applied = node.log().log_start_offset();
        let mut driver = Driver {
            node,
            machine,
            policy,
            applied,
            bytes_since_snapshot: 0,
            outbox: Vec::new(),
            events: Vec::new(),
            wake_up: None,
            failed: None,
        };
        driver.run_effects(now)?;
        Ok(driver)
    }

    /// Handles a message from `from`.
    pub fn handle_message(&mut self, now: Timestamp, from: NodeId, message: Message) -> Result<()> {
        self.check_running()?;
        self.node.handle_message(now, from, message)?;
        self.run_effects(now)
    }

    /// Lets time pass.
    pub fn tick(&mut self, now: Timestamp) -> Result<()> {
        self.check_running()?;
        self.node.tick(now)?;
        self.run_effects(now)
    }

    /// Proposes records (see [`RaftNode::propose`]).
    pub fn propose(&mut self, now: Timestamp, records: Vec<Vec<u8>>) -> Result<OffsetAndEpoch> {
        self.check_running()?;
        let result = self.node.propose(now, records);
        self.run_effects(now)?;
        result
    }

    /// Resigns leadership gracefully (see [`RaftNode::resign`]).
    pub fn resign(&mut self, now: Timestamp) -> Result<()> {
        self.check_running()?;
        self.node.resign(now)?;
        self.run_effects(now)
    }

    /// Reports a request the transport could not complete.
    pub fn request_failed(&mut self, now: Timestamp, to: NodeId, correlation_id: u64) -> Result<()> {
        self.check_running()?;
        self.node.request_failed(now, to, correlation_id)?;
        self.run_effects(now)
    }

    /// Why the driver stopped, if it did: the state machine failed to apply a committed batch
    /// or to load a snapshot (or the node failed). Every input after that returns
    /// [`Error::Failed`]; the process should restart from durable state.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref().or(self.node.failure())
    }

    fn check_running(&self) -> Result<()> {
        match &self.failed {
            Some(reason) => Err(Error::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Messages to send, in order.
    pub fn take_outbox(&mut self) -> Vec<(NodeId, Message)> {
        std::mem::take(&mut self.outbox)
    }

    /// What happened since the last call.
    pub fn take_events(&mut self) -> Vec<DriverEvent> {
        std::mem::take(&mut self.events)
    }

    /// When to call [`Driver::tick`] next.
    pub fn next_wake_up(&self) -> Option<Timestamp> {
        self.wake_up
    }

    /// The state machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The state machine, to change what it keeps beside its state (its own bookkeeping).
    pub fn machine_mut(&mut self) -> &mut M {
        &mut self.machine
    }

    /// The node.
    pub fn node(&self) -> &RaftNode<L, S> {
        &self.node
    }

    /// The offset the state machine applies next.
    pub fn applied_offset(&self) -> Offset {
        self.applied
    }

    /// Takes the node and the state machine apart again.
    pub fn into_parts(self) -> (RaftNode<L, S>, M) {
        (self.node, self.machine)
    }

    /// Executes the node's effects; a failure to execute one latches: the effects after it are
    /// dropped and the driver takes no more input.
    fn run_effects(&mut self, now: Timestamp) -> Result<()> {
        let result = self.execute_all(now);
        if let Err(error) = &result
            && error.is_fatal()
        {
            self.failed.get_or_insert_with(|| error.to_string());
        }
        result
    }

    fn execute_all(&mut self, now: Timestamp) -> Result<()> {
        loop {
            for effect in self.node.take_effects() {
                self.execute(effect)?;
            }
            if !self.snapshot_due() {
                return Ok(());
            }
            let payload = self.machine.snapshot();
            let id = self.node.create_snapshot(now, self.applied, &payload)?;
            self.bytes_since_snapshot = 0;
            self.events.push(DriverEvent::SnapshotCreated(id));
        }
    }

    fn snapshot_due(&self) -> bool {
        self.bytes_since_snapshot >= self.policy.max_bytes_between_snapshots
            && self.applied > self.node.log().log_start_offset()
            && self.node.failure().is_none()
            && self.failed.is_none()
    }

    fn execute(&mut self, effect: Effect) -> Result<()> {
        match effect {
            Effect::Send { to, message } => self.outbox.push((to, message)),
            Effect::WakeUp { at } => self.wake_up = Some(at),
            Effect::LeaderChange { epoch, leader_id } => {
                self.events.push(DriverEvent::LeaderChange { epoch, leader_id })
            }
            Effect::Commit { batches, .. } => {
                for batch in batches {
                    if batch.base_offset != self.applied {
                        return Err(Error::InvariantViolated(format!(
                            "commit of a batch at {} while the state machine expects {}",
                            batch.base_offset, self.applied
                        )));
                    }
                    self.machine
                        .apply(&batch)
                        .map_err(|e| Error::InvariantViolated(format!("apply at {}: {e}", batch.base_offset)))?;
                    self.applied = batch.next_offset();
                    self.bytes_since_snapshot += batch.records.iter().map(|r| r.len() as u64).sum::<u64>();
                    self.events.push(DriverEvent::Applied(Applied {
                        base_offset: batch.base_offset,
                        last_offset: batch.last_offset(),
                        epoch: batch.epoch,
                        kind: batch.kind,
                    }));
                }
            }
            Effect::LoadSnapshot { snapshot_id } => {
                let chunk =
                    self.node.log().read_snapshot(snapshot_id, 0, usize::MAX)?.ok_or_else(|| {
                        Error::InvariantViolated(format!("snapshot {snapshot_id:?} to load is missing"))
                    })?;
                let (id, payload) = decode_snapshot(&chunk.bytes)
                    .map_err(|e| Error::InvariantViolated(format!("{snapshot_id:?}: {e}")))?;
                if id != snapshot_id {
                    return Err(Error::InvariantViolated(format!("snapshot file {snapshot_id:?} holds {id:?}")));
                }
                self.machine.restore(payload).map_err(|e| Error::InvariantViolated(format!("restore {id:?}: {e}")))?;
                self.applied = id.offset;
                self.bytes_since_snapshot = 0;
                self.events.push(DriverEvent::SnapshotLoaded(id));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QuorumConfig;
    use crate::ids::ReplicaKey;
    use crate::log::MemoryLog;
    use crate::node::NodeOptions;
    use crate::store::MemoryQuorumStateStore;
    use crate::voters::VoterSet;

    /// Sums the bytes of every data record.
    #[derive(Debug, Default)]
    struct Sum(u64);

    impl StateMachine for Sum {
        fn apply(&mut self, batch: &Batch) -> std::result::Result<(), String> {
            if batch.kind == BatchKind::Data {
                self.0 += batch.records.iter().flatten().map(|b| u64::from(*b)).sum::<u64>();
            }
            Ok(())
        }
        fn snapshot(&self) -> Vec<u8> {
            self.0.to_be_bytes().to_vec()
        }
        fn restore(&mut self, snapshot: &[u8]) -> std::result::Result<(), String> {
            self.0 = u64::from_be_bytes(snapshot.try_into().map_err(|_| "not 8 bytes".to_owned())?);
            Ok(())
        }
    }

    /// Sums like [`Sum`], but refuses a record that reads `bad`.
    #[derive(Debug, Default)]
    struct Picky(Sum);

    impl StateMachine for Picky {
        fn apply(&mut self, batch: &Batch) -> std::result::Result<(), String> {
            if batch.records.iter().any(|r| r == b"bad") {
                return Err("a record this machine cannot apply".into());
            }
            self.0.apply(batch)
        }
        fn snapshot(&self) -> Vec<u8> {
            self.0.snapshot()
        }
        fn restore(&mut self, snapshot: &[u8]) -> std::result::Result<(), String> {
            self.0.restore(snapshot)
        }
    }

    fn single_voter(log: MemoryLog, store: MemoryQuorumStateStore) -> Driver<MemoryLog, MemoryQuorumStateStore, Sum> {
        let options = NodeOptions {
            cluster_id: "c".into(),
            local: ReplicaKey::of(1),
            voters: VoterSet::from_ids([1]).unwrap(),
            config: QuorumConfig::default(),
            seed: 1,
        };
        let node = RaftNode::new(options, log, store, Timestamp(0)).unwrap();
        Driver::new(node, Sum::default(), SnapshotPolicy { max_bytes_between_snapshots: 50 }, Timestamp(0)).unwrap()
    }

    #[test]
    fn applies_commits_snapshots_by_policy_and_restores_after_a_restart() {
        let mut driver = single_voter(MemoryLog::new(), MemoryQuorumStateStore::new());
        let events = driver.take_events();
        assert_eq!(
            events.last(),
            Some(&DriverEvent::LeaderChange { epoch: LeaderEpoch(1), leader_id: Some(NodeId(1)) })
        );
        // The LeaderChange record counts too: 23 bytes, then 20, then 10 more.
        let proposal = driver.propose(Timestamp(1), vec![vec![1; 10], vec![2; 10]]).unwrap();
        let events = driver.take_events();
        assert_eq!(events.len(), 1);
        assert!(matches!(events[0], DriverEvent::Applied(a) if a.contains(proposal)));
        assert_eq!(driver.machine().0, 30);
        driver.propose(Timestamp(2), vec![vec![3; 10]]).unwrap();
        let events = driver.take_events();
        let snapshot = events.iter().find_map(|e| match e {
            DriverEvent::SnapshotCreated(id) => Some(*id),
            _ => None,
        });
        assert_eq!(snapshot, Some(SnapshotId::new(Offset(4), LeaderEpoch(1))), "50 bytes applied since the start");
        assert_eq!(driver.node().log().log_start_offset(), Offset(4));
        let (node, _) = driver.into_parts();
        let (log, store) = node.into_storage();
        let restarted = single_voter(log, store);
        assert_eq!(restarted.machine().0, 60, "the snapshot, then nothing after it but a LeaderChange");
        assert_eq!(restarted.applied_offset(), Offset(5));
    }

    #[test]
    fn a_failed_apply_stops_the_driver_for_good() {
        let options = NodeOptions {
            cluster_id: "c".into(),
            local: ReplicaKey::of(1),
            voters: VoterSet::from_ids([1]).unwrap(),
            config: QuorumConfig::default(),
            seed: 1,
        };
        let node = RaftNode::new(options, MemoryLog::new(), MemoryQuorumStateStore::new(), Timestamp(0)).unwrap();
        let policy = SnapshotPolicy { max_bytes_between_snapshots: u64::MAX };
        let mut driver = Driver::new(node, Picky::default(), policy, Timestamp(0)).unwrap();
        driver.propose(Timestamp(1), vec![vec![1]]).unwrap();
        let applied = driver.applied_offset();
        assert_eq!(driver.machine().0.0, 1);
        let error = driver.propose(Timestamp(2), vec![b"bad".to_vec()]).unwrap_err();
        assert!(error.is_fatal(), "{error}");
        assert!(driver.failure().is_some_and(|f| f.contains("cannot apply")), "{:?}", driver.failure());
        assert_eq!(driver.applied_offset(), applied, "the batch that failed is not applied");
        // Every later input is refused with the first failure; nothing is applied over the hole.
        driver.take_events();
        for attempt in 0..3 {
            let later = driver.propose(Timestamp(3 + attempt), vec![vec![2]]);
            assert!(matches!(&later, Err(Error::Failed(reason)) if reason.contains("cannot apply")), "{later:?}");
            assert!(matches!(driver.tick(Timestamp(3 + attempt)), Err(Error::Failed(_))));
        }
        assert_eq!((driver.applied_offset(), driver.machine().0.0), (applied, 1));
        assert!(driver.take_events().is_empty());
        assert!(driver.take_outbox().is_empty());
    }
}
