//! The group coordinator's settings.

/// The coordinator's settings, under Kafka's broker property names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `group.min.session.timeout.ms` (default 6 s).
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (default 30 min).
    pub group_max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (default 3 s): how long a new group waits for more
    /// members before its first rebalance.
    pub group_initial_rebalance_delay_ms: i32,
    /// `offsets.retention.minutes` in ms (default 7 days): offsets of an empty group older than
    /// this are removed.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes` (default 4096).
    pub offset_metadata_max_bytes: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offset_metadata_max_bytes: 4096,
        }
    }
}
