//! How the controller's records reach the metadata log, and how committed ones come back out.
//!
//! [`MetadataQuorum`] is the controller's side of Kafka's `RaftClient`: propose a batch, learn
//! when it has committed. Committed batches flow to the [`super::loader`] in log order, for
//! every batch, whoever proposed it. [`LocalQuorum`] is the single-voter quorum of a node that
//! is its own controller: a thread that owns `__cluster_metadata-0`, appends the batches
//! proposed since it last flushed, flushes them with one fsync (group commit), and then they
//! are committed. The Raft quorum of `fjord-quorum` will implement the same trait.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::mpsc::SyncSender;

use fjord_metadata::{MetadataBatch, MetadataLog, MetadataRecord};
use fjord_types::{Clock, LeaderEpoch, Offset, OffsetAndEpoch, SystemClock};
use tokio::sync::{mpsc, oneshot};

/// Why a proposal did not commit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QuorumError {
    /// The metadata log cannot be written; nothing more will commit here.
    #[error("the metadata log failed: {0}")]
    Storage(String),
    /// The quorum is shutting down.
    #[error("the metadata quorum is shutting down")]
    ShuttingDown,
}

/// The position of a committed batch's last record, or why it did not commit.
pub(crate) type ProposeFuture = Pin<Box<dyn Future<Output = Result<OffsetAndEpoch, QuorumError>> + Send>>;

/// A batch handed to the quorum: where it went, and its commit to wait for.
pub(crate) struct Proposed {
    /// The offset of its first record.
    pub(crate) base_offset: Offset,
    /// Resolves once the batch has committed.
    pub(crate) committed: ProposeFuture,
}

/// The controller's interface to the metadata quorum (the part of Kafka's `RaftClient` the
/// controller uses). The controller is the only proposer, so offsets are known when
/// proposing.
pub(crate) trait MetadataQuorum: Send + Sync + std::fmt::Debug {
    /// Where the next proposed batch will start, and under which epoch.
    fn next_position(&self) -> OffsetAndEpoch;
    /// Proposes `records` as one batch: they commit together or not at all.
    fn propose(&self, records: Vec<MetadataRecord>) -> Result<Proposed, QuorumError>;
}

struct Proposal {
    records: Vec<MetadataRecord>,
    base_offset: Offset,
    reply: oneshot::Sender<Result<OffsetAndEpoch, QuorumError>>,
}

/// A single-voter quorum over the local metadata log.
#[derive(Debug)]
pub(crate) struct LocalQuorum {
    proposals: mpsc::UnboundedSender<Proposal>,
    epoch: LeaderEpoch,
    /// The offset the next proposal gets: proposals are numbered here, in the order the log
    /// thread receives them.
    next_offset: parking_lot::Mutex<Offset>,
}

impl std::fmt::Debug for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposal").field("records", &self.records.len()).finish()
    }
}

/// What the log thread hands back at start: the quorum, and the offset of the last record
/// already in the log (the loader must reach it before the broker serves).
pub(crate) struct Opened {
    pub(crate) quorum: LocalQuorum,
    pub(crate) last: OffsetAndEpoch,
    pub(crate) thread: std::thread::JoinHandle<()>,
}

impl LocalQuorum {
    /// Opens the metadata log in `dir`, sends every batch in it to `committed` (they were
    /// committed when written), and starts the log thread. This node leads in the epoch after
    /// the log's last one, so a restart never appends under an epoch it used before.
    pub(crate) fn open(dir: &Path, committed: SyncSender<MetadataBatch>) -> Result<Opened, fjord_metadata::Error> {
        let log = MetadataLog::open(dir, SystemClock.now())?;
        let mut last = OffsetAndEpoch::NONE;
        log.replay(|batch| {
            last = batch.last();
            committed.send(batch).map_err(|_| fjord_metadata::Error::Inconsistent("the loader stopped".into()))
        })?;
        let epoch = LeaderEpoch(last.epoch.0.max(0) + 1);
        let next_offset = parking_lot::Mutex::new(log.end_offset());
        let (proposals, queue) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("fjord-metadata-log".into())
            .spawn(move || log_thread(log, epoch, queue, committed))
            .map_err(|e| fjord_metadata::Error::Inconsistent(format!("cannot start the metadata log thread: {e}")))?;
        Ok(Opened { quorum: LocalQuorum { proposals, epoch, next_offset }, last, thread })
    }
}

impl MetadataQuorum for LocalQuorum {
    fn next_position(&self) -> OffsetAndEpoch {
        OffsetAndEpoch::new(*self.next_offset.lock(), self.epoch)
    }

    fn propose(&self, records: Vec<MetadataRecord>) -> Result<Proposed, QuorumError> {
        let (reply, committed) = oneshot::channel();
        let mut next = self.next_offset.lock();
        let base_offset = *next;
        let count = records.len() as i64;
        // Sent under the lock: the log thread receives proposals in the order they were numbered.
        self.proposals.send(Proposal { records, base_offset, reply }).map_err(|_| QuorumError::ShuttingDown)?;
        *next = base_offset.plus(count);
        let committed = Box::pin(async move { committed.await.map_err(|_| QuorumError::ShuttingDown)? });
        Ok(Proposed { base_offset, committed })
    }
}

/// Appends what is queued, flushes once, then reports the batches committed: first to the
/// loader (so the image has them), then to their proposers. Ends when every sender is gone,
/// closing the log cleanly.
fn log_thread(
    mut log: MetadataLog,
    epoch: LeaderEpoch,
    mut queue: mpsc::UnboundedReceiver<Proposal>,
    committed: SyncSender<MetadataBatch>,
) {
    let mut failed: Option<String> = None;
    while let Some(first) = queue.blocking_recv() {
        let mut round = vec![first];
        while let Ok(more) = queue.try_recv() {
            round.push(more);
        }
        if let Some(reason) = &failed {
            for proposal in round {
                let _ = proposal.reply.send(Err(QuorumError::Storage(reason.clone())));
            }
            continue;
        }
        let now = SystemClock.now();
        let mut appended = Vec::with_capacity(round.len());
        for Proposal { records, base_offset, reply } in round {
            if let Some(reason) = &failed {
                let _ = reply.send(Err(QuorumError::Storage(reason.clone())));
                continue;
            }
            match log.append(records, epoch, now) {
                Ok(batch) if batch.base_offset == base_offset => appended.push((batch, reply)),
                Ok(batch) => {
                    // Numbering and log disagree: nothing from here on can be trusted.
                    let reason = format!("batch numbered {base_offset} was written at {}", batch.base_offset);
                    tracing::error!(%reason, "metadata log out of step with its proposals");
                    failed = Some(reason.clone());
                    let _ = reply.send(Err(QuorumError::Storage(reason)));
                }
                Err(e) => {
                    // The log refuses writes from here on (fjord-log poisons itself).
                    tracing::error!(error = %e, "cannot append to the metadata log; refusing further metadata changes");
                    failed = Some(e.to_string());
                    let _ = reply.send(Err(QuorumError::Storage(e.to_string())));
                }
            }
        }
        // What was appended before any failure commits if this flush succeeds.
        let flushed = log.flush(now).map_err(|e| {
            // Whether any of it is on disk is unknown: nothing appended from here commits.
            tracing::error!(error = %e, "cannot flush the metadata log; refusing further metadata changes");
            e.to_string()
        });
        if let Err(reason) = &flushed {
            failed = Some(reason.clone());
        }
        for (batch, reply) in appended {
            let result = match &flushed {
                Err(reason) => Err(QuorumError::Storage(reason.clone())),
                Ok(()) => {
                    let last = batch.last();
                    if committed.send(batch).is_err() { Err(QuorumError::ShuttingDown) } else { Ok(last) }
                }
            };
            let _ = reply.send(result);
        }
    }
    if let Err(e) = log.close() {
        tracing::error!(error = %e, "cannot close the metadata log cleanly");
    }
}
