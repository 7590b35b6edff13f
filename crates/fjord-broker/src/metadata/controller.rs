//! The controller path (Kafka's `QuorumController` event queue): a handler submits a decision
//! (a function of the image returning records and an answer); the controller runs decisions
//! one at a time against its own image — the committed one plus what it has proposed since —
//! proposes the records through the [`MetadataQuorum`], and answers once they have committed
//! and this node's published image contains them.
//!
//! The decisions themselves are `fjord_metadata::controller`'s pure functions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fjord_metadata::{MetadataImage, MetadataRecord};
use fjord_types::OffsetAndEpoch;
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
}

type Completion = Box<dyn FnOnce(Result<(), ControllerFailure>) + Send>;

/// What a decision returns to the controller: records to propose unless `validate_only`, and
/// how to answer once that is settled.
struct Decision {
    records: Vec<MetadataRecord>,
    validate_only: bool,
    complete: Completion,
}

type Job = Box<dyn FnOnce(&MetadataImage) -> Decision + Send>;

/// Decisions waiting for the controller: bounded, so a flood of admin requests waits.
const DECISIONS_QUEUED: usize = 1024;

/// A handle on the active controller.
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    jobs: mpsc::Sender<Job>,
}

impl Controller {
    /// Starts the controller's task on the current runtime, on top of `image` (the committed
    /// image it takes over from).
    pub(crate) fn start(
        quorum: Arc<dyn MetadataQuorum>,
        published: Published,
    ) -> (Controller, tokio::task::JoinHandle<()>) {
        let (jobs, queue) = mpsc::channel(DECISIONS_QUEUED);
        let task = tokio::spawn(run(quorum, published, queue));
        (Controller { jobs }, task)
    }

    /// Runs `decide` against the controller's image. Unless `validate_only`, its records are
    /// proposed and the answer comes once they have committed and are in this node's image.
    pub(crate) async fn decide<T: Send + 'static>(
        &self,
        validate_only: bool,
        decide: impl FnOnce(&MetadataImage) -> (Vec<MetadataRecord>, T) + Send + 'static,
    ) -> Result<T, ControllerFailure> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |image| {
            let (records, value) = decide(image);
            let complete: Completion = Box::new(move |result| {
                let _ = answer.send(result.map(|()| value));
            });
            Decision { records, validate_only, complete }
        });
        self.jobs.send(job).await.map_err(|_| QuorumError::ShuttingDown)?;
        answered.await.map_err(|_| QuorumError::ShuttingDown)?
    }
}

async fn run(quorum: Arc<dyn MetadataQuorum>, published: Published, mut queue: mpsc::Receiver<Job>) {
    let mut image = published.image();
    // Set when a proposal fails: the controller's image holds records that never committed,
    // so it starts again from the published one.
    let stale = Arc::new(AtomicBool::new(false));
    while let Some(job) = queue.recv().await {
        if stale.swap(false, Ordering::AcqRel) {
            image = published.image();
        }
        let Decision { records, validate_only, complete } = job(&image);
        if validate_only || records.is_empty() {
            complete(Ok(()));
            continue;
        }
        let next = match image.apply_batch(&records, OffsetAndEpoch::NONE) {
            Ok((next, _)) => next,
            Err(e) => {
                tracing::error!(error = %e, "a controller decision produced records that do not apply");
                complete(Err(ControllerFailure::Inconsistent(e.to_string())));
                continue;
            }
        };
        image = Arc::new(next);
        let commit = quorum.propose(records);
        let (published, stale) = (published.clone(), Arc::clone(&stale));
        tokio::spawn(async move {
            let result = match commit.await {
                Ok(last) if published.wait_for(last.offset).await => Ok(()),
                Ok(_) => Err(ControllerFailure::Quorum(QuorumError::ShuttingDown)),
                Err(e) => {
                    stale.store(true, Ordering::Release);
                    Err(ControllerFailure::Quorum(e))
                }
            };
            complete(result);
        });
    }
}
