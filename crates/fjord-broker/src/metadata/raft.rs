//! The metadata quorum on `fjord-quorum` (Kafka's `KafkaRaftClient` with its `RaftManager`):
//! a thread that owns this node's [`RaftNode`] — voter or observer — with its `FileLog` in
//! `__cluster_metadata-0` and its `quorum-state`, feeds it messages, proposals and time, and
//! carries out what it asks for: messages to other nodes go out over gRPC, committed batches
//! are applied to the metadata image and handed to the loader, leadership is announced to the
//! controller.
//!
//! The thread is the node's only owner, so the node's inputs are serialized as its sans-IO
//! design wants; what crosses the network runs on the async runtime and comes back as inputs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::Duration;

use fjord_log::LogConfig;
use fjord_metadata::{MetadataBatch, MetadataDelta, MetadataImage, MetadataRecord};
use fjord_protocol::cluster as pb;
use fjord_quorum::{
    Batch, BatchKind, Driver, DriverEvent, FileLog, FileQuorumStateStore, Message, NodeId, NodeOptions, QuorumConfig,
    QuorumDescription, RaftLog, RaftNode, ReplicaKey, SnapshotPolicy, StateMachine, VoterSet,
};
use fjord_types::{Clock, LeaderEpoch, Offset, OffsetAndEpoch, SystemClock};
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

use super::loader::Update;
use super::quorum::{MetadataQuorum, Proposed, QuorumError};
use super::wire;

/// Who leads the metadata quorum, as this node knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuorumLeader {
    /// The epoch.
    pub(crate) epoch: LeaderEpoch,
    /// The leader, if one is known.
    pub(crate) leader: Option<NodeId>,
    /// When this node leads: the last offset its image had applied when it took over, which
    /// the controller waits for before deciding anything.
    pub(crate) applied: Offset,
}

impl Default for QuorumLeader {
    fn default() -> Self {
        QuorumLeader { epoch: LeaderEpoch::NONE, leader: None, applied: Offset::NONE }
    }
}

/// What the quorum thread is told.
enum Input {
    /// A request from another node; its answer goes back on `reply`.
    Request { from: NodeId, message: Message, reply: oneshot::Sender<Message> },
    /// The answer to a request this node sent.
    Response { from: NodeId, message: Message },
    /// A request this node sent got no answer.
    Failed { to: NodeId, correlation_id: u64 },
    /// Records to append, numbered from `base` by the proposer.
    Propose { records: Vec<Vec<u8>>, base: Offset, reply: oneshot::Sender<Result<OffsetAndEpoch, QuorumError>> },
    /// DescribeQuorum's data.
    Describe { reply: oneshot::Sender<Result<QuorumDescription, QuorumError>> },
    /// Resign if leading (EndQuorumEpoch tells the others) and stop.
    Stop,
}

/// What a node needs to join the quorum.
#[derive(Debug, Clone)]
pub(crate) struct QuorumOptions {
    pub(crate) cluster_id: String,
    pub(crate) local: ReplicaKey,
    pub(crate) voters: VoterSet,
    pub(crate) config: QuorumConfig,
    /// `metadata.log.max.record.bytes.between.snapshots`.
    pub(crate) snapshot_bytes: u64,
}

/// A handle on the quorum thread: proposals and DescribeQuorum for the controller, inbound
/// requests for the gRPC service, and who leads.
#[derive(Debug, Clone)]
pub(crate) struct RaftQuorum {
    inputs: Sender<Input>,
    /// Where this node, while leading, will put its next proposal (`None` otherwise).
    position: Arc<Mutex<Option<OffsetAndEpoch>>>,
    leader: watch::Receiver<QuorumLeader>,
    local: NodeId,
    request_timeout: Duration,
    refused: watch::Receiver<Option<String>>,
}

/// The state machine the quorum feeds: the metadata image, advanced batch by batch on the
/// quorum's thread, each change handed to the loader with its delta.
struct MetadataMachine {
    image: Arc<MetadataImage>,
    loader: SyncSender<Update>,
}

impl MetadataMachine {
    fn hand_over(&self, delta: MetadataDelta, offset: Offset) -> Result<(), String> {
        let update = Update { image: Arc::clone(&self.image), delta, offset };
        self.loader.send(update).map_err(|_| "the metadata loader stopped".to_owned())
    }
}

impl StateMachine for MetadataMachine {
    fn apply(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.kind == BatchKind::Control {
            return self.hand_over(MetadataDelta::default(), batch.last_offset());
        }
        let records = batch
            .records
            .iter()
            .map(|bytes| MetadataRecord::decode(bytes))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("undecodable metadata record in the batch at {}: {e}", batch.base_offset))?;
        let batch = MetadataBatch { base_offset: batch.base_offset, epoch: batch.epoch, records };
        let (next, delta) = self.image.apply_batch(&batch).map_err(|e| e.to_string())?;
        self.image = Arc::new(next);
        self.hand_over(delta, batch.last().offset)
    }

    fn snapshot(&self) -> Vec<u8> {
        self.image.encode_snapshot()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let next = MetadataImage::decode_snapshot(snapshot).map_err(|e| e.to_string())?;
        let delta = MetadataDelta::between(&self.image, &next);
        let offset = next.provenance.offset;
        self.image = Arc::new(next);
        self.hand_over(delta, offset)
    }
}

/// Lazily connected gRPC clients of the voters.
#[derive(Debug, Clone)]
pub(crate) struct Peers {
    voters: VoterSet,
    clients: Arc<Mutex<HashMap<NodeId, pb::quorum_client::QuorumClient<tonic::transport::Channel>>>>,
}

impl Peers {
    pub(crate) fn new(voters: VoterSet) -> Peers {
        Peers { voters, clients: Arc::new(Mutex::new(HashMap::new())) }
    }

    fn client(&self, node: NodeId) -> Option<pb::quorum_client::QuorumClient<tonic::transport::Channel>> {
        let mut clients = self.clients.lock();
        if let Some(client) = clients.get(&node) {
            return Some(client.clone());
        }
        let channel = crate::cluster::connect(self.voters.get(node)?.endpoint.as_ref()?)?;
        let client = pb::quorum_client::QuorumClient::new(channel)
            .max_decoding_message_size(crate::cluster::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::cluster::MAX_MESSAGE_BYTES);
        clients.insert(node, client.clone());
        Some(client)
    }
}

/// Requests answered by this node but not yet sent back, by (sender, correlation id).
type Inbound = BTreeMap<(NodeId, u64), oneshot::Sender<Message>>;

impl RaftQuorum {
    /// Opens the quorum's storage in `dir` (recovering it), and starts its thread. Committed
    /// changes go to `loader`; messages to other nodes go out on `runtime` through `peers`.
    pub(crate) fn start(
        options: QuorumOptions,
        dir: &Path,
        loader: SyncSender<Update>,
        runtime: tokio::runtime::Handle,
        peers: Peers,
    ) -> Result<(RaftQuorum, std::thread::JoinHandle<()>), String> {
        let now = SystemClock.now();
        let log = FileLog::open(dir, LogConfig { segment_bytes: 64 * 1024 * 1024, ..LogConfig::default() })
            .map_err(|e| format!("cannot open the metadata log: {e}"))?;
        let store = FileQuorumStateStore::new(dir).map_err(|e| format!("cannot open quorum-state: {e}"))?;
        let request_timeout = Duration::from_millis(options.config.request_timeout_ms.max(1) as u64);
        let local = options.local.id;
        let cluster_id = options.cluster_id.clone();
        let node_options = NodeOptions {
            cluster_id: options.cluster_id,
            local: options.local,
            voters: options.voters,
            config: options.config,
            // Each start of each node draws its own election timeouts.
            seed: now.0 as u64 ^ (u64::from(local.0 as u32) << 32),
        };
        let node = RaftNode::new(node_options, log, store, now).map_err(|e| format!("cannot start the quorum: {e}"))?;
        let machine = MetadataMachine { image: Arc::new(MetadataImage::default()), loader };
        let policy = SnapshotPolicy { max_bytes_between_snapshots: options.snapshot_bytes };
        let driver =
            Driver::new(node, machine, policy, now).map_err(|e| format!("cannot replay the metadata log: {e}"))?;
        let (inputs, queue) = std::sync::mpsc::channel();
        let (leader_tx, leader) = watch::channel(QuorumLeader::default());
        let position = Arc::new(Mutex::new(None));
        let (refused_tx, refused) = watch::channel(None);
        let quorum = RaftQuorum {
            inputs: inputs.clone(),
            position: Arc::clone(&position),
            leader,
            local,
            request_timeout,
            refused,
        };
        let mut thread = QuorumThread {
            driver,
            queue,
            inputs,
            runtime,
            peers,
            inbound: Inbound::new(),
            proposals: Vec::new(),
            leader: leader_tx,
            position,
            local,
            request_timeout,
            cluster_id,
            refused: refused_tx,
        };
        thread.after_input();
        let handle = std::thread::Builder::new()
            .name("fjord-metadata-quorum".into())
            .spawn(move || {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| thread.run())).is_err() {
                    // As for a fatal error: without its quorum the node would serve a frozen image.
                    tracing::error!("the metadata quorum thread panicked; stopping the process");
                    std::process::exit(1);
                }
            })
            .map_err(|e| format!("cannot start the quorum thread: {e}"))?;
        Ok((quorum, handle))
    }

    /// Why this node may not join the quorum it reaches (another cluster's voters answer it),
    /// once that is known.
    pub(crate) fn refused(&self) -> watch::Receiver<Option<String>> {
        self.refused.clone()
    }

    /// Who leads, as this node knows it, and its changes.
    pub(crate) fn leader(&self) -> watch::Receiver<QuorumLeader> {
        self.leader.clone()
    }

    /// This node's id.
    pub(crate) fn local(&self) -> NodeId {
        self.local
    }

    /// Answers a request from another node (the gRPC service calls this).
    pub(crate) async fn handle_request(&self, from: NodeId, message: Message) -> Result<Message, QuorumError> {
        let (reply, answer) = oneshot::channel();
        self.inputs.send(Input::Request { from, message, reply }).map_err(|_| QuorumError::ShuttingDown)?;
        // A Fetch may wait at the leader for records; the node answers within its own limits.
        match tokio::time::timeout(self.request_timeout * 2, answer).await {
            Ok(Ok(message)) => Ok(message),
            _ => Err(QuorumError::ShuttingDown),
        }
    }

    /// Stops the quorum thread (resigning first if this node leads).
    pub(crate) fn stop(&self) {
        let _ = self.inputs.send(Input::Stop);
    }

    /// DescribeQuorum's data, from the leader.
    pub(crate) async fn describe(&self) -> Result<QuorumDescription, QuorumError> {
        let (reply, answer) = oneshot::channel();
        self.inputs.send(Input::Describe { reply }).map_err(|_| QuorumError::ShuttingDown)?;
        answer.await.map_err(|_| QuorumError::ShuttingDown)?
    }
}

impl MetadataQuorum for RaftQuorum {
    fn next_position(&self) -> OffsetAndEpoch {
        self.position.lock().unwrap_or(OffsetAndEpoch::NONE)
    }

    fn propose(&self, records: Vec<MetadataRecord>) -> Result<Proposed, QuorumError> {
        let mut position = self.position.lock();
        let at = position.ok_or(QuorumError::NotLeader)?;
        let encoded: Vec<Vec<u8>> = records
            .iter()
            .map(|r| {
                let mut bytes = Vec::new();
                r.encode(&mut bytes);
                bytes
            })
            .collect();
        let (reply, committed) = oneshot::channel();
        // Sent under the lock, so the thread receives proposals in the order they were numbered.
        self.inputs
            .send(Input::Propose { records: encoded, base: at.offset, reply })
            .map_err(|_| QuorumError::ShuttingDown)?;
        *position = Some(OffsetAndEpoch::new(at.offset.plus(records.len() as i64), at.epoch));
        let committed = Box::pin(async move { committed.await.map_err(|_| QuorumError::ShuttingDown)? });
        Ok(Proposed { base_offset: at.offset, committed })
    }
}

struct QuorumThread {
    driver: Driver<FileLog, FileQuorumStateStore, MetadataMachine>,
    queue: Receiver<Input>,
    inputs: Sender<Input>,
    runtime: tokio::runtime::Handle,
    peers: Peers,
    inbound: Inbound,
    /// Proposals waiting to commit: their last record's position.
    proposals: Vec<(OffsetAndEpoch, oneshot::Sender<Result<OffsetAndEpoch, QuorumError>>)>,
    leader: watch::Sender<QuorumLeader>,
    position: Arc<Mutex<Option<OffsetAndEpoch>>>,
    local: NodeId,
    request_timeout: Duration,
    cluster_id: String,
    /// Why this node cannot be part of the quorum it reaches, once known.
    refused: watch::Sender<Option<String>>,
}

impl QuorumThread {
    fn run(mut self) {
        loop {
            let now = SystemClock.now();
            let wait = self
                .driver
                .next_wake_up()
                .map_or(Duration::from_secs(1), |at| Duration::from_millis((at.0 - now.0).clamp(0, 1000) as u64));
            let result = match self.queue.recv_timeout(wait) {
                Ok(Input::Stop) => {
                    let _ = self.driver.resign(SystemClock.now());
                    self.after_input();
                    return;
                }
                Ok(input) => self.handle(input),
                Err(RecvTimeoutError::Timeout) => self.driver.tick(SystemClock.now()),
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if let Err(e) = result {
                if e.is_fatal() {
                    // Kafka's fault handler halts the process here: a node that cannot keep
                    // the metadata log must not go on serving from a guess of it.
                    tracing::error!(error = %e, "the metadata quorum failed; stopping the process");
                    std::process::exit(1);
                }
                tracing::debug!(error = %e, "quorum input refused");
            }
            self.after_input();
        }
    }

    fn handle(&mut self, input: Input) -> fjord_quorum::Result<()> {
        let now = SystemClock.now();
        match input {
            Input::Request { from, message, reply } => {
                let key = (from, message.correlation_id);
                if self.inbound.len() > 256 {
                    self.inbound.retain(|_, waiting| !waiting.is_closed());
                }
                self.inbound.insert(key, reply);
                self.driver.handle_message(now, from, message)
            }
            Input::Response { from, message } => {
                if message.cluster_id != self.cluster_id {
                    // The voters answer for another cluster: this node's data directory was
                    // formatted for a different one, and it must not join this one.
                    let reason = format!(
                        "node {} answers for cluster {} but this node's meta.properties says {}: \
                         this node belongs to another cluster and refuses to join",
                        from.0, message.cluster_id, self.cluster_id
                    );
                    self.refused.send_if_modified(|r| {
                        let first = r.is_none();
                        if first {
                            tracing::error!("{reason}");
                            *r = Some(reason);
                        }
                        first
                    });
                    return Ok(());
                }
                self.driver.handle_message(now, from, message)
            }
            Input::Failed { to, correlation_id } => self.driver.request_failed(now, to, correlation_id),
            Input::Propose { records, base, reply } => {
                let count = records.len() as i64;
                match self.driver.propose(now, records) {
                    Ok(last) if last.offset == base.plus(count - 1) => self.proposals.push((last, reply)),
                    Ok(last) => {
                        tracing::warn!(expected = base.0, got = last.offset.0, "a proposal landed off its numbering");
                        let _ = reply.send(Err(QuorumError::NotLeader));
                    }
                    // A leader whose LeaderChange is not committed yet refuses too; the
                    // controller retries once it is announced.
                    Err(fjord_quorum::Error::NotLeader { .. } | fjord_quorum::Error::LeaderNotReady { .. }) => {
                        let _ = reply.send(Err(QuorumError::NotLeader));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(QuorumError::Storage(e.to_string())));
                        return Err(e);
                    }
                }
                Ok(())
            }
            Input::Stop => Ok(()),
            Input::Describe { reply } => {
                let described = self.driver.node().describe_quorum(now).map_err(|_| QuorumError::NotLeader);
                let _ = reply.send(described);
                Ok(())
            }
        }
    }

    /// Carries out what the node asked for after an input.
    fn after_input(&mut self) {
        for (to, message) in self.driver.take_outbox() {
            self.send(to, message);
        }
        for event in self.driver.take_events() {
            match event {
                DriverEvent::Applied(applied) => {
                    let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.proposals)
                        .into_iter()
                        .partition(|(last, _)| last.epoch == applied.epoch && last.offset <= applied.last_offset);
                    self.proposals = waiting;
                    for (last, reply) in done {
                        let _ = reply.send(Ok(last));
                    }
                }
                DriverEvent::LeaderChange { epoch, leader_id } => self.leader_changed(epoch, leader_id),
                DriverEvent::SnapshotLoaded(id) => tracing::info!(snapshot = ?id, "loaded a metadata snapshot"),
                DriverEvent::SnapshotCreated(id) => tracing::info!(snapshot = ?id, "wrote a metadata snapshot"),
            }
        }
    }

    fn leader_changed(&mut self, epoch: LeaderEpoch, leader: Option<NodeId>) {
        let leading = leader == Some(self.local);
        let applied = self.driver.applied_offset().plus(-1);
        *self.position.lock() = leading.then(|| OffsetAndEpoch::new(self.driver.node().log().log_end_offset(), epoch));
        if !leading {
            // They may still commit under the new leader; their proposer cannot know, so it
            // starts again from what does commit.
            for (_, reply) in self.proposals.drain(..) {
                let _ = reply.send(Err(QuorumError::NotLeader));
            }
        }
        tracing::info!(epoch = epoch.0, leader = ?leader.map(|l| l.0), "metadata quorum leader");
        self.leader.send_replace(QuorumLeader { epoch, leader, applied });
    }

    fn send(&mut self, to: NodeId, message: Message) {
        if !message.body.is_request() {
            match self.inbound.remove(&(to, message.correlation_id)) {
                Some(reply) => {
                    let _ = reply.send(message);
                }
                None => tracing::debug!(%message, "an answer to a request nobody waits for"),
            }
            return;
        }
        let correlation_id = message.correlation_id;
        let (inputs, local, timeout) = (self.inputs.clone(), self.local, self.request_timeout);
        // Channels are made on the runtime that will drive them.
        let _runtime = self.runtime.enter();
        let Some(mut client) = self.peers.client(to) else {
            let _ = inputs.send(Input::Failed { to, correlation_id });
            return;
        };
        self.runtime.spawn(async move {
            let mut request = tonic::Request::new(wire::to_wire(local, message));
            request.set_timeout(timeout);
            let answer = match client.call(request).await {
                Ok(response) => wire::from_wire(response.into_inner()).ok(),
                Err(status) => {
                    tracing::trace!(to = to.0, %status, "quorum request failed");
                    None
                }
            };
            let _ = match answer {
                Some((from, message)) if from == to => inputs.send(Input::Response { from, message }),
                _ => inputs.send(Input::Failed { to, correlation_id }),
            };
        });
    }
}

/// The gRPC face of the quorum: other nodes' requests to this one.
#[derive(Debug, Clone)]
pub(crate) struct QuorumService {
    pub(crate) quorum: RaftQuorum,
}

#[tonic::async_trait]
impl pb::quorum_server::Quorum for QuorumService {
    async fn call(
        &self,
        request: tonic::Request<pb::RaftMessage>,
    ) -> Result<tonic::Response<pb::RaftMessage>, tonic::Status> {
        let (from, message) =
            wire::from_wire(request.into_inner()).map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
        if !message.body.is_request() {
            return Err(tonic::Status::invalid_argument("a quorum call carries a request"));
        }
        let answer =
            self.quorum.handle_request(from, message).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        Ok(tonic::Response::new(wire::to_wire(self.quorum.local(), answer)))
    }
}
