//! A Kafka partition log on disk, usable on its own (as a write-ahead log, say) or under the
//! Fjord broker.
//!
//! It mirrors Kafka's storage layer (`UnifiedLog`, `LogSegment`, `OffsetIndex`, `TimeIndex`,
//! `DefaultRecordBatch`): a partition is a directory of segments named by their 20-digit base
//! offset, each a `.log` file of v2 record batches with a sparse `.index` (offset to file
//! position) and a `.timeindex` (timestamp to offset). Batches are stored exactly as the
//! producer sent them, with the base offset and leader epoch patched in place; reads hand out
//! [`FileRange`]s so the broker can send file bytes without copying them through the heap.
//! After an unclean shutdown [`Log::open`] checks every batch after the recovery point and cuts
//! the log at the first torn or corrupt one.
//!
//! The byte layouts and crash analysis are in `docs/log-format.md`.
//!
//! This crate does no networking, starts no threads, and never reads the clock: the caller
//! passes `now`. It depends only on `fjord-types` among Fjord's crates.

#![warn(missing_docs)]

mod batch;
mod builder;
mod cleaned;
mod compression;
mod config;
mod dump;
mod error;
mod file_range;
mod flush;
mod index_file;
mod log;
mod log_loader;
mod offset_index;
mod record;
mod replay;
mod scan;
mod segment;
mod time_index;
mod varint;

pub use batch::{
    BATCH_HEADER_SIZE, Batches, LOG_OVERHEAD, MAGIC_V2, RecordBatch, RecordBatchMut, TimestampType, batch_size,
};
pub use builder::BatchBuilder;
pub use cleaned::CleanedSegment;
pub use compression::Compression;
pub use config::LogConfig;
pub use dump::{DumpOptions, DumpReport, dump_file};
pub use error::{Error, Result};
pub use file_range::FileRange;
pub use flush::FlushPlan;
pub use log::{AppendInfo, AppendMode, CLEAN_SHUTDOWN_FILE, DeletedSegment, Log, OpenOptions, OpenReport, SegmentInfo};
pub use offset_index::{OFFSET_INDEX_ENTRY_SIZE, OffsetPosition};
pub use record::{Header, Headers, Record, Records};
pub use segment::{
    CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX, segment_file_name,
};
pub use time_index::{TIME_INDEX_ENTRY_SIZE, TimestampOffset};
