//! The conditions delayed requests wait for (Kafka's `DelayedProduce` and `DelayedFetch`).
//! Each `try_complete` looks at the partitions as they are now; the broker calls it, and if
//! it is not satisfied, watches the partitions in the [`crate::Purgatory`] until one changes
//! or the request's time is up.

use fjord_types::{BrokerId, LeaderEpoch, Offset, TopicPartition};

use crate::replica_manager::ReplicaManager;
use crate::replica_state::Role;

/// A request that waits in a [`crate::Purgatory`] until it can complete (Kafka's
/// `DelayedOperation`): the partitions whose changes may complete it, and the check.
pub trait DelayedOperation {
    /// The partitions to watch.
    fn keys(&self) -> Vec<TopicPartition>;
    /// Whether it can complete now (it may settle parts of itself as it checks).
    fn try_complete(&mut self, replicas: &ReplicaManager) -> bool;
}

/// Why an `acks=all` produce that was appended did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AcksError {
    /// The partition moved away or lost its leadership while the produce waited
    /// (NOT_LEADER_OR_FOLLOWER).
    #[error("the partition is no longer led here; the leader is {leader}")]
    NotLeader {
        /// The leader, if one is known.
        leader: BrokerId,
    },
    /// The high watermark reached the batch with fewer in-sync replicas than
    /// `min.insync.replicas` (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    #[error("written, but only {isr} in-sync replica(s) hold it; {required} required")]
    NotEnoughReplicasAfterAppend {
        /// The ISR size.
        isr: usize,
        /// `min.insync.replicas`.
        required: i32,
    },
    /// The high watermark did not reach the batch within the request's timeout
    /// (REQUEST_TIMED_OUT).
    #[error("the in-sync replicas did not acknowledge the records in time")]
    TimedOut,
}

/// One partition of a waiting produce: where its records end, and its outcome once settled.
type Awaited = (TopicPartition, Offset, Option<Result<(), AcksError>>);

/// An `acks=all` produce waiting for the high watermark to pass what it appended.
#[derive(Debug, Clone)]
pub struct DelayedProduce {
    partitions: Vec<Awaited>,
}

impl DelayedProduce {
    /// Waits for each partition's high watermark to reach the given offset (the end of what
    /// was appended to it).
    pub fn new(partitions: impl IntoIterator<Item = (TopicPartition, Offset)>) -> DelayedProduce {
        DelayedProduce { partitions: partitions.into_iter().map(|(tp, offset)| (tp, offset, None)).collect() }
    }

    /// Each partition's outcome; those not settled timed out.
    pub fn results(self) -> Vec<(TopicPartition, Result<(), AcksError>)> {
        self.partitions.into_iter().map(|(tp, _, done)| (tp, done.unwrap_or(Err(AcksError::TimedOut)))).collect()
    }
}

impl DelayedOperation for DelayedProduce {
    fn keys(&self) -> Vec<TopicPartition> {
        self.partitions.iter().filter(|(_, _, done)| done.is_none()).map(|(tp, _, _)| tp.clone()).collect()
    }

    /// Settles every partition that can be settled now; true once all are.
    fn try_complete(&mut self, replicas: &ReplicaManager) -> bool {
        for (tp, required, done) in &mut self.partitions {
            if done.is_some() {
                continue;
            }
            let Some(handle) = replicas.partition(tp) else {
                *done = Some(Err(AcksError::NotLeader { leader: BrokerId::NONE }));
                continue;
            };
            let partition = handle.state.lock();
            let state = partition.state();
            if let Role::Follower { leader } = state.role() {
                *done = Some(Err(AcksError::NotLeader { leader }));
            } else if state.high_watermark() >= *required {
                let required_isr = partition.config().min_insync_replicas;
                *done = Some(if (state.isr().len() as i32) < required_isr {
                    Err(AcksError::NotEnoughReplicasAfterAppend { isr: state.isr().len(), required: required_isr })
                } else {
                    Ok(())
                });
            }
        }
        self.partitions.iter().all(|(_, _, done)| done.is_some())
    }
}

/// One partition of a fetch that waits for data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartition {
    /// The partition.
    pub tp: TopicPartition,
    /// Where the fetch reads from.
    pub fetch_offset: Offset,
    /// The most this partition may add to the response.
    pub max_bytes: u64,
    /// The client's view of the leader epoch, if it sent one.
    pub current_leader_epoch: Option<LeaderEpoch>,
}

/// A fetch waiting for `fetch.min.bytes` to be available below the high watermarks.
#[derive(Debug, Clone)]
pub struct DelayedFetch {
    partitions: Vec<FetchPartition>,
    min_bytes: u64,
}

impl DelayedFetch {
    /// Waits until `min_bytes` can be read from `partitions` together.
    pub fn new(partitions: Vec<FetchPartition>, min_bytes: u64) -> DelayedFetch {
        DelayedFetch { partitions, min_bytes }
    }
}

impl DelayedOperation for DelayedFetch {
    fn keys(&self) -> Vec<TopicPartition> {
        self.partitions.iter().map(|p| p.tp.clone()).collect()
    }

    /// Whether the fetch can be answered now: enough bytes are readable, or some partition's
    /// answer would be an error (gone, no longer led here, fenced, out of range), which is
    /// answered at once, as Kafka does.
    fn try_complete(&mut self, replicas: &ReplicaManager) -> bool {
        let mut available = 0u64;
        for p in &self.partitions {
            let Some(handle) = replicas.partition(&p.tp) else { return true };
            let read = handle.state.lock().read(p.fetch_offset, p.max_bytes, available == 0, p.current_leader_epoch);
            match read {
                Ok(read) => available += read.range.map_or(0, |r| r.len),
                Err(_) => return true,
            }
            if available >= self.min_bytes {
                return true;
            }
        }
        available >= self.min_bytes
    }
}
