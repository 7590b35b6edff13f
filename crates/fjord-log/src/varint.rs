//! Zig-zag variable-length integers, as record fields are encoded (protobuf's scheme).

use crate::error::{Error, Result};

/// Reads a zig-zag varint that must fit in an `i32`, advancing `pos`.
#[inline]
pub(crate) fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<i32> {
    let raw = read_unsigned(bytes, pos, 5)?;
    let value = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
    i32::try_from(value).map_err(|_| Error::corrupt("varint out of i32 range"))
}

/// Reads a zig-zag varlong, advancing `pos`.
#[inline]
pub(crate) fn read_varlong(bytes: &[u8], pos: &mut usize) -> Result<i64> {
    let raw = read_unsigned(bytes, pos, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

#[inline]
fn read_unsigned(bytes: &[u8], pos: &mut usize, max_len: usize) -> Result<u64> {
    // Most varints in a record (lengths, deltas, counts) take one or two bytes.
    match bytes.get(*pos..*pos + 2) {
        Some(&[low, _]) if low < 0x80 => {
            *pos += 1;
            Ok(u64::from(low))
        }
        Some(&[low, high]) if high < 0x80 => {
            *pos += 2;
            Ok(u64::from(low & 0x7f) | (u64::from(high) << 7))
        }
        _ => read_unsigned_slow(bytes, pos, max_len),
    }
}

fn read_unsigned_slow(bytes: &[u8], pos: &mut usize, max_len: usize) -> Result<u64> {
    let mut value = 0u64;
    let mut shift = 0u32;
    for i in 0..max_len {
        let Some(&byte) = bytes.get(*pos + i) else {
            return Err(Error::corrupt("varint runs past the end of the record"));
        };
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            *pos += i + 1;
            return Ok(value);
        }
        shift += 7;
    }
    Err(Error::corrupt("varint longer than its type allows"))
}

/// Appends a zig-zag varint.
#[inline]
pub(crate) fn write_varint(out: &mut Vec<u8>, value: i32) {
    write_unsigned(out, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

/// Appends a zig-zag varlong.
#[inline]
pub(crate) fn write_varlong(out: &mut Vec<u8>, value: i64) {
    write_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

#[inline]
fn write_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The encoded size of a zig-zag varint.
#[inline]
pub(crate) fn varint_len(value: i32) -> usize {
    unsigned_len(((value << 1) ^ (value >> 31)) as u32 as u64)
}

/// The encoded size of a zig-zag varlong.
#[inline]
pub(crate) fn varlong_len(value: i64) -> usize {
    unsigned_len(((value << 1) ^ (value >> 63)) as u64)
}

#[inline]
fn unsigned_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        // Values from the protobuf documentation of zig-zag encoding.
        for (value, bytes) in [(0, vec![0]), (-1, vec![1]), (1, vec![2]), (-64, vec![0x7f]), (64, vec![0x80, 1])] {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(varint_len(value), bytes.len());
            let mut pos = 0;
            assert_eq!(read_varint(&out, &mut pos).unwrap(), value);
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        let mut pos = 0;
        assert!(read_varint(&[0x80, 0x80], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varint(&[0xff; 6], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varlong(&[0xff; 11], &mut pos).is_err());
        // Five bytes that decode past i32 range.
        let mut pos = 0;
        assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x7f], &mut pos).is_err());
    }

    proptest! {
        #[test]
        fn varints_round_trip(value: i32) {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            prop_assert_eq!(out.len(), varint_len(value));
            let mut pos = 0;
            prop_assert_eq!(read_varint(&out, &mut pos).unwrap(), value);
        }

        #[test]
        fn varlongs_round_trip(value: i64) {
            let mut out = Vec::new();
            write_varlong(&mut out, value);
            prop_assert_eq!(out.len(), varlong_len(value));
            let mut pos = 0;
            prop_assert_eq!(read_varlong(&out, &mut pos).unwrap(), value);
        }
    }
}
