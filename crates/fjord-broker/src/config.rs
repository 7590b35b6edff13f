//! The broker's configuration: `server.properties` under Kafka's names and defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fjord_coordinator::CoordinatorConfig;
use fjord_log::{LogConfig, TimestampType};
use fjord_metadata::topic_config::TOPIC_CONFIGS;
use fjord_replication::PartitionConfig;
use fjord_retention::{CleanerOptions, CompactionConfig, RetentionConfig};

/// A configured listener: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The listener name (`PLAINTEXT`, `CONTROLLER`, ...).
    pub name: String,
    /// The host to bind or advertise.
    pub host: String,
    /// The port.
    pub port: u16,
}

/// A property Kafka would refuse.
#[derive(Debug, thiserror::Error)]
#[error("invalid value {value:?} for {name}: {reason}")]
pub struct ConfigError {
    /// The property.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Why it is refused.
    pub reason: String,
}

/// The broker's settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// `process.roles`.
    pub process_roles: Vec<String>,
    /// `listeners` that serve clients (all but `controller.listener.names`).
    pub listeners: Vec<Listener>,
    /// `advertised.listeners` (defaults to `listeners`).
    pub advertised_listeners: Vec<Listener>,
    /// `log.dirs` (or `log.dir`): exactly one directory (several are refused at start-up).
    pub log_dirs: Vec<PathBuf>,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: usize,
    /// `fetch.max.bytes`: the most one Fetch response holds, whatever the client asks.
    pub fetch_max_bytes: u64,
    /// `max.connections`.
    pub max_connections: usize,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub broker_session_timeout_ms: i64,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// `controlled.shutdown` grace: how long shutdown waits for connections to finish.
    pub shutdown_grace_ms: u64,
    /// The group coordinator's settings (`group.*`, `offsets.retention.minutes`,
    /// `offset.metadata.max.bytes`).
    pub coordinator: CoordinatorConfig,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor` (1 here, as in Kafka's shipped single-node
    /// `server.properties`; Kafka's built-in default of 3 cannot be met by one broker).
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: u64,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: u64,
    /// `log.cleaner.enable`: run the cleaner threads that compact `cleanup.policy=compact` logs.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.threads`.
    pub log_cleaner_threads: usize,
    /// `log.cleaner.backoff.ms`: how long an idle cleaner thread sleeps.
    pub log_cleaner_backoff_ms: u64,
    /// Each cleaner thread's bounds: `log.cleaner.dedupe.buffer.size` (shared out among the
    /// threads), `log.cleaner.io.max.bytes.per.second`, `log.cleaner.io.buffer.size`.
    pub cleaner: CleanerOptions,
    /// Every property as given, for DescribeConfigs and topic defaults.
    pub properties: BTreeMap<String, String>,
}

fn parse_listeners(name: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let invalid = |reason: &str| ConfigError { name: name.into(), value: value.into(), reason: reason.into() };
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (listener, address) = entry.split_once("://").ok_or_else(|| invalid("expected NAME://host:port"))?;
            let (host, port) = address.rsplit_once(':').ok_or_else(|| invalid("expected NAME://host:port"))?;
            let port = port.parse().map_err(|_| invalid("bad port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Ok(Listener { name: listener.to_owned(), host: host.to_owned(), port })
        })
        .collect()
}

impl BrokerConfig {
    /// The embedded default: a combined broker and controller on 127.0.0.1:9092, data in
    /// `./fjord-data`.
    pub fn single_node() -> BrokerConfig {
        BrokerConfig::from_properties(BTreeMap::new()).expect("the defaults are valid")
    }

    /// Reads Kafka's property names, applying Kafka's defaults to the rest.
    pub fn from_properties(properties: BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        let get = |name: &str| properties.get(name).map(|v| v.trim().to_owned());
        fn number<T: std::str::FromStr>(name: &str, value: Option<String>, default: T) -> Result<T, ConfigError> {
            match value {
                None => Ok(default),
                Some(v) => {
                    v.parse().map_err(|_| ConfigError { name: name.into(), value: v, reason: "not a number".into() })
                }
            }
        }
        let controller_names: Vec<String> = get("controller.listener.names")
            .unwrap_or_else(|| "CONTROLLER".into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect();
        let all =
            parse_listeners("listeners", &get("listeners").unwrap_or_else(|| "PLAINTEXT://127.0.0.1:9092".into()))?;
        let listeners: Vec<Listener> = all.into_iter().filter(|l| !controller_names.contains(&l.name)).collect();
        if listeners.is_empty() {
            return Err(ConfigError {
                name: "listeners".into(),
                value: get("listeners").unwrap_or_default(),
                reason: "no listener for clients (all are controller listeners)".into(),
            });
        }
        let advertised = match get("advertised.listeners") {
            Some(value) => parse_listeners("advertised.listeners", &value)?,
            None => listeners.clone(),
        };
        let refuse =
            |name: &str, value: String, reason: &str| ConfigError { name: name.into(), value, reason: reason.into() };
        if advertised.is_empty() {
            let reason = "no listener to advertise: give NAME://host:port, or leave it out to advertise listeners";
            return Err(refuse("advertised.listeners", get("advertised.listeners").unwrap_or_default(), reason));
        }
        if let Some(unroutable) = advertised.iter().find(|l| l.host == "0.0.0.0" || l.host == "::") {
            let reason = format!("clients cannot connect to {}; advertise a reachable host", unroutable.host);
            return Err(refuse("advertised.listeners", get("advertised.listeners").unwrap_or_default(), &reason));
        }
        let log_dirs: Vec<PathBuf> = get("log.dirs")
            .or_else(|| get("log.dir"))
            .unwrap_or_else(|| "./fjord-data".into())
            .split(',')
            .map(|s| PathBuf::from(s.trim()))
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let dirs_value = || get("log.dirs").or_else(|| get("log.dir")).unwrap_or_default();
        if log_dirs.is_empty() {
            return Err(refuse("log.dirs", dirs_value(), "no directory given"));
        }
        if log_dirs.len() > 1 {
            let reason = format!(
                "{} directories given; this build keeps all data in one directory (JBOD is not supported yet)",
                log_dirs.len()
            );
            return Err(refuse("log.dirs", dirs_value(), &reason));
        }
        let config = BrokerConfig {
            node_id: number("node.id", get("node.id"), 1)?,
            process_roles: get("process.roles")
                .unwrap_or_else(|| "broker,controller".into())
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect(),
            listeners,
            advertised_listeners: advertised,
            log_dirs,
            num_partitions: number("num.partitions", get("num.partitions"), 1)?,
            default_replication_factor: number("default.replication.factor", get("default.replication.factor"), 1)?,
            auto_create_topics_enable: number("auto.create.topics.enable", get("auto.create.topics.enable"), true)?,
            socket_request_max_bytes: number("socket.request.max.bytes", get("socket.request.max.bytes"), 104_857_600)?,
            fetch_max_bytes: number("fetch.max.bytes", get("fetch.max.bytes"), 57_671_680)?,
            max_connections: number("max.connections", get("max.connections"), i32::MAX as usize)?,
            rack: get("broker.rack"),
            broker_session_timeout_ms: number("broker.session.timeout.ms", get("broker.session.timeout.ms"), 9_000)?,
            broker_heartbeat_interval_ms: number(
                "broker.heartbeat.interval.ms",
                get("broker.heartbeat.interval.ms"),
                2_000,
            )?,
            shutdown_grace_ms: number("fjord.shutdown.grace.ms", get("fjord.shutdown.grace.ms"), 5_000)?,
            coordinator: CoordinatorConfig {
                group_min_session_timeout_ms: number(
                    "group.min.session.timeout.ms",
                    get("group.min.session.timeout.ms"),
                    6_000,
                )?,
                group_max_session_timeout_ms: number(
                    "group.max.session.timeout.ms",
                    get("group.max.session.timeout.ms"),
                    1_800_000,
                )?,
                group_initial_rebalance_delay_ms: number(
                    "group.initial.rebalance.delay.ms",
                    get("group.initial.rebalance.delay.ms"),
                    3_000,
                )?,
                offsets_retention_ms: number::<i64>(
                    "offsets.retention.minutes",
                    get("offsets.retention.minutes"),
                    7 * 24 * 60,
                )?
                .saturating_mul(60_000),
                offset_metadata_max_bytes: number("offset.metadata.max.bytes", get("offset.metadata.max.bytes"), 4096)?,
            },
            offsets_topic_num_partitions: number(
                "offsets.topic.num.partitions",
                get("offsets.topic.num.partitions"),
                50,
            )?,
            offsets_topic_replication_factor: number(
                "offsets.topic.replication.factor",
                get("offsets.topic.replication.factor"),
                1,
            )?,
            offsets_topic_segment_bytes: number(
                "offsets.topic.segment.bytes",
                get("offsets.topic.segment.bytes"),
                104_857_600,
            )?,
            offsets_retention_check_interval_ms: number(
                "offsets.retention.check.interval.ms",
                get("offsets.retention.check.interval.ms"),
                600_000,
            )?,
            log_retention_check_interval_ms: number(
                "log.retention.check.interval.ms",
                get("log.retention.check.interval.ms"),
                300_000,
            )?,
            log_cleaner_enable: number("log.cleaner.enable", get("log.cleaner.enable"), true)?,
            log_cleaner_threads: number("log.cleaner.threads", get("log.cleaner.threads"), 1)?,
            log_cleaner_backoff_ms: number("log.cleaner.backoff.ms", get("log.cleaner.backoff.ms"), 15_000)?,
            cleaner: CleanerOptions {
                dedupe_buffer_size: number(
                    "log.cleaner.dedupe.buffer.size",
                    get("log.cleaner.dedupe.buffer.size"),
                    134_217_728usize,
                )? / number("log.cleaner.threads", get("log.cleaner.threads"), 1usize)?.max(1),
                io_max_bytes_per_second: number(
                    "log.cleaner.io.max.bytes.per.second",
                    get("log.cleaner.io.max.bytes.per.second"),
                    f64::MAX,
                )?,
                io_buffer_size: number("log.cleaner.io.buffer.size", get("log.cleaner.io.buffer.size"), 524_288)?,
            },
            properties: properties.clone(),
        };
        if config.log_cleaner_threads < 1 {
            return Err(ConfigError {
                name: "log.cleaner.threads".into(),
                value: config.log_cleaner_threads.to_string(),
                reason: "must be at least 1".into(),
            });
        }
        if config.offsets_topic_num_partitions < 1 {
            return Err(ConfigError {
                name: "offsets.topic.num.partitions".into(),
                value: config.offsets_topic_num_partitions.to_string(),
                reason: "must be at least 1".into(),
            });
        }
        if config.num_partitions < 1 {
            return Err(ConfigError {
                name: "num.partitions".into(),
                value: config.num_partitions.to_string(),
                reason: "must be at least 1".into(),
            });
        }
        if let Some(voters) = get("controller.quorum.voters") {
            let others = voters.split(',').filter(|v| !v.trim().starts_with(&format!("{}@", config.node_id))).count();
            if others > 0 {
                return Err(ConfigError {
                    name: "controller.quorum.voters".into(),
                    value: voters,
                    reason: "multi-node quorums are not supported yet; this build runs a single node".into(),
                });
            }
        }
        Ok(config)
    }

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
        }
    }

    /// Properties given in `server.properties` that this build does not use, for a startup
    /// warning (Kafka logs the same for configs it does not know).
    pub fn unused_properties(&self) -> Vec<&str> {
        const USED: &[&str] = &[
            "node.id",
            "process.roles",
            "listeners",
            "advertised.listeners",
            "controller.listener.names",
            "controller.quorum.voters",
            "log.dirs",
            "log.dir",
            "num.partitions",
            "default.replication.factor",
            "auto.create.topics.enable",
            "socket.request.max.bytes",
            "fetch.max.bytes",
            "max.connections",
            "broker.rack",
            "broker.session.timeout.ms",
            "broker.heartbeat.interval.ms",
            "fjord.shutdown.grace.ms",
            "log.retention.minutes",
            "log.retention.hours",
            "log.roll.hours",
            "group.min.session.timeout.ms",
            "group.max.session.timeout.ms",
            "group.initial.rebalance.delay.ms",
            "offsets.retention.minutes",
            "offset.metadata.max.bytes",
            "offsets.topic.num.partitions",
            "offsets.topic.replication.factor",
            "offsets.topic.segment.bytes",
            "offsets.retention.check.interval.ms",
            "log.retention.check.interval.ms",
        ];
        self.properties
            .keys()
            .map(String::as_str)
            .filter(|k| !USED.contains(k) && !TOPIC_CONFIGS.iter().any(|d| d.broker_name == *k))
            .collect()
    }

    /// The directory holding the data (the first of `log.dirs`).
    pub fn data_dir(&self) -> &PathBuf {
        &self.log_dirs[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_properties(crate::properties::parse(text))
    }

    #[test]
    fn the_default_is_a_single_node_on_localhost() {
        let config = BrokerConfig::single_node();
        assert_eq!(config.listeners, vec![Listener { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 }]);
        assert_eq!(config.data_dir(), &PathBuf::from("./fjord-data"));
        assert_eq!((config.node_id, config.num_partitions, config.default_replication_factor), (1, 1, 1));
        assert!(config.auto_create_topics_enable);
    }

    #[test]
    fn compaction_settings_come_from_topic_overrides_then_broker_synonyms() {
        let broker = config("log.cleaner.min.cleanable.ratio=0.2\nlog.cleaner.threads=2\n").unwrap();
        assert_eq!(broker.cleaner.dedupe_buffer_size, 134_217_728 / 2, "shared out among the threads");
        let topic = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(broker.compaction(&topic(&[])).is_none(), "delete is the default policy");
        let compact = topic(&[("cleanup.policy", "compact,delete"), ("max.compaction.lag.ms", "60000")]);
        let (settings, _) = broker.compaction(&compact).unwrap();
        assert_eq!(settings.min_cleanable_dirty_ratio, 0.2);
        assert_eq!(settings.max_compaction_lag_ms, 60_000);
        assert_eq!(settings.delete_retention_ms, 86_400_000);
        assert_eq!(broker.partition_config(&compact).log.segment_ms, 60_000, "KIP-354: rolls by the max lag");
        assert!(broker.retention(&compact).is_some(), "compact,delete also deletes");
    }

    #[test]
    fn kafka_names_are_honoured() {
        let c = config(
            "node.id=3\nlisteners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n\
             controller.quorum.voters=3@127.0.0.1:19093\nlog.dirs=/tmp/x\nnum.partitions=4\n\
             log.retention.hours=1\nlog.segment.bytes=1048576\n",
        )
        .unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(c.listeners.len(), 1, "the controller listener does not serve clients");
        assert_eq!(c.topic_default("retention.ms"), Some(("3600000".into(), true)));
        assert_eq!(c.topic_default("cleanup.policy"), Some(("delete".into(), false)));
        let mut overrides = BTreeMap::new();
        overrides.insert("segment.bytes".to_owned(), "2048".to_owned());
        assert_eq!(c.partition_config(&overrides).log.segment_bytes, 2048);
        assert_eq!(c.partition_config(&BTreeMap::new()).log.segment_bytes, 1_048_576);
        assert!(c.unused_properties().is_empty(), "{:?}", c.unused_properties());
        let with_extra = config("num.network.threads=3\nlog.segment.bytes=1048576\n").unwrap();
        assert_eq!(with_extra.unused_properties(), vec!["num.network.threads"]);
        assert!(config("num.partitions=0").is_err());
        assert!(config("listeners=nonsense").is_err());
        assert!(config("controller.quorum.voters=1@a:1,2@b:2").is_err());
    }

    #[test]
    fn unusable_directories_and_listeners_are_refused_with_a_reason() {
        let refused = |text: &str| config(text).unwrap_err().to_string();
        assert!(refused("log.dirs=\n").contains("no directory given"));
        assert!(refused("log.dirs= , \n").contains("no directory given"));
        assert!(refused("log.dirs=/a,/b\n").contains("JBOD is not supported"));
        assert!(refused("advertised.listeners=\n").contains("no listener to advertise"));
        assert!(refused("advertised.listeners=PLAINTEXT://0.0.0.0:9092\n").contains("cannot connect to 0.0.0.0"));
        assert_eq!(BrokerConfig::single_node().fetch_max_bytes, 55 * 1024 * 1024);
    }
}
