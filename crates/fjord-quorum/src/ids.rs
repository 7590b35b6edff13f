//! Who is who in a quorum, and where a record sits: Kafka's `ReplicaKey`, `Uuid` (as a
//! directory id) and `OffsetAndEpoch`.

use std::fmt;
use std::str::FromStr;

/// A node's `node.id`: a controller's or a broker's id in the cluster.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub i32);

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A log directory's `directory.id` from its `meta.properties` (a 128-bit Kafka `Uuid`).
///
/// It is what tells a voter that still has its log from the same node id after a disk was lost
/// and reformatted (KAFKA-14077): formatting writes a new random id, so the node no longer
/// matches its entry in the voter set and cannot vote as if it still had its log.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DirectoryId(pub [u8; 16]);

impl DirectoryId {
    /// Kafka's `Uuid.ZERO`, written where no directory id is known.
    pub const ZERO: DirectoryId = DirectoryId([0; 16]);
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl fmt::Display for DirectoryId {
    /// Kafka's form: URL-safe base64 without padding, 22 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bits = 0u32;
        let mut count = 0;
        for &byte in &self.0 {
            bits = (bits << 8) | u32::from(byte);
            count += 8;
            while count >= 6 {
                count -= 6;
                write!(f, "{}", BASE64[((bits >> count) & 63) as usize] as char)?;
            }
        }
        if count > 0 {
            write!(f, "{}", BASE64[((bits << (6 - count)) & 63) as usize] as char)?;
        }
        Ok(())
    }
}

impl fmt::Debug for DirectoryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DirectoryId({self})")
    }
}

/// A directory id that is not 22 characters of URL-safe base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a directory id (22 characters of URL-safe base64): {0:?}")]
pub struct DirectoryIdParseError(pub String);

impl FromStr for DirectoryId {
    type Err = DirectoryIdParseError;

    fn from_str(s: &str) -> Result<DirectoryId, DirectoryIdParseError> {
        let fail = || DirectoryIdParseError(s.to_owned());
        if s.len() != 22 {
            return Err(fail());
        }
        let mut out = [0u8; 16];
        let (mut bits, mut count, mut at) = (0u32, 0, 0);
        for c in s.bytes() {
            let value = BASE64.iter().position(|&b| b == c).ok_or_else(fail)? as u32;
            bits = (bits << 6) | value;
            count += 6;
            if count >= 8 {
                count -= 8;
                if at == 16 {
                    return Err(fail());
                }
                out[at] = (bits >> count) as u8;
                at += 1;
            }
        }
        // 22 characters carry 132 bits; the last 4 must be zero in a canonical encoding.
        if at != 16 || bits & ((1 << count) - 1) != 0 {
            return Err(fail());
        }
        Ok(DirectoryId(out))
    }
}

/// A replica's identity: its node id and, when known, its log directory's id (Kafka's
/// `ReplicaKey`). A key without a directory id matches any directory of that node, as in Kafka
/// for a static voter set.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplicaKey {
    /// The node id.
    pub id: NodeId,
    /// The directory id, if the voter set records one.
    pub directory_id: Option<DirectoryId>,
}

impl ReplicaKey {
    /// A key with no directory id.
    pub const fn of(id: i32) -> ReplicaKey {
        ReplicaKey { id: NodeId(id), directory_id: None }
    }

    /// A key with a directory id.
    pub const fn with_directory(id: i32, directory_id: DirectoryId) -> ReplicaKey {
        ReplicaKey { id: NodeId(id), directory_id: Some(directory_id) }
    }

    /// Whether `other` may be this replica: same id, and the same directory unless either side
    /// does not know it.
    pub fn matches(&self, other: &ReplicaKey) -> bool {
        self.id == other.id
            && match (self.directory_id, other.directory_id) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Debug for ReplicaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.directory_id {
            None => write!(f, "{:?}", self.id),
            Some(d) => write!(f, "{:?}:{}", self.id, &d.to_string()[..6]),
        }
    }
}

/// A position in the replicated log: the offset and the epoch of the record there, compared
/// epoch first (the vote's "at least as up to date" order). Shared with the rest of Fjord.
pub use fjord_types::OffsetAndEpoch;

/// A snapshot's id: the offset it ends at (exclusive, KAFKA-14618) and the epoch of the last
/// record it covers. Snapshot files are named after it.
pub type SnapshotId = OffsetAndEpoch;

#[cfg(test)]
mod tests {
    use fjord_types::{LeaderEpoch, Offset};

    use super::*;

    #[test]
    fn directory_id_round_trips_in_kafka_form() {
        assert_eq!(DirectoryId::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        let id = DirectoryId(*b"0123456789abcdef");
        let text = id.to_string();
        assert_eq!(text.len(), 22);
        assert_eq!(text.parse::<DirectoryId>().unwrap(), id);
        assert!("AAAA".parse::<DirectoryId>().is_err());
        assert!("AAAAAAAAAAAAAAAAAAAAA!".parse::<DirectoryId>().is_err());
        // A non-zero padding nibble is not canonical.
        assert!("AAAAAAAAAAAAAAAAAAAAAB".parse::<DirectoryId>().is_err());
    }

    #[test]
    fn logs_compare_epoch_first() {
        let a = OffsetAndEpoch::new(Offset(100), LeaderEpoch(1));
        let b = OffsetAndEpoch::new(Offset(5), LeaderEpoch(2));
        assert!(b > a);
        assert!(OffsetAndEpoch::new(Offset(6), LeaderEpoch(2)) > b);
    }

    #[test]
    fn keys_without_a_directory_match_any_directory() {
        let d1 = DirectoryId([1; 16]);
        let d2 = DirectoryId([2; 16]);
        assert!(ReplicaKey::of(1).matches(&ReplicaKey::with_directory(1, d1)));
        assert!(ReplicaKey::with_directory(1, d1).matches(&ReplicaKey::with_directory(1, d1)));
        assert!(!ReplicaKey::with_directory(1, d1).matches(&ReplicaKey::with_directory(1, d2)));
        assert!(!ReplicaKey::of(1).matches(&ReplicaKey::of(2)));
    }
}
