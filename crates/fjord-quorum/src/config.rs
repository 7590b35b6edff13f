//! The quorum's settings under Kafka's names and with Kafka's defaults (`QuorumConfig.java`).

use crate::error::ConfigError;

/// How the quorum times its elections, fetches and appends.
///
/// Field names follow Kafka's `controller.quorum.*` properties; [`QuorumConfig::set`] takes the
/// property names themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// `controller.quorum.election.timeout.ms` (1000): how long a voter without a leader waits
    /// before it starts an election. Each wait is drawn from `[t, 2t)`.
    pub election_timeout_ms: i64,
    /// `controller.quorum.fetch.timeout.ms` (2000): a voter that has not fetched successfully
    /// from its leader for this long starts an election. The leader resigns when a majority has
    /// not fetched for 1.5 times this (check-quorum, KAFKA-15489), and repeats BeginQuorumEpoch
    /// every half of it (KAFKA-16536).
    pub fetch_timeout_ms: i64,
    /// `controller.quorum.election.backoff.max.ms` (1000): the longest a voter named in an
    /// EndQuorumEpoch waits before standing, the later in the successor list the longer.
    pub election_backoff_max_ms: i64,
    /// `controller.quorum.request.timeout.ms` (2000): how long a request may go unanswered.
    pub request_timeout_ms: i64,
    /// `controller.quorum.retry.backoff.ms` (20): the pause after a failed request.
    pub retry_backoff_ms: i64,
    /// `controller.quorum.append.linger.ms` (25): how long the leader lets proposals gather
    /// before it appends and flushes them. A single voter does not linger: there is no one to
    /// batch a round trip for, and the broker's single node must commit at once.
    pub append_linger_ms: i64,
    /// How long a Fetch may wait at the leader for new records (Kafka's `MAX_FETCH_WAIT_MS`, 500).
    pub fetch_max_wait_ms: i64,
    /// The most record bytes in one Fetch response (Kafka's `MAX_FETCH_SIZE_BYTES`, 8 MiB).
    pub fetch_max_bytes: usize,
    /// The most snapshot bytes in one FetchSnapshot response (8 MiB).
    pub fetch_snapshot_max_bytes: usize,
    /// The most record bytes the leader puts in one batch (Kafka's `MAX_BATCH_SIZE_BYTES`, 8 MiB).
    pub max_batch_bytes: usize,
}

impl Default for QuorumConfig {
    fn default() -> Self {
        QuorumConfig {
            election_timeout_ms: 1000,
            fetch_timeout_ms: 2000,
            election_backoff_max_ms: 1000,
            request_timeout_ms: 2000,
            retry_backoff_ms: 20,
            append_linger_ms: 25,
            fetch_max_wait_ms: 500,
            fetch_max_bytes: 8 * 1024 * 1024,
            fetch_snapshot_max_bytes: 8 * 1024 * 1024,
            max_batch_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Kafka's `CHECK_QUORUM_TIMEOUT_FACTOR`.
const CHECK_QUORUM_TIMEOUT_FACTOR: f64 = 1.5;

impl QuorumConfig {
    /// Property names this config understands (besides `controller.quorum.voters` and
    /// `controller.quorum.bootstrap.servers`, which [`VoterSet::parse`](crate::VoterSet::parse)
    /// and [`parse_bootstrap_servers`](crate::parse_bootstrap_servers) read).
    pub const PROPERTIES: &'static [&'static str] = &[
        "controller.quorum.election.timeout.ms",
        "controller.quorum.fetch.timeout.ms",
        "controller.quorum.election.backoff.max.ms",
        "controller.quorum.request.timeout.ms",
        "controller.quorum.retry.backoff.ms",
        "controller.quorum.append.linger.ms",
    ];

    /// Sets one property by its Kafka name. `Ok(false)` for a name that is not one of ours.
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool, ConfigError> {
        let parsed = || -> Result<i64, ConfigError> {
            let v = value.trim().parse::<i64>().map_err(|_| ConfigError::InvalidValue {
                name: name.to_owned(),
                value: value.to_owned(),
                reason: "not a number".into(),
            })?;
            if v < 0 {
                return Err(ConfigError::InvalidValue {
                    name: name.to_owned(),
                    value: value.to_owned(),
                    reason: "must be at least 0".into(),
                });
            }
            Ok(v)
        };
        let field = match name {
            "controller.quorum.election.timeout.ms" => &mut self.election_timeout_ms,
            "controller.quorum.fetch.timeout.ms" => &mut self.fetch_timeout_ms,
            "controller.quorum.election.backoff.max.ms" => &mut self.election_backoff_max_ms,
            "controller.quorum.request.timeout.ms" => &mut self.request_timeout_ms,
            "controller.quorum.retry.backoff.ms" => &mut self.retry_backoff_ms,
            "controller.quorum.append.linger.ms" => &mut self.append_linger_ms,
            _ => return Ok(false),
        };
        *field = parsed()?;
        Ok(true)
    }

    /// How long a leader may go without hearing from a majority before it resigns.
    pub fn check_quorum_timeout_ms(&self) -> i64 {
        (self.fetch_timeout_ms as f64 * CHECK_QUORUM_TIMEOUT_FACTOR) as i64
    }

    /// How often the leader repeats BeginQuorumEpoch to voters that have not fetched lately.
    pub fn begin_quorum_epoch_interval_ms(&self) -> i64 {
        (self.fetch_timeout_ms / 2).max(1)
    }

    /// Checks the combination: a fetch must be able to wait and still beat its request timeout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name: &str, value: i64, reason: &str| ConfigError::InvalidValue {
            name: name.into(),
            value: value.to_string(),
            reason: reason.into(),
        };
        if self.election_timeout_ms < 1 {
            return Err(invalid("controller.quorum.election.timeout.ms", self.election_timeout_ms, "must be positive"));
        }
        if self.fetch_timeout_ms < 1 {
            return Err(invalid("controller.quorum.fetch.timeout.ms", self.fetch_timeout_ms, "must be positive"));
        }
        if self.request_timeout_ms <= self.fetch_max_wait_ms {
            return Err(invalid(
                "controller.quorum.request.timeout.ms",
                self.request_timeout_ms,
                "must exceed the fetch wait, or every long poll times out",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_defaults() {
        let config = QuorumConfig::default();
        assert_eq!(config.election_timeout_ms, 1000);
        assert_eq!(config.fetch_timeout_ms, 2000);
        assert_eq!(config.election_backoff_max_ms, 1000);
        assert_eq!(config.request_timeout_ms, 2000);
        assert_eq!(config.append_linger_ms, 25);
        assert_eq!(config.check_quorum_timeout_ms(), 3000);
        assert_eq!(config.begin_quorum_epoch_interval_ms(), 1000);
        config.validate().unwrap();
    }

    #[test]
    fn sets_properties_by_kafka_name() {
        let mut config = QuorumConfig::default();
        assert!(config.set("controller.quorum.fetch.timeout.ms", "4000").unwrap());
        assert_eq!(config.check_quorum_timeout_ms(), 6000);
        assert!(!config.set("log.dirs", "/x").unwrap());
        assert!(config.set("controller.quorum.append.linger.ms", "-1").is_err());
        assert!(config.set("controller.quorum.append.linger.ms", "soon").is_err());
        config.request_timeout_ms = 100;
        assert!(config.validate().is_err());
    }
}
