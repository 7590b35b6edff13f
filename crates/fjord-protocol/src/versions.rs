//! Which API versions Fjord supports (Kafka's `ApiVersionsResponse` table).
//!
//! The floor is Kafka 4.1's (KIP-896 removed the oldest versions), with Kafka's two exceptions
//! for librdkafka: Produce is advertised from v0 although v0-2 are refused (KAFKA-18659: older
//! librdkafka stops compressing if Produce v0 is missing), and JoinGroup keeps v0 (KAFKA-19444).
//! Ceilings stop where new semantics begin that Fjord does not implement (Fetch v13 needs topic
//! ids everywhere). The broker enables only the APIs it has handlers for: an API is never
//! advertised before it works.

use kafka_protocol::messages::ApiKey;

/// The versions of one API the broker accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// The API.
    pub key: ApiKey,
    /// The lowest version advertised.
    pub min: i16,
    /// The highest version advertised.
    pub max: i16,
    /// Versions below this are advertised but answered with UNSUPPORTED_VERSION.
    pub refuse_below: i16,
}

const fn range(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { key, min, max, refuse_below: min }
}

/// Kafka 4.1's advertised ranges for every API Fjord implements or will, capped where Fjord's
/// semantics end.
pub const KAFKA_4_1: &[ApiRange] = &[
    ApiRange { key: ApiKey::Produce, min: 0, max: 11, refuse_below: 3 },
    range(ApiKey::Fetch, 4, 12),
    range(ApiKey::ListOffsets, 1, 7),
    range(ApiKey::Metadata, 0, 12),
    range(ApiKey::OffsetCommit, 2, 9),
    range(ApiKey::OffsetFetch, 1, 9),
    range(ApiKey::FindCoordinator, 0, 6),
    range(ApiKey::JoinGroup, 0, 9),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 5),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::DescribeGroups, 0, 5),
    range(ApiKey::ListGroups, 0, 5),
    range(ApiKey::ApiVersions, 0, 4),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    range(ApiKey::DeleteRecords, 0, 2),
    range(ApiKey::InitProducerId, 0, 5),
    range(ApiKey::OffsetForLeaderEpoch, 2, 4),
    range(ApiKey::DescribeConfigs, 1, 4),
    range(ApiKey::AlterConfigs, 0, 2),
    range(ApiKey::DescribeLogDirs, 1, 4),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::DeleteGroups, 0, 2),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    range(ApiKey::OffsetDelete, 0, 0),
    range(ApiKey::DescribeCluster, 0, 2),
    range(ApiKey::ElectLeaders, 0, 2),
    range(ApiKey::AlterPartitionReassignments, 0, 1),
    range(ApiKey::ListPartitionReassignments, 0, 0),
    range(ApiKey::DescribeQuorum, 0, 2),
    range(ApiKey::DescribeTopicPartitions, 0, 0),
];

/// The APIs a broker has enabled, with their ranges.
#[derive(Debug, Clone)]
pub struct VersionTable {
    ranges: Vec<ApiRange>,
}

impl VersionTable {
    /// The table for the given APIs, with Kafka 4.1's ranges capped by what the codec knows.
    ///
    /// # Panics
    /// If an API is not in [`KAFKA_4_1`]: enabling it needs a decision about its range.
    pub fn new(enabled: &[ApiKey]) -> VersionTable {
        let ranges = enabled
            .iter()
            .map(|&key| {
                let mut range = *KAFKA_4_1
                    .iter()
                    .find(|r| r.key == key)
                    .unwrap_or_else(|| panic!("no version range decided for {key:?}"));
                // Versions advertised only to be refused need no codec (kafka-protocol cannot
                // decode Produce v0-2); every version actually served must be decodable.
                let codec = key.valid_versions();
                range.max = range.max.min(codec.max);
                range.refuse_below = range.refuse_below.max(codec.min);
                range
            })
            .collect();
        VersionTable { ranges }
    }

    /// The range of `key`, if enabled.
    pub fn get(&self, key: ApiKey) -> Option<&ApiRange> {
        self.ranges.iter().find(|r| r.key == key)
    }

    /// Whether `version` of `key` is advertised (it may still be refused, see [`VersionTable::serves`]).
    pub fn advertises(&self, key: ApiKey, version: i16) -> bool {
        self.get(key).is_some_and(|r| (r.min..=r.max).contains(&version))
    }

    /// Whether `version` of `key` is advertised and answered.
    pub fn serves(&self, key: ApiKey, version: i16) -> bool {
        self.get(key).is_some_and(|r| (r.refuse_below..=r.max).contains(&version))
    }

    /// Every enabled API, for the ApiVersions response.
    pub fn ranges(&self) -> &[ApiRange] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_protocol_can_decode_every_served_version() {
        for range in KAFKA_4_1 {
            let codec = range.key.valid_versions();
            assert!(codec.min <= range.refuse_below && range.max <= codec.max, "{:?}: {codec:?}", range.key);
        }
    }

    #[test]
    fn produce_is_advertised_from_zero_but_refused_below_three() {
        let table = VersionTable::new(&[ApiKey::Produce, ApiKey::ApiVersions]);
        let produce = table.get(ApiKey::Produce).unwrap();
        assert_eq!((produce.min, produce.refuse_below), (0, 3));
        assert!(table.advertises(ApiKey::ApiVersions, 3));
        assert!(!table.advertises(ApiKey::Fetch, 4), "not enabled");
    }
}
