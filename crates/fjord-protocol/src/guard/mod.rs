//! A pre-decode check of a request body against its wire layout.
//!
//! The `kafka-protocol` decoders reserve `Vec::with_capacity(n)` with `n` read from the wire, so
//! a 20-byte request claiming two billion array elements makes the allocator fail and the process
//! abort. Kafka's own generated code refuses a collection larger than the bytes left; this module
//! does the same before the decoder runs: it walks the body by its layout (`schemas.rs`) and checks
//! that every array count, string and byte-string length fits in what remains of the frame.
//!
//! The walk allocates nothing and touches each byte at most once.

mod group_schemas;
mod schemas;

use kafka_protocol::messages::ApiKey;

pub(crate) use group_schemas::*;
pub(crate) use schemas::*;

/// A field type on the wire.
#[derive(Debug)]
pub(crate) enum Ty {
    I8,
    I16,
    I32,
    I64,
    Uuid,
    Bool,
    /// A non-null string (INT16 length, or compact in flexible versions).
    Str,
    /// A nullable string.
    NStr,
    /// Non-null bytes (INT32 length, or compact).
    Bytes,
    /// Record batches (nullable bytes).
    Records,
    /// An array of structs.
    Array(&'static [F]),
    /// A nullable array of structs.
    NArray(&'static [F]),
    /// An array of a primitive.
    PArray(&'static Ty),
    /// A nullable array of a primitive.
    NPArray(&'static Ty),
    /// A nullable struct: an INT8 marker (1 when present, as the codec reads it), then the
    /// struct's fields.
    NStruct(&'static [F]),
}

/// A field present in versions `min..=max`.
#[derive(Debug)]
pub(crate) struct F {
    pub(crate) ty: Ty,
    pub(crate) min: i16,
    pub(crate) max: i16,
}

/// A field present in versions `min..=max`.
pub(crate) const fn f(ty: Ty, min: i16, max: i16) -> F {
    F { ty, min, max }
}

/// A request body's layout.
#[derive(Debug)]
pub(crate) struct Schema {
    /// The first flexible version (compact lengths, tagged fields), or `i16::MAX`.
    pub(crate) flexible_from: i16,
    pub(crate) fields: &'static [F],
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed request body at byte {position}: {reason}")]
pub struct GuardError {
    /// Where in the body.
    pub position: usize,
    /// What was wrong.
    pub reason: &'static str,
}

/// The layout of a request body, if Fjord knows it.
pub(crate) fn schema(key: ApiKey) -> Option<&'static Schema> {
    Some(match key {
        ApiKey::Produce => &PRODUCE_REQUEST,
        ApiKey::Fetch => &FETCH_REQUEST,
        ApiKey::ListOffsets => &LIST_OFFSETS_REQUEST,
        ApiKey::Metadata => &METADATA_REQUEST,
        ApiKey::ApiVersions => &API_VERSIONS_REQUEST,
        ApiKey::CreateTopics => &CREATE_TOPICS_REQUEST,
        ApiKey::DeleteTopics => &DELETE_TOPICS_REQUEST,
        ApiKey::DeleteRecords => &DELETE_RECORDS_REQUEST,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID_REQUEST,
        ApiKey::OffsetForLeaderEpoch => &OFFSET_FOR_LEADER_EPOCH_REQUEST,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS_REQUEST,
        ApiKey::AlterConfigs => &ALTER_CONFIGS_REQUEST,
        ApiKey::CreatePartitions => &CREATE_PARTITIONS_REQUEST,
        ApiKey::IncrementalAlterConfigs => &INCREMENTAL_ALTER_CONFIGS_REQUEST,
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER_REQUEST,
        ApiKey::FindCoordinator => &FIND_COORDINATOR_REQUEST,
        ApiKey::JoinGroup => &JOIN_GROUP_REQUEST,
        ApiKey::SyncGroup => &SYNC_GROUP_REQUEST,
        ApiKey::Heartbeat => &HEARTBEAT_REQUEST,
        ApiKey::LeaveGroup => &LEAVE_GROUP_REQUEST,
        ApiKey::OffsetCommit => &OFFSET_COMMIT_REQUEST,
        ApiKey::OffsetFetch => &OFFSET_FETCH_REQUEST,
        ApiKey::ListGroups => &LIST_GROUPS_REQUEST,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS_REQUEST,
        ApiKey::DeleteGroups => &DELETE_GROUPS_REQUEST,
        ApiKey::OffsetDelete => &OFFSET_DELETE_REQUEST,
        ApiKey::ElectLeaders => &ELECT_LEADERS_REQUEST,
        ApiKey::AlterPartitionReassignments => &ALTER_PARTITION_REASSIGNMENTS_REQUEST,
        ApiKey::ListPartitionReassignments => &LIST_PARTITION_REASSIGNMENTS_REQUEST,
        ApiKey::DescribeQuorum => &DESCRIBE_QUORUM_REQUEST,
        ApiKey::DescribeLogDirs => &DESCRIBE_LOG_DIRS_REQUEST,
        ApiKey::DescribeTopicPartitions => &DESCRIBE_TOPIC_PARTITIONS_REQUEST,
        _ => return None,
    })
}

/// Checks that `body` (a request body without its header) fits `schema` at `version`: every
/// length within the bytes that remain. Trailing bytes are allowed, as Kafka allows them.
pub(crate) fn check(schema: &Schema, version: i16, body: &[u8]) -> Result<(), GuardError> {
    let mut walker = Walker { bytes: body, pos: 0, flexible: version >= schema.flexible_from, version };
    walker.fields(schema.fields)?;
    if walker.flexible {
        walker.tagged_fields()?;
    }
    Ok(())
}

struct Walker<'a> {
    bytes: &'a [u8],
    pos: usize,
    flexible: bool,
    version: i16,
}

impl Walker<'_> {
    fn fail(&self, reason: &'static str) -> GuardError {
        GuardError { position: self.pos, reason }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn skip(&mut self, n: usize) -> Result<(), GuardError> {
        if n > self.remaining() {
            return Err(self.fail("field runs past the end of the frame"));
        }
        self.pos += n;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], GuardError> {
        let bytes = self.bytes.get(self.pos..self.pos + N).ok_or_else(|| self.fail("truncated field"))?;
        self.pos += N;
        Ok(bytes.try_into().expect("N bytes"))
    }

    fn uvarint(&mut self) -> Result<u64, GuardError> {
        let mut value = 0u64;
        for i in 0..5 {
            let [byte] = self.take::<1>()?;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.fail("unsigned varint longer than 5 bytes"))
    }

    /// A length prefix: INT16/INT32 (with -1 for null) or a compact varint (0 for null, n+1).
    /// Returns `None` for null.
    fn length(&mut self, wide: bool, nullable: bool) -> Result<Option<usize>, GuardError> {
        let len = if self.flexible {
            match self.uvarint()? {
                0 => None,
                n => Some(n - 1),
            }
        } else if wide {
            let n = i32::from_be_bytes(self.take()?);
            if n < -1 { return Err(self.fail("negative length")) } else { usize::try_from(n).ok().map(|n| n as u64) }
        } else {
            let n = i16::from_be_bytes(self.take()?);
            if n < -1 { return Err(self.fail("negative length")) } else { usize::try_from(n).ok().map(|n| n as u64) }
        };
        match len {
            None if !nullable => Err(self.fail("null in a non-nullable field")),
            None => Ok(None),
            Some(n) if n > self.remaining() as u64 => Err(self.fail("length exceeds the bytes left in the frame")),
            Some(n) => Ok(Some(n as usize)),
        }
    }

    fn fields(&mut self, fields: &[F]) -> Result<(), GuardError> {
        let version = self.version;
        for field in fields.iter().filter(|f| (f.min..=f.max).contains(&version)) {
            self.value(&field.ty)?;
        }
        Ok(())
    }

    fn value(&mut self, ty: &Ty) -> Result<(), GuardError> {
        match ty {
            Ty::I8 | Ty::Bool => self.skip(1),
            Ty::I16 => self.skip(2),
            Ty::I32 => self.skip(4),
            Ty::I64 => self.skip(8),
            Ty::Uuid => self.skip(16),
            Ty::Str | Ty::NStr => {
                let n = self.length(false, matches!(ty, Ty::NStr))?;
                self.skip(n.unwrap_or(0))
            }
            Ty::Bytes | Ty::Records => {
                let n = self.length(true, !matches!(ty, Ty::Bytes))?;
                self.skip(n.unwrap_or(0))
            }
            Ty::Array(fields) | Ty::NArray(fields) => {
                let count = self.length(true, matches!(ty, Ty::NArray(_)))?.unwrap_or(0);
                for _ in 0..count {
                    self.structure(fields)?;
                }
                Ok(())
            }
            Ty::NStruct(fields) => {
                // kafka-protocol's `OptionStruct` reads any marker but 1 as absent.
                let [present] = self.take::<1>()?;
                if present == 1 { self.structure(fields) } else { Ok(()) }
            }
            Ty::PArray(element) | Ty::NPArray(element) => {
                let count = self.length(true, matches!(ty, Ty::NPArray(_)))?.unwrap_or(0);
                for _ in 0..count {
                    self.value(element)?;
                }
                Ok(())
            }
        }
    }

    /// One struct: its fields, then (flexible versions) its tagged fields.
    fn structure(&mut self, fields: &[F]) -> Result<(), GuardError> {
        self.fields(fields)?;
        if self.flexible {
            self.tagged_fields()?;
        }
        Ok(())
    }

    fn tagged_fields(&mut self) -> Result<(), GuardError> {
        let count = self.uvarint()?;
        if count > self.remaining() as u64 {
            return Err(self.fail("more tagged fields than bytes left"));
        }
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()?;
            if size > self.remaining() as u64 {
                return Err(self.fail("tagged field runs past the end of the frame"));
            }
            self.skip(size as usize)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
