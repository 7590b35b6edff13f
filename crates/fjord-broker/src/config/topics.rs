//! What a topic's configs come to on this broker: a topic's override, else the broker's
//! `server.properties` synonym, else Kafka's default; and the settings of its partitions, its
//! delete policy and its compact policy.

use std::collections::BTreeMap;

use fjord_log::{LogConfig, TimestampType};
use fjord_metadata::topic_config::TOPIC_CONFIGS;
use fjord_replication::PartitionConfig;
use fjord_retention::{CompactionConfig, RetentionConfig};

use super::BrokerConfig;

impl BrokerConfig {
    /// The broker-level default of a topic config: the synonym property if set (with Kafka's
    /// `.minutes`/`.hours` variants), else Kafka's default. Returns the value and whether it
    /// came from `server.properties`.
    pub fn topic_default(&self, topic_config: &str) -> Option<(String, bool)> {
        let def = TOPIC_CONFIGS.iter().find(|d| d.name == topic_config)?;
        let prop = |name: &str| self.properties.get(name).map(|v| v.trim().to_owned());
        let scaled =
            |name: &str, factor: i64| prop(name).and_then(|v| v.parse::<i64>().ok()).map(|v| (v * factor).to_string());
        let configured = match topic_config {
            "retention.ms" => prop("log.retention.ms")
                .or_else(|| scaled("log.retention.minutes", 60_000))
                .or_else(|| scaled("log.retention.hours", 3_600_000)),
            "segment.ms" => prop("log.roll.ms").or_else(|| scaled("log.roll.hours", 3_600_000)),
            _ => prop(def.broker_name),
        };
        Some(match configured {
            Some(value) => (value, true),
            None => (def.default.to_owned(), false),
        })
    }

    /// A topic config's effective value: the topic's override, else the broker default.
    pub fn topic_value(&self, overrides: &BTreeMap<String, String>, name: &str) -> String {
        overrides.get(name).cloned().or_else(|| self.topic_default(name).map(|(v, _)| v)).unwrap_or_default()
    }

    /// The delete policy of a topic with `overrides`: `None` unless `cleanup.policy` includes
    /// `delete`; else the retention limits and `file.delete.delay.ms`.
    pub fn retention(&self, overrides: &BTreeMap<String, String>) -> Option<(RetentionConfig, u64)> {
        let value = |name: &str| self.topic_value(overrides, name);
        if !value("cleanup.policy").split(',').any(|p| p.trim() == "delete") {
            return None;
        }
        let long = |name: &str, default: i64| value(name).trim().parse::<i64>().unwrap_or(default);
        let retention = RetentionConfig {
            retention_ms: long("retention.ms", 604_800_000),
            retention_bytes: long("retention.bytes", -1),
        };
        Some((retention, long("file.delete.delay.ms", 60_000).max(0) as u64))
    }

    /// The compact policy of a topic with `overrides`: `None` unless `cleanup.policy` includes
    /// `compact`; else its settings and `file.delete.delay.ms`.
    pub fn compaction(&self, overrides: &BTreeMap<String, String>) -> Option<(CompactionConfig, u64)> {
        let value = |name: &str| self.topic_value(overrides, name);
        if !value("cleanup.policy").split(',').any(|p| p.trim() == "compact") {
            return None;
        }
        let long = |name: &str, default: i64| value(name).trim().parse::<i64>().unwrap_or(default);
        let compaction = CompactionConfig {
            delete_retention_ms: long("delete.retention.ms", 86_400_000),
            min_compaction_lag_ms: long("min.compaction.lag.ms", 0),
            max_compaction_lag_ms: long("max.compaction.lag.ms", i64::MAX),
            min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio").trim().parse().unwrap_or(0.5),
        };
        Some((compaction, long("file.delete.delay.ms", 60_000).max(0) as u64))
    }

    /// The settings of a partition of a topic with `overrides`.
    pub fn partition_config(&self, overrides: &BTreeMap<String, String>) -> PartitionConfig {
        let value = |name: &str| self.topic_value(overrides, name);
        let long = |name: &str, default: i64| value(name).trim().parse::<i64>().unwrap_or(default);
        let compacted = value("cleanup.policy").split(',').any(|p| p.trim() == "compact");
        let mut segment_ms = long("segment.ms", 604_800_000).max(1);
        if compacted {
            // KIP-354: a compacted log rolls by max.compaction.lag.ms too, so no record waits
            // longer than that in the active segment, which is never cleaned.
            segment_ms = segment_ms.min(long("max.compaction.lag.ms", i64::MAX).max(1));
        }
        let log = LogConfig {
            segment_bytes: long("segment.bytes", 1 << 30).max(14) as u64,
            segment_ms,
            segment_index_bytes: long("segment.index.bytes", 10 << 20).max(4) as usize,
            index_interval_bytes: long("index.interval.bytes", 4096).max(0) as u64,
            flush_messages: long("flush.messages", i64::MAX).max(1),
            flush_ms: long("flush.ms", i64::MAX).max(0),
            max_message_bytes: long("max.message.bytes", 1_048_588).max(0) as usize,
            message_timestamp_type: if value("message.timestamp.type").trim() == "LogAppendTime" {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            },
        };
        PartitionConfig {
            log,
            min_insync_replicas: long("min.insync.replicas", 1) as i32,
            timestamp_before_max_ms: long("message.timestamp.before.max.ms", i64::MAX),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms", 3_600_000),
            compacted,
            replica_lag_time_max_ms: self.replication.lag_time_max_ms,
        }
    }
}
