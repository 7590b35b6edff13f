//! The controller path (Kafka's `QuorumController` event queue): a handler submits a decision
//! (a function of the image returning records and an answer); the controller runs decisions
//! one at a time against its own image — the committed one plus what it has proposed since —
//! proposes the records through the [`MetadataQuorum`], and answers once they have committed
//! and this node's published image contains them.
//!
//! The decisions themselves are `fjord_metadata::controller`'s pure functions; the broker
//! sessions its heartbeat decisions need are the controller's soft state, here too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fjord_metadata::controller::BrokerHeartbeatManager;
use fjord_metadata::{MetadataBatch, MetadataImage, MetadataRecord};
use fjord_types::{Clock, SystemClock};
use tokio::sync::{mpsc, oneshot};

use super::loader::Published;
use super::quorum::{MetadataQuorum, QuorumError};

/// Why a decision's records did not take effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ControllerFailure {
    /// The records do not apply to the controller's image (a bug in a decision).
    #[error("the controller's records do not apply: {0}")]
    Inconsistent(String),
    /// The quorum did not commit them.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// The controller refused the request (a broker's registration or heartbeat).
    #[error(transparent)]
    Refused(#[from] fjord_metadata::ControllerError),
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
}

/// A proposal in flight: resolves once committed and in this node's image.
type Committed = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ControllerFailure>> + Send>>;

impl ControllerState {
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
}

type Job = Box<dyn FnOnce(&mut ControllerState) + Send>;

/// Decisions waiting for the controller: bounded, so a flood of admin requests waits.
const DECISIONS_QUEUED: usize = 1024;

/// A handle on the active controller.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    jobs: mpsc::Sender<Job>,
}

impl Controller {
    /// Starts the controller's task on the current runtime, on the published image.
    pub(crate) fn start(
        quorum: Arc<dyn MetadataQuorum>,
        published: Published,
    ) -> (Controller, tokio::task::JoinHandle<()>) {
        let (jobs, queue) = mpsc::channel(DECISIONS_QUEUED);
        let task = tokio::spawn(run(quorum, published, queue));
        (Controller { jobs }, task)
    }

    /// Runs `work` on the controller's state, in turn with every other decision, and waits for
    /// what it returns: an answer now, or one that comes when its records commit.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut ControllerState) -> Result<(T, Option<Committed>), ControllerFailure> + Send + 'static,
    ) -> Result<T, ControllerFailure> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |state| match work(state) {
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

async fn run(quorum: Arc<dyn MetadataQuorum>, published: Published, mut queue: mpsc::Receiver<Job>) {
    let image = published.image();
    let sessions = BrokerHeartbeatManager::new(&image, SystemClock.now());
    let mut state = ControllerState { image, sessions, quorum, published, stale: Arc::new(AtomicBool::new(false)) };
    while let Some(job) = queue.recv().await {
        if state.stale.swap(false, Ordering::AcqRel) {
            state.image = state.published.image();
        }
        job(&mut state);
    }
}
