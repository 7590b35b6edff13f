//! Length-prefixed frames (Kafka's `NetworkReceive`).

use bytes::{Buf, Bytes, BytesMut};

/// `socket.request.max.bytes`' default: 100 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 104_857_600;

/// A length prefix the broker will not honour; the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Larger than `socket.request.max.bytes`.
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({limit})")]
    TooLarge {
        /// The size the prefix claims.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A negative length.
    #[error("negative frame length {0}")]
    Negative(i32),
}

/// Splits one complete frame body off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed; in that case, once the length prefix has been
/// read and accepted, `buf` has reserved room for the rest of the frame, so the caller's next
/// read fills it without reallocating. The limit is checked before that reservation.
pub fn take_frame(buf: &mut BytesMut, max_bytes: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(prefix) = buf.first_chunk::<4>() else { return Ok(None) };
    let size = i32::from_be_bytes(*prefix);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size > max_bytes {
        return Err(FrameError::TooLarge { size, limit: max_bytes });
    }
    if buf.len() < 4 + size {
        buf.reserve(4 + size - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_off_a_stream() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 1]);
        assert_eq!(take_frame(&mut buf, 100).unwrap().unwrap(), &b"abc"[..]);
        assert_eq!(take_frame(&mut buf, 100).unwrap(), None);
        buf.extend_from_slice(b"z");
        assert_eq!(take_frame(&mut buf, 100).unwrap().unwrap(), &b"z"[..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_and_negative_prefixes_are_refused_before_allocating() {
        let mut buf = BytesMut::from(&[0x77, 0x35, 0x94, 0x00][..]); // 2,000,000,000
        assert_eq!(take_frame(&mut buf, 1000), Err(FrameError::TooLarge { size: 2_000_000_000, limit: 1000 }));
        assert!(buf.capacity() < 1000, "nothing reserved for a refused frame");
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(take_frame(&mut buf, 1000), Err(FrameError::Negative(-1)));
    }
}
