//! Printing segment and index files the way `kafka-dump-log.sh` does, so operators' habits and
//! scripts carry over.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use fjord_types::Offset;

use crate::batch::{RecordBatch, TimestampType};
use crate::compression::Compression;
use crate::error::{Error, Result};
use crate::offset_index::OFFSET_INDEX_ENTRY_SIZE;
use crate::scan::{ScanEnd, scan_batches};
use crate::segment::{INDEX_SUFFIX, LOG_SUFFIX, MAX_DECOMPRESSED_BATCH, TIME_INDEX_SUFFIX};
use crate::time_index::TIME_INDEX_ENTRY_SIZE;

/// What to print, as kafka-dump-log's flags choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpOptions {
    /// `--print-data-log`: print each record's key and payload (implies deep iteration).
    pub print_data_log: bool,
    /// `--deep-iteration`: print a line per record, not only per batch.
    pub deep_iteration: bool,
    /// `--verify-index-only`: check index entries against the log without printing them.
    pub verify_index_only: bool,
}

/// What a dump found wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpReport {
    /// Batches whose CRC does not match.
    pub invalid_batches: usize,
    /// Bytes after the last whole batch.
    pub trailing_invalid_bytes: u64,
    /// Index entries that disagree with the log.
    pub index_mismatches: usize,
}

impl DumpReport {
    /// Whether the file checked out.
    pub fn is_clean(&self) -> bool {
        *self == DumpReport::default()
    }
}

/// Dumps a `.log`, `.index` or `.timeindex` file to `out`; problems with indexes go to `err`,
/// as Kafka prints them to stderr.
pub fn dump_file(path: &Path, options: DumpOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<DumpReport> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let io = |e: std::io::Error| Error::io(path)(e);
    writeln!(out, "Dumping {}", path.display()).map_err(io)?;
    if let Some(base) = name.strip_suffix(LOG_SUFFIX) {
        dump_log(path, base, options, out)
    } else if name.ends_with(INDEX_SUFFIX) {
        dump_offset_index(path, options, out, err)
    } else if name.ends_with(TIME_INDEX_SUFFIX) {
        dump_time_index(path, options, out, err)
    } else {
        Err(Error::CorruptFile { path: path.to_path_buf(), reason: "not a .log, .index or .timeindex file".into() })
    }
}

fn base_offset_of(path: &Path) -> Result<Offset> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    stem.parse::<i64>().map(Offset).map_err(|_| Error::CorruptFile {
        path: path.to_path_buf(),
        reason: "file name is not a 20-digit base offset".into(),
    })
}

fn dump_log(path: &Path, base: &str, options: DumpOptions, out: &mut dyn Write) -> Result<DumpReport> {
    let io = |e: std::io::Error| Error::io(path)(e);
    let base: i64 = base.parse().unwrap_or(0);
    writeln!(out, "Log starting offset: {base}").map_err(io)?;
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut report = DumpReport::default();
    let mut write_error = None;
    let mut scratch = Vec::new();
    let deep = options.deep_iteration || options.print_data_log;
    let end = scan_batches(&file, path, 0, len, |position, bytes| {
        let batch = RecordBatch::parse(bytes).map_err(|e| e.to_string())?;
        let valid = batch.is_valid();
        if !valid {
            report.invalid_batches += 1;
        }
        let result = print_batch(out, &batch, position, valid, deep, options.print_data_log, &mut scratch);
        result.map_err(|e| {
            let reason = e.to_string();
            write_error = Some(e);
            reason
        })
    })?;
    if let Some(e) = write_error {
        return Err(e);
    }
    if let ScanEnd::Invalid { position, .. } = end {
        report.trailing_invalid_bytes = len - position;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        writeln!(out, "Found {} invalid bytes at the end of {name}", len - position).map_err(io)?;
    }
    Ok(report)
}

fn print_batch(
    out: &mut dyn Write,
    batch: &RecordBatch<'_>,
    position: u64,
    valid: bool,
    deep: bool,
    print_data: bool,
    scratch: &mut Vec<u8>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::Io { path: "<output>".into(), source: e };
    let horizon = match batch.delete_horizon() {
        Some(t) => format!("OptionalLong[{t}]"),
        None => "OptionalLong.empty".to_owned(),
    };
    writeln!(
        out,
        "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {} producerId: {} \
         producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} deleteHorizonMs: {horizon} \
         position: {position} {}: {} size: {} magic: {} compresscodec: {} crc: {} isvalid: {valid}",
        batch.base_offset(),
        batch.last_offset(),
        batch.record_count(),
        batch.base_sequence(),
        batch.last_sequence(),
        batch.producer_id(),
        batch.producer_epoch(),
        batch.partition_leader_epoch(),
        batch.is_transactional(),
        batch.is_control(),
        batch.timestamp_type().name(),
        batch.max_timestamp(),
        batch.size(),
        batch.magic(),
        batch.compression(),
        batch.crc(),
    )
    .map_err(io)?;
    if !deep || !valid {
        return Ok(());
    }
    scratch.clear();
    let records = if batch.compression() == Compression::None {
        batch.records()?
    } else {
        batch.decompress_records(scratch, MAX_DECOMPRESSED_BATCH)?;
        batch.records_in(scratch)
    };
    let label = match batch.timestamp_type() {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    };
    for record in records {
        let record = record?;
        let delta = record.offset().since(batch.base_offset());
        let sequence = if batch.base_sequence() < 0 { -1 } else { i64::from(batch.base_sequence()) + delta };
        let mut keys = Vec::new();
        for header in record.headers() {
            keys.push(String::from_utf8_lossy(header?.key).into_owned());
        }
        write!(
            out,
            "| offset: {} {label}: {} keySize: {} valueSize: {} sequence: {sequence} headerKeys: [{}]",
            record.offset(),
            record.timestamp(),
            record.key().map_or(-1, |k| k.len() as i64),
            record.value().map_or(-1, |v| v.len() as i64),
            keys.join(","),
        )
        .map_err(io)?;
        if print_data && !batch.is_control() {
            if let Some(key) = record.key() {
                write!(out, " key: {}", String::from_utf8_lossy(key)).map_err(io)?;
            }
            if let Some(value) = record.value() {
                write!(out, " payload: {}", String::from_utf8_lossy(value)).map_err(io)?;
            }
        }
        writeln!(out).map_err(io)?;
    }
    Ok(())
}

/// The batches of the log file beside an index, as (position, last offset, max timestamp).
fn log_batches(index_path: &Path, suffix: &str) -> Result<Vec<(u64, Offset, fjord_types::Timestamp)>> {
    let name = index_path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let log_path = index_path.with_file_name(format!("{}{LOG_SUFFIX}", name.trim_end_matches(suffix)));
    let file = File::open(&log_path).map_err(Error::io(&log_path))?;
    let len = file.metadata().map_err(Error::io(&log_path))?.len();
    let mut batches = Vec::new();
    scan_batches(&file, &log_path, 0, len, |position, bytes| {
        let batch = RecordBatch::parse(bytes).map_err(|e| e.to_string())?;
        batches.push((position, batch.last_offset(), batch.max_timestamp()));
        Ok(())
    })?;
    Ok(batches)
}

fn dump_offset_index(
    path: &Path,
    options: DumpOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<DumpReport> {
    let io = |e: std::io::Error| Error::io(path)(e);
    let base = base_offset_of(path)?;
    let bytes = std::fs::read(path).map_err(io)?;
    let batches = log_batches(path, INDEX_SUFFIX)?;
    let absolute = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut report = DumpReport::default();
    let mut printed = 0;
    for (i, entry) in bytes.chunks_exact(OFFSET_INDEX_ENTRY_SIZE).enumerate() {
        let relative = u32::from_be_bytes(entry[0..4].try_into().expect("4 bytes"));
        let position = u32::from_be_bytes(entry[4..8].try_into().expect("4 bytes"));
        // The preallocated, zero-filled tail of an active segment's index (no real entry points
        // at position 0: the first batch of a segment is never indexed).
        if (i > 0 && relative == 0) || (relative, position) == (0, 0) {
            break;
        }
        let offset = base.plus(i64::from(relative));
        let at = batches.iter().find(|(p, _, _)| *p == u64::from(position));
        match at {
            Some((_, last, _)) if *last == offset => {}
            found => {
                report.index_mismatches += 1;
                let log_offset = found.map_or(-1, |(_, last, _)| last.0);
                writeln!(
                    err,
                    "Mismatches in :{}\n  Index offset: {offset}, log offset: {log_offset}",
                    absolute.display()
                )
                .map_err(io)?;
            }
        }
        if !options.verify_index_only {
            writeln!(out, "offset: {offset} position: {position}").map_err(io)?;
        }
        printed += 1;
    }
    if printed == 0 {
        writeln!(out, "{} is empty.", path.display()).map_err(io)?;
    }
    Ok(report)
}

fn dump_time_index(path: &Path, options: DumpOptions, out: &mut dyn Write, err: &mut dyn Write) -> Result<DumpReport> {
    let io = |e: std::io::Error| Error::io(path)(e);
    let base = base_offset_of(path)?;
    let bytes = std::fs::read(path).map_err(io)?;
    let batches = log_batches(path, TIME_INDEX_SUFFIX)?;
    let absolute = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut report = DumpReport::default();
    let mut previous = None;
    let mut printed = 0;
    for entry in bytes.chunks_exact(TIME_INDEX_ENTRY_SIZE) {
        let timestamp = i64::from_be_bytes(entry[0..8].try_into().expect("8 bytes"));
        let relative = u32::from_be_bytes(entry[8..12].try_into().expect("4 bytes"));
        if timestamp == 0 && relative == 0 {
            break;
        }
        let offset = base.plus(i64::from(relative));
        match batches.iter().find(|(_, last, _)| *last == offset) {
            Some((_, _, max)) if max.0 == timestamp => {}
            found => {
                report.index_mismatches += 1;
                let log_timestamp = found.map_or(-1, |(_, _, max)| max.0);
                writeln!(
                    err,
                    "Found timestamp mismatch in :{}\n  Index timestamp: {timestamp}, log timestamp: {log_timestamp}",
                    absolute.display()
                )
                .map_err(io)?;
            }
        }
        if let Some(previous) = previous.filter(|&p| timestamp <= p) {
            report.index_mismatches += 1;
            writeln!(
                err,
                "Found out of order timestamp in :{}\n  Index timestamp: {timestamp}, Previously indexed timestamp: {previous}",
                absolute.display()
            )
            .map_err(io)?;
        }
        previous = Some(timestamp);
        if !options.verify_index_only {
            writeln!(out, "timestamp: {timestamp} offset: {offset}").map_err(io)?;
        }
        printed += 1;
    }
    if printed == 0 {
        writeln!(out, "{} is empty.", path.display()).map_err(io)?;
    }
    Ok(report)
}
