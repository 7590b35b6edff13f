//! Records inside a v2 batch, read lazily and without allocation.
//!
//! ```text
//! length          varint   bytes after this field
//! attributes      int8     unused, 0
//! timestampDelta  varlong  from the batch's base timestamp
//! offsetDelta     varint   from the batch's base offset
//! keyLength       varint   -1 for a null key
//! key             bytes
//! valueLength     varint   -1 for a null value (a tombstone)
//! value           bytes
//! headerCount     varint
//!   keyLength     varint   header keys are UTF-8 strings
//!   key           bytes
//!   valueLength   varint   -1 for a null header value
//!   value         bytes
//! ```

use fjord_types::{Offset, Timestamp};

use crate::error::{Error, Result};
use crate::varint::{read_varint, read_varlong};

/// Reads a varint length prefix and the bytes it covers; -1 means null.
#[inline]
fn read_nullable<'a>(bytes: &'a [u8], pos: &mut usize, what: &str) -> Result<Option<&'a [u8]>> {
    let len = read_varint(bytes, pos)?;
    if len < 0 {
        return if len == -1 { Ok(None) } else { Err(Error::corrupt(format!("{what} length {len}"))) };
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| Error::corrupt(format!("{what} of {len} bytes runs past the record")))?;
    let field = &bytes[*pos..end];
    *pos = end;
    Ok(Some(field))
}

/// One record, borrowed from its batch's (uncompressed) records section.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    attributes: i8,
    offset: Offset,
    timestamp: Timestamp,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    header_count: i32,
    headers: &'a [u8],
    size: usize,
}

impl<'a> Record<'a> {
    /// The record's offset.
    pub fn offset(&self) -> Offset {
        self.offset
    }

    /// The record's timestamp (for a LogAppendTime batch, the batch's append time).
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The record attributes byte (unused by Kafka so far).
    pub fn attributes(&self) -> i8 {
        self.attributes
    }

    /// The key, or `None` for a null key.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value, or `None` for a null value (a tombstone on a compacted topic).
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// The number of headers.
    pub fn header_count(&self) -> i32 {
        self.header_count
    }

    /// The headers, parsed lazily.
    pub fn headers(&self) -> Headers<'a> {
        Headers { bytes: self.headers, pos: 0, remaining: self.header_count, failed: false }
    }

    /// The record's encoded size, length prefix included.
    pub fn size_in_bytes(&self) -> usize {
        self.size
    }
}

/// One record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The key's bytes (UTF-8 when written by a conforming client).
    pub key: &'a [u8],
    /// The value, or `None` for null.
    pub value: Option<&'a [u8]>,
}

/// Iterates a record's headers.
#[derive(Clone, Debug)]
pub struct Headers<'a> {
    bytes: &'a [u8],
    pos: usize,
    remaining: i32,
    failed: bool,
}

impl<'a> Iterator for Headers<'a> {
    type Item = Result<Header<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining <= 0 {
            if self.pos != self.bytes.len() {
                self.failed = true;
                return Some(Err(Error::corrupt("bytes left after the record's last header")));
            }
            return None;
        }
        self.remaining -= 1;
        let result = (|| {
            let key = read_nullable(self.bytes, &mut self.pos, "header key")?
                .ok_or_else(|| Error::corrupt("null header key"))?;
            let value = read_nullable(self.bytes, &mut self.pos, "header value")?;
            Ok(Header { key, value })
        })();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

/// Iterates the records of an uncompressed records section.
#[derive(Clone, Debug)]
pub struct Records<'a> {
    bytes: &'a [u8],
    pos: usize,
    remaining: i32,
    base_offset: Offset,
    base_timestamp: Timestamp,
    log_append_time: Option<Timestamp>,
    failed: bool,
}

impl<'a> Records<'a> {
    pub(crate) fn new(
        bytes: &'a [u8],
        count: i32,
        base_offset: Offset,
        base_timestamp: Timestamp,
        log_append_time: Option<Timestamp>,
    ) -> Records<'a> {
        Records { bytes, pos: 0, remaining: count, base_offset, base_timestamp, log_append_time, failed: false }
    }

    /// Bytes not yet consumed; non-empty after the last record means a corrupt batch.
    pub fn remaining_bytes(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    #[inline]
    fn parse_one(&mut self) -> Result<Record<'a>> {
        let start = self.pos;
        let length = read_varint(self.bytes, &mut self.pos)?;
        if length < 0 {
            return Err(Error::corrupt(format!("negative record length {length}")));
        }
        let end = self
            .pos
            .checked_add(length as usize)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| Error::corrupt(format!("record of {length} bytes runs past the batch")))?;
        let body = &self.bytes[..end];
        let mut pos = self.pos;
        let attributes = *body.get(pos).ok_or_else(|| Error::corrupt("empty record"))? as i8;
        pos += 1;
        let timestamp_delta = read_varlong(body, &mut pos)?;
        let offset_delta = read_varint(body, &mut pos)?;
        let key = read_nullable(body, &mut pos, "key")?;
        let value = read_nullable(body, &mut pos, "value")?;
        let header_count = read_varint(body, &mut pos)?;
        if header_count < 0 {
            return Err(Error::corrupt(format!("negative header count {header_count}")));
        }
        self.pos = end;
        Ok(Record {
            attributes,
            offset: self.base_offset.plus(i64::from(offset_delta)),
            timestamp: self.log_append_time.unwrap_or(Timestamp(self.base_timestamp.0.wrapping_add(timestamp_delta))),
            key,
            value,
            header_count,
            headers: &body[pos..],
            size: end - start,
        })
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining <= 0 || self.failed {
            return None;
        }
        self.remaining -= 1;
        let result = self.parse_one();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining.max(0) as usize))
    }
}
