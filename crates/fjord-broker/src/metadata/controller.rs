//! The controller path (Kafka's `QuorumController` event queue): a handler submits a decision
//! (a function of the image returning records and an answer); the controller runs decisions
//! one at a time against its own image — the committed one plus what it has proposed since —
//! proposes the records through the [`MetadataQuorum`], and answers once they have committed
//! and this node's published image contains them.
//!
//! Only the active controller decides: the task runs on every controller node and becomes
//! active when the quorum makes this node its leader (once its image has caught up with
//! everything committed before), and inactive when it loses the leadership; decisions meanwhile
//! are answered NOT_CONTROLLER. While active it also does the controller's own duties: fencing
//! brokers whose session expired, writing a no-op when idle, moving leaderships back to
//! preferred replicas.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fjord_metadata::controller::{self, BrokerHeartbeatManager};
use fjord_metadata::{MetadataBatch, MetadataImage, MetadataRecord};
use fjord_quorum::NodeId;
use fjord_types::{Clock, SystemClock, Timestamp};
use tokio::sync::{mpsc, oneshot, watch};

use super::loader::Published;
use super::quorum::{MetadataQuorum, QuorumError};
use super::raft::QuorumLeader;

/// Why a decision's records did not take effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ControllerFailure {
    /// The records do not apply to the controller's image (a bug in a decision).
    #[error("the controller's records do not apply: {0}")]
    Inconsistent(String),
    /// The quorum did not commit them (or this node is not the active controller).
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// The controller refused the request (a broker's registration or heartbeat).
    #[error(transparent)]
    Refused(#[from] fjord_metadata::ControllerError),
}

/// The controller's own duties and how often it does them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Duties {
    /// `broker.session.timeout.ms`.
    pub(crate) session_timeout_ms: i64,
    /// `metadata.max.idle.interval.ms`.
    pub(crate) max_idle_interval_ms: u64,
    /// `auto.leader.rebalance.enable`.
    pub(crate) auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms.
    pub(crate) imbalance_check_interval_ms: u64,
    /// `unclean.leader.election.enable`, the default of topics that do not set it.
    pub(crate) unclean_leader_election: bool,
    /// A broker silent this long (a quarter of `broker.heartbeat.interval.ms` and a margin) has
    /// its listeners probed, at most once per this long; `None` turns the probe off.
    pub(crate) probe_after_ms: Option<i64>,
}

/// What a decision works on: the controller's image and the brokers' sessions.
pub(crate) struct ControllerState {
    /// The committed image plus every batch proposed since.
    pub(crate) image: Arc<MetadataImage>,
    /// The brokers' sessions, as this controller has heard from them.
    pub(crate) sessions: BrokerHeartbeatManager,
    quorum: Arc<dyn MetadataQuorum>,
    published: Published,
    /// Set when a proposal fails: the image holds records that never committed, so the next
    /// decision starts again from the published one.
    stale: Arc<AtomicBool>,
    last_proposal: Timestamp,
    last_rebalance: Timestamp,
    /// Brokers whose listeners are being probed, and where a refusal is reported.
    probing: std::collections::BTreeSet<fjord_types::BrokerId>,
    /// When each broker was last probed: one that answered is not probed again for a while.
    last_probe: std::collections::BTreeMap<fjord_types::BrokerId, Timestamp>,
    refused: mpsc::UnboundedSender<(fjord_types::BrokerId, Timestamp)>,
}

/// A proposal in flight: resolves once committed and in this node's image.
pub(crate) type Committed = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ControllerFailure>> + Send>>;

impl ControllerState {
    /// Where the next proposal's records will start.
    pub(crate) fn next_offset(&self) -> fjord_types::Offset {
        self.quorum.next_position().offset
    }

    /// Applies `records` to the controller's image at the offsets the quorum gives them and
    /// proposes them. Returns what to wait on for the commit.
    pub(crate) fn propose(&mut self, records: Vec<MetadataRecord>) -> Result<Committed, ControllerFailure> {
        // Checked against the image first, at the offsets the records will have: a batch that
        // does not apply is never proposed.
        let at = self.quorum.next_position();
        let batch = MetadataBatch { base_offset: at.offset, epoch: at.epoch, records };
        let (next, _) = self.image.apply_batch(&batch).map_err(|e| {
            tracing::error!(error = %e, "a controller decision produced records that do not apply");
            ControllerFailure::Inconsistent(e.to_string())
        })?;
        let proposed = self.quorum.propose(batch.records.clone())?;
        if proposed.base_offset != at.offset {
            // Someone else appended: this image is not the log's any more.
            self.stale.store(true, Ordering::Release);
            return Err(ControllerFailure::Inconsistent(format!(
                "the batch went to offset {}, not {}",
                proposed.base_offset, at.offset
            )));
        }
        self.image = Arc::new(next);
        self.last_proposal = SystemClock.now();
        let (published, stale, last) = (self.published.clone(), Arc::clone(&self.stale), batch.last().offset);
        let committed = proposed.committed;
        Ok(Box::pin(async move {
            match committed.await {
                Ok(_) if published.wait_for(last).await => Ok(()),
                Ok(_) => Err(ControllerFailure::Quorum(QuorumError::ShuttingDown)),
                Err(e) => {
                    stale.store(true, Ordering::Release);
                    Err(ControllerFailure::Quorum(e))
                }
            }
        }))
    }

    /// Proposes records of the controller's own duties; failures are logged, not answered.
    fn propose_duty(&mut self, what: &'static str, records: Vec<MetadataRecord>) {
        if records.is_empty() {
            return;
        }
        match self.propose(records) {
            Ok(committed) => {
                tokio::spawn(async move {
                    if let Err(e) = committed.await {
                        tracing::warn!(duty = what, error = %e, "controller duty did not commit");
                    }
                });
            }
            Err(e) => tracing::warn!(duty = what, error = %e, "controller duty not proposed"),
        }
    }

    /// Fences a broker whose session expired (one per round), writes a no-op when idle, moves
    /// leaderships back to preferred replicas when it is time, and runs the unclean elections
    /// topics allow.
    fn do_duties(&mut self, duties: &Duties, now: Timestamp) {
        if let Some(stale) = self.sessions.next_stale(&self.image, now, duties.session_timeout_ms) {
            tracing::info!(broker = stale.0, "fencing a broker whose session expired");
            let records = controller::fence_broker(&self.image, stale);
            self.propose_duty("fence", records);
        }
        if let Some(after_ms) = duties.probe_after_ms {
            self.probe_overdue(now, after_ms);
        }
        if duties.auto_leader_rebalance && now.0 - self.last_rebalance.0 >= duties.imbalance_check_interval_ms as i64 {
            self.last_rebalance = now;
            let imbalanced = controller::imbalanced_partitions(&self.image);
            if !imbalanced.is_empty() {
                let (records, _) = controller::elect_preferred(&self.image, &imbalanced);
                tracing::info!(partitions = records.len(), "moving leaderships back to preferred replicas");
                self.propose_duty("rebalance", records);
            }
        }
        let (elected, records) = controller::elect_unclean_where_allowed(&self.image, duties.unclean_leader_election);
        for (topic, partition) in &elected {
            tracing::warn!(
                topic = %topic,
                partition,
                "unclean leader election: no in-sync replica is alive, so an out-of-sync one leads; \
                 records only the old ISR held are lost (unclean.leader.election.enable=true)"
            );
        }
        self.propose_duty("unclean election", records);
        if now.0 - self.last_proposal.0 >= duties.max_idle_interval_ms as i64 {
            self.propose_duty("no-op", vec![MetadataRecord::NoOp]);
        }
    }
}

impl ControllerState {
    /// Probes the listeners of brokers that missed a heartbeat. A process that is gone leaves
    /// its ports refusing connections; a live one, even paused or overloaded, has its listening
    /// sockets accepting in the kernel. So a broker fenced on this signal is certainly dead, and
    /// its leaderships move in a few seconds instead of a whole session timeout. A broker that
    /// cannot be reached at all (a partition, a timeout) waits for its session as before.
    /// Right after this controller becomes active every broker is probed once: the old
    /// controller's node may have taken brokers down with it, and their sessions here only
    /// start at the activation.
    fn probe_overdue(&mut self, now: Timestamp, after_ms: i64) {
        for (broker, last_contact) in self.sessions.overdue(&self.image, now, after_ms) {
            let recently = self.last_probe.get(&broker).is_some_and(|at| now.0 - at.0 < after_ms);
            if recently || !self.probing.insert(broker) {
                continue;
            }
            self.last_probe.insert(broker, now);
            let Some(registration) = self.image.brokers.get(&broker) else { continue };
            let endpoints: Vec<String> =
                registration.listeners.iter().map(|e| format!("{}:{}", e.host, e.port)).collect();
            let refused = self.refused.clone();
            tokio::spawn(async move {
                let mut all_refused = !endpoints.is_empty();
                for endpoint in &endpoints {
                    let attempt = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(endpoint)).await;
                    let refused_here =
                        matches!(attempt, Ok(Err(ref e)) if e.kind() == std::io::ErrorKind::ConnectionRefused);
                    all_refused &= refused_here;
                }
                // Reported either way, so the broker can be probed again later.
                let _ = refused.send((broker, if all_refused { last_contact } else { Timestamp::NONE }));
            });
        }
    }

    /// A probe answered: if every listener of `broker` refused and it has not been heard from
    /// since the probe began, it is fenced now.
    fn probed(&mut self, broker: fjord_types::BrokerId, refused_since: Timestamp) {
        self.probing.remove(&broker);
        if refused_since.is_none() || self.sessions.last_contact(broker) != Some(refused_since) {
            return;
        }
        if self.image.brokers.get(&broker).is_none_or(|r| r.fenced) {
            return;
        }
        tracing::info!(
            broker = broker.0,
            "fencing a broker that stopped heartbeating and whose listeners refuse connections"
        );
        let records = controller::fence_broker(&self.image, broker);
        self.propose_duty("fence", records);
    }
}

/// How long a probe waits for a broker's listener.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

type Job = Box<dyn FnOnce(Result<&mut ControllerState, ControllerFailure>) + Send>;

/// Decisions waiting for the controller: bounded, so a flood of admin requests waits.
const DECISIONS_QUEUED: usize = 1024;

/// How often the active controller looks at its duties.
const DUTY_INTERVAL: Duration = Duration::from_millis(100);

/// A handle on the controller of this node.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    jobs: mpsc::Sender<Job>,
    active: watch::Receiver<bool>,
}

impl Controller {
    /// Starts the controller's task on the current runtime. It becomes active whenever
    /// `leader` names `local`.
    pub(crate) fn start(
        quorum: Arc<dyn MetadataQuorum>,
        published: Published,
        leader: watch::Receiver<QuorumLeader>,
        local: NodeId,
        duties: Duties,
    ) -> (Controller, tokio::task::JoinHandle<()>) {
        let (jobs, queue) = mpsc::channel(DECISIONS_QUEUED);
        let (active_tx, active) = watch::channel(false);
        let task = tokio::spawn(run(quorum, published, leader, local, duties, queue, active_tx));
        (Controller { jobs, active }, task)
    }

    /// Whether this node is the active controller now.
    pub(crate) fn is_active(&self) -> bool {
        *self.active.borrow()
    }

    /// Runs `work` on the controller's state, in turn with every other decision, and waits for
    /// what it returns: an answer now, or one that comes when its records commit. Refused with
    /// NOT_CONTROLLER unless this node is the active controller.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut ControllerState) -> Result<(T, Option<Committed>), ControllerFailure> + Send + 'static,
    ) -> Result<T, ControllerFailure> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |state| match state.and_then(work) {
            Ok((value, None)) => {
                let _ = answer.send(Ok(value));
            }
            Ok((value, Some(committed))) => {
                tokio::spawn(async move {
                    let _ = answer.send(committed.await.map(|()| value));
                });
            }
            Err(e) => {
                let _ = answer.send(Err(e));
            }
        });
        self.jobs.send(job).await.map_err(|_| QuorumError::ShuttingDown)?;
        answered.await.map_err(|_| QuorumError::ShuttingDown)?
    }

    /// Runs `decide` against the controller's image. Unless `validate_only`, its records are
    /// proposed and the answer comes once they have committed and are in this node's image.
    pub(crate) async fn decide<T: Send + 'static>(
        &self,
        validate_only: bool,
        decide: impl FnOnce(&MetadataImage) -> (Vec<MetadataRecord>, T) + Send + 'static,
    ) -> Result<T, ControllerFailure> {
        self.run(move |state| {
            let (records, value) = decide(&state.image);
            if validate_only || records.is_empty() {
                return Ok((value, None));
            }
            Ok((value, Some(state.propose(records)?)))
        })
        .await
    }
}

async fn run(
    quorum: Arc<dyn MetadataQuorum>,
    published: Published,
    mut leader: watch::Receiver<QuorumLeader>,
    local: NodeId,
    duties: Duties,
    mut queue: mpsc::Receiver<Job>,
    active: watch::Sender<bool>,
) {
    let mut state: Option<ControllerState> = None;
    let (refused_tx, mut refused_rx) = mpsc::unbounded_channel();
    let mut ticks = tokio::time::interval(DUTY_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading_epoch = None;
    // The quorum may have named its leader before this task subscribed (one voter leads at once).
    leader.mark_changed();
    loop {
        tokio::select! {
            job = queue.recv() => {
                let Some(job) = job else { return };
                match state.as_mut() {
                    Some(state) => {
                        if state.stale.swap(false, Ordering::AcqRel) {
                            state.image = state.published.image();
                        }
                        job(Ok(state));
                    }
                    None => job(Err(ControllerFailure::Quorum(QuorumError::NotLeader))),
                }
            }
            changed = leader.changed() => {
                if changed.is_err() {
                    return;
                }
                let now_leader = *leader.borrow_and_update();
                if now_leader.leader == Some(local) {
                    if leading_epoch == Some(now_leader.epoch) {
                        continue;
                    }
                    // Decide nothing before the image holds everything committed before this
                    // epoch: decisions on an old image would contradict the log.
                    if !published.wait_for(now_leader.applied).await {
                        return;
                    }
                    let image = published.image();
                    let now = SystemClock.now();
                    let sessions = BrokerHeartbeatManager::new(&image, now);
                    state = Some(ControllerState {
                        image,
                        sessions,
                        quorum: Arc::clone(&quorum),
                        published: published.clone(),
                        stale: Arc::new(AtomicBool::new(false)),
                        last_proposal: now,
                        last_rebalance: now,
                        probing: std::collections::BTreeSet::new(),
                        last_probe: std::collections::BTreeMap::new(),
                        refused: refused_tx.clone(),
                    });
                    leading_epoch = Some(now_leader.epoch);
                    active.send_replace(true);
                    tracing::info!(epoch = now_leader.epoch.0, "this node is the active controller");
                } else if state.take().is_some() {
                    leading_epoch = None;
                    active.send_replace(false);
                    tracing::info!(leader = ?now_leader.leader.map(|l| l.0), "this node is no longer the active controller");
                }
            }
            Some((broker, since)) = refused_rx.recv() => {
                if let Some(state) = state.as_mut() {
                    if state.stale.swap(false, Ordering::AcqRel) {
                        state.image = state.published.image();
                    }
                    state.probed(broker, since);
                }
            }
            _ = ticks.tick() => {
                if let Some(state) = state.as_mut() {
                    if state.stale.swap(false, Ordering::AcqRel) {
                        state.image = state.published.image();
                    }
                    state.do_duties(&duties, SystemClock.now());
                }
            }
        }
    }
}
