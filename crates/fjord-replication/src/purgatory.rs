//! Requests that wait on partitions (Kafka's `DelayedOperationPurgatory`, keyed by partition).
//!
//! A request that cannot complete yet (a long-poll fetch short of `fetch.min.bytes`, an
//! `acks=all` produce waiting for the high watermark) watches the partitions it involves; the
//! code that changes a partition (an append, a high watermark move, a leadership change)
//! completes that partition's watchers, and only those. The request then checks its condition
//! again ([`crate::DelayedFetch`], [`crate::DelayedProduce`]) and either answers or watches
//! again; its deadline is its own.
//!
//! A [`Watch`] is a plain `Future` woken through `std::task::Waker`, so this needs no async
//! runtime. Register the watch *before* checking the condition: a change between the check
//! and the wait then still wakes it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use fjord_types::TopicPartition;
use parking_lot::Mutex;

#[derive(Debug, Default)]
struct Watcher {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Watcher {
    fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        if let Some(waker) = self.waker.lock().take() {
            waker.wake();
        }
    }
}

/// The watchers of one kind of delayed request, by partition.
#[derive(Debug, Default)]
pub struct Purgatory {
    watchers: Mutex<HashMap<TopicPartition, Vec<Arc<Watcher>>>>,
    completions: AtomicU64,
}

impl Purgatory {
    /// An empty purgatory.
    pub fn new() -> Purgatory {
        Purgatory::default()
    }

    /// Watches `keys`: the returned future completes when any of them is completed (or at
    /// once if there are none). Dropping it stops watching.
    pub fn watch(&self, keys: impl IntoIterator<Item = TopicPartition>) -> Watch<'_> {
        let watcher = Arc::new(Watcher::default());
        let keys: Vec<TopicPartition> = keys.into_iter().collect();
        {
            let mut watchers = self.watchers.lock();
            for key in &keys {
                watchers.entry(key.clone()).or_default().push(Arc::clone(&watcher));
            }
        }
        if keys.is_empty() {
            watcher.fired.store(true, Ordering::Release);
        }
        Watch { purgatory: self, keys, watcher }
    }

    /// Something changed on `key`: wakes every request watching it. Returns how many.
    pub fn check_and_complete(&self, key: &TopicPartition) -> usize {
        let woken = self.watchers.lock().remove(key).unwrap_or_default();
        for watcher in &woken {
            watcher.fire();
        }
        self.completions.fetch_add(woken.len() as u64, Ordering::Relaxed);
        woken.len()
    }

    /// Wakes every watcher (shutdown).
    pub fn complete_all(&self) {
        let all: Vec<_> = self.watchers.lock().drain().flat_map(|(_, w)| w).collect();
        for watcher in all {
            watcher.fire();
        }
    }

    /// Partitions with at least one watcher.
    pub fn watched_partitions(&self) -> usize {
        self.watchers.lock().len()
    }

    /// Watchers woken so far (a watcher of several completed partitions counts once each).
    pub fn completions(&self) -> u64 {
        self.completions.load(Ordering::Relaxed)
    }

    fn unwatch(&self, keys: &[TopicPartition], watcher: &Arc<Watcher>) {
        let mut watchers = self.watchers.lock();
        for key in keys {
            if let Some(list) = watchers.get_mut(key) {
                list.retain(|w| !Arc::ptr_eq(w, watcher));
                if list.is_empty() {
                    watchers.remove(key);
                }
            }
        }
    }
}

/// A request watching partitions: completes when one of them is completed.
#[derive(Debug)]
pub struct Watch<'a> {
    purgatory: &'a Purgatory,
    keys: Vec<TopicPartition>,
    watcher: Arc<Watcher>,
}

impl Future for Watch<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.watcher.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *self.watcher.waker.lock() = Some(cx.waker().clone());
        // A completion between the first check and storing the waker found no waker to wake.
        if self.watcher.fired.load(Ordering::Acquire) { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        // Fired or not, its other keys still list it.
        self.purgatory.unwatch(&self.keys, &self.watcher);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(watch: &mut Watch<'_>, waker: &Arc<CountingWaker>) -> Poll<()> {
        let waker = Waker::from(Arc::clone(waker));
        Pin::new(watch).poll(&mut Context::from_waker(&waker))
    }

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    #[test]
    fn a_change_to_one_partition_wakes_only_its_watchers() {
        let purgatory = Purgatory::new();
        let (a_waker, b_waker) =
            (Arc::new(CountingWaker(AtomicUsize::new(0))), Arc::new(CountingWaker(AtomicUsize::new(0))));
        let mut on_a = purgatory.watch([tp(0)]);
        let mut on_b = purgatory.watch([tp(1), tp(2)]);
        assert!(poll(&mut on_a, &a_waker).is_pending());
        assert!(poll(&mut on_b, &b_waker).is_pending());
        assert_eq!(purgatory.check_and_complete(&tp(1)), 1);
        assert_eq!(a_waker.0.load(Ordering::SeqCst), 0, "a produce to another partition wakes nobody here");
        assert_eq!(b_waker.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut on_a, &a_waker).is_pending());
        assert!(poll(&mut on_b, &b_waker).is_ready());
        assert_eq!(purgatory.check_and_complete(&tp(3)), 0);
        drop(on_b);
        assert_eq!(purgatory.watched_partitions(), 1, "the other key of a fired watch is cleared on drop");
        drop(on_a);
        assert_eq!(purgatory.watched_partitions(), 0);
    }

    #[test]
    fn a_completion_before_the_first_poll_is_not_lost() {
        let purgatory = Purgatory::new();
        let waker = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let mut watch = purgatory.watch([tp(0)]);
        purgatory.check_and_complete(&tp(0));
        assert!(poll(&mut watch, &waker).is_ready());
        let mut nothing = purgatory.watch([]);
        assert!(poll(&mut nothing, &waker).is_ready(), "no partitions: nothing to wait for");
    }
}
