//! Every broker property Fjord reads, with its type, default and one line of documentation
//! (Kafka's `KafkaConfig` definitions): the parser takes its defaults from here, DescribeConfigs
//! on a BROKER resource lists it, and a property that is in neither this table nor the topic
//! configs' broker synonyms is reported at start-up as unused.

use fjord_metadata::topic_config::ConfigType;

/// One broker property.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BrokerProperty {
    /// Kafka's name.
    pub(crate) name: &'static str,
    /// Its type, as DescribeConfigs reports it.
    pub(crate) ty: ConfigType,
    /// The value when `server.properties` leaves it out (`None`: unset, Kafka's null).
    pub(crate) default: Option<&'static str>,
    /// One line of documentation.
    pub(crate) doc: &'static str,
}

macro_rules! property {
    ($name:expr, $ty:ident, None, $doc:expr) => {
        BrokerProperty { name: $name, ty: ConfigType::$ty, default: None, doc: $doc }
    };
    ($name:expr, $ty:ident, $default:expr, $doc:expr) => {
        BrokerProperty { name: $name, ty: ConfigType::$ty, default: Some($default), doc: $doc }
    };
}

/// The broker properties (topic-config synonyms such as `log.retention.ms` are in
/// `fjord_metadata::topic_config::TOPIC_CONFIGS`).
pub(crate) const BROKER_PROPERTIES: &[BrokerProperty] = &[
    property!("node.id", Int, "1", "This node's id, unique in the cluster."),
    property!("process.roles", List, "broker,controller", "broker, controller, or both (combined mode)."),
    property!("controller.quorum.voters", List, None, "The metadata quorum's voters: id@host:port,..."),
    property!(
        "controller.quorum.bootstrap.servers",
        List,
        None,
        "Dynamic quorums (KIP-853) are not supported: list controller.quorum.voters."
    ),
    property!("controller.listener.names", List, "CONTROLLER", "The listeners the controllers use."),
    property!(
        "listeners",
        List,
        "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        "The addresses to listen on: NAME://host:port,..."
    ),
    property!("advertised.listeners", List, None, "The addresses clients are given; the listeners by default."),
    property!("inter.broker.listener.name", String, None, "The listener brokers reach each other on."),
    property!("broker.rack", String, None, "This broker's rack, for rack-aware replica placement."),
    property!("log.dirs", String, "./fjord-data", "The data directory (one; several are refused)."),
    property!("log.dir", String, None, "The data directory, when log.dirs is not set."),
    property!("metadata.log.dir", String, None, "The metadata log's directory (default: the data directory)."),
    property!("num.partitions", Int, "1", "The partitions of an auto-created or defaulted topic."),
    property!("default.replication.factor", Int, "1", "The replication factor of an auto-created topic."),
    property!("auto.create.topics.enable", Boolean, "true", "Create a topic when a client first asks for it."),
    property!("socket.request.max.bytes", Int, "104857600", "The largest request accepted."),
    property!("fetch.max.bytes", Int, "57671680", "The most one Fetch response holds."),
    property!("max.connections", Int, "2147483647", "The most client connections at once."),
    property!("broker.session.timeout.ms", Int, "9000", "A broker silent this long is fenced."),
    property!("broker.heartbeat.interval.ms", Int, "2000", "How often a broker heartbeats to the controller."),
    property!("controlled.shutdown.enable", Boolean, "true", "Move leaderships away before a broker stops."),
    property!(
        "fjord.broker.liveness.probe.enable",
        Boolean,
        "true",
        "Fence at once a broker that missed a heartbeat and whose listeners refuse connections."
    ),
    property!(
        "replica.lag.time.max.ms",
        Long,
        "30000",
        "An ISR member that has not caught up for this long is dropped."
    ),
    property!("replica.fetch.max.bytes", Int, "1048576", "The most one replica fetch takes of a partition."),
    property!("replica.fetch.response.max.bytes", Int, "10485760", "The most one replica fetch takes in all."),
    property!("replica.fetch.wait.max.ms", Int, "500", "How long a leader holds a replica fetch with nothing new."),
    property!("replica.fetch.min.bytes", Int, "1", "The bytes a replica fetch waits for."),
    property!("replica.fetch.backoff.ms", Int, "1000", "The pause after a failed replica fetch."),
    property!("num.replica.fetchers", Int, "1", "Replica fetch tasks per source broker."),
    property!(
        "fjord.shutdown.grace.ms",
        Long,
        "5000",
        "How long shutdown waits for connections to finish their request."
    ),
    property!("metadata.log.max.record.bytes.between.snapshots", Long, "20971520", "Metadata bytes between snapshots."),
    property!("metadata.max.idle.interval.ms", Int, "500", "An idle active controller writes a no-op this often."),
    property!("auto.leader.rebalance.enable", Boolean, "true", "Move leaderships back to preferred replicas."),
    property!("leader.imbalance.check.interval.seconds", Long, "300", "How often leader balance is checked."),
    property!(
        "leader.imbalance.per.broker.percentage",
        Int,
        "10",
        "Read for compatibility; as in Kafka's KRaft mode, any imbalance is corrected."
    ),
    property!("controller.quorum.election.timeout.ms", Int, "1000", "How long without a leader before an election."),
    property!("controller.quorum.fetch.timeout.ms", Int, "2000", "How long a follower waits on a silent leader."),
    property!("controller.quorum.election.backoff.max.ms", Int, "1000", "The longest wait before a new election."),
    property!("controller.quorum.request.timeout.ms", Int, "2000", "How long a quorum request may take."),
    property!("controller.quorum.retry.backoff.ms", Int, "20", "The pause before a failed quorum request is retried."),
    property!("controller.quorum.append.linger.ms", Int, "25", "How long the leader gathers records into a batch."),
    property!("group.min.session.timeout.ms", Int, "6000", "The shortest session a group member may ask for."),
    property!("group.max.session.timeout.ms", Int, "1800000", "The longest session a group member may ask for."),
    property!("group.initial.rebalance.delay.ms", Int, "3000", "How long a new group waits for more members."),
    property!("offsets.retention.minutes", Int, "10080", "How long committed offsets of an empty group are kept."),
    property!("offset.metadata.max.bytes", Int, "4096", "The largest metadata of a committed offset."),
    property!("offsets.topic.num.partitions", Int, "50", "The partitions of __consumer_offsets."),
    property!(
        "offsets.topic.replication.factor",
        Short,
        "3",
        "The replication factor of __consumer_offsets (a lone node, with no other voters, uses 1)."
    ),
    property!("offsets.topic.segment.bytes", Int, "104857600", "The segment size of __consumer_offsets."),
    property!("offsets.retention.check.interval.ms", Long, "600000", "How often expired offsets are removed."),
    property!("log.retention.check.interval.ms", Long, "300000", "How often retention is applied."),
    property!("log.retention.minutes", Int, None, "Retention in minutes, when log.retention.ms is not set."),
    property!("log.retention.hours", Int, "168", "Retention in hours, when neither ms nor minutes is set."),
    property!("log.roll.hours", Int, "168", "Segment age before a roll, when log.roll.ms is not set."),
    property!("log.cleaner.enable", Boolean, "true", "Run the log cleaner for compacted topics."),
    property!("log.cleaner.threads", Int, "1", "The log cleaner threads."),
    property!("log.cleaner.backoff.ms", Long, "15000", "How long an idle cleaner thread sleeps."),
    property!("log.cleaner.dedupe.buffer.size", Long, "134217728", "The cleaners' key-map memory, shared out."),
    property!(
        "log.cleaner.io.max.bytes.per.second",
        Double,
        "1.7976931348623157E308",
        "The cleaners' read and write rate limit."
    ),
    property!("log.cleaner.io.buffer.size", Int, "524288", "The cleaners' I/O buffer memory."),
];

/// The property named `name`.
pub(crate) fn property(name: &str) -> Option<&'static BrokerProperty> {
    BROKER_PROPERTIES.iter().find(|p| p.name == name)
}

/// The default of `name`.
///
/// # Panics
/// If `name` is not in the table or has no default: a parser bug, caught by the tests.
pub(crate) fn default_of(name: &str) -> &'static str {
    property(name).and_then(|p| p.default).unwrap_or_else(|| panic!("{name} has no default in BROKER_PROPERTIES"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_as_their_types_and_names_are_unique() {
        for (i, p) in BROKER_PROPERTIES.iter().enumerate() {
            assert!(!BROKER_PROPERTIES[i + 1..].iter().any(|q| q.name == p.name), "{} twice", p.name);
            let Some(default) = p.default else { continue };
            let parses = match p.ty {
                ConfigType::Boolean => default.parse::<bool>().is_ok(),
                ConfigType::Int => default.parse::<i32>().is_ok(),
                ConfigType::Short => default.parse::<i16>().is_ok(),
                ConfigType::Long => default.parse::<i64>().is_ok(),
                ConfigType::Double => default.parse::<f64>().is_ok(),
                ConfigType::String | ConfigType::List => true,
            };
            assert!(parses, "{}'s default {default:?} is not a {:?}", p.name, p.ty);
        }
    }

    #[test]
    fn the_quorum_defaults_are_fjord_quorums() {
        let defaults = fjord_quorum::QuorumConfig::default();
        for name in fjord_quorum::QuorumConfig::PROPERTIES {
            let mut configured = fjord_quorum::QuorumConfig::default();
            configured.set(name, default_of(name)).unwrap();
            assert_eq!(format!("{configured:?}"), format!("{defaults:?}"), "{name}");
        }
    }
}
