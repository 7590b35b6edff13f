//! Errors of the metadata layer.

use fjord_types::BrokerId;

/// A metadata record or snapshot that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes that are not a metadata record.
    #[error("corrupt metadata record: {0}")]
    CorruptRecord(String),
    /// A record that does not apply to the image (a partition of an unknown topic, say).
    #[error("metadata record does not apply: {0}")]
    Inconsistent(String),
}

/// The metadata layer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the controller refused a request, with Kafka's message for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    /// A name that breaks Kafka's rules, or collides with another topic's.
    #[error("{0}")]
    InvalidTopic(String),
    /// The topic exists already.
    #[error("Topic '{0}' already exists.")]
    TopicExists(String),
    /// No such topic.
    #[error("This server does not host this topic-partition.")]
    UnknownTopic(String),
    /// A partition count that is not positive, or does not increase.
    #[error("{0}")]
    InvalidPartitions(String),
    /// A replication factor that is not positive or exceeds the live brokers.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// A manual replica assignment that does not fit.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// An unknown config or an invalid value.
    #[error("{0}")]
    InvalidConfig(String),
    /// A request that makes no sense as a whole (duplicates, conflicting fields).
    #[error("{0}")]
    InvalidRequest(String),
    /// Another process of this broker still has a live session.
    #[error("Another broker is registered with broker id {0} and its session has not expired.")]
    DuplicateBrokerRegistration(BrokerId),
    /// A heartbeat or request from a broker registration that is not the current one.
    #[error("Broker {broker} sent epoch {epoch}, which is not its current registration.")]
    StaleBrokerEpoch {
        /// The broker.
        broker: BrokerId,
        /// The epoch it sent.
        epoch: i64,
    },
    /// A broker that never registered.
    #[error("Broker {0} is not registered.")]
    BrokerNotRegistered(BrokerId),
}
