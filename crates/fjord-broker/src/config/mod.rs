//! The broker's configuration: `server.properties` under Kafka's names and defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fjord_coordinator::CoordinatorConfig;
use fjord_metadata::topic_config::TOPIC_CONFIGS;
use fjord_retention::CleanerOptions;

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
    /// Roles, the controller listener, the quorum's voters and timers.
    pub cluster: ClusterConfig,
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
        // The default: one combined node, clients on 9092 and the controller on 9093.
        let listeners_value =
            get("listeners").unwrap_or_else(|| "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093".into());
        let all = parse_listeners("listeners", &listeners_value)?;
        cluster::check_ports(&all, &listeners_value)?;
        let node_id: i32 = number("node.id", get("node.id"), 1)?;
        let cluster = cluster::parse(&properties, node_id, &all, &controller_names)?;
        let listeners: Vec<Listener> = all.into_iter().filter(|l| !controller_names.contains(&l.name)).collect();
        if listeners.is_empty() && cluster.roles.broker {
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
        let advertised: Vec<Listener> =
            advertised.into_iter().filter(|l| !controller_names.contains(&l.name)).collect();
        let refuse =
            |name: &str, value: String, reason: &str| ConfigError { name: name.into(), value, reason: reason.into() };
        if advertised.is_empty() && cluster.roles.broker {
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
            node_id,
            cluster,
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
        Ok(config)
    }

    /// Properties given in `server.properties` that this build does not use, for a startup
    /// warning (Kafka logs the same for configs it does not know).
    pub fn unused_properties(&self) -> Vec<&str> {
        const USED: &[&str] = &[
            "node.id",
            "listeners",
            "advertised.listeners",
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
            .filter(|k| {
                !USED.contains(k)
                    && !cluster::PROPERTIES.contains(k)
                    && !fjord_quorum::QuorumConfig::PROPERTIES.contains(k)
                    && !TOPIC_CONFIGS.iter().any(|d| d.broker_name == *k)
            })
            .collect()
    }

    /// The directory holding the data (the first of `log.dirs`).
    pub fn data_dir(&self) -> &PathBuf {
        &self.log_dirs[0]
    }
}

mod cluster;
mod topics;

pub use cluster::{ClusterConfig, Roles};

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
        assert!(config("controller.quorum.voters=2@a:1,3@b:2").is_err(), "a controller that is no voter");
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

    #[test]
    fn cluster_roles_and_voters_are_checked_with_a_clear_reason() {
        let three = "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093\n";
        let node = |id: i32, port: u16| {
            format!("node.id={id}\n{three}listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{}\n", port + 1)
        };
        let c = config(&node(2, 29092)).unwrap();
        assert!(c.cluster.roles.broker && c.cluster.roles.controller);
        assert_eq!(c.cluster.voters.len(), 3);
        assert!(c.cluster.is_multi_node(2));
        assert_eq!(c.cluster.controller_listener.as_ref().map(|l| l.port), Some(29093));
        assert_eq!(c.advertised_listeners.len(), 1, "the controller listener is not advertised to clients");

        let refused = |text: &str| config(text).unwrap_err().to_string();
        assert!(refused(&node(4, 49092)).contains("not one of the voters"));
        assert!(refused(&format!("process.roles=broker\n{}", node(2, 29092))).contains("needs the controller role"));
        assert!(refused("process.roles=broker\nnode.id=7\n").contains("must name the controllers"));
        assert!(refused(&node(2, 19092)).contains("port"), "voter 2's port is not its listener's");
        assert!(refused("listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9092\n").contains("both use"));
        assert!(refused("process.roles=chef\n").contains("unknown role"));
        assert!(
            refused(&format!("node.id=2\n{three}listeners=PLAINTEXT://127.0.0.1:29092\n"))
                .contains("controller.listener.names")
        );
        let broker =
            config(&format!("process.roles=broker\nnode.id=7\n{three}listeners=PLAINTEXT://127.0.0.1:7092\n")).unwrap();
        assert!(!broker.cluster.roles.controller && broker.cluster.is_multi_node(7));

        let single = BrokerConfig::single_node();
        assert_eq!(single.cluster.controller_listener.as_ref().map(|l| l.port), Some(9093));
        assert!(!single.cluster.is_multi_node(1));
        let bare = config("listeners=PLAINTEXT://127.0.0.1:0\n").unwrap();
        assert!(bare.cluster.controller_listener.is_none() && !bare.cluster.is_multi_node(1), "its own only voter");
    }
}
