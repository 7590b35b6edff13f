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
    /// `metadata.log.dir`: where the metadata log lives when not in the data directory.
    pub metadata_log_dir: Option<PathBuf>,
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
    /// Follower replication (`replica.*`, `num.replica.fetchers`).
    pub replication: ReplicationConfig,
    /// The group coordinator's settings (`group.*`, `offsets.retention.minutes`,
    /// `offset.metadata.max.bytes`).
    pub coordinator: CoordinatorConfig,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`: Kafka's 3 in a cluster; 1 on a lone node, as in
    /// Kafka's shipped single-node `server.properties` (3 cannot be met by one broker).
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

/// Follower replication's settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `replica.lag.time.max.ms` (30000): an ISR member that has not caught up for this long
    /// is dropped.
    pub lag_time_max_ms: i64,
    /// `replica.fetch.max.bytes` (1 MiB): per partition in one replica fetch (at least one
    /// batch always comes).
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes` (10 MiB): per replica fetch.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms` (500): how long the leader holds a fetch with nothing new.
    pub fetch_wait_max_ms: i64,
    /// `replica.fetch.min.bytes` (1).
    pub fetch_min_bytes: i32,
    /// `replica.fetch.backoff.ms` (1000): the pause after a failed fetch.
    pub fetch_backoff_ms: u64,
    /// `num.replica.fetchers` (1): fetch tasks per source broker.
    pub num_fetchers: usize,
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
        let props = Props(&properties);
        let controller_names: Vec<String> =
            props.text("controller.listener.names").split(',').map(|s| s.trim().to_owned()).collect();
        // The default: one combined node, clients on 9092 and the controller on 9093.
        let listeners_value = props.text("listeners");
        let all = parse_listeners("listeners", &listeners_value)?;
        cluster::check_ports(&all, &listeners_value)?;
        let node_id: i32 = props.setting("node.id")?;
        let cluster = cluster::parse(&props, node_id, &all, &controller_names)?;
        let lone_node = !cluster.is_multi_node(node_id);
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
            .unwrap_or_else(|| catalog::default_of("log.dirs").to_owned())
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
            metadata_log_dir: get("metadata.log.dir").filter(|d| !d.is_empty()).map(PathBuf::from),
            num_partitions: props.setting("num.partitions")?,
            default_replication_factor: props.setting("default.replication.factor")?,
            auto_create_topics_enable: props.setting("auto.create.topics.enable")?,
            socket_request_max_bytes: props.setting("socket.request.max.bytes")?,
            fetch_max_bytes: props.setting("fetch.max.bytes")?,
            max_connections: props.setting("max.connections")?,
            rack: get("broker.rack"),
            broker_session_timeout_ms: props.setting("broker.session.timeout.ms")?,
            broker_heartbeat_interval_ms: props.setting("broker.heartbeat.interval.ms")?,
            shutdown_grace_ms: props.setting("fjord.shutdown.grace.ms")?,
            replication: ReplicationConfig {
                lag_time_max_ms: props.setting("replica.lag.time.max.ms")?,
                fetch_max_bytes: props.setting("replica.fetch.max.bytes")?,
                fetch_response_max_bytes: props.setting("replica.fetch.response.max.bytes")?,
                fetch_wait_max_ms: props.setting("replica.fetch.wait.max.ms")?,
                fetch_min_bytes: props.setting("replica.fetch.min.bytes")?,
                fetch_backoff_ms: props.setting("replica.fetch.backoff.ms")?,
                num_fetchers: props.setting::<usize>("num.replica.fetchers")?.max(1),
            },
            coordinator: CoordinatorConfig {
                group_min_session_timeout_ms: props.setting("group.min.session.timeout.ms")?,
                group_max_session_timeout_ms: props.setting("group.max.session.timeout.ms")?,
                group_initial_rebalance_delay_ms: props.setting("group.initial.rebalance.delay.ms")?,
                offsets_retention_ms: props.setting::<i64>("offsets.retention.minutes")?.saturating_mul(60_000),
                offset_metadata_max_bytes: props.setting("offset.metadata.max.bytes")?,
            },
            offsets_topic_num_partitions: props.setting("offsets.topic.num.partitions")?,
            // Kafka's 3 in a cluster (the offsets topic waits until that many brokers are up);
            // a lone node takes the value of Kafka's shipped single-node server.properties.
            offsets_topic_replication_factor: match get("offsets.topic.replication.factor") {
                Some(_) => props.setting("offsets.topic.replication.factor")?,
                None if lone_node => 1,
                None => props.setting("offsets.topic.replication.factor")?,
            },
            offsets_topic_segment_bytes: props.setting("offsets.topic.segment.bytes")?,
            offsets_retention_check_interval_ms: props.setting("offsets.retention.check.interval.ms")?,
            log_retention_check_interval_ms: props.setting("log.retention.check.interval.ms")?,
            log_cleaner_enable: props.setting("log.cleaner.enable")?,
            log_cleaner_threads: props.setting("log.cleaner.threads")?,
            log_cleaner_backoff_ms: props.setting("log.cleaner.backoff.ms")?,
            cleaner: CleanerOptions {
                dedupe_buffer_size: props.setting::<usize>("log.cleaner.dedupe.buffer.size")?
                    / props.setting::<usize>("log.cleaner.threads")?.max(1),
                io_max_bytes_per_second: props.setting("log.cleaner.io.max.bytes.per.second")?,
                io_buffer_size: props.setting("log.cleaner.io.buffer.size")?,
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
        self.properties
            .keys()
            .map(String::as_str)
            .filter(|k| catalog::property(k).is_none() && !TOPIC_CONFIGS.iter().any(|d| d.broker_name == *k))
            .collect()
    }

    /// The directory holding the data (the first of `log.dirs`).
    pub fn data_dir(&self) -> &PathBuf {
        &self.log_dirs[0]
    }

    /// The directory holding `__cluster_metadata-0`: `metadata.log.dir`, or else the data
    /// directory, as in Kafka.
    pub fn metadata_dir(&self) -> &PathBuf {
        self.metadata_log_dir.as_ref().unwrap_or(&self.log_dirs[0])
    }
}

pub(crate) mod catalog;
mod cluster;
mod topics;

/// The properties as given, read with the catalog's defaults.
pub(crate) struct Props<'a>(&'a BTreeMap<String, String>);

impl Props<'_> {
    /// The value as given, trimmed.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.trim().to_owned())
    }

    /// The value as given, else the catalog's default.
    pub(crate) fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_else(|| catalog::default_of(name).to_owned())
    }

    /// The value parsed as `T`, else the catalog's default.
    pub(crate) fn setting<T: std::str::FromStr>(&self, name: &str) -> Result<T, ConfigError> {
        let value = self.text(name);
        value.parse().map_err(|_| {
            let ty = catalog::property(name).map_or("value", |p| match p.ty {
                fjord_metadata::topic_config::ConfigType::Boolean => "true or false",
                fjord_metadata::topic_config::ConfigType::Double => "a number",
                _ => "an integer in range",
            });
            ConfigError { name: name.into(), value, reason: format!("expected {ty}") }
        })
    }
}

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
    fn the_metadata_log_lives_in_the_data_directory_unless_metadata_log_dir_says_otherwise() {
        let shared = config("log.dirs=/data\n").unwrap();
        assert_eq!(shared.metadata_dir(), &PathBuf::from("/data"));
        let apart = config("log.dirs=/data\nmetadata.log.dir=/meta\n").unwrap();
        assert_eq!((apart.data_dir(), apart.metadata_dir()), (&PathBuf::from("/data"), &PathBuf::from("/meta")));
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
        let dynamic = refused("process.roles=broker\ncontroller.quorum.bootstrap.servers=127.0.0.1:9093\n");
        assert!(dynamic.contains("KIP-853") && dynamic.contains("controller.quorum.voters"), "{dynamic}");
        assert!(refused("broker.session.timeout.ms=soon\n").contains("expected an integer"));
        assert!(refused("controlled.shutdown.enable=maybe\n").contains("true or false"));
    }
}
