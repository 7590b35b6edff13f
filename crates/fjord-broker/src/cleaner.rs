//! The log cleaner threads (Kafka's `LogCleaner` and `LogCleanerManager`).
//!
//! `log.cleaner.threads` threads each loop: pick the hosted compacted partition that is most
//! due (overdue by `max.compaction.lag.ms` first, then the highest dirty ratio), clean it with
//! `fjord_retention::Cleaner`, and sleep `log.cleaner.backoff.ms` when none is due. The
//! partition lock is held only to snapshot the segments and to swap each cleaned group in;
//! producers and consumers carry on meanwhile. Where each log's dirty part starts is kept in
//! `cleaner-offset-checkpoint`, so a restart does not clean everything again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use fjord_log::DeletedSegment;
use fjord_replication::OffsetCheckpoint;
use fjord_retention::{CleanState, CleanTask, Cleanable, Cleaner, CompactionConfig, cleanable};
use fjord_types::{Offset, Timestamp, TopicPartition};
use parking_lot::Mutex;

use crate::broker::{Broker, PartitionHandle};

/// Kafka's name for the file of first dirty offsets, in each log directory.
pub(crate) const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// The cleaners' shared bookkeeping, kept by the broker.
#[derive(Debug, Default)]
pub(crate) struct CleanerManager {
    states: Mutex<HashMap<TopicPartition, CleanState>>,
    in_progress: Mutex<HashSet<TopicPartition>>,
    /// Partitions whose cleaning failed with an error other than a race; Kafka's
    /// "uncleanable partitions". They are skipped until the broker restarts.
    uncleanable: Mutex<HashSet<TopicPartition>>,
}

impl CleanerManager {
    /// Loads the checkpointed first dirty offsets. Every log is due for one cleaning after a
    /// start, since the delete horizons of its tombstones are not persisted.
    pub(crate) fn load(checkpoint: OffsetCheckpoint) -> CleanerManager {
        let states = checkpoint
            .offsets
            .into_iter()
            .map(|(tp, first_dirty)| (tp, CleanState { first_dirty, next_delete_horizon: Some(Timestamp(0)) }))
            .collect();
        CleanerManager { states: Mutex::new(states), ..CleanerManager::default() }
    }

    fn state(&self, tp: &TopicPartition) -> CleanState {
        self.states
            .lock()
            .get(tp)
            .copied()
            .unwrap_or(CleanState { first_dirty: Offset(0), next_delete_horizon: Some(Timestamp(0)) })
    }

    /// The first dirty offsets of `hosted` partitions, for `cleaner-offset-checkpoint`.
    pub(crate) fn checkpoint(&self, hosted: &HashSet<TopicPartition>) -> OffsetCheckpoint {
        let mut checkpoint = OffsetCheckpoint::default();
        for (tp, state) in self.states.lock().iter() {
            if hosted.contains(tp) && state.first_dirty > Offset(0) {
                checkpoint.offsets.insert(tp.clone(), state.first_dirty);
            }
        }
        checkpoint
    }
}

/// A partition that is due, ranked: overdue by `max.compaction.lag.ms` first, then dirtiest.
struct Candidate {
    rank: (bool, f64),
    tp: TopicPartition,
    handle: Arc<PartitionHandle>,
    config: CompactionConfig,
    delay_ms: u64,
    found: Cleanable,
}

impl Broker {
    /// Cleans the compacted partition most in need, if one is due. Returns whether a cleaning
    /// completed, and the segments taken out, each with its `file.delete.delay.ms`.
    pub fn clean_most_due(&self, cleaner: &mut Cleaner, stop: &AtomicBool) -> (bool, Vec<(DeletedSegment, u64)>) {
        let now = Broker::now();
        let image = self.image();
        let manager = &self.cleaners;
        let mut best: Option<Candidate> = None;
        for (tp, handle) in self.all_partitions() {
            let Some(topic) = image.topics.get(&tp.topic) else { continue };
            let Some((config, delay_ms)) = self.config.compaction(&topic.configs) else { continue };
            if manager.in_progress.lock().contains(&tp) || manager.uncleanable.lock().contains(&tp) {
                continue;
            }
            let state = manager.state(&tp);
            let found = {
                let partition = handle.state.lock();
                let log = partition.log();
                cleanable(
                    &log.segments(),
                    log.log_start_offset(),
                    state.first_dirty,
                    partition.high_watermark(),
                    &config,
                    now,
                )
            };
            if !state.is_due(&found, &config, now) {
                continue;
            }
            let rank = (found.overdue, found.dirty_ratio());
            if best.as_ref().is_none_or(|b| rank > b.rank) {
                best = Some(Candidate { rank, tp, handle, config, delay_ms, found });
            }
        }
        let Some(Candidate { tp, handle, config, delay_ms, found, .. }) = best else { return (false, Vec::new()) };
        if !manager.in_progress.lock().insert(tp.clone()) {
            return (false, Vec::new()); // another thread took it meanwhile
        }
        let task = {
            let partition = handle.state.lock();
            CleanTask::new(partition.log(), &found, config, now)
                .map(|task| task.keep_batches_ending_at(partition.producer_last_batch_offsets()))
        };
        let mut deleted = Vec::new();
        let result = task.map(|task| {
            cleaner.run(&task, |cleaned, replaced| {
                if stop.load(Ordering::Relaxed) {
                    return Err(fjord_log::Error::SegmentsChanged { reason: "the broker is shutting down".into() });
                }
                let mut partition = handle.state.lock();
                deleted.extend(partition.log_mut().replace_segments(cleaned, replaced)?);
                Ok(())
            })
        });
        manager.in_progress.lock().remove(&tp);
        let cleaned = matches!(result, Some(Ok(_)));
        match result {
            None => {}
            Some(Ok(stats)) => {
                tracing::info!(
                    partition = %tp,
                    first_dirty = stats.first_dirty.0,
                    segments = stats.segments_replaced,
                    bytes_before = stats.bytes_before,
                    bytes_after = stats.bytes_after,
                    records_kept = stats.records_kept,
                    records_read = stats.records_read,
                    tombstones_dropped = stats.tombstones_dropped,
                    elapsed_ms = Broker::now().0 - now.0,
                    "cleaned log"
                );
                let state =
                    CleanState { first_dirty: stats.first_dirty, next_delete_horizon: stats.next_delete_horizon };
                manager.states.lock().insert(tp.clone(), state);
                self.write_cleaner_checkpoint();
            }
            Some(Err(fjord_log::Error::SegmentsChanged { reason })) => {
                tracing::debug!(partition = %tp, %reason, "cleaning abandoned; will retry");
            }
            Some(Err(e)) => {
                tracing::error!(partition = %tp, error = %e, "cannot clean the log; it is left uncleaned until restart");
                manager.uncleanable.lock().insert(tp.clone());
            }
        }
        (cleaned, deleted.into_iter().map(|d| (d, delay_ms)).collect())
    }

    pub(crate) fn write_cleaner_checkpoint(&self) {
        let hosted: HashSet<TopicPartition> = self.all_partitions().into_iter().map(|(tp, _)| tp).collect();
        let path = self.data_dir.join(CLEANER_OFFSET_CHECKPOINT);
        if let Err(e) = self.cleaners.checkpoint(&hosted).write(&path) {
            tracing::error!(file = CLEANER_OFFSET_CHECKPOINT, error = %e, "cannot write checkpoint");
        }
    }
}

/// The running cleaner threads; [`LogCleaner::stop`] ends them.
#[derive(Debug)]
pub(crate) struct LogCleaner {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl LogCleaner {
    /// Starts `log.cleaner.threads` threads, or none if `log.cleaner.enable` is false.
    pub(crate) fn start(broker: &Arc<Broker>) -> LogCleaner {
        let stop = Arc::new(AtomicBool::new(false));
        let count = if broker.config.log_cleaner_enable { broker.config.log_cleaner_threads } else { 0 };
        let threads = (0..count)
            .map(|i| {
                let broker = Arc::clone(broker);
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name(format!("kafka-log-cleaner-thread-{i}"))
                    .spawn(move || cleaner_loop(&broker, &stop))
                    .expect("cannot start a log cleaner thread")
            })
            .collect();
        LogCleaner { stop, threads }
    }

    /// Stops the threads after the group each is swapping, and waits for them.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in &self.threads {
            thread.thread().unpark();
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn cleaner_loop(broker: &Broker, stop: &AtomicBool) {
    let mut cleaner = Cleaner::new(broker.config.cleaner);
    let mut doomed: Vec<(Timestamp, DeletedSegment)> = Vec::new();
    let backoff = Duration::from_millis(broker.config.log_cleaner_backoff_ms.max(1));
    while !stop.load(Ordering::Relaxed) {
        let now = Broker::now();
        // Replaced segments go after file.delete.delay.ms, so reads in flight finish; a restart
        // removes any left over.
        let (due, later): (Vec<_>, Vec<_>) = doomed.drain(..).partition(|(at, _)| *at <= now);
        doomed = later;
        for (_, segment) in due {
            if let Err(e) = segment.remove() {
                tracing::warn!(error = %e, "cannot remove a cleaned-away segment");
            }
        }
        let (cleaned, deleted) = broker.clean_most_due(&mut cleaner, stop);
        doomed.extend(deleted.into_iter().map(|(d, delay)| (Timestamp(now.0.saturating_add(delay as i64)), d)));
        if !cleaned {
            let wait = doomed.iter().map(|(at, _)| Duration::from_millis((at.0 - now.0).max(1) as u64)).min();
            std::thread::park_timeout(wait.map_or(backoff, |w| w.min(backoff)));
        }
    }
}
