//! The simulated world: nodes on disks, a network, one virtual clock and one event queue, all
//! driven by one seeded generator. Nothing here reads the real clock or iterates a hash map, so
//! a seed replays exactly.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use fjord_quorum::{
    Bug, DirectoryId, Driver, ElectionState, Error, MemoryLog, MemoryQuorumStateStore, Message, MessageBody, NodeId,
    NodeOptions, OffsetAndEpoch, Prng, QuorumConfig, RaftLog, RaftNode, ReplicaKey, RoleKind, SnapshotPolicy,
    StorageError, VoterSet,
};
use fjord_types::{LeaderEpoch, Offset, Timestamp};

use crate::checkers::{Checkers, Violation};
use crate::disk::{Probe, SharedProbe, SimLog, SimStore};
use crate::kv::KvMachine;
use crate::network::Network;
use crate::trace::Trace;

/// A simulated node's driver.
pub(crate) type SimDriver = Driver<SimLog, SimStore, KvMachine>;

/// One node: its disk, and its process when it runs.
#[derive(Debug)]
pub(crate) struct SimNode {
    /// Its id.
    pub(crate) id: NodeId,
    /// Its replica key (the directory id changes when its disk is wiped).
    pub(crate) key: ReplicaKey,
    /// Fault switches and journal of its disk.
    pub(crate) probe: SharedProbe,
    running: Option<Box<SimDriver>>,
    disk: Option<(MemoryLog, MemoryQuorumStateStore)>,
    /// Bumped at every crash.
    pub(crate) incarnation: u32,
    /// The wake-up the running process asked for.
    pub(crate) wake_at: Option<Timestamp>,
    /// Its high watermark after its last step (this incarnation).
    pub(crate) high_watermark_before: Option<Offset>,
    /// The highest high watermark it had (this incarnation).
    pub(crate) high_watermark_max: Option<Offset>,
    /// The epoch it announced itself leader of, if it is the announced leader.
    pub(crate) announced_leader: Option<LeaderEpoch>,
    /// Role, epoch and leader after its last step, for the trace.
    pub(crate) view: Option<(RoleKind, LeaderEpoch, Option<NodeId>)>,
    /// The process is frozen (SIGSTOP) until then: it handles nothing, and what arrives for it
    /// waits, as in its socket buffers.
    pub(crate) stalled_until: Option<Timestamp>,
}

impl SimNode {
    /// The running process.
    pub(crate) fn driver(&self) -> Option<&SimDriver> {
        self.running.as_deref()
    }

    /// The running process, mutably.
    pub(crate) fn driver_mut(&mut self) -> Option<&mut SimDriver> {
        self.running.as_deref_mut()
    }

    /// Whether the process runs.
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Whether the process is frozen at `now`.
    pub(crate) fn is_stalled(&self, now: Timestamp) -> bool {
        self.stalled_until.is_some_and(|until| now < until)
    }

    /// The election state on its disk.
    pub(crate) fn stored_state(&self) -> Option<ElectionState> {
        match (&self.running, &self.disk) {
            (Some(driver), _) => driver.node().store().inner.state(),
            (None, Some((_, store))) => store.state(),
            (None, None) => None,
        }
    }

    /// The end of its durable log.
    pub(crate) fn durable_end(&self) -> Offset {
        match (&self.running, &self.disk) {
            (Some(driver), _) => driver.node().log().flushed_end_offset(),
            (None, Some((log, _))) => log.flushed_end_offset(),
            (None, None) => Offset(0),
        }
    }
}

/// What a step fed to a node.
#[derive(Debug)]
pub(crate) enum Input {
    Message(NodeId, Message),
    Tick,
    Propose(Vec<Vec<u8>>),
    Resign,
    /// The transport could not deliver a request (the connection was refused).
    RequestFailed(NodeId, u64),
}

/// Something scheduled.
#[derive(Debug)]
pub(crate) enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        message: Message,
    },
    Wake {
        node: usize,
        incarnation: u32,
    },
    Restart {
        node: usize,
    },
    /// A node's process and machine go down (a flapping node).
    Crash {
        node: usize,
    },
    /// A stalled process runs again.
    Resume {
        node: usize,
        incarnation: u32,
    },
    /// The sender of a request learns that it failed.
    SendFailed {
        node: usize,
        incarnation: u32,
        to: NodeId,
        correlation_id: u64,
    },
    HealNetwork,
    Chaos,
    Propose,
    Heal,
    Audit,
}

/// The world.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) now: Timestamp,
    pub(crate) rng: Prng,
    queue: BTreeMap<(Timestamp, u64), Event>,
    sequence: u64,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) network: Network,
    pub(crate) voters: VoterSet,
    pub(crate) config: QuorumConfig,
    pub(crate) policy: SnapshotPolicy,
    pub(crate) bugs: BTreeSet<Bug>,
    pub(crate) checkers: Checkers,
    pub(crate) trace: Trace,
    pub(crate) violation: Option<Violation>,
    /// The leader hint of the simulated client.
    pub(crate) leader_hint: Option<NodeId>,
    /// Proposals that `propose` accepted.
    pub(crate) proposals: Vec<OffsetAndEpoch>,
    /// Per (leader, epoch): when each voter's fetch last reached it.
    contacts: BTreeMap<(NodeId, LeaderEpoch), BTreeMap<NodeId, Timestamp>>,
    leader_since: BTreeMap<(NodeId, LeaderEpoch), Timestamp>,
    pub(crate) events: u64,
    pub(crate) elections: u64,
    /// Probability of a crash right after a node grants a vote (a crash point).
    pub(crate) crash_after_vote: f64,
}

const CLUSTER: &str = "fjord-sim";

impl World {
    /// A world of these voters and observers, every node on an empty disk, not yet started.
    pub(crate) fn new(
        rng: Prng,
        voter_count: usize,
        observer_count: usize,
        config: QuorumConfig,
        policy: SnapshotPolicy,
        bugs: BTreeSet<Bug>,
        keep_trace: bool,
    ) -> World {
        let mut rng = rng;
        let mut nodes = Vec::new();
        for index in 0..voter_count + observer_count {
            let key = ReplicaKey::with_directory(index as i32 + 1, random_directory(&mut rng));
            nodes.push(SimNode {
                id: key.id,
                key,
                probe: Rc::new(RefCell::new(Probe::default())),
                running: None,
                disk: Some((MemoryLog::new(), MemoryQuorumStateStore::new())),
                incarnation: 0,
                wake_at: None,
                high_watermark_before: None,
                high_watermark_max: None,
                announced_leader: None,
                view: None,
                stalled_until: None,
            });
        }
        let voters = VoterSet::from_keys(nodes[..voter_count].iter().map(|n| n.key)).expect("at least one voter");
        World {
            now: Timestamp(0),
            rng,
            queue: BTreeMap::new(),
            sequence: 0,
            nodes,
            network: Network::new(1, 10),
            voters,
            config,
            policy,
            bugs,
            checkers: Checkers::default(),
            trace: Trace::new(keep_trace),
            violation: None,
            leader_hint: None,
            proposals: Vec::new(),
            contacts: BTreeMap::new(),
            leader_since: BTreeMap::new(),
            events: 0,
            elections: 0,
            crash_after_vote: 0.0,
        }
    }

    pub(crate) fn schedule(&mut self, at: Timestamp, event: Event) {
        self.sequence += 1;
        self.queue.insert((at.max(self.now), self.sequence), event);
    }

    pub(crate) fn pop(&mut self) -> Option<(Timestamp, Event)> {
        self.queue.pop_first().map(|((at, _), event)| (at, event))
    }

    pub(crate) fn fail(&mut self, violation: Violation) {
        if self.violation.is_none() {
            self.trace.line(self.now, format!("VIOLATION {violation}"));
            self.violation = Some(violation);
        }
    }

    pub(crate) fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    pub(crate) fn running_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].is_running()).collect()
    }

    /// The running leader of the highest epoch, if any.
    pub(crate) fn leader(&self) -> Option<usize> {
        self.running_nodes()
            .into_iter()
            .filter(|i| self.nodes[*i].driver().is_some_and(|d| d.node().role() == RoleKind::Leader))
            .max_by_key(|i| self.nodes[*i].driver().map(|d| d.node().epoch()))
    }

    /// Starts (or restarts) a node on its disk.
    pub(crate) fn start(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let Some((log, store)) = node.disk.take() else { return };
        let options = NodeOptions {
            cluster_id: CLUSTER.into(),
            local: node.key,
            voters: self.voters.clone(),
            config: self.config.clone(),
            seed: self.rng.next_u64(),
        };
        let probe = node.probe.clone();
        let started = RaftNode::new_with_bugs(
            options,
            SimLog::new(log, probe.clone()),
            SimStore::new(store, probe),
            self.now,
            self.bugs.clone(),
        )
        .and_then(|raft| Driver::new(raft, KvMachine::default(), self.policy, self.now));
        let id = self.nodes[index].id;
        match started {
            Ok(driver) => {
                self.trace.line(self.now, format!("START {id:?} (incarnation {})", self.nodes[index].incarnation));
                self.nodes[index].running = Some(Box::new(driver));
                self.finish_step(index, Ok(()), None);
            }
            Err(e) => {
                // The storage went away from under a start: only an injected fault may do that.
                // The disk is gone with the failed process's handles; that cannot be injected.
                self.fail(Violation {
                    checker: "node-failure",
                    at: self.now,
                    message: format!("{id:?} failed to start: {e}"),
                });
            }
        }
    }

    /// Crashes a node's process and machine: unflushed writes are lost (a random prefix of
    /// them survives, the next is torn).
    pub(crate) fn crash(&mut self, index: usize, why: &str) {
        let surviving = self.rng.below(3) as usize;
        let node = &mut self.nodes[index];
        let Some(driver) = node.running.take() else { return };
        let (raft, _) = driver.into_parts();
        let (log, store) = raft.into_storage();
        let mut log = log.inner;
        let report = log.crash(surviving);
        node.disk = Some((log, store.inner));
        node.incarnation += 1;
        node.wake_at = None;
        node.high_watermark_before = None;
        node.high_watermark_max = None;
        node.announced_leader = None;
        node.view = None;
        node.stalled_until = None;
        *node.probe.borrow_mut() = Probe::default();
        self.checkers.coverage.crashes += 1;
        self.checkers.coverage.lost_batches += report.lost_batches as u64;
        let torn = if report.torn_write { ", the last write torn" } else { "" };
        let id = node.id;
        self.trace.line(
            self.now,
            format!(
                "CRASH {id:?} ({why}): lost {} unflushed batches{torn}; log ends at {}",
                report.lost_batches, report.log_end_offset
            ),
        );
    }

    /// Replaces a node's disk by an empty one with a new directory id: it comes back as a
    /// different replica, and so as an observer (KAFKA-14077).
    pub(crate) fn wipe(&mut self, index: usize) {
        self.crash(index, "disk lost");
        let (old_key, durable_end) = (self.nodes[index].key, self.nodes[index].durable_end());
        let directory = random_directory(&mut self.rng);
        let node = &mut self.nodes[index];
        node.disk = Some((MemoryLog::new(), MemoryQuorumStateStore::new()));
        node.key = ReplicaKey { id: node.id, directory_id: Some(directory) };
        let id = node.id;
        self.checkers.forget_disk(id, old_key, durable_end);
        self.trace.line(self.now, format!("WIPE {id:?}: a new empty disk, directory {directory}"));
    }

    /// Freezes a running node for `millis` (SIGSTOP, then SIGCONT): it keeps its memory, its
    /// timers run late, and its messages wait.
    pub(crate) fn stall(&mut self, index: usize, millis: i64) {
        let node = &mut self.nodes[index];
        if !node.is_running() || node.is_stalled(self.now) {
            return;
        }
        let until = Timestamp(self.now.0 + millis);
        node.stalled_until = Some(until);
        let (id, incarnation) = (node.id, node.incarnation);
        self.trace.line(self.now, format!("STALL {id:?} for {millis} ms"));
        self.checkers.coverage.stalls += 1;
        self.schedule(until, Event::Resume { node: index, incarnation });
    }

    /// A stalled node runs again: it notices the time that passed.
    pub(crate) fn resume(&mut self, index: usize, incarnation: u32) {
        let node = &mut self.nodes[index];
        if node.incarnation != incarnation || node.stalled_until.is_none() {
            return;
        }
        node.stalled_until = None;
        let id = node.id;
        self.trace.line(self.now, format!("RESUME {id:?}"));
        self.step(index, Input::Tick);
    }

    /// Feeds one input to a running node and processes what it did.
    pub(crate) fn step(&mut self, index: usize, input: Input) {
        let now = self.now;
        if self.nodes[index].is_stalled(now) {
            return;
        }
        let Some(driver) = self.nodes[index].driver_mut() else { return };
        let (result, delivered) = match input {
            Input::Message(from, message) => {
                (driver.handle_message(now, from, message.clone()).map(|_| None), Some((from, message)))
            }
            Input::Tick => (driver.tick(now).map(|_| None), None),
            Input::Resign => (driver.resign(now).map(|_| None), None),
            Input::Propose(records) => (driver.propose(now, records).map(Some), None),
            Input::RequestFailed(to, correlation_id) => {
                (driver.request_failed(now, to, correlation_id).map(|_| None), None)
            }
        };
        let proposal = match result {
            Ok(proposal) => Ok(proposal),
            Err(Error::NotLeader { leader, .. }) => {
                self.leader_hint = leader;
                Ok(None)
            }
            // A new leader before its LeaderChange commits: the client tries it again later.
            Err(Error::LeaderNotReady { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        if let Ok(Some(proposal)) = proposal {
            self.proposals.push(proposal);
        }
        self.finish_step(index, proposal.map(|_| ()), delivered.as_ref().map(|(f, m)| (*f, m)));
    }

    fn finish_step(&mut self, index: usize, result: Result<(), Error>, delivered: Option<(NodeId, &Message)>) {
        let id = self.nodes[index].id;
        if let Err(error) = result {
            if error.is_fatal() && matches!(error, Error::Storage(StorageError::Injected(_))) {
                self.trace.line(self.now, format!("{id:?} stops: {error}"));
                self.checkers.coverage.storage_failures += 1;
                self.crash(index, "fatal injected fault");
                let at = Timestamp(self.now.0 + self.rng.range(100, 2_000));
                self.schedule(at, Event::Restart { node: index });
            } else {
                self.fail(Violation { checker: "node-failure", at: self.now, message: format!("{id:?}: {error}") });
            }
            return;
        }
        let Some(driver) = self.nodes[index].driver_mut() else { return };
        let outbox = driver.take_outbox();
        let events = driver.take_events();
        let raft = driver.node();
        let view = (raft.role(), raft.epoch(), raft.leader_id());
        let wake = driver.next_wake_up();
        for event in &events {
            if let fjord_quorum::DriverEvent::LeaderChange { leader_id: Some(leader), .. } = event {
                self.leader_hint = Some(*leader);
            }
        }
        let previous = self.nodes[index].view;
        let became_leader =
            view.0 == RoleKind::Leader && previous.is_none_or(|p| p.0 != RoleKind::Leader || p.1 != view.1);
        if became_leader {
            self.elections += 1;
            self.leader_since.insert((id, view.1), self.now);
        }
        if previous != Some(view) {
            self.trace.line(self.now, format!("{id:?} is {:?} in epoch {} (leader {:?})", view.0, view.1, view.2));
            self.nodes[index].view = Some(view);
        }
        self.checkers.set_now(self.now);
        let checked = self.checkers.after_step(&mut self.nodes[index], &events, delivered, &outbox, became_leader);
        if let Err(violation) = checked {
            self.fail(violation);
        }
        let granted_vote =
            outbox.iter().any(|(_, m)| matches!(&m.body, MessageBody::VoteResponse(r) if r.vote_granted));
        for (to, message) in outbox {
            self.send(id, to, message);
        }
        if granted_vote && self.crash_after_vote > 0.0 && self.rng.chance(self.crash_after_vote) {
            // A crash point: the grant is on the wire, the voter goes down at once.
            self.crash(index, "right after granting a vote");
            let at = Timestamp(self.now.0 + self.rng.range(0, 100));
            self.schedule(at, Event::Restart { node: index });
            return;
        }
        let node = &mut self.nodes[index];
        if wake != node.wake_at {
            node.wake_at = wake;
            if let Some(at) = wake {
                let incarnation = node.incarnation;
                self.schedule(at, Event::Wake { node: index, incarnation });
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, message: Message) {
        if message.body.is_request() && !self.network.connected(from, to) && self.rng.chance(0.5) {
            // Refused at once rather than lost: the sender hears of it (its transport's error).
            self.refuse(from, to, &message);
            return;
        }
        let delays = self.network.delays(&mut self.rng, from, to);
        for delay in delays {
            let at = Timestamp(self.now.0 + delay);
            self.schedule(at, Event::Deliver { from, to, message: message.clone() });
        }
    }

    /// Schedules the failure of the request `from` sent to `to`, shortly, for the incarnation
    /// that sent it (the transport's error).
    fn refuse(&mut self, from: NodeId, to: NodeId, message: &Message) {
        let Some(node) = self.index_of(from) else { return };
        let incarnation = self.nodes[node].incarnation;
        let at = Timestamp(self.now.0 + self.rng.range(0, 5));
        let correlation_id = message.correlation_id;
        self.schedule(at, Event::SendFailed { node, incarnation, to, correlation_id });
    }

    /// Delivers a message, if its destination runs and the link is up at arrival.
    pub(crate) fn deliver(&mut self, from: NodeId, to: NodeId, message: Message) {
        let Some(index) = self.index_of(to) else { return };
        if let Some(until) = self.nodes[index].stalled_until.filter(|u| self.now < *u) {
            // Frozen: it waits in the receiver's buffers (in order: later copies queue behind).
            self.schedule(until, Event::Deliver { from, to, message });
            return;
        }
        if !self.nodes[index].is_running() || !self.network.connected(from, to) {
            if !self.nodes[index].is_running() && message.body.is_request() && self.rng.chance(0.5) {
                // Nobody listens: the connection is refused.
                self.refuse(from, to, &message);
            }
            return;
        }
        self.trace.line(self.now, format!("{from:?} -> {to:?} {message}"));
        self.note_contact(index, from, &message);
        self.step(index, Input::Message(from, message));
    }

    /// Remembers that a voter's fetch reached the leader of its epoch (for check-quorum).
    fn note_contact(&mut self, index: usize, from: NodeId, message: &Message) {
        let epoch = match &message.body {
            MessageBody::FetchRequest(r) if self.voters.is_voter(&r.replica_key) => r.current_leader_epoch,
            MessageBody::FetchSnapshotRequest(r) if self.voters.is_voter(&r.replica_key) => r.current_leader_epoch,
            _ => return,
        };
        let Some(driver) = self.nodes[index].driver() else { return };
        if driver.node().role() == RoleKind::Leader && driver.node().epoch() == epoch {
            let leader = self.nodes[index].id;
            self.contacts.entry((leader, epoch)).or_default().insert(from, self.now);
        }
    }

    /// Liveness of check-quorum (KAFKA-15489): a leader that no majority has fetched from for
    /// twice the check-quorum timeout (its timer may have been reset just before) has resigned.
    pub(crate) fn check_quorum_liveness(&mut self) {
        let window = 2 * self.config.check_quorum_timeout_ms() + 100;
        if self.voters.len() == 1 {
            return;
        }
        for index in self.running_nodes() {
            let node = &self.nodes[index];
            let Some(driver) = node.driver() else { continue };
            // A frozen leader cannot resign; it must once it runs again (its first tick).
            if driver.node().role() != RoleKind::Leader || node.stalled_until.is_some() {
                continue;
            }
            let epoch = driver.node().epoch();
            let since = self.leader_since.get(&(node.id, epoch)).copied().unwrap_or(self.now);
            let floor = Timestamp(since.0 - self.config.check_quorum_timeout_ms());
            let seen = self.contacts.get(&(node.id, epoch));
            let mut times: Vec<Timestamp> = self
                .voters
                .ids()
                .filter(|v| *v != node.id)
                .map(|v| seen.and_then(|s| s.get(&v)).copied().unwrap_or(floor).max(floor))
                .collect();
            times.sort_unstable_by(|a, b| b.cmp(a));
            let needed = self.voters.majority() - 1;
            let contact = times[needed - 1];
            if self.now.0 > contact.0 + window {
                let message = format!(
                    "{:?} still leads epoch {epoch}: a majority of voters last reached it at {} ms",
                    node.id, contact.0
                );
                self.fail(Violation { checker: "check-quorum", at: self.now, message });
                return;
            }
        }
    }
}

fn random_directory(rng: &mut Prng) -> DirectoryId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    DirectoryId(bytes)
}
