//! Responses waiting to be written to a connection.
//!
//! Most of a Fetch response is record batches read from the log. Encoding them with the codec
//! copies every byte into the response buffer, only for the socket write to copy them again.
//! An [`Outbox`] keeps large byte fields of the responses it is given by reference instead: the
//! codec writes the small fields into one buffer, and each large field becomes a separate piece
//! of the vectored write that drains the outbox ([`Buf::chunks_vectored`]), placed between the
//! buffer bytes that surround it on the wire.
//!
//! ```
//! use bytes::{Buf, Bytes};
//! use fjord_protocol::Outbox;
//! use fjord_protocol::kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
//! use fjord_protocol::kafka_protocol::messages::{ApiKey, FetchResponse, ResponseKind};
//!
//! let batches = Bytes::from(vec![7u8; 64 * 1024]);
//! let partition = PartitionData::default().with_records(Some(batches.clone()));
//! let topic = FetchableTopicResponse::default().with_partitions(vec![partition]);
//! let response = ResponseKind::Fetch(FetchResponse::default().with_responses(vec![topic]));
//!
//! let mut outbox = Outbox::new();
//! outbox.push_response(ApiKey::Fetch, 12, 1, &response).unwrap();
//! // The frame holds the batches, but the outbox's own buffer does not.
//! assert!(outbox.remaining() > batches.len());
//! assert!(outbox.buffered() < 100);
//! let frame = outbox.copy_to_bytes(outbox.remaining());
//! assert_eq!(i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize, frame.len() - 4);
//! ```

// `BufMut` is an unsafe trait; the one impl below only forwards to `BytesMut`'s.
#![allow(unsafe_code)]

use std::io::IoSlice;

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::buf::ByteBufMut;

use crate::codec::{body_error, encode_header};

/// Byte fields at least this long are written by reference rather than copied. Below it, an
/// extra piece in the vectored write costs more than the copy it saves.
pub const SPLICE_MIN_BYTES: usize = 4096;

/// Encoded response frames, in order, ready to be written with vectored writes.
///
/// Fill it with [`push_response`](Self::push_response), drain it as a [`Buf`] (for example with
/// tokio's `write_all_buf`). Once drained it empties itself and reuses its buffer.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Everything but the spliced fields.
    buf: BytesMut,
    /// Fields written by reference: where in `buf` each one goes, and its bytes.
    spliced: Vec<(usize, Bytes)>,
    /// Total length of the spliced fields.
    spliced_len: usize,
    /// Large fields of the response being encoded, in the order the codec writes them.
    candidates: Vec<Bytes>,
    next_candidate: usize,
    /// The read position: a piece (even: a stretch of `buf`; odd: a spliced field), an offset
    /// into it, and the bytes consumed so far.
    piece: usize,
    within: usize,
    consumed: usize,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty outbox whose buffer holds `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { buf: BytesMut::with_capacity(capacity), ..Self::default() }
    }

    /// Bytes in the outbox's own buffer, not counting fields held by reference or bytes
    /// already drained.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Encodes a response frame (length prefix, header, body) at the end of the outbox.
    ///
    /// The record batches of a Fetch response that are at least [`SPLICE_MIN_BYTES`] long are
    /// kept by reference (a reference-count increment), not copied.
    pub fn push_response(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        response: &ResponseKind,
    ) -> Result<(), String> {
        self.candidates.clear();
        self.next_candidate = 0;
        if let ResponseKind::Fetch(fetch) = response {
            let records = fetch.responses.iter().flat_map(|t| t.partitions.iter()).filter_map(|p| p.records.as_ref());
            self.candidates.extend(records.filter(|r| r.len() >= SPLICE_MIN_BYTES).cloned());
        }
        let (start, fields_before, spliced_before) = (self.buf.len(), self.spliced.len(), self.spliced_len);
        self.buf.put_i32(0);
        let encoded = encode_header(self, api_key, version, correlation_id).and_then(|()| match response {
            // Only the generic encoder writes through `put_slice`, where fields are spliced.
            ResponseKind::Fetch(fetch) => fetch.encode(self, version).map_err(|e| body_error(api_key, version, e)),
            other => other.encode(&mut self.buf, version).map_err(|e| body_error(api_key, version, e)),
        });
        self.candidates.clear();
        let size = encoded.and_then(|()| {
            let size = self.buf.len() - start - 4 + (self.spliced_len - spliced_before);
            i32::try_from(size).map_err(|_| format!("{api_key:?} response of {size} bytes is too large"))
        });
        match size {
            Ok(size) => {
                self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
                Ok(())
            }
            Err(e) => {
                // Drop the partial frame so the outbox still holds whole frames only.
                self.buf.truncate(start);
                self.spliced.truncate(fields_before);
                self.spliced_len = spliced_before;
                Err(e)
            }
        }
    }

    fn pieces(&self) -> usize {
        2 * self.spliced.len() + 1
    }

    /// Piece `i` of the frame stream: even pieces are stretches of the buffer between spliced
    /// fields, odd pieces are the fields.
    fn piece(&self, i: usize) -> &[u8] {
        let k = i / 2;
        if i % 2 == 1 {
            return &self.spliced[k].1;
        }
        let start = if k == 0 { 0 } else { self.spliced[k - 1].0 };
        let end = self.spliced.get(k).map_or(self.buf.len(), |(at, _)| *at);
        &self.buf[start..end]
    }

    /// Moves past empty pieces, and starts over once everything is drained.
    fn settle(&mut self) {
        while self.piece < self.pieces() && self.within == self.piece(self.piece).len() {
            self.piece += 1;
            self.within = 0;
        }
        if self.piece == self.pieces() {
            self.buf.clear();
            self.spliced.clear();
            self.spliced_len = 0;
            self.piece = 0;
            self.within = 0;
            self.consumed = 0;
        }
    }
}

impl Buf for Outbox {
    fn remaining(&self) -> usize {
        self.buf.len() + self.spliced_len - self.consumed
    }

    fn chunk(&self) -> &[u8] {
        if self.piece < self.pieces() { &self.piece(self.piece)[self.within..] } else { &[] }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        let mut within = self.within;
        for i in self.piece..self.pieces() {
            if filled == dst.len() {
                break;
            }
            let piece = &self.piece(i)[within..];
            within = 0;
            if !piece.is_empty() {
                dst[filled] = IoSlice::new(piece);
                filled += 1;
            }
        }
        filled
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining(), "advance past the end of the outbox");
        self.consumed += cnt;
        while cnt > 0 {
            let left = self.piece(self.piece).len() - self.within;
            let step = left.min(cnt);
            self.within += step;
            cnt -= step;
            if self.within == self.piece(self.piece).len() {
                self.piece += 1;
                self.within = 0;
            }
        }
        self.settle();
    }
}

// SAFETY: every method forwards to `BytesMut`, whose impl upholds the trait's contract;
// `put_slice` either forwards too or records a reference without touching the buffer.
unsafe impl BufMut for Outbox {
    fn remaining_mut(&self) -> usize {
        self.buf.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise (`cnt` bytes of `chunk_mut` initialised) is passed on.
        unsafe { self.buf.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.buf.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if let Some(field) = self.candidates.get(self.next_candidate)
            && field.as_ptr() == src.as_ptr()
            && field.len() == src.len()
        {
            self.spliced.push((self.buf.len(), field.clone()));
            self.spliced_len += field.len();
            self.next_candidate += 1;
            return;
        }
        self.buf.extend_from_slice(src);
    }
}

/// The codec's gap API (used by record-batch encoding, never by responses with spliced fields)
/// works on the buffer alone.
impl ByteBufMut for Outbox {
    fn offset(&self) -> usize {
        self.buf.len()
    }

    fn seek(&mut self, offset: usize) {
        self.buf.resize(offset, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        &mut self.buf[r]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_response_into;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, MetadataResponse};
    use proptest::prelude::*;

    fn fetch(sizes: &[usize]) -> ResponseKind {
        let partitions = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let records = Bytes::from((0..n).map(|b| (b * 31 + i) as u8).collect::<Vec<_>>());
                PartitionData::default().with_partition_index(i as i32).with_records(Some(records))
            })
            .collect();
        let topic = FetchableTopicResponse::default().with_partitions(partitions);
        ResponseKind::Fetch(FetchResponse::default().with_responses(vec![topic]))
    }

    /// Drains the outbox the way a vectored writer does, `step` bytes at most per write.
    fn drain(outbox: &mut Outbox, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while outbox.has_remaining() {
            let mut slices = [IoSlice::new(&[]); 3];
            let n = outbox.chunks_vectored(&mut slices);
            assert!(n > 0, "bytes remain, so there is a chunk");
            let mut budget = step;
            for slice in &slices[..n] {
                let take = slice.len().min(budget);
                out.extend_from_slice(&slice[..take]);
                budget -= take;
            }
            outbox.advance(step - budget);
        }
        out
    }

    proptest! {
        #[test]
        fn frames_match_the_copying_encoder(
            sizes in proptest::collection::vec(0usize..20_000, 0..6),
            version in prop_oneof![Just(4i16), Just(11), Just(12), Just(16)],
            step in 1usize..50_000,
        ) {
            let response = fetch(&sizes);
            let mut expected = BytesMut::new();
            encode_response_into(&mut expected, ApiKey::Metadata, 9, 1, &ResponseKind::Metadata(MetadataResponse::default())).unwrap();
            encode_response_into(&mut expected, ApiKey::Fetch, version, 2, &response).unwrap();

            let mut outbox = Outbox::new();
            outbox.push_response(ApiKey::Metadata, 9, 1, &ResponseKind::Metadata(MetadataResponse::default())).unwrap();
            outbox.push_response(ApiKey::Fetch, version, 2, &response).unwrap();
            let large: usize = sizes.iter().filter(|&&n| n >= SPLICE_MIN_BYTES).sum();
            prop_assert_eq!(outbox.buffered() + large, expected.len(), "large batches are not in the buffer");
            prop_assert_eq!(outbox.remaining(), expected.len());
            prop_assert_eq!(drain(&mut outbox, step), expected.to_vec());
            prop_assert_eq!(outbox.buffered(), 0, "a drained outbox starts over");
        }
    }

    #[test]
    fn a_response_that_cannot_be_encoded_leaves_the_frames_before_it() {
        let mut outbox = Outbox::new();
        outbox.push_response(ApiKey::Fetch, 10, 1, &fetch(&[8192])).unwrap();
        let whole = outbox.remaining();
        // A preferred read replica exists from v11 only: the codec refuses the second partition
        // at v10, after the first partition's batches have been spliced.
        let ResponseKind::Fetch(mut bad) = fetch(&[5000, 10]) else { unreachable!() };
        bad.responses[0].partitions[1].preferred_read_replica = kafka_protocol::messages::BrokerId(2);
        assert!(outbox.push_response(ApiKey::Fetch, 10, 2, &ResponseKind::Fetch(bad)).is_err());
        assert_eq!(outbox.remaining(), whole);
        let mut expected = BytesMut::new();
        encode_response_into(&mut expected, ApiKey::Fetch, 10, 1, &fetch(&[8192])).unwrap();
        assert_eq!(drain(&mut outbox, usize::MAX), expected.to_vec());
    }
}
