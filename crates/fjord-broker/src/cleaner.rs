//! The log cleaner threads (Kafka's `LogCleaner` and `LogCleanerManager`).
//!
//! `log.cleaner.threads` threads each loop: pick the hosted compacted partition that is most
//! due (`fjord_retention::most_due`: overdue by `max.compaction.lag.ms` first, then the
//! highest dirty ratio), clean it with `fjord_retention::Cleaner`, and sleep
//! `log.cleaner.backoff.ms` when none is due. The partition lock is held only to snapshot the
//! segments and to swap each cleaned group in; producers and consumers carry on meanwhile.
//! Where each log's dirty part starts is kept in `cleaner-offset-checkpoint`, so a restart
//! does not clean everything again.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use fjord_log::DeletedSegment;
use fjord_replication::{OffsetCheckpoint, PartitionHandle, ReplicaManager};
use fjord_retention::{CleanState, CleanTask, Cleaner, CleanerOptions, CompactionConfig, cleanable, most_due};
use fjord_types::{Clock, Offset, SystemClock, Timestamp, TopicPartition};
use parking_lot::Mutex;

use crate::config::BrokerConfig;
use crate::metadata::loader::Published;

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

    /// Writes the first dirty offsets of `hosted` partitions to `cleaner-offset-checkpoint`.
    pub(crate) fn write_checkpoint(&self, data_dir: &std::path::Path, hosted: &HashSet<TopicPartition>) {
        let mut checkpoint = OffsetCheckpoint::default();
        for (tp, state) in self.states.lock().iter() {
            if hosted.contains(tp) && state.first_dirty > Offset(0) {
                checkpoint.offsets.insert(tp.clone(), state.first_dirty);
            }
        }
        if let Err(e) = checkpoint.write(&data_dir.join(CLEANER_OFFSET_CHECKPOINT)) {
            tracing::error!(file = CLEANER_OFFSET_CHECKPOINT, error = %e, "cannot write checkpoint");
        }
    }
}

/// What the cleaner threads work on.
#[derive(Debug, Clone)]
pub(crate) struct CleanerContext {
    pub(crate) replicas: Arc<ReplicaManager>,
    pub(crate) metadata: Published,
    pub(crate) config: BrokerConfig,
    pub(crate) data_dir: PathBuf,
    pub(crate) manager: Arc<CleanerManager>,
}

/// A compacted partition that is due.
struct Candidate {
    tp: TopicPartition,
    handle: Arc<PartitionHandle>,
    config: CompactionConfig,
    delay_ms: u64,
}

impl CleanerContext {
    fn hosted(&self) -> HashSet<TopicPartition> {
        self.replicas.partitions().into_iter().map(|(tp, _)| tp).collect()
    }

    /// Cleans the compacted partition most in need, if one is due. Returns whether a cleaning
    /// completed, and the segments taken out, each with its `file.delete.delay.ms`.
    fn clean_most_due(&self, cleaner: &mut Cleaner, stop: &AtomicBool) -> (bool, Vec<(DeletedSegment, u64)>) {
        let now = SystemClock.now();
        let image = self.metadata.image();
        let manager = &self.manager;
        let mut due = Vec::new();
        for (tp, handle) in self.replicas.partitions() {
            let Some(topic) = image.topics.get(&tp.topic) else { continue };
            let Some((config, delay_ms)) = self.config.compaction(&topic.configs) else { continue };
            if manager.in_progress.lock().contains(&tp) || manager.uncleanable.lock().contains(&tp) {
                continue;
            }
            let state = manager.state(&tp);
            let found = {
                let partition = handle.state.lock();
                let log = partition.log();
                let hw = partition.high_watermark();
                cleanable(&log.segments(), log.log_start_offset(), state.first_dirty, hw, &config, now)
            };
            if state.is_due(&found, &config, now) {
                due.push((Candidate { tp, handle, config, delay_ms }, found));
            }
        }
        let Some((Candidate { tp, handle, config, delay_ms }, found)) = most_due(due) else {
            return (false, Vec::new());
        };
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
                deleted.extend(partition.maintain(|log| log.replace_segments(cleaned, replaced))?);
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
                    elapsed_ms = SystemClock.now().0 - now.0,
                    "cleaned log"
                );
                let state =
                    CleanState { first_dirty: stats.first_dirty, next_delete_horizon: stats.next_delete_horizon };
                manager.states.lock().insert(tp.clone(), state);
                manager.write_checkpoint(&self.data_dir, &self.hosted());
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
}

/// The running cleaner threads; [`LogCleaner::stop`] ends them.
#[derive(Debug)]
pub(crate) struct LogCleaner {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl LogCleaner {
    /// Starts `log.cleaner.threads` threads, or none if `log.cleaner.enable` is false.
    pub(crate) fn start(context: &CleanerContext) -> LogCleaner {
        let stop = Arc::new(AtomicBool::new(false));
        let config = &context.config;
        let count = if config.log_cleaner_enable { config.log_cleaner_threads } else { 0 };
        let threads = (0..count)
            .map(|i| {
                let context = context.clone();
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name(format!("kafka-log-cleaner-thread-{i}"))
                    .spawn(move || cleaner_loop(&context, &stop))
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

fn cleaner_loop(context: &CleanerContext, stop: &AtomicBool) {
    let options: CleanerOptions = context.config.cleaner;
    let mut cleaner = Cleaner::new(options, Arc::new(SystemClock));
    let mut doomed: Vec<(Timestamp, DeletedSegment)> = Vec::new();
    let backoff = Duration::from_millis(context.config.log_cleaner_backoff_ms.max(1));
    while !stop.load(Ordering::Relaxed) {
        let now = SystemClock.now();
        // Replaced segments go after file.delete.delay.ms, so reads in flight finish; a restart
        // removes any left over.
        let (due, later): (Vec<_>, Vec<_>) = doomed.drain(..).partition(|(at, _)| *at <= now);
        doomed = later;
        for (_, segment) in due {
            if let Err(e) = segment.remove() {
                tracing::warn!(error = %e, "cannot remove a cleaned-away segment");
            }
        }
        let (cleaned, deleted) = context.clean_most_due(&mut cleaner, stop);
        doomed.extend(deleted.into_iter().map(|(d, delay)| (Timestamp(now.0.saturating_add(delay as i64)), d)));
        if !cleaned {
            let wait = doomed.iter().map(|(at, _)| Duration::from_millis((at.0 - now.0).max(1) as u64)).min();
            std::thread::park_timeout(wait.map_or(backoff, |w| w.min(backoff)));
        }
    }
}
