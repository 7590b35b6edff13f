//! The ISR changes a leader asks for (Kafka's `Partition.maybeShrinkIsr` / `maybeExpandIsr`
//! and `AlterPartitionManager`): at most one AlterPartition in flight per partition; while it
//! is, the high watermark counts the maximal ISR. The controller's answer is a compare-and-set
//! on the leader and partition epochs; the new ISR takes effect only when its record reaches
//! this broker's metadata, and a refused one is forgotten so the next check can try again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fjord_protocol::cluster as pb;
use fjord_types::{BrokerId, ErrorCode, LeaderEpoch, TopicId, TopicPartition};

use crate::broker::Broker;

/// How long an AlterPartition may take before it is abandoned (and tried again later).
const ALTER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the leader waits for an accepted change to reach its own metadata.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// Sends the proposal `isr` for `tp` (already recorded with `begin_isr_change`) to the
/// active controller, and settles it when the answer comes.
pub(crate) fn propose(
    broker: &Arc<Broker>,
    tp: TopicPartition,
    topic_id: TopicId,
    isr: Vec<BrokerId>,
    leader_epoch: LeaderEpoch,
    partition_epoch: i32,
) {
    let broker = Arc::clone(broker);
    tokio::spawn(async move {
        let request = pb::AlterPartitionRequest {
            broker_id: broker.node_id.0,
            broker_epoch: broker.broker_epoch.load(Ordering::Acquire),
            topic: tp.topic.clone(),
            topic_id: topic_id.0.to_vec(),
            partition: tp.partition,
            leader_epoch: leader_epoch.0,
            partition_epoch,
            new_isr: isr.iter().map(|b| b.0).collect(),
        };
        let answer = broker.channel().alter_partition(request, ALTER_TIMEOUT).await;
        let accepted_epoch = match &answer {
            Ok(response) if response.error_code == 0 => Some(response.partition_epoch),
            Ok(response) => {
                let error = ErrorCode::from_code(response.error_code as i16);
                tracing::info!(partition = %tp, ?isr, ?error, message = %response.error_message, "the controller refused an ISR change");
                None
            }
            Err(e) => {
                tracing::warn!(partition = %tp, ?isr, error = %e, "an ISR change got no answer");
                None
            }
        };
        if let Some(epoch) = accepted_epoch {
            // The record arrives through the metadata log; applying it settles the proposal.
            let deadline = tokio::time::Instant::now() + APPLY_WAIT;
            while tokio::time::Instant::now() < deadline {
                let applied = broker.replicas.partition(&tp).is_none_or(|h| {
                    let state = h.state.lock();
                    state.state().pending_isr().is_none() || state.state().partition_epoch() >= epoch
                });
                if applied {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Whatever is still pending from this proposal (refused, unanswered, or answered with
        // no change to write) is forgotten, so the high watermark counts the committed ISR again.
        if let Some(handle) = broker.replicas.partition(&tp) {
            let mut partition = handle.state.lock();
            let ours = partition.leader_epoch() == leader_epoch && partition.state().pending_isr() == Some(&isr[..]);
            if ours && partition.abort_isr_change() {
                drop(partition);
                broker.replicas.complete_delayed(&tp);
            }
        }
    });
}

/// Proposes, for every partition this broker leads, to drop the ISR members that have not
/// caught up within `replica.lag.time.max.ms` (Kafka's `isr-expiration` task).
pub(crate) fn shrink_lagging(broker: &Arc<Broker>) {
    let now = Broker::now();
    for (tp, handle) in broker.replicas.partitions() {
        let proposal = {
            let mut partition = handle.state.lock();
            partition.state().isr_to_shrink(now).map(|isr| {
                let at = (partition.leader_epoch(), partition.state().partition_epoch());
                partition.begin_isr_change(isr.clone());
                (isr, at)
            })
        };
        if let Some((isr, (leader_epoch, partition_epoch))) = proposal {
            tracing::info!(partition = %tp, ?isr, "shrinking the ISR: members fell behind");
            propose(broker, tp, handle.topic_id, isr, leader_epoch, partition_epoch);
        }
    }
}
