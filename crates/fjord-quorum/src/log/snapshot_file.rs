//! The bytes of a snapshot: the state machine's payload in a small envelope that names the
//! snapshot and checks it with CRC-32C, so a torn download or a flipped bit on disk is refused
//! before it reaches the state machine (KAFKA-14104, KAFKA-14240).
//!
//! ```text
//! magic "FJQS" | version u16 = 1 | end offset i64 | epoch i32 | payload length u64 |
//! crc32c u32 (of everything before it, and the payload) | payload
//! ```
//!
//! Integers are big-endian. The whole file travels in FetchSnapshot chunks and is checked again
//! when the download completes.

use fjord_types::{LeaderEpoch, Offset};

use crate::ids::SnapshotId;

const MAGIC: &[u8; 4] = b"FJQS";
const VERSION: u16 = 1;
const HEADER_BYTES: usize = 4 + 2 + 8 + 4 + 8 + 4;

/// A snapshot file that does not check out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt snapshot: {0}")]
pub struct SnapshotFileError(pub String);

/// Wraps a state machine's snapshot payload for storage and transfer.
pub fn encode_snapshot(id: SnapshotId, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&id.offset.0.to_be_bytes());
    out.extend_from_slice(&id.epoch.0.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), payload);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks a snapshot file and returns its id and payload. Never panics on arbitrary bytes.
pub fn decode_snapshot(bytes: &[u8]) -> Result<(SnapshotId, &[u8]), SnapshotFileError> {
    let fail = |reason: String| Err(SnapshotFileError(reason));
    if bytes.len() < HEADER_BYTES {
        return fail(format!("{} bytes is shorter than the {HEADER_BYTES}-byte header", bytes.len()));
    }
    if &bytes[..4] != MAGIC {
        return fail("bad magic".into());
    }
    let field = |at: usize, len: usize| &bytes[at..at + len];
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return fail(format!("unknown version {version}"));
    }
    let end_offset = i64::from_be_bytes(field(6, 8).try_into().unwrap_or_default());
    let epoch = i32::from_be_bytes(field(14, 4).try_into().unwrap_or_default());
    let length = u64::from_be_bytes(field(18, 8).try_into().unwrap_or_default());
    let crc = u32::from_be_bytes(field(26, 4).try_into().unwrap_or_default());
    let payload = &bytes[HEADER_BYTES..];
    if payload.len() as u64 != length {
        return fail(format!("payload of {} bytes, header says {length}", payload.len()));
    }
    let actual = crc32c::crc32c_append(crc32c::crc32c(&bytes[..26]), payload);
    if actual != crc {
        return fail(format!("crc {actual:#010x}, header says {crc:#010x}"));
    }
    if end_offset < 0 || epoch < 0 {
        return fail(format!("negative id (offset {end_offset}, epoch {epoch})"));
    }
    Ok((SnapshotId::new(Offset(end_offset), LeaderEpoch(epoch)), payload))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let id = SnapshotId::new(Offset(42), LeaderEpoch(3));
        let bytes = encode_snapshot(id, b"state");
        assert_eq!(decode_snapshot(&bytes).unwrap(), (id, &b"state"[..]));
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            assert!(decode_snapshot(&flipped).is_err(), "a flip at byte {at} went unnoticed");
        }
        assert!(decode_snapshot(&bytes[..bytes.len() - 1]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode_snapshot(&bytes);
        }
    }
}
