//! [`RaftNode`]: one member of the quorum as a state machine (Kafka's `KafkaRaftClient` with
//! `QuorumState`, minus its threads, network and clock).
//!
//! Inputs are [`RaftNode::handle_message`], [`RaftNode::tick`], [`RaftNode::propose`],
//! [`RaftNode::resign`] and [`RaftNode::create_snapshot`], each with the caller's `now`; outputs
//! are [`Effect`]s, drained with [`RaftNode::take_effects`] and executed in order. The log and
//! the election state are written synchronously through [`RaftLog`] and [`QuorumStateStore`]
//! while an input is handled, so by the time an effect exists, everything it depends on is
//! durable.

mod epoch;
mod fetch;
mod follower;
mod poll;
mod tail;
mod transitions;
mod vote;

#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "sim-bugs"))]
use std::collections::BTreeSet;

use fjord_types::{ErrorCode, LeaderEpoch, Offset, Timestamp};

#[cfg(any(test, feature = "sim-bugs"))]
use crate::bugs::Bug;
use crate::config::QuorumConfig;
use crate::effect::Effect;
use crate::error::{Error, Result};
use crate::ids::{NodeId, OffsetAndEpoch, ReplicaKey, SnapshotId};
use crate::log::{RaftLog, encode_snapshot};
use crate::message::{Message, MessageBody};
use crate::prng::Prng;
use crate::record::Batch;
use crate::requests::{InFlight, RequestKind, RequestManager};
use crate::state::{Role, RoleKind};
use crate::store::{ElectionState, QuorumStateStore};
use crate::voters::VoterSet;

/// Whether a planted bug is switched on; always `false` in a build without `sim-bugs`.
macro_rules! bug {
    ($node:expr, $name:ident) => {{
        #[cfg(any(test, feature = "sim-bugs"))]
        let on = $node.bugs.contains(&crate::bugs::Bug::$name);
        #[cfg(not(any(test, feature = "sim-bugs")))]
        let on = false;
        on
    }};
}
pub(crate) use bug;

/// Who a node is and how it runs; the rest comes from its storage.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The cluster id from `meta.properties`; every message carries it.
    pub cluster_id: String,
    /// This node's id and log directory id.
    pub local: ReplicaKey,
    /// The voters (`controller.quorum.voters`). A node not in the set is an observer.
    pub voters: VoterSet,
    /// Timeouts and limits.
    pub config: QuorumConfig,
    /// Seeds the node's randomness: its election timeouts, and where its correlation ids start,
    /// so that a restarted node does not take a late answer to its previous incarnation's
    /// request for the answer to a new one. Give each node, and each restart, its own (the
    /// broker mixes the start time and the node id; the simulator draws it from its seed).
    pub seed: u64,
}

/// The leader's view of the quorum, for DescribeQuorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The leader (this node).
    pub leader_id: NodeId,
    /// Its epoch.
    pub leader_epoch: LeaderEpoch,
    /// The high watermark, once known in this epoch.
    pub high_watermark: Option<Offset>,
    /// Every voter, the leader included.
    pub voters: Vec<ReplicaDescription>,
    /// Observers that fetched in the last five minutes.
    pub observers: Vec<ReplicaDescription>,
}

/// One replica in a [`QuorumDescription`] (DescribeQuorum's `ReplicaState`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaDescription {
    /// Node id and directory id.
    pub replica_key: ReplicaKey,
    /// Its log end offset as of its last fetch.
    pub log_end_offset: Option<Offset>,
    /// When it last fetched.
    pub last_fetch_timestamp: Option<Timestamp>,
    /// When it was last caught up with the leader's log end.
    pub last_caught_up_timestamp: Option<Timestamp>,
}

/// One member of a KRaft-style quorum, voter or observer, as a sans-IO state machine.
///
/// `&mut self` and single-threaded: the caller serializes inputs. After any input, drain
/// [`RaftNode::take_effects`]. A fatal error (storage failed, an invariant would break) stops
/// the node: every later input returns [`Error::Failed`], and the process should restart it
/// from its durable state.
#[derive(Debug)]
pub struct RaftNode<L: RaftLog, S: QuorumStateStore> {
    pub(crate) options: NodeOptions,
    pub(crate) log: L,
    pub(crate) store: S,
    pub(crate) rng: Prng,
    pub(crate) role: Role,
    pub(crate) requests: RequestManager,
    pub(crate) effects: Vec<Effect>,
    pub(crate) next_correlation_id: u64,
    /// The next offset the commit upcall delivers.
    pub(crate) next_commit: Offset,
    /// The leader and epoch last announced with `Effect::LeaderChange`.
    pub(crate) announced: Option<(LeaderEpoch, Option<NodeId>)>,
    pub(crate) now: Timestamp,
    pub(crate) wake_up: Option<Timestamp>,
    pub(crate) failed: Option<String>,
    /// The last batches appended, to answer fetches and commit without reading the log.
    pub(crate) tail: tail::TailCache,
    #[cfg(any(test, feature = "sim-bugs"))]
    pub(crate) bugs: BTreeSet<Bug>,
}

impl<L: RaftLog, S: QuorumStateStore> RaftNode<L, S> {
    /// Starts a node on its storage: reads the election state, restores its role from it as
    /// Kafka does (a node that was leader comes back resigned, never leading the same epoch
    /// again, KAFKA-10527), and loads the latest snapshot.
    pub fn new(options: NodeOptions, log: L, store: S, now: Timestamp) -> Result<RaftNode<L, S>> {
        let mut node = RaftNode::build(options, log, store, now)?;
        node.initialize()?;
        Ok(node)
    }

    /// [`RaftNode::new`] with planted bugs switched on (tests and the simulator only).
    #[cfg(any(test, feature = "sim-bugs"))]
    pub fn new_with_bugs(
        options: NodeOptions,
        log: L,
        store: S,
        now: Timestamp,
        bugs: BTreeSet<Bug>,
    ) -> Result<RaftNode<L, S>> {
        let mut node = RaftNode::build(options, log, store, now)?;
        if bugs.contains(&Bug::ReusedCorrelationIds) {
            node.next_correlation_id = 1;
            node.requests = RequestManager::matching_by_id_only();
        }
        node.bugs = bugs;
        node.initialize()?;
        Ok(node)
    }

    fn build(options: NodeOptions, log: L, store: S, now: Timestamp) -> Result<RaftNode<L, S>> {
        options.config.validate()?;
        let rng = Prng::new(options.seed);
        let next_correlation_id = first_correlation_id(options.seed);
        Ok(RaftNode {
            role: Role::Unattached(crate::state::Unattached {
                epoch: LeaderEpoch(0),
                voted_key: None,
                election_deadline: Timestamp(i64::MAX),
                high_watermark: None,
            }),
            options,
            log,
            store,
            rng,
            requests: RequestManager::default(),
            effects: Vec::new(),
            next_correlation_id,
            next_commit: Offset(0),
            announced: None,
            now,
            wake_up: None,
            failed: None,
            tail: tail::TailCache::default(),
            #[cfg(any(test, feature = "sim-bugs"))]
            bugs: BTreeSet::new(),
        })
    }

    fn initialize(&mut self) -> Result<()> {
        let stored = self.store.read()?.unwrap_or_default();
        self.next_commit = self.log.log_start_offset();
        if let Some(snapshot) = self.log.latest_snapshot_id() {
            self.next_commit = self.next_commit.max(snapshot.offset);
            self.effects.push(Effect::LoadSnapshot { snapshot_id: snapshot });
        }
        self.restore(stored)?;
        self.poll()
    }

    /// Handles a message from node `from`.
    pub fn handle_message(&mut self, now: Timestamp, from: NodeId, message: Message) -> Result<()> {
        self.guarded(now, |node| node.dispatch(from, message))
    }

    /// Lets time pass: election and fetch timeouts, linger, heartbeats, retries.
    pub fn tick(&mut self, now: Timestamp) -> Result<()> {
        self.guarded(now, |_| Ok(()))
    }

    /// A request to `to` could not be delivered or answered (the transport's error): back off
    /// and retry rather than wait for the request timeout.
    pub fn request_failed(&mut self, now: Timestamp, to: NodeId, correlation_id: u64) -> Result<()> {
        self.guarded(now, |node| {
            if node.requests.in_flight(to, correlation_id).is_some() {
                let backoff = node.after(node.options.config.retry_backoff_ms);
                node.requests.on_response(to, false, backoff);
            }
            Ok(())
        })
    }

    /// Proposes records for the log. Returns the offset and epoch the last of them will have;
    /// they are committed when an [`Effect::Commit`] delivers that offset in that epoch. Fails
    /// with [`Error::NotLeader`] on anything but the leader.
    ///
    /// Proposals linger up to `controller.quorum.append.linger.ms` to share one append and
    /// flush, except on a single voter, which appends, flushes and commits before returning.
    pub fn propose(&mut self, now: Timestamp, records: Vec<Vec<u8>>) -> Result<OffsetAndEpoch> {
        self.guarded(now, |node| node.accept_proposal(records))
    }

    /// Steps down gracefully if leading: the other voters hear EndQuorumEpoch, the most caught
    /// up first, and elect a successor without waiting for their fetch timeout.
    pub fn resign(&mut self, now: Timestamp) -> Result<()> {
        self.guarded(now, |node| {
            if let Role::Leader(state) = &node.role {
                let successors = state.successors_by_descending_fetch_offset();
                node.transition_to_resigned(successors);
            }
            Ok(())
        })
    }

    /// Stores the state machine's snapshot at `end_offset` (exclusive; everything below it has
    /// been applied) and trims the log below it. `end_offset` must be a batch boundary the
    /// commit upcall has delivered up to.
    pub fn create_snapshot(&mut self, now: Timestamp, end_offset: Offset, payload: &[u8]) -> Result<SnapshotId> {
        self.guarded(now, |node| {
            let invalid = |reason: String| Err(Error::InvalidSnapshot(reason));
            if end_offset > node.next_commit {
                return invalid(format!("snapshot at {end_offset}, but only {} was delivered", node.next_commit));
            }
            if end_offset <= node.log.log_start_offset() {
                return invalid(format!(
                    "snapshot at {end_offset} is not past the log start {}",
                    node.log.log_start_offset()
                ));
            }
            let Some(epoch) = node.log.epoch_of(end_offset.plus(-1)) else {
                return invalid(format!("no record at {} to name the snapshot's epoch", end_offset.plus(-1)));
            };
            if node.read_log(end_offset.plus(-1), 1)?.first().is_none_or(|b| b.next_offset() != end_offset) {
                return invalid(format!("{end_offset} is not a batch boundary"));
            }
            let id = SnapshotId::new(end_offset, epoch);
            node.log.write_snapshot(id, &encode_snapshot(id, payload))?;
            node.log.delete_before_snapshot(id)?;
            node.tail.drop_below(end_offset);
            Ok(id)
        })
    }

    /// The effects emitted since the last call, in the order to execute them.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// The leader's DescribeQuorum data; [`Error::NotLeader`] elsewhere (Kafka answers
    /// `NOT_LEADER_OR_FOLLOWER`, KAFKA-13940).
    pub fn describe_quorum(&self, now: Timestamp) -> Result<QuorumDescription> {
        let Role::Leader(state) = &self.role else { return Err(self.not_leader()) };
        let describe = |r: &crate::state::ReplicaState| ReplicaDescription {
            replica_key: r.key,
            log_end_offset: r.end_offset,
            last_fetch_timestamp: r.last_fetch,
            last_caught_up_timestamp: r.last_caught_up,
        };
        Ok(QuorumDescription {
            leader_id: self.options.local.id,
            leader_epoch: state.epoch,
            high_watermark: state.high_watermark,
            voters: state.voters.values().map(describe).collect(),
            observers: state.live_observers(now).map(describe).collect(),
        })
    }

    /// The node's role.
    pub fn role(&self) -> RoleKind {
        self.role.kind()
    }

    /// The node's epoch.
    pub fn epoch(&self) -> LeaderEpoch {
        self.role.epoch()
    }

    /// The leader of the current epoch, if known (this node when leading or resigned).
    pub fn leader_id(&self) -> Option<NodeId> {
        self.role.leader_id(self.options.local.id)
    }

    /// The high watermark as this node knows it: everything below is committed.
    pub fn high_watermark(&self) -> Option<Offset> {
        self.role.high_watermark()
    }

    /// The election state this node holds in memory (its store should hold the same).
    pub fn election_state(&self) -> ElectionState {
        self.role.election(self.options.local)
    }

    /// Where the commit upcall continues: everything below was delivered by `Commit` or covered
    /// by a `LoadSnapshot`.
    pub fn next_commit_offset(&self) -> Offset {
        self.next_commit
    }

    /// For a leader, the offset of its epoch's LeaderChange record.
    pub fn epoch_start_offset(&self) -> Option<Offset> {
        match &self.role {
            Role::Leader(state) => Some(state.epoch_start_offset),
            _ => None,
        }
    }

    /// This node's key.
    pub fn local(&self) -> ReplicaKey {
        self.options.local
    }

    /// The voters.
    pub fn voters(&self) -> &VoterSet {
        &self.options.voters
    }

    /// Whether this node is a voter (its key matches the voter set).
    pub fn is_voter(&self) -> bool {
        self.options.voters.is_voter(&self.options.local)
    }

    /// The log.
    pub fn log(&self) -> &L {
        &self.log
    }

    /// The election-state store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Why the node stopped, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Gives the storage back (to restart the node on it, or to inspect it).
    pub fn into_storage(self) -> (L, S) {
        (self.log, self.store)
    }

    /// Checks the invariants of the node's state against its log (tests and the simulator run
    /// this after every input).
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.role.validate(self.options.local)?;
        let end = self.log.log_end_offset();
        let start = self.log.log_start_offset();
        if start > end {
            return Err(format!("log start {start} beyond log end {end}"));
        }
        if let Some(hw) = self.role.high_watermark() {
            if hw > end {
                return Err(format!("high watermark {hw} beyond the log end {end}"));
            }
            if self.next_commit > hw {
                return Err(format!("delivered commits up to {} beyond the high watermark {hw}", self.next_commit));
            }
        }
        if self.next_commit < start {
            return Err(format!("commit position {} below the log start {start}", self.next_commit));
        }
        if start > Offset(0) && self.log.earliest_snapshot_id().is_none_or(|s| s.offset != start) {
            return Err(format!("log start {start} without a snapshot there"));
        }
        if self.log.last_fetched_epoch() > self.role.epoch() {
            return Err(format!(
                "log epoch {} ahead of the node's epoch {}",
                self.log.last_fetched_epoch(),
                self.role.epoch()
            ));
        }
        if let Role::Leader(state) = &self.role {
            if state.epoch_start_offset > end {
                return Err("epoch start beyond the log end".into());
            }
            if self.log.flushed_end_offset() < state.high_watermark.unwrap_or_default() {
                return Err("high watermark beyond the leader's durable log".into());
            }
        }
        if !self.is_voter() && !matches!(self.role.kind(), RoleKind::Unattached | RoleKind::Follower) {
            return Err(format!("an observer in role {:?}", self.role.kind()));
        }
        Ok(())
    }

    // ---- internals shared by the handler modules ----

    fn guarded<T>(&mut self, now: Timestamp, step: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if let Some(reason) = &self.failed {
            return Err(Error::Failed(reason.clone()));
        }
        self.now = self.now.max(now);
        let mark = self.effects.len();
        let result = step(self).and_then(|value| self.poll().map(|()| value));
        if let Err(e) = &result
            && e.is_fatal()
        {
            // The process is going down: nothing decided in this step may leave the node.
            self.effects.truncate(mark);
            self.failed = Some(e.to_string());
        }
        result
    }

    fn dispatch(&mut self, from: NodeId, message: Message) -> Result<()> {
        if message.cluster_id != self.options.cluster_id {
            if message.body.is_request() {
                let error = ErrorCode::InconsistentClusterId;
                let body = self.error_response(&message.body, error);
                self.respond(from, message.correlation_id, body);
            }
            return Ok(());
        }
        let correlation_id = message.correlation_id;
        match message.body {
            MessageBody::VoteRequest(request) => self.handle_vote_request(from, correlation_id, request),
            MessageBody::VoteResponse(response) => self.handle_vote_response(from, correlation_id, response),
            MessageBody::BeginQuorumEpochRequest(request) => {
                self.handle_begin_quorum_epoch(from, correlation_id, request)
            }
            MessageBody::BeginQuorumEpochResponse(response) => {
                self.handle_epoch_response(from, correlation_id, response, false)
            }
            MessageBody::EndQuorumEpochRequest(request) => self.handle_end_quorum_epoch(from, correlation_id, request),
            MessageBody::EndQuorumEpochResponse(response) => {
                self.handle_epoch_response(from, correlation_id, response, true)
            }
            MessageBody::FetchRequest(request) => self.handle_fetch_request(from, correlation_id, request),
            MessageBody::FetchResponse(response) => self.handle_fetch_response(from, correlation_id, response),
            MessageBody::FetchSnapshotRequest(request) => {
                self.handle_fetch_snapshot_request(from, correlation_id, request)
            }
            MessageBody::FetchSnapshotResponse(response) => {
                self.handle_fetch_snapshot_response(from, correlation_id, response)
            }
        }
    }

    pub(crate) fn not_leader(&self) -> Error {
        Error::NotLeader { leader: self.leader_id(), epoch: self.epoch() }
    }

    pub(crate) fn after(&self, millis: i64) -> Timestamp {
        Timestamp(self.now.0.saturating_add(millis))
    }

    pub(crate) fn random_election_timeout(&mut self) -> Timestamp {
        let base = self.options.config.election_timeout_ms;
        let jitter = self.rng.below(base.max(0) as u64) as i64;
        self.after(base + jitter)
    }

    pub(crate) fn message(&self, correlation_id: u64, body: MessageBody) -> Message {
        Message { cluster_id: self.options.cluster_id.clone(), correlation_id, body }
    }

    pub(crate) fn respond(&mut self, to: NodeId, correlation_id: u64, body: MessageBody) {
        let message = self.message(correlation_id, body);
        self.effects.push(Effect::Send { to, message });
    }

    /// Sends a request and remembers it (its correlation id, kind and epoch) as the one in
    /// flight to `to`.
    pub(crate) fn send_request(&mut self, to: NodeId, body: MessageBody) {
        let Some(kind) = RequestKind::of(&body) else {
            debug_assert!(false, "send_request with a response body");
            return;
        };
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let deadline = self.after(self.options.config.request_timeout_ms);
        self.requests.on_sent(to, InFlight { correlation_id, kind, epoch: self.role.epoch(), deadline });
        let message = self.message(correlation_id, body);
        self.effects.push(Effect::Send { to, message });
    }

    /// Whether an answer from `from` answers the request of `kind` in flight to it, sent in the
    /// current epoch; anything else is stale and is dropped unread.
    pub(crate) fn is_expected_answer(&self, from: NodeId, correlation_id: u64, kind: RequestKind) -> bool {
        self.requests.is_expected(from, correlation_id, kind, self.role.epoch())
    }

    /// Marks the answer from `from` handled (ready again) or failed (back off).
    pub(crate) fn finish_request(&mut self, from: NodeId, ok: bool) {
        let backoff = self.after(self.options.config.retry_backoff_ms);
        self.requests.on_response(from, ok, backoff);
    }

    /// Appends to the log, and remembers the batch.
    pub(crate) fn append_to_log(&mut self, batch: Batch) -> Result<()> {
        self.log.append(batch.clone())?;
        self.tail.push(batch);
        Ok(())
    }

    /// Truncates the log (durably), and the memory of its tail.
    pub(crate) fn truncate_log(&mut self, offset: Offset) -> Result<()> {
        self.tail.truncate_to(offset);
        self.log.truncate_to(offset)?;
        Ok(())
    }

    /// Reads whole batches from `from` (as `RaftLog::read`), from memory when it has them.
    pub(crate) fn read_log(&self, from: Offset, max_bytes: usize) -> Result<Vec<Batch>> {
        match self.tail.read(from, max_bytes) {
            Some(batches) => Ok(batches),
            None => Ok(self.log.read(from, max_bytes)?),
        }
    }

    pub(crate) fn persist(&mut self) -> Result<()> {
        let election = self.role.election(self.options.local);
        self.store.write(&election)?;
        Ok(())
    }
}

/// Where a node's correlation ids start: drawn from its seed (apart from the stream of its
/// election timeouts), below 2^62 so that they never wrap in practice. A restart with a new seed
/// starts elsewhere in a space of 2^62, so its ids do not meet the previous incarnation's.
fn first_correlation_id(seed: u64) -> u64 {
    const CORRELATION_STREAM: u64 = 0x636f_7272_656c_6174;
    Prng::new(seed ^ CORRELATION_STREAM).next_u64() >> 2
}
