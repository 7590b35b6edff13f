//! The codecs a batch's records may be compressed with (attributes bits 0-2).
//!
//! The log stores batches as producers send them; it decompresses only to look inside one
//! (dump, timestamp search, validation by the broker, compaction). Decompression is bounded by
//! the caller's limit, so a small hostile batch cannot claim gigabytes of memory.

use std::fmt;
use std::io::{Read, Write};

use crate::error::{Error, Result};

/// A record batch's compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Records stored as they are.
    #[default]
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Snappy, in the xerial framing the Java client writes (raw snappy is read too).
    Snappy,
    /// The LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// All codecs, by id.
    pub const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    /// The codec for attribute bits 0-2.
    pub fn from_id(id: u8) -> Result<Compression> {
        Compression::ALL.get(usize::from(id)).copied().ok_or(Error::UnknownCompression(id))
    }

    /// The codec's id in the batch attributes.
    pub const fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name for the codec (`compression.type`).
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Compresses `input`, appending to `out`.
    pub fn compress(self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let failed = |e: std::io::Error| Error::Decompression { codec: self.name(), reason: e.to_string() };
        match self {
            Compression::None => out.extend_from_slice(input),
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                encoder.write_all(input).map_err(failed)?;
                encoder.finish().map_err(failed)?;
            }
            Compression::Snappy => snappy_compress_xerial(input, out)?,
            Compression::Lz4 => {
                let mut encoder =
                    lz4::EncoderBuilder::new().block_size(lz4::BlockSize::Max64KB).build(out).map_err(failed)?;
                encoder.write_all(input).map_err(failed)?;
                let (_, result) = encoder.finish();
                result.map_err(failed)?;
            }
            Compression::Zstd => {
                let mut encoder = zstd::stream::Encoder::new(out, 3).map_err(failed)?;
                encoder.write_all(input).map_err(failed)?;
                encoder.finish().map_err(failed)?;
            }
        }
        Ok(())
    }

    /// Decompresses `input`, appending to `out`; fails if the result would exceed `max_len` bytes.
    pub fn decompress(self, input: &[u8], out: &mut Vec<u8>, max_len: usize) -> Result<()> {
        let codec = self.name();
        let failed = |e: std::io::Error| Error::Decompression { codec, reason: e.to_string() };
        let start = out.len();
        if input.is_empty() && self != Compression::None {
            // Even zero records compress to a frame header; nothing at all is not a stream.
            return Err(Error::Decompression { codec, reason: "no compressed data".into() });
        }
        match self {
            Compression::None => {
                check_limit(codec, input.len(), max_len)?;
                out.extend_from_slice(input);
            }
            Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(input), out, max_len, codec)?,
            Compression::Snappy => snappy_decompress(input, out, max_len)?,
            Compression::Lz4 => {
                let mut decoder = lz4::Decoder::new(input).map_err(failed)?;
                read_bounded(&mut decoder, out, max_len, codec)?;
                // The decoder reports a frame cut short only when asked.
                decoder.finish().1.map_err(failed)?;
            }
            Compression::Zstd => {
                let decoder = zstd::stream::Decoder::with_buffer(input).map_err(failed)?;
                read_bounded(decoder, out, max_len, codec)?;
            }
        }
        debug_assert!(out.len() - start <= max_len);
        Ok(())
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn check_limit(codec: &'static str, len: usize, max_len: usize) -> Result<()> {
    if len > max_len {
        return Err(Error::Decompression {
            codec,
            reason: format!("decompressed size exceeds the limit of {max_len} bytes"),
        });
    }
    Ok(())
}

fn read_bounded(reader: impl Read, out: &mut Vec<u8>, max_len: usize, codec: &'static str) -> Result<()> {
    let start = out.len();
    let limit = u64::try_from(max_len).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(limit).read_to_end(out).map_err(|e| Error::Decompression { codec, reason: e.to_string() })?;
    check_limit(codec, out.len() - start, max_len)
}

/// The header the xerial snappy-java stream format starts with: magic, version 1, compatible 1.
const XERIAL_HEADER: [u8; 16] = *b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// snappy-java's default block size.
const XERIAL_BLOCK: usize = 32 * 1024;

fn snappy_compress_xerial(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&XERIAL_HEADER);
    let mut encoder = snap::raw::Encoder::new();
    for block in input.chunks(XERIAL_BLOCK) {
        let length_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let body_at = out.len();
        out.resize(body_at + snap::raw::max_compress_len(block.len()), 0);
        let written = encoder
            .compress(block, &mut out[body_at..])
            .map_err(|e| Error::Decompression { codec: "snappy", reason: e.to_string() })?;
        out.truncate(body_at + written);
        out[length_at..body_at].copy_from_slice(&(written as u32).to_be_bytes());
    }
    Ok(())
}

fn snappy_decompress(input: &[u8], out: &mut Vec<u8>, max_len: usize) -> Result<()> {
    let failed = |reason: String| Error::Decompression { codec: "snappy", reason };
    let start = out.len();
    let raw_block = |block: &[u8], out: &mut Vec<u8>| -> Result<()> {
        let len = snap::raw::decompress_len(block).map_err(|e| failed(e.to_string()))?;
        // The claimed length is checked before anything is allocated for it.
        check_limit("snappy", out.len() - start + len, max_len)?;
        let at = out.len();
        out.resize(at + len, 0);
        snap::raw::Decoder::new().decompress(block, &mut out[at..]).map_err(|e| failed(e.to_string()))?;
        Ok(())
    };
    // Like snappy-java, fall back to raw snappy when the xerial magic is absent.
    if input.len() < 8 || input[..8] != XERIAL_HEADER[..8] {
        return raw_block(input, out);
    }
    if input.len() < XERIAL_HEADER.len() {
        return Err(failed("truncated xerial header".into()));
    }
    let mut rest = &input[XERIAL_HEADER.len()..];
    while !rest.is_empty() {
        let Some((length, body)) = rest.split_first_chunk::<4>() else {
            return Err(failed("truncated block length".into()));
        };
        let length = u32::from_be_bytes(*length) as usize;
        if length > body.len() {
            return Err(failed("block runs past the end of the batch".into()));
        }
        raw_block(&body[..length], out)?;
        rest = &body[length..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    #[test]
    fn every_codec_round_trips() {
        let input = sample();
        for codec in Compression::ALL {
            let mut compressed = Vec::new();
            codec.compress(&input, &mut compressed).unwrap();
            let mut out = Vec::new();
            codec.decompress(&compressed, &mut out, input.len()).unwrap();
            assert_eq!(out, input, "{codec}");
        }
    }

    #[test]
    fn decompression_is_bounded() {
        let input = vec![0u8; 1 << 20];
        for codec in Compression::ALL {
            let mut compressed = Vec::new();
            codec.compress(&input, &mut compressed).unwrap();
            let mut out = Vec::new();
            let err = codec.decompress(&compressed, &mut out, 1000).unwrap_err();
            assert!(matches!(err, Error::Decompression { .. }), "{codec}: {err}");
            assert!(out.len() <= 1001, "{codec} wrote {} bytes", out.len());
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            for garbage in
                [&b""[..], b"\x00", b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff\xff\xff", &[0xab; 64]]
            {
                if codec == Compression::Snappy && garbage == b"\x00" {
                    continue; // a valid raw snappy stream of zero bytes
                }
                let mut out = Vec::new();
                assert!(codec.decompress(garbage, &mut out, 1 << 20).is_err(), "{codec} {garbage:?}");
            }
        }
    }

    #[test]
    fn raw_snappy_is_accepted() {
        let input = sample();
        let compressed = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        let mut out = Vec::new();
        Compression::Snappy.decompress(&compressed, &mut out, input.len()).unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn codec_ids_are_kafkas() {
        for (id, codec) in Compression::ALL.iter().enumerate() {
            assert_eq!(Compression::from_id(id as u8).unwrap(), *codec);
        }
        assert!(Compression::from_id(5).is_err());
    }
}
