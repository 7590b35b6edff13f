//! DescribeLogDirs: the broker's log directory with the bytes on disk of each replica hosted
//! there, led or followed, and (v4) the file system's size and free space (Kafka's
//! `ReplicaManager.describeLogDirs`). Fjord has one directory (`log.dirs`) and no future logs
//! (KIP-113 moves between directories), so every replica is current. Answered by the broker
//! asked, about itself; never forwarded.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use fjord_types::TopicPartition;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::{text, topic_name};
use crate::broker::Broker;
use crate::errors;

pub(super) fn handle(broker: &Broker, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    // Null asks for every hosted partition; a partition asked for but not hosted is left out.
    let wanted: Option<HashSet<TopicPartition>> = request.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| TopicPartition::new(t.topic.0.to_string(), p)))
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (tp, handle) in broker.replicas.partitions() {
        if wanted.as_ref().is_some_and(|w| !w.contains(&tp)) {
            continue;
        }
        let size = handle.state.lock().log().size_bytes();
        // The lag of a current replica is its own high watermark less its log end: never
        // positive, so 0 (Kafka's `getLogEndOffsetLag`; only future logs lag).
        by_topic.entry(tp.topic).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(tp.partition)
                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                .with_offset_lag(0)
                .with_is_future_key(false),
        );
    }
    // A topic none of whose partitions is described is left out (Kafka lists every hosted
    // topic, with no partitions when none were asked for).
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default().with_name(topic_name(&name)).with_partitions(partitions)
        })
        .collect();
    // Kafka names the directory by its absolute path, as configured (not canonicalized).
    let dir = std::path::absolute(&broker.data_dir).unwrap_or_else(|_| broker.data_dir.clone());
    let result = DescribeLogDirsResult::default().with_log_dir(text(&dir.to_string_lossy()));
    let result = match capacity(&dir) {
        Ok((total_bytes, usable_bytes)) => {
            result.with_topics(topics).with_total_bytes(total_bytes).with_usable_bytes(usable_bytes)
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the log directory's file system");
            result.with_error_code(errors::log_dir_error(&e).code())
        }
    };
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// The size of the file system holding `dir` and the bytes an unprivileged writer may still
/// use there (Java's `FileStore.getTotalSpace` and `getUsableSpace`), saturated at `i64::MAX`
/// as Kafka's `adjustForLargeFileSystems` does.
fn capacity(dir: &Path) -> std::io::Result<(i64, i64)> {
    let stats = rustix::fs::statvfs(dir)?;
    let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(stats.f_frsize)).unwrap_or(i64::MAX);
    Ok((bytes(stats.f_blocks), bytes(stats.f_bavail)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_that_of_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let (total, usable) = capacity(dir.path()).unwrap();
        assert!(total > 0 && (0..=total).contains(&usable), "{total} {usable}");
        assert!(capacity(&dir.path().join("absent")).is_err());
    }
}
