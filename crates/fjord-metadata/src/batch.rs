//! What the metadata log holds: batches of metadata records, each a controller's proposal that
//! the quorum commits or loses as a whole, in `__cluster_metadata-0` (`fjord-quorum` stores
//! and replicates them).

use fjord_types::{LeaderEpoch, Offset, OffsetAndEpoch};

use crate::record::MetadataRecord;

/// Kafka's directory name for the metadata log (`__cluster_metadata-0`).
pub const METADATA_TOPIC_DIR: &str = "__cluster_metadata-0";

/// Records that were appended together, and where they sit in the metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataBatch {
    /// The offset of the first record.
    pub base_offset: Offset,
    /// The epoch of the leader that appended them.
    pub epoch: LeaderEpoch,
    /// The records, one offset each.
    pub records: Vec<MetadataRecord>,
}

impl MetadataBatch {
    /// The offset and epoch of the batch's last record: what an image that applied it contains.
    pub fn last(&self) -> OffsetAndEpoch {
        OffsetAndEpoch::new(self.base_offset.plus(self.records.len() as i64 - 1), self.epoch)
    }
}
